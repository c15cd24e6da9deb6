"""The class-conditional UNet of the classifier-free guidance lesson, written out by hand.

The architecture *is* the lesson, so it is kept small and readable (28 -> 14 -> 7, attention at 7x7):

    emb = MLP(sinusoid(t)) + label_embedding[y]          # the label is ADDED to the timestep embedding
    every ResBlock and every AttentionBlock is conditioned on `emb` (scale-and-shift after GroupNorm)

`y` runs over 0..num_classes-1 for the classes and `num_classes` for "no label": a separate,
learned null embedding. The reference implementation reused label 0 for "no label", so its
unconditional model collided with the first class; here the two are different rows of the table.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer-style sinusoids of the (integer) timestep t, as in DDPM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, then scale-and-shift by the (time + label) embedding, -> conv; plus a skip."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight), nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(self.drop(F.silu(h)))


class AttentionBlock(nn.Module):
    """Self-attention over the pixels, its input norm also scale-and-shifted by the embedding."""

    def __init__(self, ch: int, emb_dim: int, groups: int, heads: int = 4):
        super().__init__()
        self.norm, self.emb = nn.GroupNorm(groups, ch), nn.Linear(emb_dim, 2 * ch)
        self.qkv, self.out, self.heads = nn.Linear(ch, 3 * ch), nn.Linear(ch, ch), heads
        nn.init.zeros_(self.out.weight), nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        y = (self.norm(x) * (1 + scale) + shift).flatten(2).transpose(1, 2)          # (b, hw, c)
        q, k, v = self.qkv(y).view(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        return x + self.out(y).transpose(1, 2).view(b, c, h, w)


class ClassConditionalUNet(nn.Module):
    """ε_θ(x_t, t, y): down 28 -> 14 -> 7, a middle with attention, up 7 -> 14 -> 28 with skip connections."""

    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
                 channels=(32, 64, 64), emb_dim: int = 128, groups: int = 8, dropout: float = 0.0):
        super().__init__()
        self.config = dict(in_channels=in_channels, image_size=image_size, num_classes=num_classes,
                           channels=list(channels), emb_dim=emb_dim, groups=groups, dropout=dropout)
        self.num_classes, self.null_label = num_classes, num_classes
        c0, c1, c2 = channels
        # embeddings: time (sinusoid -> MLP) and label (a table with one extra row: the null label)
        self.time_mlp = nn.Sequential(nn.Linear(c0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(num_classes + 1, emb_dim)
        blk = dict(emb_dim=emb_dim, groups=groups)
        self.conv_in = nn.Conv2d(in_channels, c0, 3, padding=1)
        # down path
        self.down0 = ResBlock(c0, c0, dropout=dropout, **blk)                 # 28x28
        self.pool0 = nn.Conv2d(c0, c0, 3, stride=2, padding=1)                # -> 14x14
        self.down1 = ResBlock(c0, c1, dropout=dropout, **blk)
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)                # -> 7x7
        self.down2, self.down2_attn = ResBlock(c1, c2, dropout=dropout, **blk), AttentionBlock(c2, **blk)
        # middle
        self.mid1, self.mid_attn = ResBlock(c2, c2, dropout=dropout, **blk), AttentionBlock(c2, **blk)
        self.mid2 = ResBlock(c2, c2, dropout=dropout, **blk)
        # up path: each block sees its own features concatenated with the matching down block's
        self.up2, self.up2_attn = ResBlock(2 * c2, c2, dropout=dropout, **blk), AttentionBlock(c2, **blk)
        self.unpool1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c2, c2, 3, padding=1))
        self.up1 = ResBlock(c2 + c1, c1, dropout=dropout, **blk)              # 14x14
        self.unpool0 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c1, c1, 3, padding=1))
        self.up0 = ResBlock(c1 + c0, c0, dropout=dropout, **blk)              # 28x28
        self.norm_out, self.conv_out = nn.GroupNorm(groups, c0), nn.Conv2d(c0, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight), nn.init.zeros_(self.conv_out.bias)

    def embed(self, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """emb = MLP(sinusoid(t)) + E[y]: the label is added to the timestep embedding."""
        t = torch.as_tensor(t, device=labels.device).reshape(-1).expand(labels.shape[0])
        return self.time_mlp(timestep_embedding(t, self.conv_in.out_channels)) + self.label_emb(labels)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        emb = self.embed(t, labels)
        h0 = self.down0(self.conv_in(x), emb)
        h1 = self.down1(self.pool0(h0), emb)
        h2 = self.down2_attn(self.down2(self.pool1(h1), emb), emb)
        h = self.mid2(self.mid_attn(self.mid1(h2, emb), emb), emb)
        h = self.up2_attn(self.up2(torch.cat([h, h2], 1), emb), emb)
        h = self.up1(torch.cat([self.unpool1(h), h1], 1), emb)
        h = self.up0(torch.cat([self.unpool0(h), h0], 1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


def drop_labels(labels: torch.Tensor, p: float, null_label: int, generator: torch.Generator | None = None):
    """Classifier-free training: replace each sample's label by the null label with probability p.

    Per sample (a fresh coin for every image), not for the whole batch at once as in the reference.
    """
    u = torch.rand(labels.shape, generator=generator) if generator is not None else torch.rand(labels.shape)
    keep = u.to(labels.device) >= p
    return torch.where(keep, labels, torch.full_like(labels, null_label))

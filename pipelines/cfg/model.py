"""The class-conditional UNet of the classifier-free guidance lesson, written out by hand.

The architecture *is* the lesson, so it is kept small and readable (28 -> 14 -> 7, attention at 7x7):

    emb = MLP(sinusoid(t)) + label_embedding[y]          # the label is ADDED to the timestep embedding
    every ResBlock and every AttentionBlock is conditioned on `emb` (scale-and-shift after GroupNorm)

The conditioning lesson trains the same backbone four times; `conditioning=` switches only how y enters
(the four ways of the course notes, each a few lines below, under "how the label enters"):

    "add"              emb = MLP(t) + E[y]                         (above; the CFG tab's model)
    "concat"           x_in = [x_t ; M[y]]                         a learned per-class map as extra input channels
    "cross_attention"  h += softmax(Q(h) K(T[y])ᵀ / √d) V(T[y])    feature maps attend to the label's tokens
    "adaln"            h = x + α(c) ⊙ F((1 + γ(c)) ⊙ GN(x) + β(c)), c = MLP(t) + E[y]   (adaLN-Zero, DiT)

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

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context=None) -> torch.Tensor:
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

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context=None) -> torch.Tensor:
        b, c, h, w = x.shape
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        y = (self.norm(x) * (1 + scale) + shift).flatten(2).transpose(1, 2)          # (b, hw, c)
        q, k, v = self.qkv(y).view(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        return x + self.out(y).transpose(1, 2).view(b, c, h, w)


# ----------------------------------------------------------------------------- how the label enters
CONDITIONINGS = ("add", "concat", "cross_attention", "adaln")


class LabelMap(nn.Module):
    """concat: x_in = [x_t ; M[y]], a learned k×H×W map per class (and one for the null label) stacked on the
    image's channels, as spatial conditions (a low-resolution image, a mask) enter SR3 or ControlNet."""

    def __init__(self, num_labels: int, channels: int, size: int):
        super().__init__()
        self.maps, self.shape = nn.Embedding(num_labels, channels * size * size), (channels, size, size)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.maps(labels).view(-1, *self.shape).to(x.dtype)], dim=1)


class CrossAttentionBlock(AttentionBlock):
    """cross_attention: after self-attention, every pixel's query attends to the label's tokens,

        h ← h + W_o · softmax(Q Kᵀ / √d) V,   Q = W_q GN(h),  K = W_k T[y],  V = W_v T[y]

    as Stable Diffusion's UNet attends to the prompt's token embeddings (there: words; here: the label as
    n learned tokens, so the softmax has something to choose between)."""

    def __init__(self, ch: int, emb_dim: int, groups: int, heads: int = 4, context_dim: int = 128):
        super().__init__(ch, emb_dim, groups, heads)
        self.cross_norm, self.to_q = nn.GroupNorm(groups, ch), nn.Linear(ch, ch)
        self.to_kv, self.cross_out = nn.Linear(context_dim, 2 * ch), nn.Linear(ch, ch)
        nn.init.zeros_(self.cross_out.weight), nn.init.zeros_(self.cross_out.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context=None) -> torch.Tensor:
        x = super().forward(x, emb)
        b, c, h, w = x.shape
        heads, d = self.heads, c // self.heads
        q = self.to_q(self.cross_norm(x).flatten(2).transpose(1, 2)).view(b, h * w, heads, d).transpose(1, 2)
        k, v = self.to_kv(context).view(b, -1, 2, heads, d).permute(2, 0, 3, 1, 4)   # (b, heads, tokens, d)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)  # softmax(QKᵀ/√d)·V
        return x + self.cross_out(y).transpose(1, 2).view(b, c, h, w)


class AdaLNResBlock(nn.Module):
    """adaln: the condition c = MLP(t) + E[y] sets every norm's scale and shift and gates the residual branch
    (adaLN-Zero, Peebles & Xie 2023):

        h = conv1(SiLU((1 + γ₁) ⊙ GN(x) + β₁));  h = conv2(SiLU((1 + γ₂) ⊙ GN(h) + β₂));  out = skip(x) + α ⊙ h

    (γ₁, β₁, γ₂, β₂, α) = W·SiLU(c) with W = 0 at the start, so each block begins as its skip path. The "add"
    model reads the same sum c, but only as one scale-and-shift per block, with no gate."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin, affine=False), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout, affine=False), nn.Conv2d(cout, cout, 3, padding=1)
        self.modulation, self.sizes = nn.Linear(emb_dim, 2 * cin + 3 * cout), [cin, cin, cout, cout, cout]
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.modulation.weight), nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context=None) -> torch.Tensor:
        g1, b1, g2, b2, gate = (m[:, :, None, None] for m in self.modulation(F.silu(emb)).split(self.sizes, 1))
        h = self.conv1(F.silu(self.norm1(x) * (1 + g1) + b1))
        h = self.conv2(self.drop(F.silu(self.norm2(h) * (1 + g2) + b2)))
        return self.skip(x) + gate * h


class AdaLNAttentionBlock(AttentionBlock):
    """adaln for self-attention: x + α ⊙ Attn((1 + γ) ⊙ GN(x) + β), (γ, β, α) from c, zero at the start."""

    def __init__(self, ch: int, emb_dim: int, groups: int, heads: int = 4):
        super().__init__(ch, emb_dim, groups, heads)
        self.norm, self.emb = nn.GroupNorm(groups, ch, affine=False), nn.Linear(emb_dim, 3 * ch)
        nn.init.zeros_(self.emb.weight), nn.init.zeros_(self.emb.bias)
        nn.init.normal_(self.out.weight, std=0.02)   # the gate starts at 0; the projection must not, or neither learns

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context=None) -> torch.Tensor:
        b, c, h, w = x.shape
        scale, shift, gate = self.emb(F.silu(emb))[:, :, None, None].chunk(3, dim=1)
        y = (self.norm(x) * (1 + scale) + shift).flatten(2).transpose(1, 2)
        q, k, v = self.qkv(y).view(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        return x + gate * self.out(y).transpose(1, 2).view(b, c, h, w)


class ClassConditionalUNet(nn.Module):
    """ε_θ(x_t, t, y): down 28 -> 14 -> 7, a middle with attention, up 7 -> 14 -> 28 with skip connections.

    `conditioning` picks how y enters (see the module docstring); "add" is the CFG lesson's model.
    `label_channels` (concat) and `label_tokens` (cross_attention) size the label's map and tokens."""

    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
                 channels=(32, 64, 64), emb_dim: int = 128, groups: int = 8, dropout: float = 0.0,
                 conditioning: str = "add", label_channels: int = 4, label_tokens: int = 4):
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
        self.config = dict(in_channels=in_channels, image_size=image_size, num_classes=num_classes,
                           channels=list(channels), emb_dim=emb_dim, groups=groups, dropout=dropout)
        if conditioning != "add":  # the CFG lesson's configs stay as they were
            self.config.update(conditioning=conditioning, label_channels=label_channels, label_tokens=label_tokens)
        self.conditioning, self.num_classes, self.null_label = conditioning, num_classes, num_classes
        c0, c1, c2 = channels
        # embeddings: time (sinusoid -> MLP) and label (a table with one extra row: the null label)
        self.time_mlp = nn.Sequential(nn.Linear(c0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if conditioning in ("add", "adaln"):
            self.label_emb = nn.Embedding(num_classes + 1, emb_dim)
        elif conditioning == "concat":
            self.label_map = LabelMap(num_classes + 1, label_channels, image_size)
        else:
            self.label_tokens, self.n_tokens = nn.Embedding(num_classes + 1, label_tokens * emb_dim), label_tokens
        Res = AdaLNResBlock if conditioning == "adaln" else ResBlock
        Attn = {"adaln": AdaLNAttentionBlock, "cross_attention": CrossAttentionBlock}.get(conditioning, AttentionBlock)
        blk = dict(emb_dim=emb_dim, groups=groups)
        attn = dict(blk, context_dim=emb_dim) if conditioning == "cross_attention" else blk
        self.conv_in = nn.Conv2d(in_channels + (label_channels if conditioning == "concat" else 0), c0, 3, padding=1)
        # down path
        self.down0 = Res(c0, c0, dropout=dropout, **blk)                      # 28x28
        self.pool0 = nn.Conv2d(c0, c0, 3, stride=2, padding=1)                # -> 14x14
        self.down1 = Res(c0, c1, dropout=dropout, **blk)
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)                # -> 7x7
        self.down2, self.down2_attn = Res(c1, c2, dropout=dropout, **blk), Attn(c2, **attn)
        # middle
        self.mid1, self.mid_attn = Res(c2, c2, dropout=dropout, **blk), Attn(c2, **attn)
        self.mid2 = Res(c2, c2, dropout=dropout, **blk)
        # up path: each block sees its own features concatenated with the matching down block's
        self.up2, self.up2_attn = Res(2 * c2, c2, dropout=dropout, **blk), Attn(c2, **attn)
        self.unpool1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c2, c2, 3, padding=1))
        self.up1 = Res(c2 + c1, c1, dropout=dropout, **blk)                   # 14x14
        self.unpool0 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c1, c1, 3, padding=1))
        self.up0 = Res(c1 + c0, c0, dropout=dropout, **blk)                   # 28x28
        self.norm_out, self.conv_out = nn.GroupNorm(groups, c0), nn.Conv2d(c0, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight), nn.init.zeros_(self.conv_out.bias)

    def embed(self, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """emb = MLP(sinusoid(t)) + E[y]: the label is added to the timestep embedding ("add" and "adaln";
        the other two mechanisms give the blocks the time alone)."""
        t = torch.as_tensor(t, device=labels.device).reshape(-1).expand(labels.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.conv_in.out_channels))
        return emb + self.label_emb(labels) if hasattr(self, "label_emb") else emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        emb = self.embed(t, labels)
        ctx = None
        if self.conditioning == "concat":
            x = self.label_map(x, labels)                                        # [x_t ; M[y]]
        elif self.conditioning == "cross_attention":
            ctx = self.label_tokens(labels).view(len(labels), self.n_tokens, -1)  # T[y]: (b, tokens, d)
        h0 = self.down0(self.conv_in(x), emb)
        h1 = self.down1(self.pool0(h0), emb)
        h2 = self.down2_attn(self.down2(self.pool1(h1), emb), emb, ctx)
        h = self.mid2(self.mid_attn(self.mid1(h2, emb), emb, ctx), emb)
        h = self.up2_attn(self.up2(torch.cat([h, h2], 1), emb), emb, ctx)
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

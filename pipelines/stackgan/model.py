"""StackGAN (Zhang et al. 2017): the four networks and the losses, in one file.

    Stage I    z ~ N(0, I), ĉ_0 ~ N(μ_0(φ), Σ_0(φ))  ->  G_0  ->  s_0, a 32 x 32 sketch
    Stage II   s_0, a fresh ĉ ~ N(μ(φ), Σ(φ))      ->  G    ->  s, a 64 x 64 image
    D_0, D     (image, φ) -> one logit: "a real image that matches this text"

φ is the caption's sentence embedding (MiniLM, mean-pooled, 384-d; `pipelines.text_encoder`). The paper used
64 -> 256 px birds; here 32 -> 64 px shapes, so every block is the paper's, with fewer of them.

Conditioning augmentation (paper §3.1): φ is high-dimensional and the captions are few, so instead of feeding φ
the generator gets a *sample* ĉ = μ(φ) + σ(φ) ⊙ ε, ε ~ N(0, I), and the generator loss gains
λ · KL(N(μ, diag σ²) ‖ N(0, I)) / dim ĉ,  KL = ½ Σ (μ² + σ² − 1 − log σ²)   (eq. 3 and 5; λ = 2 on the KL per
dimension, as in the authors' code)
which keeps the conditioning manifold smooth: nearby captions, and resamples of one caption, give nearby images.

Matching-aware discriminators (Reed et al. 2016): D sees three kinds of pair and must call only the first real,
    (real image, its caption) -> 1,   (real image, another caption) -> 0,   (generated image, its caption) -> 0
so it cannot be fooled by a good-looking image of the wrong thing; that is what makes the generator obey the text.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from ..runtime import count_parameters
from ..shapes.data import ATTRIBUTE_NAMES

KL_WEIGHT = 2.0
UPSAMPLES = ("nearest", "pixelshuffle")


# ----------------------------------------------------------------------------- building blocks
def upsample_block(cin: int, cout: int, mode: str = "nearest") -> nn.Sequential:
    """x2 resolution. "nearest": nearest-neighbour x2 then a 3x3 conv (the paper's choice).
    "pixelshuffle": sub-pixel convolution (Shi et al. 2016): a 3x3 conv to cout·r² channels, then PixelShuffle(r)
    moves each group of r² channels into an r x r block of pixels, (B, C·r², H, W) -> (B, C, H·r, W·r)."""
    if mode == "nearest":
        layers = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1, bias=False)]
    elif mode == "pixelshuffle":
        layers = [nn.Conv2d(cin, cout * 4, 3, padding=1, bias=False), nn.PixelShuffle(2)]
    else:
        raise ValueError(f"upsample must be one of {UPSAMPLES}, got {mode!r}")
    return nn.Sequential(*layers, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def spectral(layer: nn.Module, on: bool) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018): divide the weight by its largest singular value, so the layer is
    1-Lipschitz and D cannot become arbitrarily sharp. Not in the StackGAN paper; see `StageIDiscriminator`."""
    return nn.utils.parametrizations.spectral_norm(layer) if on else layer


def downsample_block(cin: int, cout: int, norm: bool = True, sn: bool = False) -> nn.Sequential:
    """/2 resolution: a 4x4 stride-2 conv, BatchNorm, LeakyReLU(0.2) (DCGAN's discriminator block); with `sn` the
    conv is spectrally normalised instead of followed by BatchNorm."""
    norm = norm and not sn
    layers = [spectral(nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm), sn)] + ([nn.BatchNorm2d(cout)] if norm else [])
    return nn.Sequential(*layers, nn.LeakyReLU(0.2, inplace=True))


class ResBlock(nn.Module):
    """x + F(x), F = conv-BN-ReLU-conv-BN (Stage II's refiner)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                                  nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))

    def forward(self, x):
        return F.relu(x + self.body(x))


class Standardise(nn.Module):
    """(φ − mean) / std per dimension, with the mean and std of the training captions' φ (buffers, saved with the
    weights; identity until `set_text_statistics`). MiniLM's unit-length sentence embeddings of these captions differ
    little (per-dimension std ≈ 0.03, mean cosine 0.54): standardised, a caption's differences are O(1) and reach
    ĉ and D's text branch at the start of training instead of drowning in ε."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        return (phi - self.mean) / self.std


def set_text_statistics(net: nn.Module, phi: torch.Tensor) -> None:
    """Fill every `Standardise` of `net` with the mean and std of the training captions' φ (n, text_dim)."""
    for m in net.modules():
        if isinstance(m, Standardise):
            m.mean.copy_(phi.mean(0))
            m.std.copy_(phi.std(0).clamp(min=1e-4))


class ConditioningAugmentation(nn.Module):
    """φ (B, text_dim) -> (ĉ, μ, log σ²): ĉ = μ + σ ⊙ ε (the reparameterisation trick, so gradients reach μ, σ)."""

    def __init__(self, text_dim: int = 384, c_dim: int = 64):
        super().__init__()
        self.standardise = Standardise(text_dim)
        self.fc = nn.Linear(text_dim, 2 * c_dim)
        self.c_dim = c_dim

    def forward(self, phi: torch.Tensor, eps: torch.Tensor | None = None):
        mu, logvar = F.leaky_relu(self.fc(self.standardise(phi)), 0.2).chunk(2, dim=1)
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + torch.exp(0.5 * logvar) * eps, mu, logvar


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²), averaged over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()


class MatchingLogit(nn.Module):
    """The discriminators' shared head: compress φ to `text_dim_out`, tile it over the 4x4 image features, join along
    channels, and read one logit: conv1x1 + BN + LeakyReLU, then a 4x4 conv (the paper's D_0 / D head).

    `projection` (off in the paper) adds the projection discriminator's term (Miyato & Koyama 2018):

        logit = head([h, t]) + ⟨W t, Σ_xy h⟩,   t = the compressed φ, h = the image features

    a bilinear score of image against text. The paper's head can only match them through one LeakyReLU of a 1x1
    conv on their concatenation, which has to learn every (image attribute, word) pair; the inner product scores
    them directly."""

    def __init__(self, image_channels: int, text_dim: int = 384, text_dim_out: int = 64, sn: bool = False,
                 projection: bool = False):
        super().__init__()
        # the text projection is never spectrally normalised: φ's differences between captions are small (per-dim
        # std ≈ 0.03), and a 1-Lipschitz projection kept them too small for D to tell matching from mismatched
        self.text = nn.Sequential(Standardise(text_dim), nn.Linear(text_dim, text_dim_out),
                                  nn.LeakyReLU(0.2, inplace=True))
        self.joint = nn.Sequential(spectral(nn.Conv2d(image_channels + text_dim_out, image_channels, 1, bias=sn), sn),
                                   *([] if sn else [nn.BatchNorm2d(image_channels)]), nn.LeakyReLU(0.2, inplace=True),
                                   spectral(nn.Conv2d(image_channels, 1, 4), sn))
        self.project = spectral(nn.Linear(text_dim_out, image_channels, bias=False), sn) if projection else None

    def forward(self, features: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        t = self.text(phi)
        logit = self.joint(torch.cat([features, t[:, :, None, None].expand(-1, -1, *features.shape[-2:])], 1)).flatten()
        if self.project is not None:
            logit = logit + (self.project(t) * features.sum((2, 3))).sum(1)
        return logit


# ----------------------------------------------------------------------------- the four networks
class StageIGenerator(nn.Module):
    """[ĉ_0, z] -> fc -> (8·ngf, 4, 4) -> three x2 up-blocks -> 3x3 conv -> tanh: a 32 x 32 image."""

    def __init__(self, text_dim: int = 384, c_dim: int = 64, z_dim: int = 64, ngf: int = 32):
        super().__init__()
        self.config = dict(text_dim=text_dim, c_dim=c_dim, z_dim=z_dim, ngf=ngf)
        self.ca = ConditioningAugmentation(text_dim, c_dim)
        self.fc = nn.Sequential(nn.Linear(c_dim + z_dim, 8 * ngf * 16, bias=False), nn.BatchNorm1d(8 * ngf * 16),
                                nn.ReLU(inplace=True))
        self.up = nn.Sequential(upsample_block(8 * ngf, 4 * ngf), upsample_block(4 * ngf, 2 * ngf),
                                upsample_block(2 * ngf, ngf))
        self.to_rgb = nn.Sequential(nn.Conv2d(ngf, 3, 3, padding=1), nn.Tanh())
        self.ngf = ngf

    def forward(self, z: torch.Tensor, phi: torch.Tensor, eps: torch.Tensor | None = None):
        """Returns (image (B, 3, 32, 32) in [-1, 1], μ_0, log σ_0²)."""
        c, mu, logvar = self.ca(phi, eps)
        h = self.fc(torch.cat([c, z], dim=1)).view(len(z), 8 * self.ngf, 4, 4)
        return self.to_rgb(self.up(h)), mu, logvar


class StageIDiscriminator(nn.Module):
    """32 x 32 image -> three /2 down-blocks -> (4·ndf, 4, 4) features -> matching logit with φ.

    `spectral_norm` (default on) replaces D's BatchNorm by spectral normalisation. With the paper's BatchNorm D, a
    first run here had D reject every fake within 500 steps (D loss 0.02, D(fake) 0.02) while its samples fell apart
    (that run also had the over-strong KL described in `generator_loss`); `--no-spectral-norm` trains the paper's D."""

    def __init__(self, text_dim: int = 384, ndf: int = 32, text_dim_out: int = 64, spectral_norm: bool = True,
                 projection: bool = False):
        super().__init__()
        sn = spectral_norm
        self.config = dict(text_dim=text_dim, ndf=ndf, text_dim_out=text_dim_out, spectral_norm=sn,
                           **({"projection": True} if projection else {}))
        self.encode = nn.Sequential(downsample_block(3, ndf, norm=False, sn=sn), downsample_block(ndf, 2 * ndf, sn=sn),
                                    downsample_block(2 * ndf, 4 * ndf, sn=sn))
        self.logit = MatchingLogit(4 * ndf, text_dim, text_dim_out, sn, projection)

    def forward(self, image: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        return self.logit(self.encode(image), phi)


class StageIIGenerator(nn.Module):
    """Refines a Stage I sketch, given the text again (paper §3.3):

        encoder   s_0 (32 x 32) -> 3x3 conv -> two /2 down-blocks -> (4·ngf, 8, 8)
        join      [image features, ĉ tiled over 8 x 8] along channels -> 3x3 conv
        residual  `res_blocks` ResBlocks at 8 x 8
        decoder   three x2 up-blocks (nearest + conv, or PixelShuffle) -> 3x3 conv -> tanh: 64 x 64

    sketch_skip (not in the paper; off by default): the decoder's output is a correction to the sketch,
        s = tanh(r + atanh(0.99 · bilinear_x2(s_0))),
    so Stage II starts from Stage I's drawing and need not redraw its shape through the 8 x 8 bottleneck (without
    it, the Stage II trained here drew the requested shape less often than the Stage I sketch it was given).
    """

    def __init__(self, text_dim: int = 384, c_dim: int = 64, ngf: int = 32, res_blocks: int = 2,
                 upsample: str = "nearest", sketch_skip: bool = False):
        super().__init__()
        self.config = dict(text_dim=text_dim, c_dim=c_dim, ngf=ngf, res_blocks=res_blocks, upsample=upsample,
                           **({"sketch_skip": True} if sketch_skip else {}))
        self.sketch_skip = sketch_skip
        self.ca = ConditioningAugmentation(text_dim, c_dim)  # its own: a fresh ĉ, not Stage I's
        self.encode = nn.Sequential(nn.Conv2d(3, ngf, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(ngf, 2 * ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * ngf),
                                    nn.ReLU(inplace=True),
                                    nn.Conv2d(2 * ngf, 4 * ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * ngf),
                                    nn.ReLU(inplace=True))
        self.join = nn.Sequential(nn.Conv2d(4 * ngf + c_dim, 4 * ngf, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(4 * ngf), nn.ReLU(inplace=True))
        self.residual = nn.Sequential(*[ResBlock(4 * ngf) for _ in range(res_blocks)])
        self.up = nn.Sequential(upsample_block(4 * ngf, 2 * ngf, upsample), upsample_block(2 * ngf, ngf, upsample),
                                upsample_block(ngf, ngf // 2, upsample))
        self.to_rgb = nn.Sequential(nn.Conv2d(ngf // 2, 3, 3, padding=1), nn.Tanh())

    def forward(self, sketch: torch.Tensor, phi: torch.Tensor, eps: torch.Tensor | None = None):
        """Returns (image (B, 3, 64, 64) in [-1, 1], μ, log σ²)."""
        c, mu, logvar = self.ca(phi, eps)
        h = self.encode(sketch)
        h = self.join(torch.cat([h, c[:, :, None, None].expand(-1, -1, *h.shape[-2:])], dim=1))
        r = self.up(self.residual(h))
        if not self.sketch_skip:
            return self.to_rgb(r), mu, logvar
        base = torch.atanh(0.99 * F.interpolate(sketch, scale_factor=2, mode="bilinear", align_corners=False))
        return torch.tanh(self.to_rgb[0](r) + base), mu, logvar  # to_rgb[0]: its conv, before the tanh


class StageIIDiscriminator(nn.Module):
    """64 x 64 image -> four /2 down-blocks -> (8·ndf, 4, 4) features -> matching logit with φ."""

    def __init__(self, text_dim: int = 384, ndf: int = 16, text_dim_out: int = 64, spectral_norm: bool = True,
                 projection: bool = False):
        super().__init__()
        sn = spectral_norm
        self.config = dict(text_dim=text_dim, ndf=ndf, text_dim_out=text_dim_out, spectral_norm=sn,
                           **({"projection": True} if projection else {}))
        self.encode = nn.Sequential(downsample_block(3, ndf, norm=False, sn=sn), downsample_block(ndf, 2 * ndf, sn=sn),
                                    downsample_block(2 * ndf, 4 * ndf, sn=sn), downsample_block(4 * ndf, 8 * ndf, sn=sn))
        self.logit = MatchingLogit(8 * ndf, text_dim, text_dim_out, sn, projection)

    def forward(self, image: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        return self.logit(self.encode(image), phi)


NETWORKS = {"stage1_generator": StageIGenerator, "stage1_discriminator": StageIDiscriminator,
            "stage2_generator": StageIIGenerator, "stage2_discriminator": StageIIDiscriminator}


# ----------------------------------------------------------------------------- the losses
def mismatched(phi: torch.Tensor) -> torch.Tensor:
    """Each image's "wrong" caption: the next one in the batch (rolled by one)."""
    return phi.roll(1, dims=0)


def discriminator_loss(D, real: torch.Tensor, fake: torch.Tensor, phi: torch.Tensor,
                       phi_wrong: torch.Tensor | None = None, wrong_attribute: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, dict]:
    """Matching-aware D loss (paper's code): BCE(D(real, φ), 1) + ½·[BCE(D(real, φ_wrong), 0) + BCE(D(fake, φ), 0)].

    φ_wrong: the wrong captions (default `mismatched(φ)`; hard negatives: `negatives.pick_wrong`). Also returns the
    mean probabilities D gives, for the training log: the three kinds of pair and, when `wrong_attribute` says which
    attribute each wrong caption changed (−1 = a random caption), D(wrong) for each attribute's hard negatives."""
    phi_wrong = mismatched(phi) if phi_wrong is None else phi_wrong
    real_logit, wrong_logit, fake_logit = D(real, phi), D(real, phi_wrong), D(fake.detach(), phi)
    loss = (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
            + 0.5 * (F.binary_cross_entropy_with_logits(wrong_logit, torch.zeros_like(wrong_logit))
                     + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))))
    probs = {"d_real": real_logit.sigmoid().mean().item(), "d_wrong": wrong_logit.sigmoid().mean().item(),
             "d_fake": fake_logit.sigmoid().mean().item()}
    if wrong_attribute is not None:
        p = wrong_logit.detach().sigmoid()
        for j, a in enumerate(ATTRIBUTE_NAMES):
            rows = wrong_attribute.to(p.device) == j
            if rows.any():
                probs[f"d_wrong_{a}"] = p[rows].mean().item()
    return loss, probs


def generator_loss(D, fake: torch.Tensor, phi: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                   kl_weight: float = KL_WEIGHT) -> tuple[torch.Tensor, dict]:
    """Non-saturating G loss BCE(D(fake, φ), 1) (maximise log D, Goodfellow et al.'s fix for vanishing gradients
    early on) + λ·KL of conditioning augmentation (eq. 5), the KL taken per dimension of ĉ as in the authors' code
    (λ = 2 on the summed KL pulled ĉ onto N(0, I) so hard that it carried no text: G ignored the caption)."""
    logit = D(fake, phi)
    adversarial = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
    kl = kl_to_standard_normal(mu, logvar)
    return adversarial + kl_weight * kl / mu.shape[1], {"g_adv": adversarial.item(), "kl": kl.item()}


# ----------------------------------------------------------------------------- the printed summary


def architecture_summary(net: nn.Module, title: str = "") -> str:
    """The module tree with each top-level part's parameter count, as text."""
    lines = [f"{title or type(net).__name__}: {count_parameters(net):,} parameters"]
    for name, child in net.named_children():
        lines.append(f"  {name}: {count_parameters(child):,}")
        lines += ["    " + line for line in repr(child).splitlines()]
    return "\n".join(lines)

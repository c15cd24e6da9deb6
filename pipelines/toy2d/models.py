"""The playground's networks, written by hand: in 2-D each is a small MLP, and the lesson is what goes in and out.

DDPM denoiser   ε_θ(x_t, t) (or v_θ, v = √ᾱ_t ε − √(1 − ᾱ_t) x_0): the loss is ‖ε − ε_θ(x_t, t)‖² (or the v-MSE).
DD-GAN          (Xiao et al. 2022) a conditional generator G(x_t, z, t) → x̂_0, turned into a sample of the reverse
                step by the DDPM posterior x'_{t−1} ~ q(x_{t−1} | x_t, x̂_0); a discriminator D(x_{t−1}, x_t, t)
                tells true pairs (x_{t−1}, x_t) from (x'_{t−1}, x_t). Because G is a GAN, q(x_{t−1} | x_t) may be
                multimodal, so a few large steps (T = 2 to 4) suffice.
GAN             (Goodfellow et al. 2014) G(z) → x in one step, D(x) → real/fake logit.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .schedule import posterior_mean_var

HIDDEN, LAYERS, TIME_DIM, Z_DIM = 128, 3, 32, 4


def timestep_embedding(t: torch.Tensor, dim: int = TIME_DIM, scale: float = 1.0) -> torch.Tensor:
    """Transformer-style sinusoids (Vaswani et al.; DDPM's time embedding): [sin(s t f_j), cos(s t f_j)],
    f_j = 10000^(−j / (dim/2)), with s rescaling a short chain (DD-GAN's t ∈ {0..3}) to DDPM's range."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, dtype=torch.float32) / half)
    args = scale * t.float().reshape(-1, 1) * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class ResidualMLP(nn.Module):
    """in → Linear → [h + Linear(SiLU(Linear(SiLU(h)))) + the condition's projection] × layers → SiLU → Linear → out.
    The condition (time embedding, noise z) is added to every block, so each layer knows t."""

    def __init__(self, dim_in: int, dim_cond: int, dim_out: int, hidden: int = HIDDEN, layers: int = LAYERS):
        super().__init__()
        self.inp = nn.Linear(dim_in, hidden)
        self.cond = nn.ModuleList(nn.Linear(dim_cond, hidden) for _ in range(layers))
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                                  nn.Linear(hidden, hidden)) for _ in range(layers))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim_out))

    def forward(self, x, c):
        h = self.inp(x)
        for proj, block in zip(self.cond, self.blocks):
            h = h + block(h + proj(c))
        return self.out(h)


class Denoiser(nn.Module):
    """ε_θ(x_t, t) or v_θ(x_t, t) for 2-D points: (N, 2), (N,) or scalar t ∈ [0, T) → (N, 2)."""

    def __init__(self, hidden: int = HIDDEN, layers: int = LAYERS, time_dim: int = TIME_DIM):
        super().__init__()
        self.config = dict(hidden=hidden, layers=layers, time_dim=time_dim)
        self.time_dim = time_dim
        self.net = ResidualMLP(2, time_dim, 2, hidden, layers)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t).expand(x.shape[0]) if torch.as_tensor(t).ndim == 0 else torch.as_tensor(t)
        return self.net(x, timestep_embedding(t, self.time_dim))


class DDGANGenerator(nn.Module):
    """G(x_t, z, t) → x̂_0; t ∈ {0, …, T−1} is the index of DD-GAN's T-step chain (diffusers' numbering)."""

    def __init__(self, steps: int, hidden: int = HIDDEN, layers: int = LAYERS, z_dim: int = Z_DIM):
        super().__init__()
        self.config = dict(steps=steps, hidden=hidden, layers=layers, z_dim=z_dim)
        self.steps, self.z_dim = steps, z_dim
        self.net = ResidualMLP(2 + z_dim, TIME_DIM, 2, hidden, layers)

    def forward(self, x_t: torch.Tensor, z: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t).expand(x_t.shape[0]) if torch.as_tensor(t).ndim == 0 else torch.as_tensor(t)
        return self.net(torch.cat([x_t, z], 1), timestep_embedding(t, scale=1000 / self.steps))


class DDGANDiscriminator(nn.Module):
    """D(x_{t−1}, x_t, t) → logit: is x_{t−1} a true denoising of x_t at step t?"""

    def __init__(self, steps: int, hidden: int = HIDDEN, layers: int = LAYERS):
        super().__init__()
        self.steps = steps
        self.net = ResidualMLP(4, TIME_DIM, 1, hidden, layers)

    def forward(self, x_prev: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x_prev, x_t], 1), timestep_embedding(t, scale=1000 / self.steps)).squeeze(1)


def posterior_sample(x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor,
                     noise: torch.Tensor) -> torch.Tensor:
    """x_{t−1} ~ q(x_{t−1} | x_t, x_0) = N(μ̃, β̃ I) for chain index t ∈ {0, …, T−1} (t = 0 steps to x_0 itself:
    ᾱ_{−1} = 1, β̃ = 0). Differentiable in x0, so G learns through it. The same step diffusers' DDPMScheduler takes
    with prediction_type="sample" (tests/test_toy2d.py checks it)."""
    abar = alphas_cumprod.to(x_t.dtype)
    abar_t = abar[t].reshape(-1, 1)
    abar_prev = torch.where(t > 0, abar[(t - 1).clamp(min=0)], torch.ones_like(abar[t])).reshape(-1, 1)
    mean, var = posterior_mean_var(x0, x_t, abar_t, abar_prev)
    return mean + var.sqrt() * noise


class GANGenerator(nn.Module):
    """G(z) → x, z ~ N(0, I_{z_dim})."""

    def __init__(self, hidden: int = HIDDEN, layers: int = LAYERS, z_dim: int = Z_DIM):
        super().__init__()
        self.config = dict(hidden=hidden, layers=layers, z_dim=z_dim)
        self.z_dim = z_dim
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), *[m for _ in range(layers) for m in
                                                             (nn.SiLU(), nn.Linear(hidden, hidden))],
                                 nn.SiLU(), nn.Linear(hidden, 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class GANDiscriminator(nn.Module):
    def __init__(self, hidden: int = HIDDEN, layers: int = LAYERS):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), *[m for _ in range(layers) for m in
                                                         (nn.LeakyReLU(0.2), nn.Linear(hidden, hidden))],
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)

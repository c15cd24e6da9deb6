"""The convolutional VAE of the MNIST assignment (Kingma & Welling 2014), written out by hand.

    encoder   x (1×28×28) ─conv s2→ 32×14×14 ─conv s2→ 64×7×7 ─flatten─┬─ fc_mu     → μ
                                                                       └─ fc_logvar → log σ²
    sample    z = μ + σ·ε,  ε ~ N(0, I)                  (the reparameterisation trick)
    decoder   z ─linear→ 64×7×7 ─convT s2→ 32×14×14 ─ReLU─ convT s2→ 1×28×28 ─sigmoid→ p(x|z)

    loss      BCE(x, decoder(z)) + β·KL( N(μ, σ²) ‖ N(0, I) )
    interp    x(λ) = decoder( (1−λ)·μ1 + λ·μ2 )      ← see `interpolate` below; `slerp` for the spherical path
              (torch.lerp's convention: λ = 0 gives μ1, λ = 1 gives μ2)

Images here are in [0, 1] (pixel intensities = Bernoulli means, as BCE needs); the rest of the
project uses [-1, 1], so `to_unit` / `from_unit` convert at the boundary.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvVAE(nn.Module):
    def __init__(self, latent_dim: int = 16, width: int = 32, image_size: int = 28):
        super().__init__()
        self.config = dict(latent_dim=latent_dim, width=width, image_size=image_size)
        w, s = width, image_size // 4  # two stride-2 convolutions: 28 -> 14 -> 7
        self.feature_shape = (2 * w, s, s)
        features = 2 * w * s * s
        # encoder: two strided convolutions, then two linear heads
        self.enc = nn.Sequential(nn.Conv2d(1, w, 4, stride=2, padding=1), nn.ReLU(),
                                 nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.ReLU(), nn.Flatten())
        self.fc_mu = nn.Linear(features, latent_dim)
        self.fc_logvar = nn.Linear(features, latent_dim)
        # decoder: a linear layer, then two transposed convolutions with a ReLU between them
        self.fc_dec = nn.Linear(latent_dim, features)
        self.deconv1 = nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(w, 1, 4, stride=2, padding=1)

    @property
    def latent_dim(self) -> int:
        return self.config["latent_dim"]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x in [0, 1] -> (μ, log σ²), each (B, latent_dim)."""
        h = self.enc(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc_dec(z)).view(-1, *self.feature_shape)
        return self.deconv2(F.relu(self.deconv1(h)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z -> Bernoulli means in [0, 1], (B, 1, 28, 28)."""
        return torch.sigmoid(self.decode_logits(z))

    @staticmethod
    def reparameterize(mu, logvar, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = μ + σ·ε with σ = exp(½ log σ²); ε is drawn on the CPU so a seed gives the same z everywhere."""
        eps = torch.randn(mu.shape, generator=generator).to(mu)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, x, generator: torch.Generator | None = None):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator)
        return self.decode_logits(z), mu, logvar


# ---------------------------------------------------------------------------------- the loss
def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(μ, σ²) ‖ N(0, I) ) per image, in nats:  KL = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def reconstruction_bce(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−log p(x|z) per image: binary cross-entropy summed over the 784 pixels (from logits, for stability)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def vae_loss(logits, x, mu, logvar, beta: float = 1.0):
    """Negative ELBO when β = 1:  loss = BCE(x, x̂) + β·KL(N(μ, σ²) ‖ N(0, I)), averaged over the batch.

    β trades reconstruction for a tidy latent space: β < 1 gives sharper reconstructions but a
    latent space with holes (decoding points between the codes gives blur or garbage); β > 1
    pulls every q(z|x) towards N(0, I), so samples and interpolations stay digit-like but
    reconstructions get blurrier and more latent dimensions collapse (unused, KL ≈ 0).
    """
    rec, kl = reconstruction_bce(logits, x), kl_divergence(mu, logvar)
    return (rec + beta * kl).mean(), rec.mean(), kl.mean()


# ---------------------------------------------------------------------------------- interpolation
def lerp(mu1: torch.Tensor, mu2: torch.Tensor, lam) -> torch.Tensor:
    """Linear interpolation of the means:  z(λ) = μ1 + λ·(μ2 − μ1) = (1−λ)·μ1 + λ·μ2  (λ = 0 gives μ1, λ = 1 gives μ2).

    The argument order of `torch.lerp(start, end, weight)`, which computes it; one row of z per λ.
    """
    lam = torch.as_tensor(lam, dtype=mu1.dtype, device=mu1.device).reshape(-1, 1)
    return torch.lerp(mu1, mu2, lam)


def slerp(mu1: torch.Tensor, mu2: torch.Tensor, lam, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for generative models), same λ convention as `lerp`
    (λ = 0 gives μ1, λ = 1 gives μ2):

        z(λ) = sin((1−λ)Ω)/sin(Ω) · μ1 + sin(λΩ)/sin(Ω) · μ2,   cos Ω = μ1·μ2 / (|μ1| |μ2|)

    It follows the great circle between the two directions instead of cutting through the origin,
    where a Gaussian prior puts little mass in high dimension. Falls back to `lerp` when μ1 ∥ μ2.
    """
    lam = torch.as_tensor(lam, dtype=mu1.dtype, device=mu1.device).reshape(-1, 1)
    a, b = mu1.reshape(1, -1), mu2.reshape(1, -1)
    cos = (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1, keepdim=True).clamp(-1, 1)
    omega = torch.arccos(cos)
    if omega.abs().item() < eps or math.pi - omega.abs().item() < eps:
        return lerp(a, b, lam)
    return (torch.sin((1 - lam) * omega) * a + torch.sin(lam * omega) * b) / torch.sin(omega)


PATHS = {"linear": lerp, "spherical": slerp}


@torch.no_grad()
def interpolate(model: ConvVAE, x1: torch.Tensor, x2: torch.Tensor, lams, method: str = "linear"):
    """Encode both images, keep their means (not samples), decode (1−λ)·μ1 + λ·μ2 for each λ (λ = 0: x1).

    x1, x2: (1, 1, 28, 28) in [0, 1]. Returns (decoded images (len(lams), 1, 28, 28), latent path z).
    """
    mu1, _ = model.encode(x1)
    mu2, _ = model.encode(x2)
    z = PATHS[method](mu1, mu2, lams)
    return model.decode(z), z


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] (project range) -> [0, 1] (the VAE's range)."""
    return (x + 1) / 2


def from_unit(x: torch.Tensor) -> torch.Tensor:
    return x * 2 - 1

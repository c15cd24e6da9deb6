"""Load the shipped VAEs and use them: encode, interpolate, reconstruct, sample variations.

Everything here takes and returns images in [-1, 1] (the project's range) and converts to
the VAE's [0, 1] inside, so callers never see the difference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..checkpoints import checkpoint_dir, read_json, weights_hash
from ..runtime import count_parameters, cpu_generator, pick_device
from .model import PATHS, ConvVAE, from_unit, interpolate, to_unit

MODELS = {"2-D latent": "vae-mnist-2d", "16-D latent": "vae-mnist-16d"}
MAP_MODEL = "vae-mnist-2d"
MAX_STEPS, MAX_VARIATIONS = 64, 64


def train_command(name: str) -> str:
    dim = name.rsplit("-", 1)[-1].rstrip("d")
    return (f"python -m pipelines.vae.train --latent-dim {dim} --width 64 --lr 1e-3 --epochs 50 --mixed-precision bf16 "
            "--threads 2")


@dataclass
class VAE:
    model: ConvVAE
    name: str
    path: Path
    device: torch.device
    record: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    @property
    def parameters(self) -> int:
        return count_parameters(self.model)

    @property
    def weights_hash(self) -> str:
        return weights_hash(self.path)

    def metric(self, key: str, default=None):
        return self.metrics.get("values", {}).get(key, default)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 1, 28, 28) in [-1, 1] -> (μ, log σ²) on the CPU."""
        mu, logvar = self.model.encode(to_unit(x).to(self.device))
        return mu.cpu(), logvar.cpu()

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) -> images in [-1, 1] on the CPU (the decoder's Bernoulli means)."""
        return from_unit(self.model.decode(z.to(self.device, torch.float32))).cpu()

    @torch.no_grad()
    def interpolate(self, x1: torch.Tensor, x2: torch.Tensor, lams, method: str = "linear"):
        """decode((1−λ)·μ1 + λ·μ2) (or the spherical path) for each λ -> (images in [-1, 1], z path); λ = 0 is x1."""
        if method not in PATHS:
            raise ValueError(f"Interpolation must be one of {list(PATHS)}, got {method!r}.")
        lams = torch.as_tensor(lams, dtype=torch.float32)
        images, z = interpolate(self.model, to_unit(x1).to(self.device), to_unit(x2).to(self.device),
                                lams.to(self.device), method)
        return from_unit(images).cpu(), z.cpu()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, variations: int = 8, seed: int = 0, scale: float = 1.0):
        """Reconstruction decode(μ) and `variations` samples decode(μ + scale·σ·ε), ε from `seed`.

        Returns (reconstruction (1, 1, 28, 28), variations (K, 1, 28, 28), μ, σ, BCE of x vs decode(μ) in nats).
        """
        if not 0 <= variations <= MAX_VARIATIONS:
            raise ValueError(f"Variations must be between 0 and {MAX_VARIATIONS}.")
        mu, logvar = self.encode(x)
        sigma = torch.exp(0.5 * logvar)
        logits = self.model.decode_logits(mu.to(self.device)).cpu()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, to_unit(x).clamp(0, 1),
                                                                   reduction="sum").item()
        eps = torch.randn((variations, self.latent_dim), generator=cpu_generator(seed))
        z = mu + scale * sigma * eps
        return self.decode(mu), self.decode(z) if variations else x[:0], mu[0], sigma[0], bce

    @torch.no_grad()
    def latent_grid(self, n: int = 15, extent: float = 3.0) -> torch.Tensor:
        """Decode an n×n grid over [−extent, extent]² (2-D models only), row-major from the top-left
        (z2 = +extent) so the tiled image matches a plot with z2 pointing up."""
        if self.latent_dim != 2:
            raise ValueError("The decoded latent grid needs the 2-D model.")
        if not 2 <= n <= 40:
            raise ValueError("The grid size must be between 2 and 40.")
        axis = torch.linspace(-extent, extent, n)
        z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")
        return self.decode(torch.stack([z1.flatten(), z2.flatten()], 1))

    def test_latents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """μ of every MNIST test image and its label, shipped with the 2-D model (written by evaluate)."""
        path = self.path / "test_latents.safetensors"
        if not path.exists():
            raise FileNotFoundError(f"{path.name} is missing; run python -m pipelines.measure.vae --name {self.name}")
        t = load_file(path)
        return t["mu"].float(), t["labels"].long()


@lru_cache(maxsize=4)
def load_vae(name: str = "vae-mnist-16d", device: str | None = None) -> VAE:
    if name in MODELS:
        name = MODELS[name]
    path = checkpoint_dir(name, train_command(name), required="model.safetensors")
    config = {k: v for k, v in read_json(path / "config.json").items() if not k.startswith("_")}
    model = ConvVAE(**config)
    model.load_state_dict({k: v.float() for k, v in load_file(path / "model.safetensors").items()})
    device = pick_device(device)
    return VAE(model.to(device).eval(), name, path, device,
               read_json(path / "training_record.json", {}), read_json(path / "metrics.json", {}))


__all__ = ["VAE", "load_vae", "MODELS", "MAP_MODEL", "train_command"]

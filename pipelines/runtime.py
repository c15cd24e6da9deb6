"""Device choice, seeded randomness and parameter counts, used by every pipeline and tab."""
from __future__ import annotations

import os

import torch


def pick_device(override: str | None = None) -> torch.device:
    """`override` or $DIFFUSION_LAB_DEVICE if given, else CUDA, then MPS, then CPU."""
    name = override or os.environ.get("DIFFUSION_LAB_DEVICE")
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_generator(seed: int) -> torch.Generator:
    """Noise is always drawn on the CPU, so one seed gives the same images on every device."""
    return torch.Generator("cpu").manual_seed(int(seed))


def randn(shape, generator: torch.Generator, device=None, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)


def count_parameters(module: torch.nn.Module) -> int:
    """Number of weights of a network (every parameter tensor's elements)."""
    return sum(p.numel() for p in module.parameters())

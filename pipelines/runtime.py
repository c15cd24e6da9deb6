"""Device choice, seeded randomness, thread counts and parameter counts, used by every pipeline and tab."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, TypeVar

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


@contextmanager
def torch_threads(n: int):
    """Run the block with `n` intra-op threads, then restore the count it found. torch's count is process-wide:
    whatever else runs meanwhile runs with `n` too."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


Item = TypeVar("Item")


def in_threads(run: Iterator[Item], n: int) -> Iterator[Item]:
    """Advance the generator `run` with `n` intra-op threads, and the caller's count between its items. A server
    resumes a generator on whichever worker thread is free, so the count is set around each resumption, never held
    across a yield."""
    while True:
        with torch_threads(n):
            item = next(run, StopIteration)
        if item is StopIteration:
            return
        yield item


def count_parameters(module: torch.nn.Module) -> int:
    """Number of weights of a network (every parameter tensor's elements)."""
    return sum(p.numel() for p in module.parameters())

"""The forward process q(x_t | x_0), in closed form and as the Markov chain it summarises.

Closed form (DDPM eq. 4):  x_t = sqrt(ᾱ_t)·x_0 + sqrt(1 − ᾱ_t)·ε          (diffusers' add_noise)
Markov chain (eq. 2):      x_t = sqrt(1 − β_t)·x_{t−1} + sqrt(β_t)·ε_t
"""
from __future__ import annotations

import torch
from diffusers import DDPMScheduler

from .runtime import cpu_generator, randn
from .schedules import schedule_config


def forward_scheduler(schedule: str, zero_snr: bool = False) -> DDPMScheduler:
    return DDPMScheduler(**schedule_config(schedule, zero_snr))


def noised(x0: torch.Tensor, timesteps, schedule: str, zero_snr: bool = False, seed: int = 0) -> torch.Tensor:
    """x_t for each t in `timesteps` (0-based, like diffusers), one shared ε: (len(t), C, H, W)."""
    scheduler = forward_scheduler(schedule, zero_snr)
    t = torch.as_tensor(list(timesteps), dtype=torch.long)
    eps = randn(x0.shape, cpu_generator(seed)).expand(len(t), *x0.shape)
    return scheduler.add_noise(x0.expand(len(t), *x0.shape), eps, t)


def markov_chain(x0: torch.Tensor, betas: torch.Tensor, generator: torch.Generator, keep=None) -> dict:
    """Run x_0 -> x_T one step at a time; returns {t: x_t} for t in `keep` (default: every t)."""
    keep = set(range(len(betas))) if keep is None else set(keep)
    out, x = {}, x0
    for t, beta in enumerate(betas):
        x = (1 - beta).sqrt() * x + beta.sqrt() * randn(x.shape, generator)
        if t in keep:
            out[t] = x
    return out

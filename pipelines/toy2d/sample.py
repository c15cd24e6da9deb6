"""Sampling the 2-D models. Every sampler returns a `sampling.Run` of `Step`s (x, i, denoised), like the image
models' `frames(...)`, so the tab streams particles the same way it streams images.

DDPM     diffusers' DDPMScheduler (ancestral: x_{s} ~ N(μ̃(x_t, x̂_0), β̃ I), strided when N < 1000) or DDIMScheduler
         (η = 0: deterministic), through pipelines/sampling.denoise: N network evaluations.
DD-GAN   T = 2 to 4 steps of x̂_0 = G(x_t, z, t), x_{t−1} ~ q(x_{t−1} | x_t, x̂_0) (DDPMScheduler, prediction "sample"):
         T network evaluations.
GAN      x = G(z): 1 network evaluation.
"""
from __future__ import annotations

import torch

from ..runtime import cpu_generator
from ..sampling import Run, Step, denoise
from ..schedules import make_scheduler
from .schedule import ddgan_config

SAMPLERS = ("DDPM (ancestral)", "DDIM")
MAX_SAMPLE_STEPS = 1000


def ddpm_frames(model, config: dict, *, sampler: str = "DDPM (ancestral)", steps: int = 1000, num_points: int = 1000,
                seed: int = 0, x_T: torch.Tensor | None = None, predict=None) -> Run:
    """The reverse process of the ε/v MLP (or of `predict(x, t)`, e.g. the exact ε of score.py) from x_T ~ N(0, I)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"Sampler must be one of {SAMPLERS}.")
    if not 1 <= int(steps) <= MAX_SAMPLE_STEPS:
        raise ValueError(f"Sampling steps must be between 1 and {MAX_SAMPLE_STEPS}.")
    scheduler = make_scheduler(sampler, config)
    predict = predict or (lambda x, t: model(x, t))
    return Run(denoise(predict, scheduler, (int(num_points), 2), int(steps), cpu_generator(seed), x_T=x_T),
               sampler=sampler, num_steps=int(steps))


def ddpm_sample(model, config: dict, **kwargs) -> torch.Tensor:
    return ddpm_frames(model, config, **kwargs).last().x


def ddgan_frames(G, *, num_points: int = 1000, seed: int = 0, x_T: torch.Tensor | None = None) -> Run:
    """DD-GAN's T steps: the generator draws a fresh z at every step (z is what makes each step multimodal)."""
    scheduler = make_scheduler("DDPM (ancestral)", ddgan_config(G.steps))
    g = cpu_generator(seed)

    def predict(x, t):
        z = torch.randn(x.shape[0], G.z_dim, generator=g)
        return G(x, z, int(t))

    return Run(denoise(predict, scheduler, (int(num_points), 2), G.steps, g, x_T=x_T), num_steps=G.steps)


def ddgan_sample(G, **kwargs) -> torch.Tensor:
    return ddgan_frames(G, **kwargs).last().x


def gan_frames(G, *, num_points: int = 1000, seed: int = 0) -> Run:
    """One step: z ~ N(0, I), x = G(z)."""
    def run():
        with torch.no_grad():
            x = G(torch.randn(int(num_points), G.z_dim, generator=cpu_generator(seed)))
        yield Step(0, 1, 0, x, x)
    return Run(run(), num_steps=1)


def gan_sample(G, **kwargs) -> torch.Tensor:
    return gan_frames(G, **kwargs).last().x

"""The reverse process as a generator: one loop for every model and every diffusers scheduler.

Like k-diffusion's samplers, it hands back `x_t` and the predicted `x_0` ("denoised") at each
step, so a UI can stream frames and a test can check them. `predict(x, t)` returns what the
model was trained to predict (ε or v); classifier-free guidance lives inside `predict`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from .runtime import randn


@dataclass
class Step:
    i: int                 # 0-based index of this step
    n: int                 # number of steps
    t: int                 # training timestep this step denoised from
    x: torch.Tensor        # x_{t-1}: the sample after this step
    denoised: torch.Tensor  # the model's estimate of x_0 at this step


def denoise(predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], scheduler, shape,
            num_inference_steps: int, generator: torch.Generator, device=None,
            x_T: torch.Tensor | None = None, eta: float = 0.0) -> Iterator[Step]:
    """Yield a `Step` for each of the scheduler's timesteps, starting from x_T ~ N(0, I)."""
    # 1. choose the timesteps (spacing is part of the scheduler's config)
    scheduler.set_timesteps(num_inference_steps, device=device)
    # 2. start from pure noise, drawn on the CPU for reproducibility across devices
    x = x_T if x_T is not None else randn(shape, generator, device) * scheduler.init_noise_sigma
    extra = {"eta": eta} if "eta" in scheduler.step.__code__.co_varnames else {}
    n = len(scheduler.timesteps)
    for i, t in enumerate(scheduler.timesteps):
        # 3. the model's prediction (ε or v), guided if `predict` says so
        with torch.no_grad():
            model_output = predict(scheduler.scale_model_input(x, t), t)
        # 4. one reverse step: x_t -> x_{t-1}, and the predicted x_0 (DDPM eq. 15 / DDIM eq. 12)
        out = scheduler.step(model_output, t, x, generator=generator, **extra)
        x = out.prev_sample
        denoised = getattr(out, "pred_original_sample", None)
        yield Step(i, n, int(t), x, denoised if denoised is not None else x)


def sample(*args, **kwargs) -> torch.Tensor:
    """Run `denoise` to the end and return only the final images."""
    step = None
    for step in denoise(*args, **kwargs):
        pass
    return step.x

"""The reverse process as a generator: one loop for every model and every diffusers scheduler.

Like k-diffusion's samplers, it hands back `x_t` and the predicted `x_0` ("denoised") at each
step, so a UI can stream frames and a test can check them. `predict(x, t)` returns what the
model was trained to predict (ε or v); classifier-free guidance lives inside `predict`.
"""
from __future__ import annotations

import math
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
    takes = scheduler.step.__code__.co_varnames   # UniPC's step takes no generator (it draws nothing), DDPM's no eta
    extra = {**({"eta": eta} if "eta" in takes else {}), **({"generator": generator} if "generator" in takes else {})}
    n = len(scheduler.timesteps)
    for i, t in enumerate(scheduler.timesteps):
        # 3. the model's prediction (ε or v), guided if `predict` says so
        with torch.no_grad():
            model_output = predict(scheduler.scale_model_input(x, t), t)
        # 4. one reverse step: x_t -> x_{t-1}, and the predicted x_0 (DDPM eq. 15 / DDIM eq. 12)
        out = scheduler.step(model_output, t, x, **extra)
        denoised = getattr(out, "pred_original_sample", None)
        if denoised is None:   # the multistep solvers (DPM-Solver++, UniPC) return x_{t-1} only
            denoised = predicted_x0(scheduler, model_output, x, t)
        x = out.prev_sample
        yield Step(i, n, int(t), x, denoised)


def predicted_x0(scheduler, model_output: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
    """x̂_0 from what the model predicted at timestep t, with ᾱ_t of the scheduler's training schedule:
    ε-prediction (DDIM eq. 12):  x̂_0 = (x_t − sqrt(1 − ᾱ_t)·ε̂) / sqrt(ᾱ_t)
    v-prediction (Salimans & Ho 2022, v = sqrt(ᾱ_t)·ε − sqrt(1 − ᾱ_t)·x_0):  x̂_0 = sqrt(ᾱ_t)·x_t − sqrt(1 − ᾱ_t)·v̂"""
    abar = scheduler.alphas_cumprod[int(t)].to(x_t.device, torch.float32)
    kind = scheduler.config.prediction_type
    if kind == "v_prediction":
        return abar.sqrt() * x_t - (1 - abar).sqrt() * model_output
    if kind == "sample":
        return model_output
    return (x_t - (1 - abar).sqrt() * model_output) / abar.sqrt()


class Run:
    """What every model's `frames(...)` returns: iterate it for one `Step` per reverse step. `notes` says what the
    user should know before looking (an empty prompt, a truncated one, an unusual schedule...); `info` carries what
    a model adds (the LDM: its prompt embeddings and scheduler). `last()` runs it to the end."""

    def __init__(self, steps: Iterator[Step], notes: list[str] | None = None, **info):
        self._steps, self.notes, self.info = iter(steps), list(notes or []), info

    def __iter__(self) -> Iterator[Step]:
        return self

    def __next__(self) -> Step:
        return next(self._steps)

    def thinned(self, max_frames: int) -> Iterator[Step]:
        """The steps worth a frame in a player: every k-th, k = ⌈n / max_frames⌉ (so at most max_frames + 1), and
        always the last one."""
        for step in self:
            every = max(1, math.ceil(step.n / max_frames))
            if step.i % every == 0 or step.i == step.n - 1:
                yield step

    def last(self) -> Step:
        """The final step (its `x` is the sample), after running every step."""
        step = None
        for step in self:
            pass
        return step

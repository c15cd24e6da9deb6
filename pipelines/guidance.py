"""Classifier-free guidance (Ho & Salimans 2022): the one place the guided prediction is formed.

    ε̃ = ε_uncond + w · (ε_cond − ε_uncond) = torch.lerp(ε_uncond, ε_cond, w)

w = 0 is the unconditional model, w = 1 the plain conditional one, w > 1 extrapolates away from the
unconditional prediction. Optional φ (Lin et al. 2024, "Common diffusion noise schedules and sample
steps are flawed", eq. 15-16) rescales the guided prediction towards the standard deviation of the
conditional one, to undo the over-exposure large w causes; diffusers' `rescale_noise_cfg` does it.

Used by every guided sampler in the project (class labels here, text embeddings elsewhere): the
condition is whatever the model's forward takes as its third argument.
"""
from __future__ import annotations

from typing import Callable

import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, scale: float, rescale: float = 0.0) -> torch.Tensor:
    """ε̃ = ε_u + w·(ε_c − ε_u), written as `torch.lerp(uncond, cond, w)`; then the optional φ-rescale."""
    guided = torch.lerp(uncond, cond, float(scale))
    if rescale > 0:
        guided = rescale_noise_cfg(guided, cond, guidance_rescale=float(rescale))
    return guided


def guided_predictor(forward: Callable, cond: torch.Tensor, uncond: torch.Tensor, scale: float,
                     rescale: float = 0.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A `predict(x, t)` for `sampling.denoise` that applies classifier-free guidance.

    `forward(x, t, c)` is the model; `cond` / `uncond` are batch-aligned conditions (e.g. labels and
    null labels). Conditional and unconditional passes run as ONE forward over a doubled batch. At
    w = 0 and w = 1 (without φ) only the pass that matters runs: lerp would return it exactly anyway.
    """
    scale, rescale = float(scale), float(rescale)
    both = torch.cat([uncond, cond])

    def predict(x: torch.Tensor, t) -> torch.Tensor:
        if scale == 0:
            return forward(x, t, uncond)
        if scale == 1 and rescale == 0:
            return forward(x, t, cond)
        eps_uncond, eps_cond = forward(torch.cat([x, x]), t, both).chunk(2)
        return cfg_combine(eps_cond, eps_uncond, scale, rescale)

    return predict


def two_pass_predictor(forward: Callable, cond: torch.Tensor, uncond: torch.Tensor, scale: float):
    """The reference implementation's way: two separate forward passes per step (kept as a baseline)."""
    def predict(x: torch.Tensor, t) -> torch.Tensor:
        return cfg_combine(forward(x, t, cond), forward(x, t, uncond), scale)
    return predict

"""The noise schedules of the playground: the app's own (pipelines/schedules.py, diffusers' DDPMScheduler configs)
for DDPM, and DD-GAN's few-step chain; and the one formula both reverse steps use.

DDPM posterior (Ho et al. 2020, eq. 6-7), for a step from t down to s < t (s = t − 1 in training; a strided
sampler jumps further), with α_{t|s} = ᾱ_t / ᾱ_s and β_{t|s} = 1 − α_{t|s}:

    q(x_s | x_t, x_0) = N( μ̃, β̃ I ),
    μ̃ = √ᾱ_s β_{t|s} / (1 − ᾱ_t) · x_0  +  √α_{t|s} (1 − ᾱ_s) / (1 − ᾱ_t) · x_t,
    β̃ = (1 − ᾱ_s) / (1 − ᾱ_t) · β_{t|s}.

DD-GAN (Xiao et al. 2022, "Tackling the generative learning trilemma with denoising diffusion GANs") trains on
T = 2 to 4 steps of the continuous VP schedule β(τ) = β_min + τ (β_max − β_min), τ ∈ [0, 1], discretised as
    β_t = 1 − exp(−β_min / T − (β_max − β_min)(2t − 1) / (2T²)),   t = 1 … T   (β_min = 0.1, β_max = 20),
so each of its steps removes as much noise as hundreds of DDPM steps do.
"""
from __future__ import annotations

import math

import torch
from diffusers import DDPMScheduler

from ..schedules import SCHEDULES, schedule_config

T = 1000                       # DDPM training steps
DEFAULT_SCHEDULE = "linear (DDPM)"
TOY_SCHEDULES = [s for s in SCHEDULES if not s.startswith("scaled-linear")]   # scaled-linear leaves ᾱ_T ≈ 0.05
DDGAN_BETA_MIN, DDGAN_BETA_MAX = 0.1, 20.0


def ddpm_config(schedule: str = DEFAULT_SCHEDULE, zero_snr: bool = False, prediction_type: str = "epsilon") -> dict:
    """A diffusers scheduler config for the 2-D DDPM (trailing spacing: a 4-step sampler starts at t = T − 1)."""
    return schedule_config(schedule, zero_snr, T, prediction_type, timestep_spacing="trailing")


def ddpm_alphas_cumprod(config: dict) -> torch.Tensor:
    return DDPMScheduler.from_config(config).alphas_cumprod.clone().double()


def ddgan_betas(steps: int) -> list[float]:
    """β_1 … β_T of DD-GAN's T-step chain (formula above)."""
    b0, b1 = DDGAN_BETA_MIN, DDGAN_BETA_MAX
    return [1 - math.exp(-b0 / steps - (b1 - b0) * (2 * t - 1) / (2 * steps ** 2)) for t in range(1, steps + 1)]


def ddgan_config(steps: int) -> dict:
    """diffusers DDPMScheduler config of the T-step chain; its network predicts x_0 ("sample"), and its reverse
    step samples q(x_{t−1} | x_t, x̂_0) with the posterior variance β̃ ("fixed_small")."""
    return dict(num_train_timesteps=steps, trained_betas=ddgan_betas(steps), prediction_type="sample",
                variance_type="fixed_small", clip_sample=False, timestep_spacing="trailing")


def ddgan_alphas_cumprod(steps: int) -> torch.Tensor:
    return DDPMScheduler.from_config(ddgan_config(steps)).alphas_cumprod.clone().double()


def posterior_mean_var(x0: torch.Tensor, x_t: torch.Tensor, abar_t, abar_s):
    """q(x_s | x_t, x_0) = N(μ̃, β̃ I): returns (μ̃, β̃) by the formula in the module docstring. abar_s = 1 is the
    step to clean data (s = −1: β̃ = 0, μ̃ = x_0)."""
    abar_t, abar_s = torch.as_tensor(abar_t, dtype=x_t.dtype), torch.as_tensor(abar_s, dtype=x_t.dtype)
    alpha = abar_t / abar_s                 # α_{t|s}
    beta = 1 - alpha                        # β_{t|s}
    coef_x0 = abar_s.sqrt() * beta / (1 - abar_t)
    coef_xt = alpha.sqrt() * (1 - abar_s) / (1 - abar_t)
    return coef_x0 * x0 + coef_xt * x_t, (1 - abar_s) / (1 - abar_t) * beta

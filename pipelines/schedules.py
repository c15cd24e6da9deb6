"""Noise schedules and samplers, all from diffusers; this module only names the choices.

Forward process (DDPM eq. 4):  x_t = sqrt(ᾱ_t)·x_0 + sqrt(1 − ᾱ_t)·ε,  ᾱ_t = Π_{s≤t} (1 − β_s)
Signal-to-noise ratio:         SNR(t) = ᾱ_t / (1 − ᾱ_t)
Zero terminal SNR:             `rescale_zero_terminal_snr` below (Lin et al. 2024, Algorithm 1), written out
"""
from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

# name shown to the user -> (diffusers beta_schedule, beta_start, beta_end)
SCHEDULES = {
    "linear (DDPM)": ("linear", 1e-4, 0.02),
    "scaled-linear (Stable Diffusion)": ("scaled_linear", 0.00085, 0.012),
    "cosine (improved DDPM)": ("squaredcos_cap_v2", 1e-4, 0.02),
}
# DPM-Solver++ (2M): diffusers' defaults, algorithm_type="dpmsolver++", solver_order=2 (Lu et al. 2022);
# UniPC: the B(h)=e^h−1 predictor-corrector of order 2 (Zhao et al. 2023). Both are multistep: one network call a step
SAMPLERS = {"DDPM (ancestral)": DDPMScheduler, "DDIM": DDIMScheduler, "DPM-Solver++ (multistep)": DPMSolverMultistepScheduler,
            "UniPC (multistep)": UniPCMultistepScheduler}
SPACINGS = ("leading", "trailing", "linspace")


def schedule_config(schedule: str = "linear (DDPM)", zero_snr: bool = False, num_train_timesteps: int = 1000,
                    prediction_type: str = "epsilon", timestep_spacing: str = "leading") -> dict:
    beta_schedule, beta_start, beta_end = SCHEDULES[schedule]
    return dict(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, beta_start=beta_start,
                beta_end=beta_end, rescale_betas_zero_snr=zero_snr, prediction_type=prediction_type,
                timestep_spacing=timestep_spacing, clip_sample=False)


def make_scheduler(sampler: str, config: dict, **overrides):
    """A fresh diffusers scheduler of kind `sampler` built from a stored scheduler config."""
    cls = SAMPLERS[sampler]
    cfg = {k: v for k, v in dict(config, **overrides).items() if not k.startswith("_")}
    if cls in (DPMSolverMultistepScheduler, UniPCMultistepScheduler):
        cfg.pop("clip_sample", None)
        if cfg.get("rescale_betas_zero_snr"):
            cfg.setdefault("final_sigmas_type", "zero")
    return cls.from_config(cfg)


def alphas_cumprod(schedule: str, zero_snr: bool = False, num_train_timesteps: int = 1000) -> torch.Tensor:
    return DDPMScheduler(**schedule_config(schedule, zero_snr, num_train_timesteps)).alphas_cumprod.clone()


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Zero terminal SNR (Lin et al. 2024, Algorithm 1): new betas whose last ᾱ is exactly 0, first ᾱ unchanged.

    The readable reference of the rescale. The schedulers run diffusers' own copy of it
    (`rescale_betas_zero_snr=True` in `schedule_config`); tests/test_schedules.py checks that the two agree.
    """
    # 1. betas -> sqrt(ᾱ_t), with ᾱ_t = Π_{s≤t} (1 − β_s)
    sqrt_abar = torch.cumprod(1 - betas, dim=0).sqrt()
    first, last = sqrt_abar[0].clone(), sqrt_abar[-1].clone()       # sqrt(ᾱ_1), sqrt(ᾱ_T)
    # 2. shift so the last is 0:         sqrt(ᾱ_t) − sqrt(ᾱ_T)
    sqrt_abar = sqrt_abar - last
    # 3. scale so the first is unchanged: · sqrt(ᾱ_1) / (sqrt(ᾱ_1) − sqrt(ᾱ_T))
    sqrt_abar = sqrt_abar * first / (first - last)
    # 4. back to betas: ᾱ_t = sqrt(ᾱ_t)², α_t = ᾱ_t / ᾱ_{t−1} (α_1 = ᾱ_1), β_t = 1 − α_t; so β_T = 1 and ᾱ_T = 0
    abar = sqrt_abar ** 2
    alphas = torch.cat([abar[:1], abar[1:] / abar[:-1]])
    return 1 - alphas


def log_snr(abar: torch.Tensor) -> torch.Tensor:
    """log SNR(t) = log ᾱ_t − log(1 − ᾱ_t); −inf where ᾱ_T = 0 (zero terminal SNR)."""
    abar = abar.double()
    return (abar.log() - (1 - abar).log()).float()

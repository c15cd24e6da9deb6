"""Lin et al. (2024), "Common Diffusion Noise Schedules and Sample Steps are Flawed", on four small models.

The four models are the class-conditional UNet of the CFG lesson (`pipelines.cfg`) trained on
brightness-varied MNIST (`pipelines.data.brightness_mnist`), identical except for two choices:

    prediction target   ε  or  v = sqrt(ᾱ_t)·ε − sqrt(1 − ᾱ_t)·x_0
    noise schedule      Stable Diffusion's scaled-linear betas, as is (ᾱ_T ≈ 0.0047) or rescaled to ᾱ_T = 0

Everything else (data, steps, seed, architecture) is shared, so differences come from those choices.
"""
from __future__ import annotations

import shlex

import torch

from ..cfg import pipeline as cfg_pipeline

SCHEDULE = "scaled-linear (Stable Diffusion)"
TRAIN_STEPS, BATCH_SIZE = 1200, 64

# (v-prediction?, zero terminal SNR?) -> checkpoint folder
VARIANTS = {
    (False, False): "brightness-eps-default",
    (False, True): "brightness-eps-zerosnr",
    (True, False): "brightness-v-default",
    (True, True): "brightness-v-zerosnr",
}


def variant_label(*, v_prediction: bool, zero_snr: bool) -> str:
    """"v-prediction, zero-terminal-SNR schedule" etc.; keyword-only flags, the order of `VARIANTS`' keys."""
    return f"{'v' if v_prediction else 'ε'}-prediction, {'zero-terminal-SNR' if zero_snr else 'default'} schedule"


def brightness(x: torch.Tensor) -> torch.Tensor:
    """Per-image mean brightness on a 0–1 scale, from images in [−1, 1] (clipped as a saved image would be)."""
    return ((x.clamp(-1, 1) + 1) / 2).mean(dim=(1, 2, 3))


def train_args(v_prediction: bool, zero_snr: bool, steps: int = TRAIN_STEPS) -> list[str]:
    """The `pipelines.cfg.train` arguments of one variant."""
    args = ["--dataset", "brightness-mnist", "--name", VARIANTS[v_prediction, zero_snr], "--schedule", SCHEDULE,
            "--steps", str(steps), "--batch-size", str(BATCH_SIZE),
            "--prediction-type", "v_prediction" if v_prediction else "epsilon"]
    return args + (["--zero-snr"] if zero_snr else [])


def train_command(name: str) -> str:
    key = next(k for k, n in VARIANTS.items() if n == name)
    return "python -m pipelines.cfg.train " + shlex.join(train_args(*key))


def load_variant(name: str, device: str | None = None):
    """One of the four models: the CFG lesson's UNet (cfg.pipeline.load_cfg), naming this lesson's train command
    when it is missing."""
    return cfg_pipeline.load_cfg(name, device, retrain=train_command(name))

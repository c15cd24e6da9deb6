"""StackGAN (Zhang et al. 2017), trained here on captioned shapes: a text-to-image GAN in two stages.

    model.py     the four networks (Stage I/II generator and discriminator), conditioning augmentation, losses
    negatives.py the discriminator's wrong captions: random ones (the paper's) and hard negatives (one attribute
                 changed), and why the random ones let D ignore shape
    train.py     Stage I, then Stage II on the frozen Stage I; resumable
    pipeline.py  caption -> Stage I sketch (32 px) -> Stage II image (64 px)
    card.py      the model card's text (its figures: pipelines/measure/stackgan.py, prompt adherence and
                 diversity against the latent diffusion model; failure modes: measure/stackgan_diagnose.py)

    python -m pipelines.stackgan.train --stage 1 --steps 8000 --projection --hard-attributes adaptive --threads 2
    python -m pipelines.stackgan.train --stage 2 --steps 2000 --ndf 32 --sketch-skip \
        --projection --hard-attributes adaptive --threads 2
    python -m pipelines.stackgan.train --stage 2 --upsample pixelshuffle --steps 1500 --sketch-skip \
        --projection --hard-attributes adaptive --threads 2
    python -m pipelines.measure.stackgan --threads 2
"""
from __future__ import annotations

STAGE1 = "stackgan-stage1"
STAGE2 = "stackgan-stage2"
STAGE2_PIXELSHUFFLE = "stackgan-stage2-pixelshuffle"
NAMES = {(1, "nearest"): STAGE1, (2, "nearest"): STAGE2, (2, "pixelshuffle"): STAGE2_PIXELSHUFFLE}
_SHIPPED_LOSSES = "--projection --hard-attributes adaptive"  # the shipped runs' discriminator terms and negatives
STAGE1_COMMAND = f"python -m pipelines.stackgan.train --stage 1 --steps 8000 {_SHIPPED_LOSSES} --threads 2"
STAGE2_COMMAND = (f"python -m pipelines.stackgan.train --stage 2 --steps 2000 --ndf 32 --sketch-skip "
                  f"{_SHIPPED_LOSSES} --threads 2")
PIXELSHUFFLE_COMMAND = (f"python -m pipelines.stackgan.train --stage 2 --upsample pixelshuffle --steps 1500 "
                        f"--sketch-skip {_SHIPPED_LOSSES} --threads 2")
EVALUATE_COMMAND = "python -m pipelines.measure.stackgan --threads 2"
COMMANDS = {STAGE1: STAGE1_COMMAND, STAGE2: STAGE2_COMMAND, STAGE2_PIXELSHUFFLE: PIXELSHUFFLE_COMMAND}

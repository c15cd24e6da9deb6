"""The MNIST DDPM network: a small diffusers UNet2DModel (28 -> 14 -> 7, attention at 7x7)."""
from __future__ import annotations

from diffusers import UNet2DModel

UNET_CONFIG = dict(
    sample_size=28, in_channels=1, out_channels=1,
    block_out_channels=(32, 64, 128), layers_per_block=1, norm_num_groups=8,
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
)


def build_unet(**overrides) -> UNet2DModel:
    return UNet2DModel(**dict(UNET_CONFIG, **overrides))

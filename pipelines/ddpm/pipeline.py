"""Load the shipped MNIST DDPM and sample from it, frame by frame."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from diffusers import UNet2DModel

from ..checkpoints import checkpoint_dir, load_pretrained, read_json, weights_hash
from .. import backends
from ..precision import FP32, Precision, choose
from ..runtime import count_parameters, cpu_generator, pick_device
from ..sampling import Run, denoise
from ..schedules import make_scheduler

TRAIN_COMMAND = "python -m pipelines.ddpm.train --dataset mnist --steps 2300 --mixed-precision bf16"
MAX_IMAGES, MAX_DDIM_STEPS = 64, 1000


@dataclass
class DDPM:
    unet: UNet2DModel
    scheduler_config: dict
    record: dict
    path: Path
    device: torch.device
    precision: Precision = FP32

    @property
    def parameters(self) -> int:
        return count_parameters(self.unet)

    @property
    def weights_hash(self) -> str:
        return weights_hash(self.path)

    def predict(self, x: torch.Tensor, t) -> torch.Tensor:
        with self.precision.autocast():  # bf16 where the hardware has it (pipelines/precision.py)
            return self.unet(x, t).sample.float()

    def frames(self, *, sampler: str = "DDIM", steps: int = 50, num_images: int = 16, seed: int = 0,
               eta: float = 0.0, strided: bool = False) -> Run:
        """A `sampling.Run`: one `sampling.Step` per reverse step. DDPM ancestral runs its full T steps unless `strided`:
        then `steps` spaced timesteps (diffusers' DDPMScheduler.set_timesteps), each step drawing from
        the posterior q(x_t' | x_t, x̂_0) between the two timesteps it jumps between."""
        num_images, steps = int(num_images), int(steps)
        if not 1 <= num_images <= MAX_IMAGES:
            raise ValueError(f"Number of images must be between 1 and {MAX_IMAGES}.")
        scheduler = make_scheduler(sampler, self.scheduler_config)
        if sampler.startswith("DDPM") and not strided:
            steps = scheduler.config.num_train_timesteps
        elif not 1 <= steps <= MAX_DDIM_STEPS:
            raise ValueError(f"Steps must be between 1 and {MAX_DDIM_STEPS}.")
        shape = (num_images, self.unet.config.in_channels, self.unet.config.sample_size, self.unet.config.sample_size)
        return Run(denoise(self.predict, scheduler, shape, steps, cpu_generator(seed), self.device, eta=eta))

    def generate(self, **kwargs) -> torch.Tensor:
        """The final samples in [-1, 1] on the CPU; the keywords of `frames`."""
        return self.frames(**kwargs).last().x.clamp(-1, 1).cpu()


@lru_cache(maxsize=2)
def load_ddpm(name: str = "ddpm-mnist", device: str | None = None) -> DDPM:
    path = checkpoint_dir(name, TRAIN_COMMAND, required="unet/config.json")
    device = pick_device(device)
    unet = load_pretrained(UNet2DModel, path / "unet").to(device).eval()
    sched = read_json(path / "scheduler" / "scheduler_config.json")
    unet, precision = backends.apply(unet, "unet2d", choose(device, model=name))
    return DDPM(unet, sched, read_json(path / "training_record.json", {}), path, device, precision)


__all__ = ["DDPM", "load_ddpm", "TRAIN_COMMAND"]

"""The protocol every model is scored under, so that figures compare within it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

BATCH = 64          # images per sampling call (the DDPM's MAX_IMAGES)


@dataclass(frozen=True)
class Protocol:
    name: str
    n: int                   # generated images per FID / IS point
    n_half: int              # real-vs-real: images in each half of the test split
    steps: tuple[int, ...]   # sampling steps for "quality vs steps"
    guided_steps: int = 15   # DDIM steps of the class-conditional models (CFG sweep, zero-SNR lesson)
    features: tuple[str, ...] = ("classifier",)  # "classifier" = the dataset's judge, or a key in FEATURE_NETWORKS
    seed: int = 0

    def describe(self) -> str:
        return (f"{self.name} protocol: n={self.n:,} generated images per point, steps {list(self.steps)}, "
                f"class-conditional models DDIM {self.guided_steps} steps, features {', '.join(self.features)}, "
                f"real-vs-real halves of {self.n_half:,}, seed {self.seed}")


PROTOCOLS = {
    # default, in images × sampling steps: MNIST DDPM 500 × (5 + 10 + 25) × 2 samplers = 40,000 (~8 ms each on 2
    # cores); CFG UNet 500 × 15 × (4 w × 2 models + 4 zero-SNR models) = 90,000, of which the 30,000 at w = 3, 7 run
    # two passes (~7 ms each; ~3.5 ms unguided). About 13 min on 2 free cores, 15-22 min at 1 thread beside a
    # 2-thread training job. The guided models run 15 steps, not 25, to stay well inside the 30-min budget.
    "default": Protocol("default", n=500, n_half=5000, steps=(5, 10, 25), guided_steps=15),
    "quick": Protocol("quick", n=64, n_half=500, steps=(5, 10), guided_steps=5),
}


def in_batches(sample_batch: Callable[[int, int], torch.Tensor], n: int, seed: int, batch: int = BATCH) -> torch.Tensor:
    """n images from `sample_batch(size, seed)` called on batches with seeds seed·1000 + k."""
    sizes = [min(batch, n - i) for i in range(0, n, batch)]
    return torch.cat([sample_batch(size, seed * 1000 + k) for k, size in enumerate(sizes)])


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """Requested classes 0, 1, …, K−1, 0, 1, …: n/K of each; every class weighs the same in FID and accuracy."""
    return torch.arange(n) % num_classes

"""Load a shipped class-conditional DDPM and sample from it with classifier-free guidance."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..checkpoints import checkpoint_dir, read_json, weights_hash
from ..guidance import guided_predictor
from .. import backends
from ..precision import FP32, Precision, choose
from ..runtime import count_parameters, cpu_generator, pick_device
from ..sampling import Run, denoise
from ..schedules import SPACINGS, make_scheduler
from .model import ClassConditionalUNet

# name shown to the user -> checkpoint folder
MODELS = {"MNIST": "cfg-mnist", "Fashion-MNIST": "cfg-fashion-mnist"}
# the conditioning lesson: one mechanism each (ClassConditionalUNet's `conditioning=`), trained alike on MNIST
CONDITIONING_MODELS = {"add": "cond-add-mnist", "concat": "cond-concat-mnist",
                       "cross_attention": "cond-cross-attention-mnist", "adaln": "cond-adaln-mnist"}
MAX_IMAGES, MAX_STEPS, MAX_SCALE = 64, 1000, 30.0


def train_command(name: str) -> str:
    for mechanism, folder in CONDITIONING_MODELS.items():
        if name == folder:
            return (f"python -m pipelines.cfg.train --dataset mnist --conditioning {mechanism} --name {name} "
                    "--steps 1500 --probe-every 150")
    return f"python -m pipelines.cfg.train --dataset {name.removeprefix('cfg-')}"


@dataclass
class CFGModel:
    net: ClassConditionalUNet
    scheduler_config: dict
    config: dict
    record: dict
    path: Path
    device: torch.device
    precision: Precision = FP32

    @property
    def class_names(self) -> list[str]:
        return self.config["class_names"]

    @property
    def parameters(self) -> int:
        return count_parameters(self.net)

    @property
    def weights_hash(self) -> str:
        return weights_hash(self.path)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.net.config["in_channels"], self.net.config["image_size"], self.net.config["image_size"]

    def class_index(self, label) -> int:
        """A class given by index or by name -> its index; anything else is a ValueError for the user."""
        names = self.class_names
        if isinstance(label, str) and label in names:
            return names.index(label)
        try:
            i = int(label)
        except (TypeError, ValueError):
            raise ValueError(f"Unknown class {label!r}; choose one of {names}.") from None
        if isinstance(label, float) and label != i or not 0 <= i < len(names):
            raise ValueError(f"Unknown class {label!r}; choose one of {names} (or an index 0-{len(names) - 1}).")
        return i

    def forward(self, x: torch.Tensor, t, labels: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():  # bf16 where the hardware has it (pipelines/precision.py)
            return self.net(x, t, labels).float()

    def labels(self, classes) -> tuple[torch.Tensor, torch.Tensor]:
        """(class labels, null labels) as tensors on the model's device."""
        cond = torch.tensor([self.class_index(c) for c in classes], device=self.device)
        return cond, torch.full_like(cond, self.net.null_label)

    def frames(self, label, *, scale: float = 3.0, rescale: float = 0.0, sampler: str = "DDIM", steps: int = 25,
               num_images: int = 16, seed: int = 0, eta: float = 0.0, spacing: str | None = None) -> Run:
        """A `sampling.Run`: one `sampling.Step` per reverse step for `num_images` samples of one class (or a list
        of classes; then one image each).

        DDPM ancestral always runs all T steps. The guided prediction is `guidance.guided_predictor`.
        `spacing` overrides the stored timestep spacing ("leading", "trailing", "linspace").
        """
        classes = list(label) if isinstance(label, (list, tuple)) else [label] * int(num_images)
        if not 1 <= len(classes) <= MAX_IMAGES:
            raise ValueError(f"Number of images must be between 1 and {MAX_IMAGES}, got {len(classes)}.")
        scale = float(scale)
        if not 0 <= scale <= MAX_SCALE:
            raise ValueError(f"CFG scale w must be between 0 and {MAX_SCALE:g}, got {scale:g}.")
        if spacing is not None and spacing not in SPACINGS:
            raise ValueError(f"Timestep spacing must be one of {SPACINGS}, got {spacing!r}.")
        scheduler = make_scheduler(sampler, self.scheduler_config, **({"timestep_spacing": spacing} if spacing else {}))
        if sampler.startswith("DDPM"):
            steps = scheduler.config.num_train_timesteps
        elif not 1 <= int(steps) <= MAX_STEPS:
            raise ValueError(f"Steps must be between 1 and {MAX_STEPS}, got {steps}.")
        cond, uncond = self.labels(classes)
        predict = guided_predictor(self.forward, cond, uncond, scale, rescale)
        return Run(denoise(predict, scheduler, (len(classes), *self.shape), int(steps), cpu_generator(seed),
                           self.device, eta=eta))

    def generate(self, label, *, clamp: bool = True, **kwargs) -> torch.Tensor:
        """The final samples on the CPU, clamped to [-1, 1] unless `clamp=False`; the keywords of `frames`."""
        x = self.frames(label, **kwargs).last().x.cpu()
        return x.clamp(-1, 1) if clamp else x

    def sweep(self, scales=(0, 1, 3, 7), *, classes=None, per_class: int = 1, rescale: float = 0.0,
              sampler: str = "DDIM", steps: int = 25, seed: int = 0, progress=None) -> torch.Tensor:
        """(len(scales), len(classes) * per_class, C, H, W): every scale starts from the same seed, so each
        class sees the same noise at every w (and, for DDPM, the same noise at every step)."""
        classes = list(range(len(self.class_names))) if classes is None else list(classes)
        batch = [c for c in classes for _ in range(per_class)]
        out = []
        for k, w in enumerate(scales):
            out.append(self.generate(batch, scale=w, rescale=rescale, sampler=sampler, steps=steps, seed=seed))
            if progress:
                progress(k + 1, len(scales))
        return torch.stack(out)


@lru_cache(maxsize=4)
def load_cfg(name: str = "cfg-mnist", device: str | None = None, retrain: str | None = None) -> CFGModel:
    """A class-conditional checkpoint of this UNet; `retrain` is the command a missing one names (default: this
    lesson's trainer; the zero-SNR lesson's models name their own, see zero_snr.load_variant)."""
    path = checkpoint_dir(name, retrain or train_command(name), required="model.safetensors")
    config = json.loads((path / "config.json").read_text())
    net = ClassConditionalUNet(**{k: config[k] for k in ("in_channels", "image_size", "num_classes", "channels",
                                                         "emb_dim", "groups", "dropout", "conditioning",
                                                         "label_channels", "label_tokens") if k in config})
    net.load_state_dict({k: v.float() for k, v in load_file(path / "model.safetensors").items()})
    device = pick_device(device)
    sched = read_json(path / "scheduler" / "scheduler_config.json")
    net, precision = backends.apply(net.to(device).eval(), "class-conditional", choose(device, model=name))
    return CFGModel(net, sched, config, read_json(path / "training_record.json", {}), path, device, precision)


__all__ = ["CFGModel", "load_cfg", "MODELS", "CONDITIONING_MODELS", "MAX_IMAGES", "MAX_STEPS", "MAX_SCALE"]

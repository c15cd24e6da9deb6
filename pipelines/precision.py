"""Inference precision, chosen once at start-up: bf16 autocast where the hardware runs bf16 natively, fp32 elsewhere.

    DIFFUSION_LAB_PRECISION = auto | fp32 | bf16 | fp16        (python app.py --precision sets it)

`python app.py` starts with "auto"; scripts and the measurement commands run fp32 unless the variable says otherwise,
so a figure in a card means the same on every machine. "auto" picks
- on a CPU: bf16 when it has native bf16 arithmetic (AVX-512 BF16 or AMX: a bf16 GEMM runs ~2.4× the fp32 rate
  there), else fp32: emulated bf16 is slower than fp32;
- on CUDA: bf16 where the GPU supports it, else fp16; on MPS: fp32.

Autocast runs the convolutions and matrix products in the low precision (and keeps in fp32 what its op lists keep
there); every model's output is cast back to fp32 before the sampler's update sees it. A model that bf16
measurably breaks is listed in FP32_ONLY and stays fp32 (`python -m pipelines.measure.precision` decides). The same
seed, settings, device and precision give byte-identical images.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

PRECISION_ENV = "DIFFUSION_LAB_PRECISION"
CHOICES = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# checkpoints that keep fp32 whatever is chosen: bf16 hurt them, or has not been measured on them yet (see the module
# docstring; tests/test_precision.py checks this list against results/precision.json)
NOT_MEASURED = "bf16 not measured on it yet (python -m pipelines.measure.precision --only <name>)"
FP32_ONLY: dict[str, str] = {   # the shipped diffusion models bf16 put outside the bounds
    "ddpm-mnist": "bf16 put its FID 10.4% above fp32's (n = 300, DDIM 20; the bound is 10%)",
}


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Does this CPU do bf16 arithmetic in hardware (x86 avx512_bf16 / amx_bf16 flags)? False where unknown."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class Precision:
    name: str          # "fp32", "bf16" or "fp16"
    device_type: str   # "cpu", "cuda", "mps"
    reason: str        # why: shown in the UI next to the choice
    engine: str = ""   # "" for PyTorch; else the engine that runs the network (pipelines/backends.py)

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]

    @property
    def label(self) -> str:
        """What a PNG's settings record: "bf16", or "fp32 (ONNX Runtime 1.x)" when another engine runs it."""
        return f"{self.name} ({self.engine})" if self.engine else self.name

    def autocast(self):
        """The context a network's forward runs in: autocast to the low precision, or nothing for fp32."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def describe(self) -> str:
        return f"running {self.label} on {self.device_type.upper()} ({self.reason})"


FP32 = Precision("fp32", "cpu", "full precision")   # what a model built by hand (a test's tiny one) runs at


def requested() -> str | None:
    """The user's choice: $DIFFUSION_LAB_PRECISION (None when unset); anything else is refused by name."""
    value = os.environ.get(PRECISION_ENV, "").strip().lower()
    if value and value not in CHOICES:
        raise ValueError(f"{PRECISION_ENV} must be one of {CHOICES}, got {value[:20]!r}")
    return value or None


def choose(device: torch.device | str, choice: str | None = None, model: str | None = None) -> Precision:
    """The precision a model runs at on `device`: `choice` (default: requested(), else fp32), resolved when "auto"."""
    device_type = torch.device(device).type
    choice = choice or requested()
    if model in FP32_ONLY:
        return Precision("fp32", device_type, f"{model} stays fp32: {FP32_ONLY[model]}")
    if choice is None:
        return Precision("fp32", device_type, f"{PRECISION_ENV} unset; python app.py chooses automatically")
    if choice != "auto":
        return Precision(choice, device_type, f"set by {PRECISION_ENV} / --precision")
    if device_type == "cpu":
        if cpu_has_native_bf16():
            return Precision("bf16", "cpu", "native bf16 on this CPU, chosen automatically")
        return Precision("fp32", "cpu", "no native bf16 on this CPU")
    if device_type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", "cuda", "this GPU supports bf16, chosen automatically")
        return Precision("fp16", "cuda", "this GPU has no bf16, chosen automatically")
    return Precision("fp32", device_type, f"no low-precision default on {device_type}")


__all__ = ["Precision", "choose", "requested", "cpu_has_native_bf16", "PRECISION_ENV", "CHOICES", "FP32_ONLY", "FP32"]

"""Where shipped weights live and how their records are read.

Layout: `checkpoints/<name>/` holds diffusers/transformers `save_pretrained` folders (or a
`config.json` + `*.safetensors` pair for the hand-written models), a `README.md` model card,
`training_record.json` written by the training command and `metrics.json` written by the
evaluation command.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class CheckpointMissing(FileNotFoundError):
    """A shipped checkpoint is absent; the message says how to train it."""

    def __init__(self, name: str, train_command: str):
        super().__init__(f"Checkpoint '{name}' was not found in {checkpoints_root()}. "
                         f"Train it with:  {train_command}")
        self.name, self.train_command = name, train_command


def checkpoints_root() -> Path:
    return Path(os.environ.get("DIFFUSION_LAB_CHECKPOINTS", PROJECT_ROOT / "checkpoints"))


class CheckpointCorrupt(ValueError):
    """A checkpoint folder exists but cannot be loaded (damaged, partial or of another kind); the message says why
    and what to do. A ValueError, so every tab shows it as a plain message."""


def checkpoint_dir(name: str, train_command: str, required: str = "") -> Path:
    path = checkpoints_root() / name
    if not (path / required).exists() or not any(path.iterdir()):
        raise CheckpointMissing(name, train_command)
    return path


def load_pretrained(cls, path: str | Path, **kwargs):
    """`cls.from_pretrained(path)` for diffusers/transformers models, safe beside other threads.

    low_cpu_mem_usage=False: the default path builds the model inside accelerate's
    `init_empty_weights()`, which patches nn.Module globally, so a module another app thread
    constructs at that moment would get its parameters on the "meta" device.
    """
    import torch
    kwargs = {"torch_dtype": torch.float32, "low_cpu_mem_usage": False, **kwargs}
    return cls.from_pretrained(path, **kwargs)


def read_json(path: str | Path, default=None):
    path = Path(path)
    if not path.exists():
        return default
    return json.loads(path.read_text())


def write_json(path: str | Path, data) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def weights_hash(path: str | Path, length: int = 10) -> str:
    """Short sha256 over every weight file under `path`: names a checkpoint in image metadata."""
    h = hashlib.sha256()
    for f in sorted(Path(path).rglob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()[:length]

"""StackGAN sampling: caption -> φ -> Stage I sketch (32 px) -> Stage II image (64 px).

    gan = load_stackgan()                                   # checkpoints/stackgan-stage1 + stackgan-stage2
    out = gan.several_z("a red circle ...", n=4, seed=0)    # n noise vectors z, each with its own ĉ samples
    out = gan.several_c("a red circle ...", n=4, seed=0)    # ONE z, n samples of ĉ: conditioning augmentation
    out.stage1, out.stage2                                  # (n, 3, 32, 32) and (n, 3, 64, 64) in [-1, 1]

A GAN samples in one forward pass per stage: no steps, no guidance scale. The text enters only through φ, the
caption's mean-pooled MiniLM embedding (`pipelines.text_encoder`), which each stage's conditioning augmentation
turns into ĉ = μ(φ) + σ(φ)·ε. `augment=False` uses ĉ = μ(φ) (ε = 0).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from ..checkpoints import CheckpointMissing, checkpoints_root, weights_hash
from ..runtime import cpu_generator, pick_device
from . import COMMANDS, STAGE1, STAGE2
from .model import NETWORKS, StageIGenerator, StageIIGenerator

MAX_IMAGES = 16
MAX_PROMPT_CHARS = 2000


def _network_class(name: str):
    classes = {cls.__name__: cls for cls in NETWORKS.values()}
    if name not in classes:
        raise ValueError(f"unknown StackGAN network {name!r}")
    return classes[name]


def load_network(folder: str | Path, which: str = "generator"):
    """One network of a StackGAN checkpoint folder (float32, eval mode, CPU)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    weights = folder / f"{which}.safetensors"
    if not weights.is_file() or not (folder / "config.json").is_file():
        raise CheckpointMissing(folder.name, COMMANDS.get(folder.name, "python -m pipelines.stackgan.train"))
    try:
        config = json.loads((folder / "config.json").read_text())
        net = _network_class(config[which])(**config[f"{which}_config"])
        net.load_state_dict(load_file(str(weights)))
    except (OSError, KeyError, TypeError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise ValueError(f"The StackGAN checkpoint {folder.name} cannot be loaded ({type(exc).__name__}: "
                         f"{str(exc)[:200]}). Retrain it: {COMMANDS.get(folder.name, '')}") from exc
    return net.eval()


def load_generator(folder: str | Path):
    return load_network(folder, "generator")


@dataclass
class Samples:
    stage1: torch.Tensor                  # (n, 3, 32, 32) in [-1, 1]
    stage2: torch.Tensor | None           # (n, 3, 64, 64), None without a Stage II
    notes: list[str] = field(default_factory=list)


class StackGAN:
    def __init__(self, stage1: StageIGenerator, stage2: StageIIGenerator | None, device, names=(STAGE1, STAGE2),
                 hashes=("", "")):
        self.stage1, self.stage2, self.device = stage1.to(device), stage2.to(device) if stage2 else None, device
        self.names, self.hashes = names, hashes
        self._lock = threading.Lock()  # BatchNorm modules are shared: one forward at a time

    @property
    def z_dim(self) -> int:
        return self.stage1.config["z_dim"]

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, list[str]]:
        """φ (B, 384) of the prompts, with the encoder's notes. StackGAN has no unconditional mode: "" is refused."""
        from ..text_encoder import load_text_encoder, non_ascii_note
        if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError("The caption must be text.")
        if any(not p.strip() for p in prompts):
            raise ValueError("StackGAN needs a caption: it was never trained without one (there is no "
                             "unconditional model to fall back to, unlike the diffusion tab's empty prompt).")
        phi, notes = load_text_encoder("cpu").sentence_embedding([p[:MAX_PROMPT_CHARS] for p in prompts])
        label = "The caption" if len(prompts) == 1 else "A caption"
        return phi.to(self.device), [n for p in prompts for n in non_ascii_note(p, label)][:1] + notes

    def noise(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z, ε_0, ε) from a seeded CPU generator: the same seed gives the same images on any device."""
        g = cpu_generator(int(seed))
        z = torch.randn(n, self.z_dim, generator=g)
        eps0 = torch.randn(n, self.stage1.ca.c_dim, generator=g)
        eps = torch.randn(n, self.stage2.ca.c_dim if self.stage2 else 1, generator=g)
        return z, eps0, eps

    @torch.no_grad()
    def draw(self, phi: torch.Tensor, z: torch.Tensor, eps0: torch.Tensor, eps: torch.Tensor) -> Samples:
        """The two forward passes: s_0 = G_0(z, ĉ_0), s = G(s_0, ĉ)."""
        with self._lock:
            dev = self.device
            sketch = self.stage1(z.to(dev), phi, eps0.to(dev))[0]
            image = self.stage2(sketch, phi, eps.to(dev))[0] if self.stage2 is not None else None
        return Samples(sketch.float().cpu(), None if image is None else image.float().cpu())

    def check(self, n: int) -> int:
        n = int(n)
        if not 1 <= n <= MAX_IMAGES:
            raise ValueError(f"Number of images must be between 1 and {MAX_IMAGES}, got {n}.")
        return n

    def several_z(self, prompt: str, n: int = 4, seed: int = 0, augment: bool = True) -> Samples:
        """n different noise vectors z for one caption (ĉ sampled afresh for each, unless augment=False)."""
        n = self.check(n)
        phi, notes = self.encode([prompt])
        z, eps0, eps = self.noise(n, seed)
        if not augment:
            eps0, eps = eps0 * 0, eps * 0
        out = self.draw(phi.expand(n, -1), z, eps0, eps)
        out.notes = notes
        return out

    def several_c(self, prompt: str, n: int = 4, seed: int = 0) -> Samples:
        """ONE z (the seed's first) and n samples of ĉ_0 and ĉ: what conditioning augmentation varies."""
        n = self.check(n)
        phi, notes = self.encode([prompt])
        z, eps0, eps = self.noise(n, seed)
        out = self.draw(phi.expand(n, -1), z[:1].expand(n, -1), eps0, eps)
        out.notes = notes
        return out

    def for_captions(self, captions: list[str], seed: int = 0) -> Samples:
        """One sample per caption (e.g. the ten random captions), z and ε from the seed."""
        if len(captions) > MAX_IMAGES:
            raise ValueError(f"At most {MAX_IMAGES} captions at once, got {len(captions)}.")
        phi, notes = self.encode(list(captions))
        z, eps0, eps = self.noise(len(captions), seed)
        out = self.draw(phi, z, eps0, eps)
        out.notes = notes
        return out


@lru_cache(maxsize=4)
def _load(stage2: str | None, device: str) -> StackGAN:
    root = checkpoints_root()
    g0 = load_generator(root / STAGE1)
    g = load_generator(root / stage2) if stage2 else None
    return StackGAN(g0, g, torch.device(device), (STAGE1, stage2),
                    (weights_hash(root / STAGE1), weights_hash(root / stage2) if stage2 else ""))


_LOAD_LOCK = threading.Lock()


def load_stackgan(stage2: str | None = STAGE2, device: str | None = None) -> StackGAN:
    """Stage I + the named Stage II checkpoint (None: Stage I only); loaded once per (stage2, device)."""
    with _LOAD_LOCK:
        return _load(stage2, str(pick_device(device)))

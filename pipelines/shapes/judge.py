"""The attribute judge of prompt adherence: a small CNN with one head per attribute.

It reads an RGB image in [-1, 1] and predicts shape, colour, size, position and background
(`pipelines.shapes.data.ATTRIBUTES`). Trained here on the generator's images
(`python -m pipelines.shapes.train_judge`), it checks whether a text-to-image model drew what
the prompt asked for: `judge.score(images, labels)` gives per-attribute accuracy.

Resolution: the network works at 64 x 64. Smaller inputs (a StackGAN Stage I at 32 x 32) are
upsampled bilinearly first, and the judge was trained on such upsampled 32 px renders too (half
of each batch), so it is accurate at both; larger inputs are area-downsampled to 64.

Architecture: four conv-BN-ReLU-maxpool stages (64 -> 4 px), a fully connected layer (the
128-d features, usable for diversity / FID-style figures on this data), then one linear head
per attribute. The flatten (not a global pool) keeps where things are, which position needs.
"""
from __future__ import annotations

import json
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from ..checkpoints import checkpoint_dir, read_json
from ..runtime import pick_device
from .data import ATTRIBUTE_NAMES, ATTRIBUTES, DATA_VERSION

NAME = "shapes-judge"
TRAIN_COMMAND = "python -m pipelines.shapes.train_judge --threads 1"
LABEL_SMOOTHING = 0.05  # of every head's cross-entropy in training


def resize_square(x: torch.Tensor, side: int) -> torch.Tensor:
    """(n, c, H, W) -> (n, c, side, side): bilinear up (a 32 px Stage I), area down, unchanged at `side`."""
    if x.shape[-2:] == (side, side):
        return x
    mode = "bilinear" if x.shape[-1] < side else "area"
    return F.interpolate(x, size=(side, side), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))


class ShapesJudge(nn.Module):
    def __init__(self, heads: dict[str, int] | None = None, width: int = 24, feature_dim: int = 128,
                 resolution: int = 64):
        super().__init__()
        heads = dict(heads or {a: len(v) for a, v in ATTRIBUTES.items()})
        self.config = dict(heads=heads, width=width, feature_dim=feature_dim, resolution=resolution)
        w = width

        def stage(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                    nn.MaxPool2d(2)]

        side = resolution // 16
        self.body = nn.Sequential(*stage(3, w), *stage(w, 2 * w), *stage(2 * w, 4 * w), *stage(4 * w, 4 * w),
                                  nn.Flatten(), nn.Linear(4 * w * side * side, feature_dim), nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict({a: nn.Linear(feature_dim, n) for a, n in heads.items()})
        self.attributes = list(heads)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) in [-1, 1] (or uint8) -> (n, 3, 64, 64) float: bilinear up / area down to 64."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"images must be (n, 3, H, W), got shape {tuple(x.shape)}")
        x = x.float().div(127.5).sub(1) if x.dtype == torch.uint8 else x.float()
        return resize_square(x, self.config["resolution"]).clamp(-1, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.body(x)
        return {a: head(f) for a, head in self.heads.items()}

    @torch.no_grad()
    def outputs(self, images: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(features (n, 128), {attribute: probabilities (n, K)}) on the CPU, in eval mode."""
        was_training, dev = self.training, next(self.parameters()).device
        self.eval()
        feats, probs = [], {a: [] for a in self.attributes}
        for i in range(0, len(images), batch_size):
            f = self.body(self.preprocess(images[i:i + batch_size].to(dev)))
            feats.append(f.cpu())
            for a, head in self.heads.items():
                probs[a].append(head(f).softmax(-1).cpu())
        self.train(was_training)
        return torch.cat(feats), {a: torch.cat(p) for a, p in probs.items()}

    def predict(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(n, n_attributes) predicted value indices, columns in `self.attributes` order."""
        _, probs = self.outputs(images, batch_size)
        return torch.stack([probs[a].argmax(-1) for a in self.attributes], dim=1)

    def embed(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        return self.outputs(images, batch_size)[0]

    def score(self, images: torch.Tensor, labels) -> dict[str, float]:
        """Per-attribute accuracy of `images` against the requested `labels` — a (n, n_attributes) tensor
        (columns in `self.attributes` order) or a list of {attribute: index} dicts (missing attributes are
        not scored) — plus "all": the share of images with every scored attribute right."""
        return score_predictions(self.predict(images), labels, self.attributes)


def score_predictions(pred: torch.Tensor, labels, attributes: list[str]) -> dict[str, float]:
    """Per-attribute accuracy of predicted value indices `pred` (n, len(attributes)) against the requested `labels`
    — a tensor with the same columns or a list of {attribute: index} dicts (missing attributes are not scored) —
    plus "all": the share of images with every scored attribute right."""
    if isinstance(labels, torch.Tensor):
        labels = [dict(zip(attributes, row.tolist())) for row in labels]
    if len(labels) != len(pred):
        raise ValueError(f"{len(pred)} images but {len(labels)} label sets")
    out, all_right = {}, torch.ones(len(pred), dtype=torch.bool)
    for j, a in enumerate(attributes):
        rows = [i for i, lab in enumerate(labels) if a in lab]
        if not rows:
            continue
        want = torch.tensor([labels[i][a] for i in rows])
        right = pred[rows, j] == want
        out[a] = right.float().mean().item()
        all_right[rows] &= right
    out["all"] = all_right.float().mean().item()
    return out


@lru_cache(maxsize=4)
def load_judge(device: str | None = None) -> ShapesJudge:
    """The shipped judge (checkpoints/shapes-judge), in eval mode; `.record` is its training record and
    `.test_accuracy` the figures its card measured on the test split (figure -> value)."""
    path = checkpoint_dir(NAME, TRAIN_COMMAND, required="model.safetensors")
    config = json.loads((path / "config.json").read_text())
    data = config.pop("data", {})
    if data.get("version") != DATA_VERSION or data.get("attributes") != {a: list(v) for a, v in ATTRIBUTES.items()}:
        raise ValueError(f"{path} was trained on another version of the shapes data; retrain it: {TRAIN_COMMAND}")
    model = ShapesJudge(**config)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in load_file(path / "model.safetensors").items()})
    model.record = json.loads((path / "training_record.json").read_text())
    model.test_accuracy = {row["figure"]: row["value"] for row in read_json(path / "metrics.json", {}).get("rows", [])
                           if "test-split" in row.get("protocol", "")}
    return model.to(pick_device(device)).eval()


__all__ = ["ATTRIBUTE_NAMES", "NAME", "TRAIN_COMMAND", "ShapesJudge", "load_judge"]

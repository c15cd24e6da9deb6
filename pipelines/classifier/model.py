"""A small CNN judge for 28x28 grey images (MNIST, Fashion-MNIST).

conv-conv-pool ×2 -> fc 128 (the "features" used for FID and diversity) -> logits.
Inputs are in [-1, 1], the range every generator in this project produces.
"""
from __future__ import annotations

import json
from functools import lru_cache

import torch
import torch.nn as nn
from safetensors.torch import load_file

from ..checkpoints import checkpoint_dir
from ..data import CLASS_NAMES
from ..runtime import pick_device


class JudgeCNN(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, feature_dim: int = 128):
        super().__init__()
        self.config = dict(in_channels=in_channels, num_classes=num_classes, width=width, feature_dim=feature_dim)
        w = width

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(*block(in_channels, w), *block(w, w), nn.MaxPool2d(2),
                                  *block(w, 2 * w), *block(2 * w, 2 * w), nn.MaxPool2d(2),
                                  nn.Flatten(), nn.Linear(2 * w * 7 * 7, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(feature_dim, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        dev = next(self.parameters()).device
        return torch.cat([self(x[i:i + batch_size].to(dev)).softmax(-1).cpu() for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        dev = next(self.parameters()).device
        return torch.cat([self.features(x[i:i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)])


def train_command(dataset: str) -> str:
    return f"python -m pipelines.classifier.train --dataset {dataset}"


@lru_cache(maxsize=4)
def load_classifier(dataset: str = "mnist", device: str | None = None) -> JudgeCNN:
    """The shipped judge for `dataset`, in eval mode. `.class_names` and `.record` are attached."""
    path = checkpoint_dir(f"classifier-{dataset}", train_command(dataset), required="model.safetensors")
    model = JudgeCNN(**json.loads((path / "config.json").read_text()))
    model.load_state_dict({k: v.float() for k, v in load_file(path / "model.safetensors").items()})
    model.class_names = CLASS_NAMES[dataset]
    model.record = json.loads((path / "training_record.json").read_text())
    return model.to(pick_device(device)).eval()

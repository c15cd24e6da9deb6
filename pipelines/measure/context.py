"""Scoring a batch of generated images under the protocol: labelled FID, IS and judge-accuracy rows."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from ..checkpoints import CheckpointMissing
from ..metrics.features import DEFAULT_FEATURES, JUDGES, FeatureNetworkMissing, get_feature_network
from ..metrics.scoring import Score, reference_description, score_images
from .protocol import Protocol

SKIP = (CheckpointMissing, FeatureNetworkMissing)   # a missing model or feature network: skipped, not an error


@dataclass
class Context:
    protocol: Protocol
    log: Callable[[str], None] = print
    notes: list[str] = field(default_factory=list)

    def networks(self, dataset: str) -> list[str]:
        """Feature networks of the protocol for `dataset`; absent optional ones are noted, not fatal."""
        keys = []
        for f in self.protocol.features:
            key = DEFAULT_FEATURES[dataset] if f == "classifier" else f
            if key != DEFAULT_FEATURES[dataset]:
                try:
                    get_feature_network(key)
                except SKIP as exc:
                    note = f"{key} features skipped: {exc}"
                    if note not in self.notes:
                        self.notes.append(note)
                        self.log(note)
                    continue
            keys.append(key)
        return keys

    def score(self, images: torch.Tensor, dataset: str, model: str, setting: str, protocol: str = "",
              plot: dict | None = None, labels: torch.Tensor | None = None) -> list[dict]:
        """FID and IS rows of `images` under every feature network of the protocol (and the judge's
        accuracy when `labels`, the requested classes of a conditional model, are given)."""
        rows = []
        for key in self.networks(dataset):
            judge = key == JUDGES.get(dataset)   # only a judge trained on `dataset` knows its classes
            s = score_images(images, dataset, key, labels=labels if judge else None)
            rows += score_rows(s, dataset, model, setting, protocol, plot)
        return rows


def score_rows(s: Score, dataset: str, model: str, setting: str, protocol: str = "", plot: dict | None = None):
    base = reference_description(dataset, s.network.key)  # the network is in the figure label, described in the header
    protocol = f"{protocol}; {base}" if protocol else base
    extra = {"plot": plot} if plot else {}
    common = dict(model=model, setting=setting, dataset=dataset, n=s.n, features=s.network.key)
    rows = [
        dict(common, metric="FID", figure=s.fid_label, value=round(s.fid, 4), protocol=protocol, **extra),
        dict(common, metric="IS", figure=s.is_label, value=round(s.is_mean, 4), std=round(s.is_std, 4),
             protocol=protocol, **extra),
    ]
    if s.accuracy is not None:
        rows.append(dict(common, metric="accuracy", figure=s.accuracy_label, value=round(s.accuracy, 4),
                         protocol=protocol, **extra))
    return rows

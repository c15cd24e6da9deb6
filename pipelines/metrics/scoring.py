"""Scoring a set of images: FID against the real test set and IS, both named by network and n.

The real side of FID is the Gaussian fitted to the features of the whole test split
(10,000 images for MNIST / Fashion-MNIST), computed once per feature network and cached.

FID is biased upwards at small n (the trace term of a Gaussian fitted to few points is off),
so a number means little without its floor: the FID of n *real* images that the reference has
never seen (drawn from the training split) against the same reference. `real_floor` gives it;
`real_vs_real` gives the classic floor, two disjoint random halves of the test split.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..checkpoints import PROJECT_ROOT
from ..data import dataset_tensors
from .features import BORROWED_FEATURES, DATASET_TITLES, JUDGES, FeatureNetwork, get_feature_network
from .fid import GaussianStats, fid_from_features, fid_from_stats, gaussian_stats
from .inception_score import inception_score


@dataclass
class Score:
    fid: float
    is_mean: float
    is_std: float
    n: int
    splits: int
    network: FeatureNetwork
    accuracy: float | None = None   # share of images the judge assigns to the requested class

    @property
    def accuracy_label(self) -> str:
        return f"accuracy ({self.network.short}, n={self.n:,})"

    @property
    def fid_label(self) -> str:
        return self.network.fid_label(self.n)

    @property
    def is_label(self) -> str:
        return self.network.is_label(self.n, self.splits)


def default_splits(n: int) -> int:
    """10 splits as in the original IS code, but never fewer than 100 images per split (min 1 split)."""
    return max(1, min(10, n // 100))


def real_subset(dataset: str, n: int, train: bool, seed: int = 0) -> torch.Tensor:
    """n real images drawn without replacement by a seeded permutation (never the first n: MNIST's
    test split is ordered by writer population)."""
    x, _ = dataset_tensors(dataset, train=train)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    if n > len(perm):
        raise ValueError(f"asked for {n} real images, only {len(perm)} available")
    return x[perm[:n]]


CACHE_VERSION = 1   # bump when preprocessing or the reference split changes


def cache_dir() -> Path:
    return Path(os.environ.get("DIFFUSION_LAB_CACHE", PROJECT_ROOT / "runs" / "cache"))


@lru_cache(maxsize=8)
def reference_stats(dataset: str, network_key: str) -> GaussianStats:
    """Gaussian of the features of the whole real test split (the reference every FID here uses).

    Cached in memory and on disk (`runs/cache/`), keyed by the feature network's weights."""
    net = get_feature_network(network_key)
    path = cache_dir() / f"reference-v{CACHE_VERSION}-{dataset}-{network_key}-{net.fingerprint}.npz"
    if net.fingerprint and path.is_file():
        z = np.load(path)
        return GaussianStats(z["mu"], z["sigma"], int(z["n"]))
    x, _ = dataset_tensors(dataset, train=False)
    stats = gaussian_stats(net.embed(x))
    if net.fingerprint:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, mu=stats.mu, sigma=stats.sigma, n=stats.n)
        except OSError:
            pass   # a read-only checkout still works, only slower
    return stats


@lru_cache(maxsize=16)
def reference_description(dataset: str, network_key: str | None = None) -> str:
    """The FID reference in words; says so when the features are another dataset's judge's."""
    n = len(dataset_tensors(dataset, train=False)[0])
    title = DATASET_TITLES.get(dataset, dataset)
    text = f"reference: {title} test split ({n:,} images)"
    if network_key is not None and network_key == BORROWED_FEATURES.get(dataset):
        text += f", embedded by the {network_key} judge (none is trained on {title})"
    return text


def score_images(images: torch.Tensor, dataset: str, network_key: str, splits: int | None = None,
                 progress=None, labels: torch.Tensor | None = None) -> Score:
    """FID of `images` against the dataset's test split, and IS, under one feature network.

    With `labels` (the classes a conditional model was asked for), also the judge's accuracy:
    the share of images whose argmax_y p(y|x) is the requested class."""
    if labels is not None and network_key != JUDGES.get(dataset):
        raise ValueError(f"accuracy needs a judge trained on {dataset} (its classes), not {network_key}")
    net = get_feature_network(network_key)
    feats, probs = net.outputs(images, progress)
    splits = default_splits(len(images)) if splits is None else splits
    fid = fid_from_stats(gaussian_stats(feats), reference_stats(dataset, network_key))
    is_mean, is_std = inception_score(probs, splits)
    accuracy = None
    if labels is not None:
        accuracy = float((probs.argmax(1) == torch.as_tensor(labels).cpu().numpy()).mean())
    return Score(fid, is_mean, is_std, len(images), splits, net, accuracy)


def real_floor(dataset: str, network_key: str, n: int, seed: int = 0, splits: int | None = None) -> Score:
    """Score of n real training images: the best any model can do at this n and protocol."""
    x = real_subset(dataset, n, train=True, seed=seed)
    return score_images(x, dataset, network_key, splits)


def real_vs_real(dataset: str, network_key: str, n_half: int = 5000, seed: int = 0) -> float:
    """FID between two disjoint random halves of the test split, n_half images each."""
    x, _ = dataset_tensors(dataset, train=False)
    if 2 * n_half > len(x):
        raise ValueError(f"two halves of {n_half} need {2 * n_half} images; the test split has {len(x)}")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    net = get_feature_network(network_key)
    a, b = net.embed(x[perm[:n_half]]), net.embed(x[perm[n_half:2 * n_half]])
    return fid_from_features(a, b)

"""2-D datasets, each with a seeded held-out split.

Every dataset lives in roughly [-2.5, 2.5]², with a standard deviation near 1.2, so one noise schedule
(ᾱ_T ≈ 0: x_T ~ N(0, I)) and one plot window fit them all.

The Gaussian mixtures (8 Gaussians, the class-labelled mixture of the guidance lesson) expose their exact
parameters (means μ_k, covariances Σ_k, weights π_k): their noised densities, scores and reverse posteriors
have closed forms (score.py). For the other datasets those are computed from the data themselves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

EXTENT = 2.5            # the plot window is [-EXTENT, EXTENT]²
RING_RADIUS, RING_STD = 2.0, 0.1   # 8 Gaussians: means on a circle of this radius, isotropic std
HELDOUT_OFFSET = 1_000_003        # the held-out split draws from seed + this: never the training points


@dataclass
class GaussianMixture:
    """p(x) = Σ_k π_k N(x; μ_k, Σ_k). means (K, 2), covs (K, 2, 2), weights (K,) summing to 1; labels (K,) optional
    (the class of each component, for the class-conditional lesson). float64 throughout: the densities of sharp
    components underflow in float32."""
    means: torch.Tensor
    covs: torch.Tensor
    weights: torch.Tensor
    labels: torch.Tensor | None = None

    def __post_init__(self):
        self.means, self.covs, self.weights = (torch.as_tensor(a, dtype=torch.float64)
                                               for a in (self.means, self.covs, self.weights))
        self.weights = self.weights / self.weights.sum()

    @property
    def k(self) -> int:
        return len(self.weights)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points: a component k ~ π, then x = μ_k + L_k ε with Σ_k = L_k L_kᵀ (Cholesky, or 0 for a point mass)."""
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        chol = _cholesky_psd(self.covs)
        return (self.means[comp] + torch.einsum("nij,nj->ni", chol[comp], eps)).float()

    def component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K): log π_k + log N(x; μ_k, Σ_k)."""
        x = x.double()
        d = x[:, None, :] - self.means[None]                               # (N, K, 2)
        inv = torch.linalg.inv(self.covs)                                  # (K, 2, 2)
        maha = torch.einsum("nki,kij,nkj->nk", d, inv, d)
        logdet = torch.logdet(self.covs)
        return self.weights.log()[None] - 0.5 * (maha + logdet[None] + 2 * math.log(2 * math.pi))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = logsumexp_k (log π_k + log N(x; μ_k, Σ_k))."""
        return torch.logsumexp(self.component_log_probs(x), dim=1)

    def restrict(self, label: int) -> "GaussianMixture":
        """p(x | y): the components of class `label`, their weights renormalised."""
        keep = self.labels == label
        return GaussianMixture(self.means[keep], self.covs[keep], self.weights[keep], self.labels[keep])


def _cholesky_psd(covs: torch.Tensor) -> torch.Tensor:
    """Cholesky factors that also accept Σ = 0 (a point mass: the factor is 0)."""
    jitter = 1e-12 * torch.eye(2, dtype=covs.dtype)
    return torch.linalg.cholesky(covs + jitter)


def eight_gaussians() -> GaussianMixture:
    """8 equal isotropic Gaussians on a ring: μ_k = r (cos 2πk/8, sin 2πk/8), Σ_k = s² I."""
    angles = torch.arange(8, dtype=torch.float64) * 2 * math.pi / 8
    means = RING_RADIUS * torch.stack([angles.cos(), angles.sin()], 1)
    covs = (RING_STD ** 2) * torch.eye(2, dtype=torch.float64).expand(8, 2, 2).clone()
    return GaussianMixture(means, covs, torch.full((8,), 1 / 8))


CLASS_NAMES = ("red", "green", "blue")


def class_mixture() -> GaussianMixture:
    """Three classes that overlap, each a mixture of two elongated Gaussians, for classifier-free guidance:
    p(x) = Σ_y p(y) p(x | y). Guidance pushes samples toward each class's core and, at large w, off the data."""
    means, covs, labels = [], [], []
    for y in range(3):
        a = 2 * math.pi * y / 3 + math.pi / 2
        centre = np.array([math.cos(a), math.sin(a)]) * 1.0
        tangent = np.array([-math.sin(a), math.cos(a)])
        for side in (-1, 1):
            means.append(centre + side * 0.55 * tangent)
            u = tangent
            covs.append(0.30 ** 2 * np.outer(u, u) + 0.18 ** 2 * (np.eye(2) - np.outer(u, u)))
            labels.append(y)
    return GaussianMixture(torch.tensor(np.array(means)), torch.tensor(np.array(covs)), torch.ones(6) / 6,
                           torch.tensor(labels))


def _two_moons(n, g):
    u = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, u.cos(), 1 - u.cos())
    y = torch.where(upper, u.sin(), 0.5 - u.sin())
    pts = torch.stack([x - 0.5, y - 0.25], 1) * 1.6
    return pts + 0.06 * torch.randn(n, 2, generator=g)


def _swiss_roll(n, g):
    s = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))          # the angle, 1.5π … 4.5π
    pts = torch.stack([s * s.cos(), s * s.sin()], 1) / 6.0
    return pts + 0.05 * torch.randn(n, 2, generator=g)


def _circles(n, g):
    r = torch.where(torch.rand(n, generator=g) < 0.5, torch.tensor(1.0), torch.tensor(2.0))
    a = 2 * math.pi * torch.rand(n, generator=g)
    return torch.stack([a.cos(), a.sin()], 1) * r[:, None] + 0.05 * torch.randn(n, 2, generator=g)


def _checkerboard(n, g):
    """Uniform on the dark squares of a 4×4 board over [-2, 2]²: square (col, row) is dark when col + row is even."""
    x = 4 * torch.rand(n, generator=g) - 2
    col = torch.floor(x + 2).clamp(0, 3).long()
    pair = torch.randint(0, 2, (n,), generator=g)                   # which of the two dark squares of this column
    row = 2 * pair + (col % 2)
    y = row.float() - 2 + torch.rand(n, generator=g)
    return torch.stack([x, y], 1)


DATASETS = {  # key -> (label shown, sampler (n, generator) -> (n, 2))
    "8gaussians": ("8 Gaussians on a ring", lambda n, g: eight_gaussians().sample(n, g)),
    "moons": ("two moons", _two_moons),
    "swissroll": ("Swiss roll", _swiss_roll),
    "circles": ("concentric circles", _circles),
    "checkerboard": ("checkerboard", _checkerboard),
}
LABELS = {label: key for key, (label, _) in DATASETS.items()}


def sample(name: str, n: int, seed: int = 0, split: str = "train") -> torch.Tensor:
    """n points of dataset `name` (a key of DATASETS), float32 (n, 2). split="heldout" draws an independent set
    from another seed stream, for measuring."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {list(DATASETS)}.")
    if split not in ("train", "heldout"):
        raise ValueError("split must be 'train' or 'heldout'")
    g = torch.Generator().manual_seed(int(seed) + (HELDOUT_OFFSET if split == "heldout" else 0))
    return DATASETS[name][1](int(n), g).float()


def mixture(name: str) -> GaussianMixture | None:
    """The exact mixture behind a dataset, when it is one (else None: use the data's empirical measure)."""
    return eight_gaussians() if name == "8gaussians" else None


# ---------------------------------------------------------------- drawn distributions
MIN_STROKE_PIXELS = 30      # fewer inked pixels than this is not a distribution
MIN_SPREAD = 0.04           # the drawing's smaller principal std, as a share of the canvas side


def points_from_strokes(ink: np.ndarray, n: int, seed: int = 0, split: str = "train") -> torch.Tensor:
    """A drawing -> n points. `ink` is an (H, W) boolean mask of the pixels drawn on. Each point is an inked pixel
    drawn uniformly, jittered within its pixel, mapped to [-EXTENT, EXTENT]² (image rows grow downward, y upward).

    Raises ValueError with what to do when there is too little ink, or when the ink is degenerate: one spot, or a
    thin straight line (no 2-D spread: the smaller principal standard deviation is under MIN_SPREAD of the side)."""
    ink = np.asarray(ink, dtype=bool)
    if ink.ndim != 2 or min(ink.shape) < 8:
        raise ValueError("The drawing must be an image of at least 8×8 pixels.")
    rows, cols = np.nonzero(ink)
    if len(rows) < MIN_STROKE_PIXELS:
        raise ValueError(f"The drawing has too few points ({len(rows)} inked pixels; at least {MIN_STROKE_PIXELS} "
                         "are needed): draw a few strokes across the canvas, then press the button again.")
    h, w = ink.shape
    side = max(h, w)
    xy = np.stack([cols + 0.5, h - (rows + 0.5)], 1) / side          # in [0, 1]², y upward
    spread = np.sqrt(np.clip(np.linalg.eigvalsh(np.cov(xy.T)), 0, None))  # principal stds, ascending
    if spread[1] < MIN_SPREAD:
        raise ValueError("The drawing is degenerate: all its ink sits on one spot. Draw strokes that spread "
                         "over the canvas.")
    if spread[0] < MIN_SPREAD:
        raise ValueError("The drawing is degenerate: all its ink lies on one thin straight line, which has no "
                         "2-D spread. Add strokes in another direction, or draw a curve or a filled shape.")
    g = torch.Generator().manual_seed(int(seed) + (HELDOUT_OFFSET if split == "heldout" else 0))
    pick = torch.randint(0, len(rows), (int(n),), generator=g).numpy()
    jitter = torch.rand(int(n), 2, generator=g).numpy() - 0.5
    px = np.stack([cols[pick] + 0.5 + jitter[:, 0], h - (rows[pick] + 0.5 + jitter[:, 1])], 1) / side
    centre = np.array([w, h]) / side / 2
    return torch.tensor((px - centre) * 2 * EXTENT, dtype=torch.float32)

"""Fréchet Inception Distance (Heusel et al. 2017): the distance between two Gaussians fitted to
the features of real and of generated images.

    FID = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^{1/2})

This is the squared 2-Wasserstein distance between N(μ_r, Σ_r) and N(μ_g, Σ_g). The first term
compares where the two clouds of features sit, the trace term compares their shapes. For
diagonal covariances it reduces to ‖μ_r − μ_g‖² + Σ_i (σ_r,i − σ_g,i)².

The delicate part is Tr (Σ_r Σ_g)^{1/2}. The product of two symmetric PSD matrices is not
symmetric, but it is similar to the symmetric PSD matrix Σ_r^{1/2} Σ_g Σ_r^{1/2}, so its
eigenvalues λ_i are real and ≥ 0 and Tr (Σ_r Σ_g)^{1/2} = Σ_i √λ_i. In floating point:
  - scipy's `sqrtm` (Schur method, what pytorch-fid and most papers use) returns tiny imaginary
    parts from rounding; we check they are tiny (else the result is not trustworthy) and drop them;
  - when the product is (nearly) singular — fewer samples than feature dimensions, or features
    that never fire — `sqrtm` can return inf/nan or an inaccurate root; we then add ε·I to both
    covariances (a tiny isotropic blur) and try again;
  - `method="eigh"` computes Σ_i √λ_i through two symmetric eigendecompositions instead: real by
    construction, and the tests check that both methods agree.
Everything is float64: float32 loses the small eigenvalues that the trace term is made of.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg

EPS = 1e-6        # ε·I added to both covariances when the product is singular
IMAG_TOL = 1e-3   # largest imaginary part tolerated on the diagonal of (Σ_r Σ_g)^{1/2}, relative
RESIDUAL_TOL = 1e-5  # ‖X·X − A‖_F / ‖A‖_F above this means sqrtm did not converge to a root


class FIDNumericalError(ArithmeticError):
    """The matrix square root could not be computed reliably."""


@dataclass(frozen=True)
class GaussianStats:
    """The Gaussian N(μ, Σ) fitted to n feature vectors."""
    mu: np.ndarray      # (d,)   μ = (1/n) Σ_i f_i
    sigma: np.ndarray   # (d, d) Σ = 1/(n−1) Σ_i (f_i − μ)(f_i − μ)ᵀ  (unbiased, as numpy.cov)
    n: int

    @property
    def dim(self) -> int:
        return self.mu.shape[0]


def _as_features(features) -> np.ndarray:
    f = features.detach().cpu().double().numpy() if hasattr(features, "detach") else np.asarray(features)
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"features must be a 2-d array (n, d), got shape {f.shape}")
    if f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors to fit a Gaussian, got {f.shape[0]}")
    if not np.isfinite(f).all():
        raise ValueError("features contain inf or nan")
    return f


def gaussian_stats(features) -> GaussianStats:
    """Fit N(μ, Σ) to an (n, d) array (or tensor) of features."""
    f = _as_features(features)
    if f.shape[0] <= f.shape[1]:
        warnings.warn(f"n = {f.shape[0]} feature vectors for d = {f.shape[1]} dimensions: the covariance is "
                      "singular and FID is strongly biased; use n well above d.", stacklevel=2)
    mu = f.mean(axis=0)
    centred = f - mu
    sigma = centred.T @ centred / (f.shape[0] - 1)
    return GaussianStats(mu, sigma, f.shape[0])


def _sqrtm_with_check(a: np.ndarray) -> tuple[np.ndarray, float]:
    """scipy's matrix square root X of `a`, and its relative residual ‖X·X − a‖_F / ‖a‖_F."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # singular-matrix chatter: we check the result
        x = linalg.sqrtm(a)
    if not np.isfinite(x).all():
        return x, np.inf
    scale = max(np.linalg.norm(a), np.finfo(np.float64).tiny)
    return x, float(np.linalg.norm(x @ x - a) / scale)


def trace_sqrt_product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float = EPS,
                             imag_tol: float = IMAG_TOL) -> float:
    """Tr (Σ1 Σ2)^{1/2} with scipy.linalg.sqrtm, an ε·I offset when the product is singular,
    and a tolerance check on the imaginary parts rounding leaves behind."""
    covmean, residual = _sqrtm_with_check(sigma1 @ sigma2)
    if residual > RESIDUAL_TOL:
        # singular (or nearly) product: blur both Gaussians by ε·I and retry
        offset = np.eye(sigma1.shape[0]) * eps
        covmean, residual = _sqrtm_with_check((sigma1 + offset) @ (sigma2 + offset))
        if not np.isfinite(covmean).all():
            raise FIDNumericalError(f"sqrtm(Σ1 Σ2) is not finite even with ε = {eps:g} added to the covariances")
    if np.iscomplexobj(covmean):
        # the true root has real eigenvalues √λ_i ≥ 0: imaginary parts are rounding, if they are small
        diag = np.diagonal(covmean)
        scale = max(1.0, float(np.abs(diag.real).mean()))
        worst = float(np.abs(diag.imag).max())
        if worst > imag_tol * scale:
            raise FIDNumericalError(f"(Σ1 Σ2)^(1/2) has an imaginary component of {worst:.3g} on its diagonal "
                                    f"(tolerance {imag_tol * scale:.3g}): the covariances are too ill-conditioned; "
                                    "use more samples")
        covmean = covmean.real
    return float(np.trace(covmean))


def trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr (Σ1 Σ2)^{1/2} = Σ_i √λ_i(Σ1^{1/2} Σ2 Σ1^{1/2}): symmetric eigendecompositions only."""
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T          # Σ1^{1/2} (PSD: clip rounding below 0)
    m = root1 @ sigma2 @ root1
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(lam, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = EPS, method: str = "sqrtm") -> float:
    """‖μ1 − μ2‖² + Tr(Σ1) + Tr(Σ2) − 2 Tr (Σ1 Σ2)^{1/2}, in float64."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise ValueError(f"shapes do not match: μ {mu1.shape} vs {mu2.shape}, Σ {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    if method == "sqrtm":
        tr_covmean = trace_sqrt_product_sqrtm(sigma1, sigma2, eps)
    elif method == "eigh":
        tr_covmean = trace_sqrt_product_eigh(sigma1, sigma2)
    else:
        raise ValueError(f"method must be 'sqrtm' or 'eigh', got {method!r}")
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fid_from_stats(a: GaussianStats, b: GaussianStats, **kwargs) -> float:
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma, **kwargs)


def fid_from_features(a, b, **kwargs) -> float:
    """FID between two (n, d) feature arrays (the n may differ; d must not)."""
    return fid_from_stats(gaussian_stats(a), gaussian_stats(b), **kwargs)

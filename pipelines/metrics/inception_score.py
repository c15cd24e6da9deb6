"""Inception Score (Salimans et al. 2016): run a classifier on generated images and ask whether
each image is classified confidently (p(y|x) peaked) and whether the classes are diverse
(the marginal p(y) = E_x p(y|x) spread out).

    IS = exp( E_x KL( p(y|x) ‖ p(y) ) ),   KL(p ‖ q) = Σ_y p(y) (log p(y) − log q(y))

Equivalently IS = exp( H(y) − E_x H(y|x) ): the mutual information between image and label.
Bounds: 1 ≤ IS ≤ K for K classes. IS = 1 when every image gets the same p(y|x) (e.g. uniform);
IS = K when every image is one-hot and the K classes are equally frequent.

As in the original code, the n images are cut into `splits` equal parts; p(y) is estimated
on each part and we report the mean and standard deviation of the per-part scores. More splits
means fewer images per p(y) estimate, which biases IS downwards at small n: compare scores only
at the same n and the same number of splits.
"""
from __future__ import annotations

import numpy as np
from scipy.special import xlogy


def _as_probs(probs) -> np.ndarray:
    p = probs.detach().cpu().double().numpy() if hasattr(probs, "detach") else np.asarray(probs)
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be a 2-d array (n, classes), got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probs must be finite and non-negative")
    sums = p.sum(axis=1, keepdims=True)
    if not np.allclose(sums, 1.0, atol=1e-3):
        raise ValueError("each row of probs must sum to 1 (pass softmax outputs, not logits)")
    return p / sums


def kl_to_marginal(p: np.ndarray) -> np.ndarray:
    """KL(p(y|x_i) ‖ p(y)) for each row i, with p(y) = the mean row; 0·log 0 = 0 via xlogy."""
    p_y = p.mean(axis=0, keepdims=True)
    return (xlogy(p, p) - xlogy(p, p_y)).sum(axis=1)


def inception_score(probs, splits: int = 10) -> tuple[float, float]:
    """(mean, std) over `splits` parts of exp(E_x KL(p(y|x) ‖ p(y))); probs is (n, K) softmax output."""
    p = _as_probs(probs)
    splits = int(splits)
    if not 1 <= splits <= p.shape[0]:
        raise ValueError(f"splits must be between 1 and n = {p.shape[0]}, got {splits}")
    scores = [float(np.exp(kl_to_marginal(part).mean())) for part in np.array_split(p, splits)]
    return float(np.mean(scores)), float(np.std(scores))

"""The truth the networks are trying to learn, exactly.

Noised distribution. With x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, a Gaussian mixture stays a Gaussian mixture:
    q_t(x) = Σ_k π_k N(x; √ᾱ_t μ_k, ᾱ_t Σ_k + (1 − ᾱ_t) I).
For data that is not a mixture, the empirical measure (1/M) Σ_i δ(x − x_i) of M data points is one with Σ_i = 0:
    q_t(x) = (1/M) Σ_i N(x; √ᾱ_t x_i, (1 − ᾱ_t) I)      (exact for the empirical measure).

True score, with responsibilities r_k(x) = π_k N_k(x) / Σ_j π_j N_j(x) of the noised components N_k = N(m_k, C_k):
    ∇_x log q_t(x) = Σ_k r_k(x) · (−C_k⁻¹ (x − m_k)),
and the ε a perfect network predicts (Tweedie): ε*(x, t) = −√(1 − ᾱ_t) ∇ log q_t(x),
    E[x_0 | x_t] = (x_t + (1 − ᾱ_t) ∇ log q_t(x_t)) / √ᾱ_t.

True reverse step. For s < t, x_t = a x_s + √b ε with a = √(ᾱ_t / ᾱ_s), b = 1 − ᾱ_t / ᾱ_s, and q_s is the mixture
above with components N(m_k, C_k). A linear-Gaussian likelihood times a mixture prior is a mixture posterior:
    q(x_s | x_t) = Σ_k w_k N(x_s; m_k + K_k (x_t − a m_k), C_k − a K_k C_k),    K_k = a C_k (a² C_k + b I)⁻¹,
    w_k ∝ π_k N(x_t; a m_k, a² C_k + b I).
DDPM replaces it by one Gaussian N(μ̃(x_t, x̂_0), β̃ I) (schedule.posterior_mean_var). With a perfect network
(x̂_0 = E[x_0 | x_t]) its mean is the true posterior mean, since μ̃ is linear in x_0; only the shape is assumed.
That is right when the step is small (b → 0: the likelihood is much sharper than q_s, one component dominates)
and wrong for a few large steps, where the true posterior is multimodal.
"""
from __future__ import annotations

import torch

from .data import GaussianMixture

MAX_EMPIRICAL_POINTS = 2000   # data points of an empirical measure (cost: grid points × this)


def empirical(points: torch.Tensor) -> GaussianMixture:
    """The empirical measure of `points` as a mixture of point masses (Σ_i = 0, equal weights)."""
    pts = points[:MAX_EMPIRICAL_POINTS].double()
    return GaussianMixture(pts, torch.zeros(len(pts), 2, 2, dtype=torch.float64), torch.ones(len(pts)))


def noised(mix: GaussianMixture, abar) -> GaussianMixture:
    """q_t: components N(√ᾱ μ_k, ᾱ Σ_k + (1 − ᾱ) I), same weights and labels."""
    abar = float(abar)
    eye = torch.eye(2, dtype=torch.float64)
    return GaussianMixture(abar ** 0.5 * mix.means, abar * mix.covs + (1 - abar) * eye, mix.weights, mix.labels)


def responsibilities(mix: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """(N, K): r_k(x) = π_k N_k(x) / Σ_j π_j N_j(x)."""
    return torch.softmax(mix.component_log_probs(x), dim=1)


def mixture_score(mix: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """∇_x log p(x) for a mixture with invertible covariances: Σ_k r_k(x) (−Σ_k⁻¹ (x − μ_k)). float64 (N, 2)."""
    x = x.double()
    r = responsibilities(mix, x)                                              # (N, K)
    inv = torch.linalg.inv(mix.covs)                                          # (K, 2, 2)
    per_k = -torch.einsum("kij,nkj->nki", inv, x[:, None, :] - mix.means[None])
    return (r[..., None] * per_k).sum(1)


def true_score(mix: GaussianMixture, x: torch.Tensor, abar) -> torch.Tensor:
    """∇ log q_t(x) of the data `mix` noised to ᾱ_t = abar."""
    return mixture_score(noised(mix, abar), x)


def true_eps(mix: GaussianMixture, x: torch.Tensor, abar) -> torch.Tensor:
    """ε*(x, t) = −√(1 − ᾱ_t) ∇ log q_t(x): what a perfect ε-network outputs."""
    return -(1 - float(abar)) ** 0.5 * true_score(mix, x, abar)


def true_x0(mix: GaussianMixture, x: torch.Tensor, abar) -> torch.Tensor:
    """E[x_0 | x_t] by Tweedie's formula."""
    abar = float(abar)
    return (x.double() + (1 - abar) * true_score(mix, x, abar)) / abar ** 0.5


def true_posterior(mix: GaussianMixture, x_t: torch.Tensor, abar_t, abar_s) -> GaussianMixture:
    """q(x_s | x_t) for one point x_t (shape (2,)), s < t; abar_s = 1 gives q(x_0 | x_t). Formula above."""
    abar_t, abar_s = float(abar_t), float(abar_s)
    prior = noised(mix, abar_s) if abar_s < 1 else mix                        # q_s: N(m_k, C_k)
    a = (abar_t / abar_s) ** 0.5
    b = 1 - abar_t / abar_s
    eye = torch.eye(2, dtype=torch.float64)
    x_t = x_t.double().reshape(2)
    m, c = prior.means, prior.covs
    marginal = a * a * c + b * eye                                            # Cov of x_t under component k
    gain = a * c @ torch.linalg.inv(marginal)                                 # K_k
    mean = m + torch.einsum("kij,kj->ki", gain, x_t[None] - a * m)
    cov = c - a * gain @ c
    cov = 0.5 * (cov + cov.transpose(1, 2))                                   # exact symmetry for sampling
    like = GaussianMixture(a * m, marginal, prior.weights)
    weights = torch.softmax(like.component_log_probs(x_t[None])[0], 0)
    keep = weights > 1e-12 * weights.max()                                    # drop components of no weight
    return GaussianMixture(mean[keep], cov[keep], weights[keep],
                           None if mix.labels is None else mix.labels[keep])


def guided_score(mix: GaussianMixture, x: torch.Tensor, abar, label: int, w: float) -> torch.Tensor:
    """Classifier-free guidance with exact scores, in the app's convention ε̃ = ε_∅ + w (ε_y − ε_∅):
        s̃ = ∇ log q_t(x) + w (∇ log q_t(x | y) − ∇ log q_t(x)) = ∇ log q_t(x) + w ∇ log q_t(y | x).
    w = 0: unconditional; w = 1: the class's own distribution; w > 1: the density ∝ q_t(x) q_t(y | x)^w (for w > 1
    no longer a noised version of any data: samples leave the data toward where the class is most certain)."""
    s_uncond = true_score(mix, x, abar)
    s_cond = true_score(mix.restrict(label), x, abar)
    return torch.lerp(s_uncond, s_cond, float(w))

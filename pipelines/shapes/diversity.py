"""How different are the images a model draws for ONE prompt? (the diversity figure of the text-to-image models)

    diversity = mean over prompts of  mean over pairs (i < j) of  RMS(x_i − x_j)        (pixels in [-1, 1])

0 means every image for a prompt is identical (mode collapse: the generator ignores z); two unrelated
images of random colours would score about 1. The reference is the same figure for REAL images of the same
attributes (`real_groups`: the prompt fixes shape, colour, size, position and background; the renderer still
varies the exact extent and centre). A model far below it has collapsed; one far above it draws things the data
never shows (noise, smears). The figure is in pixel space on purpose: it needs no network that could itself miss
differences, and a teacher can say exactly what it measures.
"""
from __future__ import annotations

import numpy as np
import torch

from .data import ATTRIBUTES, pil_to_tensor, render, sample_scene, to_float


def pairwise_rms(group: torch.Tensor) -> float:
    """Mean RMS distance over all pairs of the k images of `group` (k, C, H, W); needs k >= 2."""
    k = len(group)
    if k < 2:
        raise ValueError("diversity needs at least 2 images per prompt")
    flat = group.reshape(k, -1).float()
    d2 = torch.cdist(flat, flat).pow(2) / flat.shape[1]     # mean squared difference per pixel
    i, j = torch.triu_indices(k, k, offset=1)
    return d2[i, j].sqrt().mean().item()


def within_prompt_diversity(groups: torch.Tensor) -> float:
    """`groups` (prompts, k, C, H, W) in [-1, 1] -> the mean over prompts of `pairwise_rms`."""
    if groups.ndim != 5:
        raise ValueError(f"groups must be (prompts, k, C, H, W), got shape {tuple(groups.shape)}")
    return float(np.mean([pairwise_rms(g) for g in groups]))


def real_groups(labels: list[dict[str, int]], k: int, resolution: int = 64, seed: int = 0) -> torch.Tensor:
    """k real renders of each attribute set (value indices), the free geometry drawn afresh: (len, k, 3, R, R)."""
    out = torch.empty(len(labels), k, 3, resolution, resolution)
    for p, lab in enumerate(labels):
        rng = np.random.default_rng([seed, p])
        fixed = {a: ATTRIBUTES[a][v] for a, v in lab.items()}
        for i in range(k):
            out[p, i] = to_float(pil_to_tensor(render(sample_scene(rng, **fixed), resolution)))
    return out

"""The matching-aware discriminator's "wrong" captions, and why a random one teaches it nothing about shape.

The paper's D sees (real image, another image's caption) -> 0. A caption drawn at random differs from the right one
in colour with probability 5/6 and in colour or background with 1 − (1/6)(1/5) ≈ 0.97: D can reject almost every
mismatched pair by colour alone, the easiest thing to read in a picture, and never needs to check the shape. With
no shape in D's judgement, nothing in the generator's loss asks for the right shape.

A **hard negative** is the right caption with exactly ONE attribute changed:

    φ_wrong = φ( caption(attributes with attribute a set to another value v ≠ true) ),   a ~ U{shape, colour, size,
                                                                                          position, background}

It can be rejected only by reading attribute a, so every attribute, shape included, gets its share of D's
attention. `--hard-negatives p` (train.py) makes a share p of the wrong pairs hard, the rest stay the paper's
random ones.

Which attribute a hard negative changes: uniformly, or (`--hard-attributes adaptive`) in proportion to how often D
still accepts that attribute's hard negatives, a running mean of D(wrong_a). With uniform picks D learned the
attributes one after another, easiest first (background, colour, size, position), and still accepted shape-changed
captions as often as right ones after 3,400 steps; the adaptive pick spends the wrong pairs on what D has not
learned yet.
"""
from __future__ import annotations

import numpy as np
import torch

from ..shapes.data import ATTRIBUTE_NAMES, ATTRIBUTES, TRAIN_TEMPLATES, caption_for
from .model import mismatched


def changed(attributes: dict[str, str], attribute: str, rng: np.random.Generator) -> dict[str, str]:
    """`attributes` (value names) with `attribute` set to another of its values, picked uniformly."""
    others = [v for v in ATTRIBUTES[attribute] if v != attributes[attribute]]
    return {**attributes, attribute: others[int(rng.integers(len(others)))]}


def names(label_row) -> dict[str, str]:
    """A label row (indices, in ATTRIBUTE_NAMES order) -> attribute value names."""
    return {a: ATTRIBUTES[a][int(i)] for a, i in zip(ATTRIBUTE_NAMES, label_row)}


def hard_negative_captions(labels: torch.Tensor, seed: int = 0, templates=TRAIN_TEMPLATES) -> list[str]:
    """For each label row, one caption per attribute with only that attribute changed: N × 5 captions, row-major
    (image i's caption for attribute j at i·5 + j), each in a template and synonyms drawn by a seeded rng."""
    rng = np.random.default_rng(seed)
    out = []
    for row in labels.tolist():
        attrs = names(row)
        for a in ATTRIBUTE_NAMES:
            out.append(caption_for(changed(attrs, a, rng), templates[int(rng.integers(len(templates)))], rng))
    return out


def pick_wrong(phi: torch.Tensor, phi_hard: torch.Tensor | None, share: float,
               generator: torch.Generator | None = None, weights: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's wrong caption: with probability `share` a hard negative (the attribute drawn with probabilities
    ∝ `weights`, default uniform), else the next image's caption (the paper's). Returns (φ_wrong (B, d), which
    attribute was changed (B,), −1 = random)."""
    rolled = mismatched(phi)
    which = torch.full((len(phi),), -1, dtype=torch.long)
    if phi_hard is None or share <= 0:
        return rolled, which
    hard = torch.rand(len(phi), generator=generator) < share
    weights = torch.ones(len(ATTRIBUTE_NAMES)) if weights is None else weights.float()
    attribute = torch.multinomial(weights, len(phi), replacement=True, generator=generator)
    which[hard] = attribute[hard]
    chosen = phi_hard[torch.arange(len(phi)), attribute.clamp_min(0)]
    return torch.where(hard[:, None].to(phi.device), chosen, rolled), which


class AdaptivePick:
    """The attribute weights of `--hard-attributes adaptive`: a running mean of D(wrong) on each attribute's hard
    negatives (start ½, decay `decay` per step); an attribute D rejects well is drawn less often, never below
    `floor` of the uniform share."""

    def __init__(self, decay: float = 0.98, floor: float = 0.1):
        self.accepted = torch.full((len(ATTRIBUTE_NAMES),), 0.5)
        self.decay, self.floor = decay, floor

    def update(self, probs: dict) -> None:
        for j, a in enumerate(ATTRIBUTE_NAMES):
            if f"d_wrong_{a}" in probs:
                self.accepted[j] = self.decay * self.accepted[j] + (1 - self.decay) * probs[f"d_wrong_{a}"]

    @property
    def weights(self) -> torch.Tensor:
        w = self.accepted / self.accepted.sum()
        return w.clamp_min(self.floor / len(w))

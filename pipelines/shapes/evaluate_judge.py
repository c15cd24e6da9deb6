"""Measure the shipped shapes judge on fresh test-split images and write its model card.

    python -m pipelines.shapes.evaluate_judge --threads 1

The test split's items come from their own seed stream, so none of them was seen in training.
Per-attribute accuracy at 64 px, at 32 px (upsampled by the judge, as for a StackGAN Stage I),
and at 64 px with pixel noise (sigma 0.1, a rough stand-in for an imperfect generator).
"""
from __future__ import annotations

import argparse

import torch

from ..cards import update_metrics, write_card
from ..checkpoints import checkpoints_root
from .data import ATTRIBUTE_NAMES, ATTRIBUTES, DATA_VERSION, shapes_tensors, to_float
from .judge import LABEL_SMOOTHING, NAME, load_judge

COMMAND = "python -m pipelines.shapes.evaluate_judge --threads 1"

SUMMARY = """The attribute judge of prompt adherence for the captioned-shapes text-to-image models: a small
CNN (four conv-BN-ReLU-maxpool stages, a 128-d fully connected layer, then one linear head per
attribute), trained here on images of the deterministic generator `pipelines.shapes.data` (version {version}).
It reads 64 x 64 RGB images in [-1, 1]; smaller inputs (a 32 px StackGAN Stage I) are upsampled
bilinearly, and half of its training images were 32 px renders seen that way. `judge.score(images, labels)`
gives the share of generated images whose attributes match the prompt. Weights are stored in fp16; every
figure below is measured with them, on test-split images the judge never saw."""


def loss_floor(smoothing: float = LABEL_SMOOTHING) -> float:
    """The lowest possible training loss: the sum over heads of the entropy of the label-smoothed targets."""
    total = 0.0
    for values in ATTRIBUTES.values():
        k = len(values)
        q = torch.tensor([1 - smoothing + smoothing / k] + [smoothing / k] * (k - 1))
        total += -(q * q.log()).sum().item()
    return total


def card_extra() -> str:
    lines = [(f"The training loss is the sum of the {len(ATTRIBUTES)} heads' cross-entropies with label smoothing "
              f"{LABEL_SMOOTHING}; its floor (perfect predictions) is {loss_floor():.3f}."), "",
             "## Attributes it judges", "", "| attribute | values |", "|---|---|"]
    lines += [f"| {a} | {', '.join(v)} |" for a, v in ATTRIBUTES.items()]
    return "\n".join(lines) + "\n"


def evaluate(n: int = 2000, command: str = COMMAND) -> dict:
    judge = load_judge.__wrapped__("cpu")  # uncached: always the weights on disk
    x64, _, y = shapes_tensors("test", n, 64)
    x32, _, _ = shapes_tensors("test", n, 32)
    noisy = (to_float(x64) + 0.1 * torch.randn(x64.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    rows = []
    for label, images in [("64 px", x64), ("32 px", x32), ("64 px + noise 0.1", noisy)]:
        acc = judge.score(images, y)
        if label == "64 px":
            rows += [dict(figure=f"{a} accuracy", value=acc[a], protocol=f"{label}, {n:,} test-split images")
                     for a in ATTRIBUTE_NAMES]
        else:
            worst = min(ATTRIBUTE_NAMES, key=acc.__getitem__)
            rows.append(dict(figure=f"worst attribute ({worst}) accuracy", value=acc[worst],
                             protocol=f"{label}, {n:,} test-split images"))
        rows.append(dict(figure="all five attributes right", value=acc["all"],
                         protocol=f"{label}, {n:,} test-split images"))
    path = checkpoints_root() / NAME
    metrics = update_metrics(path, "judge-card", command, rows, data_version=DATA_VERSION)
    write_card(path, "Attribute judge: captioned shapes", SUMMARY.format(version=DATA_VERSION),
               extra=card_extra())
    return metrics


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="test-split images per resolution")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = COMMAND if args.n == 2000 else f"{COMMAND} --n {args.n}"
    for r in evaluate(args.n, command)["rows"]:
        print(f"{r['figure']}: {r['value']:.4f} ({r['protocol']})")


if __name__ == "__main__":
    main()

"""Measure a shipped judge on the real test split and write its model card.

    python -m pipelines.classifier.evaluate --dataset mnist
"""
from __future__ import annotations

import argparse

from ..cards import update_metrics, write_card
from ..data import dataset_tensors
from ..training import command_line
from .model import load_classifier

SUMMARY = """A small CNN judge ({dataset}), trained here on the real training split: conv-conv-pool ×2,
a 128-d fully connected layer (the features used for FID and diversity), then the class logits.
It checks what generators produce (does a sample show the requested class?) and is the offline
feature network for FID / IS. Weights are stored in fp16; the accuracy below is measured with them."""


def evaluate(dataset: str, command: str | None = None) -> dict:
    judge = load_classifier.__wrapped__(dataset, "cpu")  # uncached: always the weights on disk
    x, y = dataset_tensors(dataset, train=False)
    pred = judge.predict_proba(x).argmax(-1)
    per_class = [(pred[y == c] == c).float().mean().item() for c in range(len(judge.class_names))]
    rows = [dict(figure="test accuracy", value=(pred == y).float().mean().item(),
                 protocol=f"{dataset} test split, {len(x):,} images")]
    worst = min(range(len(per_class)), key=per_class.__getitem__)
    rows.append(dict(figure=f"worst class: {judge.class_names[worst]}", value=per_class[worst],
                     protocol="accuracy on that class's test images"))
    path = judge_path(dataset)
    metrics = update_metrics(path, "judge-card", command or command_line(), rows)
    write_card(path, f"Judge classifier: {dataset}", SUMMARY.format(dataset=dataset))
    return metrics


def judge_path(dataset: str):
    from ..checkpoints import checkpoints_root
    return checkpoints_root() / f"classifier-{dataset}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    args = p.parse_args(argv)
    for r in evaluate(args.dataset)["rows"]:
        print(f"{r['figure']}: {r['value']:.4f} ({r['protocol']})")


if __name__ == "__main__":
    main()

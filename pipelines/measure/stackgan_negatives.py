"""Which attributes does a StackGAN discriminator check? Its matching logit on real images, right caption against
the right caption with one attribute changed (`pipelines.stackgan.negatives`).

    python -m pipelines.measure.stackgan_negatives --threads 2      # -> results/stackgan-negatives.json

Protocol: `--n` real test-split images at the discriminator's resolution, each with its own caption (training
phrasings, as D saw in training) and, for each attribute, that caption with only the attribute changed; and a
random other image's caption (the paper's wrong pair). For each kind of wrong caption:

    rank = P( D(x, φ_right) > D(x, φ_wrong) )     over the images: 1 = D always prefers the right caption,
                                                   0.5 = D cannot tell them apart, i.e. it does not check that attribute

An attribute D does not check is one the generator is never asked for. The file keeps one entry per checkpoint and
weights hash, so the figures of a model that was since retrained stay beside those of its successor.
"""
from __future__ import annotations

import argparse
import time

import torch

from ..checkpoints import PROJECT_ROOT, checkpoints_root, read_json, weights_hash, write_json
from ..shapes.data import ATTRIBUTE_NAMES, shapes_tensors, to_float
from ..stackgan import NAMES
from ..stackgan.model import mismatched
from ..stackgan.negatives import hard_negative_captions
from ..stackgan.pipeline import load_network
from ..training import command_line, hardware_summary

RESULT = PROJECT_ROOT / "results" / "stackgan-negatives.json"


@torch.no_grad()
def attribute_ranks(D, images: torch.Tensor, phi: torch.Tensor, phi_hard: torch.Tensor) -> dict[str, dict]:
    """images (N, 3, R, R) in [-1, 1], φ (N, d), φ_hard (N, 5, d) -> per kind of wrong caption: the rank figure
    and D's mean probabilities on the right and the wrong pairs."""
    right = D(images, phi)
    wrongs = {"random": D(images, mismatched(phi))}
    wrongs.update({a: D(images, phi_hard[:, j]) for j, a in enumerate(ATTRIBUTE_NAMES)})
    return {kind: {"rank": (right > w).double().mean().item(), "d_right": right.sigmoid().mean().item(),
                   "d_wrong": w.sigmoid().mean().item()} for kind, w in wrongs.items()}


def measure(name: str, n: int, seed: int, encode) -> dict:
    folder = checkpoints_root() / name
    D = load_network(folder, "discriminator")
    resolution = read_json(folder / "config.json", {}).get("resolution", 32)
    images, captions, labels = shapes_tensors("test", n, resolution, phrasings="train", seed=seed)
    phi = encode(captions)
    phi_hard = encode(hard_negative_captions(labels, seed + 1)).view(n, len(ATTRIBUTE_NAMES), -1)
    record = read_json(folder / "training_record.json", {})
    return {"checkpoint": name, "weights": weights_hash(folder), "resolution": resolution,
            "hard_negatives": record.get("hard_negatives", 0.0), "steps": record.get("steps"),
            "ranks": attribute_ranks(D, to_float(images), phi, phi_hard)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default=None, help="comma-separated checkpoints (default: every StackGAN stage)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from ..stackgan.train import sentence_embeddings

    def encode(captions):   # the trainer's cached MiniLM φ
        return sentence_embeddings(captions, PROJECT_ROOT / "runs" / "cache")

    names = args.only.split(",") if args.only else list(NAMES.values())
    doc = read_json(RESULT, {"entries": []})
    for name in names:
        t0 = time.time()
        entry = measure(name, args.n, args.seed, encode)
        entry.update(command=command_line(), n=args.n, seed=args.seed, hardware=hardware_summary(),
                     measured=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), seconds=round(time.time() - t0, 1))
        doc["entries"] = [e for e in doc["entries"] if (e["checkpoint"], e["weights"]) != (name, entry["weights"])]
        doc["entries"].append(entry)
        print(name, entry["weights"], {k: round(v["rank"], 3) for k, v in entry["ranks"].items()}, flush=True)
    doc["protocol"] = (f"real test-split images, own caption (training phrasings) against the same caption with one "
                       f"attribute changed, or a random other image's caption; rank = P(D(x, right) > D(x, wrong))")
    write_json(RESULT, doc)


def entries_for(name: str) -> list[dict]:
    """This checkpoint's measured entries, oldest first (earlier weights, then the shipped ones)."""
    return [e for e in read_json(RESULT, {"entries": []}).get("entries", []) if e.get("checkpoint") == name]


if __name__ == "__main__":
    main()

"""Measure a classifier-free guidance checkpoint with the shipped judge; writes metrics.json + the card.

    python -m pipelines.measure.cfg --dataset mnist
    python -m pipelines.measure.cfg --dataset fashion-mnist

Figures (all with DDIM, η = 0, fixed seeds, `--per-class` samples of every class):
- guided accuracy: the share of samples at w = 3 that the judge classifies as the requested class;
- the class histogram at w = 0 (the unconditional model; the requested label is ignored there), with
  its entropy and a χ² test against the uniform distribution;
- the quality–diversity sweep: for each w, accuracy and diversity = mean pairwise Euclidean distance
  between judge features (128-d penultimate layer) of the samples of one class, averaged over classes;
  the same figure on real test images of each class is given as a reference.
"""
from __future__ import annotations

import argparse
import math
import time

import torch

from ..cards import update_metrics
from ..classifier import load_classifier
from ..data import dataset_tensors
from ..training import command_line, hardware_summary
from ..cfg.card import write_cfg_card
from ..cfg.pipeline import load_cfg
from ..metrics.features import DATASET_TITLES
from .context import Context
from .samplers import guided_sample

SCALES = (0, 1, 3, 5, 7)
GUIDED_SCALE = 3.0
EVALUATION = "cfg"  # this command's rows and command in metrics.json


def per_class_diversity(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean pairwise Euclidean distance of the features within each class, averaged over classes."""
    out = []
    for c in labels.unique():
        f = features[labels == c]
        if len(f) > 1:
            d = torch.cdist(f, f)
            out.append(d.sum().item() / (len(f) * (len(f) - 1)))
    return sum(out) / len(out)


def class_histogram(pred: torch.Tensor, num_classes: int) -> dict:
    """Counts, entropy (bits; uniform = log2 K) and χ² against uniform, with its p-value."""
    counts = torch.bincount(pred, minlength=num_classes).double()
    p = counts / counts.sum()
    entropy = max(0.0, -(p[p > 0] * p[p > 0].log2()).sum().item())
    expected = counts.sum() / num_classes
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    try:
        from scipy.stats import chi2 as chi2_dist
        p_value = float(chi2_dist.sf(chi2, num_classes - 1))
    except ImportError:  # scipy is optional
        p_value = None
    return {"counts": [int(c) for c in counts], "entropy_bits": entropy, "max_entropy_bits": math.log2(num_classes),
            "normalised_entropy": entropy / math.log2(num_classes), "chi2": chi2, "chi2_dof": num_classes - 1,
            "chi2_p_value": p_value, "max_share": p.max().item()}


@torch.no_grad()
def judge_samples(model, judge, scale: float, per_class: int, steps: int, seed: int, batch_classes: int = 4,
                  sampler: str = "DDIM"):
    """Generate per_class samples of every class at scale w; return (images, requested labels)."""
    k = len(model.class_names)
    xs, ys = [], []
    for start in range(0, k, batch_classes):  # a few classes per batch keeps memory and latency modest
        classes = [c for c in range(start, min(k, start + batch_classes)) for _ in range(per_class)]
        xs.append(model.generate(classes, scale=scale, sampler=sampler, steps=steps, seed=seed + start))
        ys.append(torch.tensor(classes))
    return torch.cat(xs), torch.cat(ys)


def evaluate(dataset: str, per_class: int = 16, steps: int = 20, seed: int = 0, scales=SCALES,
             device: str | None = None, log=print) -> dict:
    name = f"cfg-{dataset}"
    model, judge = load_cfg(name, device), load_classifier(dataset, device)
    k = len(model.class_names)
    sweep, hist = [], None
    for w in scales:
        t0 = time.time()
        x, y = judge_samples(model, judge, w, per_class, steps, seed)
        pred = judge.predict_proba(x).argmax(-1)
        feats = judge.embed(x)
        row = {"w": w, "accuracy": (pred == y).float().mean().item(), "diversity": per_class_diversity(feats, y),
               "per_class_accuracy": [(pred[y == c] == c).float().mean().item() for c in range(k)]}
        sweep.append(row)
        if w == 0:
            hist = class_histogram(pred, k)
        log(f"w={w}: accuracy {row['accuracy']:.3f}, diversity {row['diversity']:.2f} ({time.time() - t0:.0f} s)")
    # reference diversity of real test images (same number per class)
    x_test, y_test = dataset_tensors(dataset, train=False)
    idx = torch.cat([torch.nonzero(y_test == c)[:per_class, 0] for c in range(k)])
    real_div = per_class_diversity(judge.embed(x_test[idx]), y_test[idx])
    guided = next((r for r in sweep if r["w"] == GUIDED_SCALE), None)
    protocol = f"DDIM {steps} steps, η=0, {per_class} per class, seeds {seed}+"
    rows = [{"figure": "judge test accuracy (real test set)", "value": judge.record["test_accuracy"],
             "protocol": f"classifier-{dataset}, {judge.record.get('test_images', '?')} test images"}]
    if guided:
        rows.append({"figure": f"guided accuracy at w = {GUIDED_SCALE:g}", "value": guided["accuracy"],
                     "protocol": f"judge says the requested class; {protocol}"})
    if hist:
        rows += [{"figure": "w = 0 class histogram (judge)", "value": " ".join(map(str, hist["counts"])),
                  "protocol": f"{k * per_class} unconditional samples, {protocol}"},
                 {"figure": "w = 0 histogram entropy (bits)", "value": hist["entropy_bits"],
                  "protocol": f"uniform = {hist['max_entropy_bits']:.3f}"},
                 {"figure": "w = 0 χ² vs uniform (p-value)",
                  "value": f"{hist['chi2']:.1f} (p = {hist['chi2_p_value']:.3g})" if hist["chi2_p_value"] is not None
                  else f"{hist['chi2']:.1f}", "protocol": f"{k - 1} degrees of freedom"}]
    rows += [{"figure": f"accuracy / diversity at w = {r['w']:g}", "value": f"{r['accuracy']:.3f} / {r['diversity']:.2f}",
              "protocol": "diversity = mean pairwise distance of judge features within a class"} for r in sweep]
    rows.append({"figure": "diversity of real test images", "value": real_div,
                 "protocol": f"{per_class} test images per class, same measure"})
    return {"command": command_line(), "dataset": dataset, "checkpoint": name, "weights": model.weights_hash,
            "judge": f"classifier-{dataset}", "judge_test_accuracy": judge.record["test_accuracy"],
            "sampler": "DDIM", "steps": steps, "per_class": per_class, "seed": seed, "guided_scale": GUIDED_SCALE,
            "guided_accuracy": guided["accuracy"] if guided else None, "histogram_w0": hist,
            "quality_diversity": sweep, "real_diversity": real_div, "hardware": hardware_summary(), "rows": rows}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    p.add_argument("--per-class", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scales", default=",".join(map(str, SCALES)))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--write-readme", action="store_true", help="refresh the README's CFG figures section")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    metrics = evaluate(args.dataset, args.per_class, args.steps, args.seed,
                       [float(s) if "." in s else int(s) for s in args.scales.split(",")], args.device)
    metrics["wall_seconds"] = round(time.time() - t0)
    model = load_cfg(f"cfg-{args.dataset}", args.device)
    rows = metrics.pop("rows")
    update_metrics(model.path, EVALUATION, metrics.pop("command"), rows, **metrics)
    write_cfg_card(model.path)
    print(f"wrote {model.path / 'metrics.json'} and README.md ({metrics['wall_seconds']} s)")
    if args.write_readme:
        from ..readme import replace_section
        replace_section("cfg", readme_section())


def readme_section() -> str:
    """The README's table of CFG figures, read from every shipped cfg checkpoint's metrics.json."""
    from ..checkpoints import checkpoints_root, read_json
    lines = ["| model | judge test acc. | guided acc. (w = 3) | w = 0 histogram entropy (uniform = 3.32 bits) | "
             "accuracy / diversity at w = " + ", ".join(map(str, SCALES)) + " |", "|---|---|---|---|---|"]
    commands, protocol = [], ""
    for dataset in ("mnist", "fashion-mnist"):
        m = read_json(checkpoints_root() / f"cfg-{dataset}" / "metrics.json")
        if not m:
            continue
        qd = " · ".join(f"{r['accuracy']:.2f} / {r['diversity']:.1f}" for r in m["quality_diversity"])
        lines.append(f"| cfg-{dataset} | {m['judge_test_accuracy']:.4f} | {m['guided_accuracy']:.4f} | "
                     f"{m['histogram_w0']['entropy_bits']:.3f} | {qd} |")
        commands.append(f"`{m['commands'][EVALUATION]}`")
        protocol = f"DDIM {m['steps']} steps, fixed seeds, {m['per_class']} samples per class"
    return ("Classifier-free guidance, measured by " + " and ".join(commands) +
            f" ({protocol}; diversity = mean pairwise distance of the "
            "judge's features within a class):\n\n" + "\n".join(lines))


# ----------------------------------------------------------------------------- in the evaluation command
SUITE_SCALES = (0, 1, 3, 7)   # w = 0: the unconditional model, 1: the conditional one, > 1: guided


def suite_rows(name: str, ctx: Context) -> list[dict]:
    """FID, IS and judge accuracy against the CFG scale w (`python -m pipelines.evaluate`)."""
    dataset = name.removeprefix("cfg-")
    title = DATASET_TITLES[dataset]
    k = len(load_cfg(name).class_names)  # CheckpointMissing -> skipped
    p, rows = ctx.protocol, []
    steps = p.guided_steps
    for w in SUITE_SCALES:
        t0 = time.time()
        images, labels = guided_sample(name, w, p.n, p.seed, steps)
        ctx.log(f"  w = {w:g}: {p.n} images in {time.time() - t0:.0f}s")
        rows += ctx.score(images, dataset, f"{title} CFG", f"w = {w:g}, DDIM {steps} steps",
                          protocol=f"{p.n:,} samples, the {k} classes requested in turn, DDIM {steps} steps, "
                                   f"w = {w:g}, seeds {p.seed}·1000 + batch (the same noise at every w)",
                          plot=dict(name=f"{title} classifier-free guidance: quality vs guidance scale w", x=w,
                                    x_label="guidance scale w", series=f"DDIM {steps} steps"),
                          labels=labels)
    return rows


if __name__ == "__main__":
    main()

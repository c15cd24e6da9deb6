"""Measure the conditioning lesson's four models side by side: the same backbone, data, steps and seed, only the way
the label enters differs (add, concat, cross-attention, AdaLN; `pipelines.cfg.model`).

    python -m pipelines.measure.conditioning --threads 2

For each model, written to its checkpoint's metrics.json and card, and to the README's `conditioning` table:
- judge accuracy against the CFG scale w (0, 1, 3, 7): the share of samples the shipped MNIST judge classifies as the
  requested class (every class in turn, the conditioning tab's default sampler and steps from results/frontier.json
  unless --sampler / --steps say otherwise, the same seeds for every model and w);
- FID and IS (judge features, against the MNIST test split) at the model's best w, from the same samples;
- the w = 0 class histogram (the unconditional model: the label is the null label there);
- parameters, training s/step (bf16, batch 96, as trained; timed here in one process, the four models in turn, with
  the threads pinned, so the ratios are fair), sampling s/image (the same sampler, with CFG, fp32);
- how early each one starts obeying its label: judge accuracy at w = 3 of the probes the trainer saved every
  `--probe-every` steps (`runs/<name>/probes/`; where a checkout no longer has them, the curve measured earlier
  is kept, with its protocol);
- the loss curve (from the training record).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from ..cards import update_metrics
from ..cfg.card import write_cfg_card
from ..cfg.model import CONDITIONINGS, ClassConditionalUNet
from ..cfg.pipeline import CONDITIONING_MODELS, MAX_IMAGES, load_cfg
from ..checkpoints import checkpoints_root, read_json
from ..classifier import load_classifier
from ..metrics.features import JUDGES
from ..metrics.scoring import score_images
from ..training import command_line, hardware_summary
from ..schedules import SAMPLERS
from .cfg import class_histogram, judge_samples
from .frontier import tab_choice

SCALES = (0, 1, 3, 7)
PROBE_SCALE = 3.0
EVALUATION = "conditioning"  # this command's rows and command in metrics.json
EVALUATION_SPEED = "conditioning-speed"  # its --speed rows: timed in one run of their own
TITLES = {"add": "add", "concat": "concat", "cross_attention": "cross-attention", "adaln": "AdaLN"}


def accuracy(model, judge, scale: float, per_class: int, steps: int, seed: int,
             sampler: str = "DDIM") -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(judge accuracy, images, requested labels, judged labels) of per_class samples of every class at w."""
    x, y = judge_samples(model, judge, scale, per_class, steps, seed, batch_classes=max(1, MAX_IMAGES // per_class),
                         sampler=sampler)
    pred = judge.predict_proba(x).argmax(-1)
    return (pred == y).float().mean().item(), x, y, pred


def probe_curve(model, judge, probes: Path, per_class: int, steps: int, seed: int, log=print,
                sampler: str = "DDIM") -> list[list[float]]:
    """[[training step, judge accuracy at w = PROBE_SCALE], ...] over the saved probes (the trainer saves one every --probe-every steps)."""
    curve, trained = [], model.net.state_dict()
    try:
        for path in sorted(probes.glob("step-*.safetensors")):
            model.net.load_state_dict({k: v.float() for k, v in load_file(path).items()})
            acc = accuracy(model, judge, PROBE_SCALE, per_class, steps, seed, sampler)[0]
            curve.append([int(path.stem.removeprefix("step-")), acc])
            log(f"  probe {path.stem}: accuracy {acc:.3f} at w = {PROBE_SCALE:g}")
    finally:
        model.net.load_state_dict(trained)
    return curve


def training_seconds_per_step(mechanisms=CONDITIONINGS, steps: int = 4, rounds: int = 3, batch: int = 96,
                              seed: int = 0) -> dict[str, float]:
    """Seconds per optimiser step of each mechanism's network (bf16 autocast, batch 96, as trained): forward, MSE on
    ε, backward, AdamW step, on random data (the cost is the same). The mechanisms take turns, `steps` steps each,
    for `rounds` rounds after a warm-up, and each keeps its fastest round: a busy moment slows all of them alike."""
    torch.manual_seed(seed)
    x, t, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 1000, (batch,)), torch.randint(0, 11, (batch,))
    nets = {m: ClassConditionalUNet(conditioning=m).train() for m in mechanisms}
    opts = {m: torch.optim.AdamW(net.parameters(), lr=1e-4) for m, net in nets.items()}

    def run(m: str, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                pred = nets[m](x, t, y)
            F.mse_loss(pred.float(), x).backward()
            opts[m].step(), opts[m].zero_grad(set_to_none=True)
        return (time.perf_counter() - t0) / max(n, 1)

    for m in mechanisms:
        run(m, 1)   # warm-up
    best = {m: float("inf") for m in mechanisms}
    for _ in range(rounds):
        for m in mechanisms:
            best[m] = min(best[m], run(m, steps))
    return best


def sampling_seconds_per_image(model, n: int = 40, steps: int = 20, seed: int = 0, sampler: str = "DDIM") -> float:
    """Wall seconds per image of guided sampling (two network passes per step: y and ∅, in one batch)."""
    model.generate([i % 10 for i in range(n)], scale=PROBE_SCALE, sampler=sampler, steps=steps, seed=seed)  # warm-up
    t0 = time.perf_counter()
    model.generate([i % 10 for i in range(n)], scale=PROBE_SCALE, sampler=sampler, steps=steps, seed=seed)
    return (time.perf_counter() - t0) / n


def evaluate(mechanism: str, per_class: int, steps: int, seed: int, probe_per_class: int, runs: Path,
             log=print, sampler: str = "DDIM") -> dict:
    name = CONDITIONING_MODELS[mechanism]
    model, judge = load_cfg(name), load_classifier("mnist")
    log(f"{name}: {model.parameters:,} parameters")
    sweep, best = [], None
    for w in SCALES:
        t0 = time.time()
        acc, x, y, pred = accuracy(model, judge, w, per_class, steps, seed, sampler)
        sweep.append({"w": w, "accuracy": acc})
        log(f"  w = {w:g}: accuracy {acc:.3f} ({time.time() - t0:.0f} s)")
        if w == 0:
            hist = class_histogram(pred, 10)
        if best is None or acc > best[0]:
            best = (acc, w, x, y)
    best_acc, best_w, x, y = best
    s = score_images(x, "mnist", JUDGES["mnist"], labels=y)
    probes = probe_curve(model, judge, runs / name / "probes", probe_per_class, steps, seed, log, sampler)
    probes_protocol = f"probes every {probes[0][0]} steps, {probe_per_class} per class" if probes else None
    if not probes:   # this checkout has no probes: keep the curve measured when it had them, with its protocol
        earlier = read_json(model.path / "metrics.json", {})
        probes = earlier.get("accuracy_vs_steps", [])
        probes_protocol = earlier.get("probes_protocol") or next(
            (f"{r['protocol']}, {earlier.get('sampler', 'DDIM')} {earlier.get('steps')} steps (an earlier run's)"
             for r in earlier.get("rows", []) if r.get("evaluation") == EVALUATION
             and r["figure"].startswith("first probe")), None)
    what = "η=0" if sampler == "DDIM" else "one network call a step"
    protocol = f"{sampler} {steps} steps, {what}, {per_class} per class, seeds {seed}+ (the same for every model and w)"
    rows = [{"figure": f"judge accuracy at w = {r['w']:g}", "value": r["accuracy"], "protocol": protocol}
            for r in sweep]
    rows += [{"figure": "best w (highest judge accuracy)", "value": f"{best_w:g}", "protocol": protocol},
             {"figure": f"FID at the best w (judge features, n={s.n:,})", "value": round(s.fid, 4),
              "protocol": f"{protocol}; vs the MNIST test split"},
             {"figure": f"IS at the best w (judge, n={s.n:,})", "value": round(s.is_mean, 4), "protocol": protocol},
             {"figure": "w = 0 class histogram (judge)", "value": " ".join(map(str, hist["counts"])),
              "protocol": f"{10 * per_class} unconditional samples, {protocol}"},
             {"figure": "w = 0 histogram entropy / log 10 (1 = uniform)", "value": hist["normalised_entropy"],
              "protocol": "judge's classes of the w = 0 samples"},
             {"figure": "parameters", "value": f"{model.parameters:,}", "protocol": "ClassConditionalUNet"}]
    if probes:
        first = next((s for s, a in probes if a >= 0.9), None)
        rows.append({"figure": "first probe with accuracy ≥ 0.9 at w = 3 (training step)",
                     "value": str(first) if first else "none",
                     "protocol": probes_protocol})
    return {"name": name, "mechanism": mechanism, "weights": model.weights_hash, "rows": rows,
            "accuracy_vs_w": sweep, "best_w": best_w, "best_accuracy": best_acc, "fid_best_w": s.fid,
            "histogram_w0": hist, "parameters": model.parameters, "accuracy_vs_steps": probes, "probe_scale": PROBE_SCALE,
            "probes_protocol": probes_protocol, "sampler": sampler, "steps": steps, "per_class": per_class, "probe_per_class": probe_per_class, "seed": seed,
            "loss_curve": model.record.get("loss_curve", []), "training_steps": model.record.get("steps"),
            "batch_size": model.record.get("batch_size"), "hardware": hardware_summary()}


def write_speed(mechanisms, steps: int, seed: int, sampler: str = "DDIM") -> None:
    """Training s/step (fresh networks of all four) and sampling s/image (each trained model), in one process."""
    train = training_seconds_per_step()
    print("training s/step: " + ", ".join(f"{TITLES[m]} {s:.3f}" for m, s in train.items()))
    for mechanism in mechanisms:
        model = load_cfg(CONDITIONING_MODELS[mechanism])
        per_image = sampling_seconds_per_image(model, steps=steps, seed=seed, sampler=sampler)
        rows = [{"figure": "training s/step (bf16, batch 96)", "value": round(train[mechanism], 4),
                 "protocol": "the four take turns in one process, threads pinned; fastest of 3 rounds"},
                {"figure": f"sampling s/image ({sampler} {steps}, CFG)", "value": round(per_image, 5),
                 "protocol": "fp32, 40 images in one batch, after a warm-up"}]
        update_metrics(model.path, EVALUATION_SPEED, command_line(), rows, train_seconds_per_step=train[mechanism],
                       sample_seconds_per_image=per_image)
        write_cfg_card(model.path)
        print(f"{TITLES[mechanism]}: sampling {per_image:.4f} s/image")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-class", type=int, default=30)
    p.add_argument("--probe-per-class", type=int, default=10)
    sampler, steps = tab_choice("conditioning")
    p.add_argument("--sampler", default=sampler, choices=list(SAMPLERS),
                   help="default: the conditioning tab's (results/frontier.json)")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default="runs", help="the trainer's --runs folder (its probes/)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--only", default=None, help="comma-separated mechanisms (default: every trained one)")
    p.add_argument("--speed", action="store_true", help="measure only the training and sampling speed, of all four "
                   "in one process (a figure set of its own: the ratios need one quiet run)")
    p.add_argument("--write-readme", action="store_true", help="refresh the README's conditioning table")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    present = [m for m, name in CONDITIONING_MODELS.items() if (checkpoints_root() / name / "config.json").exists()
               and (not args.only or m in args.only.split(","))]
    t0 = time.time()
    if args.speed:
        write_speed(present, args.steps, args.seed, args.sampler)
    else:
        for mechanism in present:
            doc = evaluate(mechanism, args.per_class, args.steps, args.seed, args.probe_per_class, Path(args.runs),
                           sampler=args.sampler)
            folder = checkpoints_root() / doc.pop("name")
            update_metrics(folder, EVALUATION, command_line(), doc.pop("rows"), **doc)
            write_cfg_card(folder)
    print(f"measured {len(present)} models in {time.time() - t0:.0f} s")
    if args.write_readme:
        from ..readme import replace_section
        replace_section("conditioning", readme_section())


def measured() -> dict[str, dict]:
    """mechanism -> its metrics.json, for the models this command has measured."""
    out = {}
    for mechanism, name in CONDITIONING_MODELS.items():
        m = read_json(checkpoints_root() / name / "metrics.json", {})
        if m.get("accuracy_vs_w"):
            out[mechanism] = m
    return out


def _seconds(m: dict, key: str, digits: int) -> str:
    return f"{m[key]:.{digits}f}" if key in m else "not measured"


def readme_section() -> str:
    """The README's side-by-side table, read from the four checkpoints' metrics.json."""
    docs = measured()
    if not docs:
        return "_Not measured yet: `python -m pipelines.measure.conditioning --write-readme`._"
    first = next(iter(docs.values()))
    lines = ["| mechanism | accuracy at w = " + " / ".join(f"{w:g}" for w in SCALES) +
             " | best w | FID at best w | w = 0 entropy / log 10 | parameters | train s/step | sample s/image | "
             "first step ≥ 0.9 |", "|---|---|---|---|---|---|---|---|---|"]
    for mechanism, m in docs.items():
        first_step = next((s for s, a in m.get("accuracy_vs_steps", []) if a >= 0.9), None)
        lines.append(f"| {TITLES[mechanism]} | " + " / ".join(f"{r['accuracy']:.3f}" for r in m["accuracy_vs_w"]) +
                     f" | {m['best_w']:g} | {m['fid_best_w']:.2f} | {m['histogram_w0']['normalised_entropy']:.3f} | "
                     f"{m['parameters']:,} | {_seconds(m, 'train_seconds_per_step', 3)} | "
                     f"{_seconds(m, 'sample_seconds_per_image', 4)} | "
                     f"{first_step if first_step is not None else 'none'} |")
    quality = " and ".join(f"`{c}`" for c in dict.fromkeys(m["commands"][EVALUATION] for m in docs.values()))
    speed = first["commands"].get(EVALUATION_SPEED, "python -m pipelines.measure.conditioning --speed")
    return (f"The four ways to give the UNet its label, measured by {quality} and, for the speeds (the four in one "
            f"process, in turn), `{speed}` (the same "
            f"backbone, data, {first['training_steps']:,} steps of batch {first['batch_size']} and seed; "
            f"{first.get('sampler', 'DDIM')} {first['steps']} steps, {first['per_class']} samples per "
            f"class; the judge is the shipped MNIST classifier; \"first step ≥ 0.9\" is the first saved probe whose "
            f"accuracy at w = {first['probe_scale']:g} reaches 0.9"
            f"{' (' + first['probes_protocol'] + ')' if first.get('probes_protocol') else ''}):\n\n" + "\n".join(lines) + "\n\n" + bar_line(docs))


BAR = 0.95  # issue 19: every mechanism ≥ 95 % judge accuracy at its best w


def bar_line(docs: dict[str, dict]) -> str:
    """Which mechanisms reach the bar, in words, from the measured figures."""
    met = [f"{TITLES[m]} ({d['best_accuracy']:.3f})" for m, d in docs.items() if d["best_accuracy"] >= BAR]
    missed = [f"{TITLES[m]} ({d['best_accuracy']:.3f})" for m, d in docs.items() if d["best_accuracy"] < BAR]
    steps = next(iter(docs.values()))["training_steps"]
    return (f"Bar: judge accuracy ≥ {BAR:.2f} at the best w. Met by {', '.join(met) or 'none'}; "
            f"missed by {', '.join(missed) or 'none'}, after {steps:,} training steps each.")


if __name__ == "__main__":
    main()

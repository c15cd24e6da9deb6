"""bf16 against fp32 for every diffusion model, in one run: is quality held, and how much faster is it?

    python -m pipelines.measure.precision --threads 2 [--write-readme]

Each model samples the same seeds, sampler and steps at fp32 and at bf16 (autocast, `pipelines/precision.py`):
- the MNIST DDPM: FID (judge features, against the MNIST test split) and the share judged with confidence > 0.9;
- the class-conditional models (the CFG lesson's two, the conditioning lesson's four): judge accuracy at w = 3 and
  FID;
- the zero-SNR lesson's four: the mean brightness of "all black" and "all white" at w = 3 (targets 0 and 1), over
  the finite samples, and the share of non-finite ones (the ε model on a zero-SNR schedule has no finite sample);
- latent diffusion: the shapes judge's shape and colour accuracy on held-out prompts, and FID on its features.

Bounds (issue 16): judge figures within 1 point of fp32, FID within 10 %, brightness within 0.01. A model outside
them belongs in `precision.FP32_ONLY` (tests/test_precision.py checks that the list agrees with this file's output).
Speed: seconds of one sampling call (16 images) at each precision, in turn in one process with the threads pinned.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from ..checkpoints import CheckpointMissing, PROJECT_ROOT, read_json, write_json
from ..metrics.features import JUDGES
from ..precision import FP32, Precision, cpu_has_native_bf16
from ..training import command_line, hardware_summary

RESULTS = PROJECT_ROOT / "results" / "precision.json"
BOUNDS = {"judge": 0.01, "fid_relative": 0.10, "brightness": 0.01}
SCALE = 3.0
BF16 = Precision("bf16", "cpu", "measured against fp32")


def at(model, precision: Precision):
    """The same loaded model (same weights) running at `precision`."""
    return dataclasses.replace(model, precision=precision)


def timed(model, call, rounds: int = 3) -> dict[str, float]:
    """Fastest wall time of call(model) at fp32 and at bf16, after a warm-up of each, the two interleaved round by
    round so that a busy moment of the machine slows both alike."""
    seconds = {"fp32": float("inf"), "bf16": float("inf")}
    for p in (FP32, BF16):
        call(at(model, p))
    for _ in range(rounds):
        for p in (FP32, BF16):
            t0 = time.perf_counter()
            call(at(model, p))
            seconds[p.name] = min(seconds[p.name], time.perf_counter() - t0)
    return seconds


# ----------------------------------------------------------------------------- one figure set per kind of model
def ddpm_figures(model, n: int, steps: int, seed: int, sampler: str = "DDIM") -> dict:
    from ..classifier import load_classifier
    from ..metrics.scoring import score_images
    x = torch.cat([model.generate(sampler=sampler, steps=steps, num_images=min(50, n - k), seed=seed + k)
                   for k in range(0, n, 50)])
    confident = load_classifier("mnist").predict_proba(x).max(1).values.gt(0.9).float().mean().item()
    return {"confident": confident, "fid": score_images(x, "mnist", JUDGES["mnist"]).fid, "images": len(x)}


def conditional_figures(model, dataset: str, n: int, steps: int, seed: int, sampler: str = "DDIM") -> dict:
    from ..classifier import load_classifier
    from ..metrics.scoring import score_images
    from ..cfg.pipeline import MAX_IMAGES
    from .cfg import judge_samples
    judge = load_classifier(dataset)
    per_class = max(1, n // len(model.class_names))
    x, y = judge_samples(model, judge, SCALE, per_class, steps, seed, batch_classes=max(1, MAX_IMAGES // per_class),
                         sampler=sampler)
    accuracy = (judge.predict_proba(x).argmax(-1) == y).float().mean().item()
    return {"accuracy": accuracy, "fid": score_images(x, dataset, JUDGES[dataset]).fid, "images": len(x)}


def brightness_figures(model, n: int, steps: int, seed: int, sampler: str = "DDIM") -> dict:
    from ..images import finite_samples
    from ..zero_snr import brightness
    from .zero_snr import BLACK, WHITE
    black, white = model.class_index(BLACK), model.class_index(WHITE)
    x = model.generate([black] * n + [white] * n, scale=SCALE, sampler=sampler, steps=steps, seed=seed,
                       clamp=False)
    ok = finite_samples(x)   # the ε model on a zero-SNR schedule diverges at t = T (the lesson's point): no brightness
    b = brightness(torch.nan_to_num(x).clamp(-1, 1))
    mean = lambda part: b[part][ok[part]].mean().item() if ok[part].any() else None  # noqa: E731
    return {"black": mean(slice(0, n)), "white": mean(slice(n, 2 * n)), "non_finite": 1 - ok.float().mean().item(),
            "images": len(x)}


def ldm_figures(model, n: int, steps: int, seed: int, sampler: str = "DDIM") -> dict:
    from ..metrics.scoring import score_images
    from ..shapes.data import heldout_prompts
    from ..shapes.judge import load_judge
    from .samplers import best_scale, generate_for
    captions, labels = heldout_prompts(n, seed)
    x = generate_for(model, captions, best_scale(), steps, seed, sampler=sampler)
    acc = load_judge("cpu").score(x, labels)
    return {"shape": acc["shape"], "colour": acc["colour"], "fid": score_images(x, "shapes", JUDGES["shapes"]).fid,
            "images": len(x)}


# figures where a larger value is the worse one (the rest are judge figures, and "white" brightness: larger is better)
HIGHER_IS_WORSE = ("fid", "black", "non_finite")


def compare(fp32: dict, bf16: dict, worse_only: bool = False) -> tuple[bool, list[str]]:
    """Within the bounds? And which figures are not, in words. `worse_only`: a figure that improved by more than its
    bound is still within (the frontier asks "no worse than the reference"; bf16 against fp32 asks "the same")."""
    out = []
    for key, a in fp32.items():
        b = bf16[key]
        if key == "images":
            continue
        if a is None or b is None:   # no finite sample to measure: the same only if neither has one
            if (a is None) != (b is None):
                out.append(f"{key}: {a} → {b}")
            continue
        worse = (b - a) if key in HIGHER_IS_WORSE else (a - b)   # > 0: moved the bad way
        moved = worse if worse_only else abs(b - a)
        if key == "fid":
            if moved > BOUNDS["fid_relative"] * a:
                out.append(f"FID {a:.2f} → {b:.2f} (> 10 %)")
        elif key in ("black", "white", "non_finite"):
            if moved > BOUNDS["brightness"]:
                out.append(f"{key} brightness {a:.3f} → {b:.3f} (> 0.01)")
        elif moved > BOUNDS["judge"]:
            out.append(f"{key} {a:.3f} → {b:.3f} (> 1 point)")
    return not out, out


def models():
    """(name, loader, figures(model, n, steps, seed, sampler="DDIM"), speed call(model)) for every diffusion model
    shipped."""
    from ..cfg.pipeline import CONDITIONING_MODELS, load_cfg
    from ..ddpm.pipeline import load_ddpm
    from ..ldm.pipeline import load_ldm
    from ..zero_snr import VARIANTS, load_variant
    yield ("ddpm-mnist", load_ddpm, ddpm_figures,
           lambda m: m.generate(sampler="DDIM", steps=20, num_images=16, seed=0))
    conditional = {"cfg-mnist": "mnist", "cfg-fashion-mnist": "fashion-mnist",
                   **{name: "mnist" for name in CONDITIONING_MODELS.values()}}
    for name, dataset in conditional.items():
        yield (name, load_cfg, lambda m, n, s, seed, d=dataset, **kw: conditional_figures(m, d, n, s, seed, **kw),
               lambda m: m.generate(list(range(10)) + list(range(6)), scale=SCALE, steps=20, seed=0))
    for name in VARIANTS.values():
        yield (name, load_variant, lambda m, n, s, seed, **kw: brightness_figures(m, max(8, n // 16), s, seed, **kw),
               lambda m: m.generate([0] * 16, scale=SCALE, steps=20, seed=0))
    yield ("ldm-shapes", load_ldm, lambda m, n, s, seed, **kw: ldm_figures(m, max(200, n // 2), s, seed, **kw),
           lambda m: m.generate(["a small red circle on a white background"] * 16, scale=SCALE, steps=20, seed=0))


def loaded_models(only=None, log=print):
    """(name, loaded model, figures, speed call) of `models()`, those named in `only` (default: all), skipping with
    a word those whose checkpoint is missing."""
    for name, load, figures, call in models():
        if only and name not in only:
            continue
        try:
            yield name, load(name), figures, call
        except CheckpointMissing as exc:
            log(f"{name}: skipped ({exc})")


def evaluate(n: int = 500, steps: int = 20, seed: int = 0, only=None, log=print) -> dict:
    doc = {"command": command_line(), "n": n, "steps": steps, "seed": seed, "bounds": BOUNDS,
           "native_bf16": cpu_has_native_bf16(), "hardware": hardware_summary(), "models": {}}
    for name, model, figures, call in loaded_models(only, log):
        if not hasattr(model, "precision"):
            log(f"{name}: skipped (its pipeline has no precision switch yet)")
            continue
        t0 = time.time()
        row = {"fp32": figures(at(model, FP32), n, steps, seed), "bf16": figures(at(model, BF16), n, steps, seed)}
        row["within_bounds"], row["outside"] = compare(row["fp32"], row["bf16"])
        seconds = timed(model, call)
        row["seconds_fp32"], row["seconds_bf16"] = seconds["fp32"], seconds["bf16"]
        row["speedup"] = row["seconds_fp32"] / row["seconds_bf16"]
        doc["models"][name] = row
        log(f"{name}: fp32 {row['fp32']} | bf16 {row['bf16']} | {'within' if row['within_bounds'] else 'OUTSIDE'} "
            f"bounds | speed-up {row['speedup']:.2f}× ({time.time() - t0:.0f} s)")
    return doc


def fmt(figures: dict) -> str:
    return ", ".join(f"{k} non-finite" if v is None else f"{k} {v:.2f}" if k == "fid" else f"{k} {v:.3f}"
                     for k, v in figures.items() if k != "images")


def readme_section(doc: dict) -> str:
    lines = ["| model | images | fp32 | bf16 | within bounds | sampling call fp32 → bf16 (16 images, DDIM 20) |",
             "|---|---|---|---|---|---|"]
    for name, r in doc["models"].items():
        verdict = "yes" if r["within_bounds"] else "**no**: " + "; ".join(r["outside"])
        lines.append(f"| {name} | {r['fp32'].get('images', '?')} | {fmt(r['fp32'])} | {fmt(r['bf16'])} | {verdict} | {r['seconds_fp32']:.2f} s → "
                     f"{r['seconds_bf16']:.2f} s ({r['speedup']:.2f}×) |")
    commands = " and ".join(f"`{c}`" for c in doc.get("commands", [doc["command"]]))
    return (f"bf16 autocast against fp32, the same seeds, each model in one run: {commands} (DDIM {doc['steps']} "
            f"steps, w = {SCALE:g}; bounds: judge figures within 1 point, FID "
            "within 10 %, brightness within 0.01). `auto` picks bf16 on this CPU (native AVX-512 BF16); "
            "`python app.py --precision fp32` forces full precision.\n\n" + "\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default=None, help="comma-separated checkpoint names (default: every diffusion model)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--write-readme", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    doc = evaluate(args.n, args.steps, args.seed, args.only.split(",") if args.only else None)
    doc["wall_seconds"] = round(time.time() - t0)
    if args.only and RESULTS.exists():   # measured in parts: the other models keep their rows (and their commands)
        old = read_json(RESULTS, {})
        doc["models"] = {**old.get("models", {}), **doc["models"]}
        doc["commands"] = sorted({*old.get("commands", [old.get("command")]), doc["command"]} - {None})
    write_json(RESULTS, doc)
    print(f"wrote {RESULTS.relative_to(PROJECT_ROOT)} ({doc['wall_seconds']} s)")
    if args.write_readme:
        from ..readme import replace_section
        replace_section("precision", readme_section(doc))


if __name__ == "__main__":
    main()

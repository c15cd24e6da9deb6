"""Speed of the main pipelines on this machine, with a baseline measured in the same run.

    python -m pipelines.benchmark                 # prints a table
    python -m pipelines.benchmark --write-readme  # also refreshes the README's speed section

Torch threads are pinned (--threads) and each figure is the median of --repeats runs. Absolute
times are noisy on shared machines; the ratios, measured in one run, are the figures to quote.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from .checkpoints import PROJECT_ROOT
from .readme import replace_section
from .runtime import cpu_generator, randn

ROWS = {}  # name -> fn(args) -> list of result rows; other pipelines register theirs here


def register(name):
    def deco(fn):
        ROWS[name] = fn
        return fn
    return deco


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def naive_ancestral(unet, scheduler, num_images: int, seed: int = 0) -> torch.Tensor:
    """The seeds' sampler: all T ancestral steps, one image at a time, written out by hand."""
    betas, alphas, abar = scheduler.betas, scheduler.alphas, scheduler.alphas_cumprod
    g, out = cpu_generator(seed), []
    for _ in range(num_images):
        x = randn((1, 1, 28, 28), g)
        for t in reversed(range(len(betas))):
            eps = unet(x, torch.tensor([t])).sample
            mean = (x - betas[t] / (1 - abar[t]).sqrt() * eps) / alphas[t].sqrt()
            x = mean + (betas[t].sqrt() * randn(x.shape, g) if t > 0 else 0)
        out.append(x)
    return torch.cat(out)


@register("ddpm")
def bench_ddpm(args) -> list[dict]:
    from diffusers import DDPMScheduler

    from .ddpm.pipeline import load_ddpm

    t0 = time.perf_counter()
    model = load_ddpm(device="cpu")
    load_s = time.perf_counter() - t0
    model.generate("DDIM", 2, 2, 0)  # warm-up

    def first_frame():
        next(iter(model.frames("DDIM", 25, 16, seed=0)))

    rows = [dict(name="MNIST DDPM: load checkpoint", seconds=load_s)]
    rows.append(dict(name="MNIST DDPM: first streamed frame (DDIM, 16 images)", seconds=timed(first_frame, args.repeats)))
    ddim = {}
    for steps in (20, 50):
        ddim[steps] = timed(lambda: model.generate("DDIM", steps, 16, 0), args.repeats)
        rows.append(dict(name=f"MNIST DDPM: 16 images, DDIM {steps} steps (batched)", seconds=ddim[steps],
                         images_per_s=16 / ddim[steps]))
    # the baseline: 1000 ancestral steps, one image per forward pass; timed on --naive-images images
    sched = DDPMScheduler.from_config(model.scheduler_config)
    per_image = timed(lambda: naive_ancestral(model.unet, sched, args.naive_images), 1) / args.naive_images
    rows.append(dict(name=f"baseline: seeds' sampler, 1000 ancestral steps, 1 image at a time "
                          f"(timed on {args.naive_images}, ×16)", seconds=16 * per_image, images_per_s=1 / per_image))
    for steps in (20, 50):
        rows.append(dict(name=f"speed-up of DDIM {steps} (batched) over the baseline", ratio=16 * per_image / ddim[steps]))
    return rows


def markdown(rows: list[dict], header: str) -> str:
    lines = [header, "", "| measurement | time (s) | images/s | ratio |", "|---|---|---|---|"]
    for r in rows:
        s = f"{r['seconds']:.3f}" if "seconds" in r else ""
        ips = f"{r['images_per_s']:.2f}" if "images_per_s" in r else ""
        ratio = (f"{r['ratio']:.1f}×" if r["ratio"] < 10 else f"{r['ratio']:.0f}×") if "ratio" in r else ""
        lines.append(f"| {r['name']} | {s} | {ips} | {ratio} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--naive-images", type=int, default=1)
    p.add_argument("--only", nargs="*", default=None, help="subset of the registered rows, e.g. ddpm cfg")
    p.add_argument("--write-readme", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    registry = _load_registrations()
    rows = []
    for name, fn in registry.items():
        if args.only is None or name in args.only:
            rows += [dict(r, group=name) for r in fn(args)]
    if args.only:  # keep the other groups' rows of the last full run (rows without a group belong to "ddpm"/"cfg")
        old = json.loads((PROJECT_ROOT / "results" / "benchmark.json").read_text()) \
            if (PROJECT_ROOT / "results" / "benchmark.json").exists() else {"rows": []}
        keep = [r for r in old["rows"] if r.get("group", _legacy_group(r)) not in args.only]
        rows = keep + rows
    header = (f"Measured by `python -m pipelines.benchmark` on {_machine()} with torch.set_num_threads({args.threads}), "
              f"median of {args.repeats} runs.")
    if args.only:
        header += (f" Rows of {', '.join(args.only)} re-measured by `python -m pipelines.benchmark --only "
                   f"{' '.join(args.only)}`; the others are from the last full run.")
    text = markdown(rows, header)
    print(text)
    out = PROJECT_ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")
    if args.write_readme:
        replace_section("benchmark", text)


def _legacy_group(row: dict) -> str:
    return "cfg" if "CFG" in row["name"] else "ddpm"


def _machine() -> str:
    from .training import hardware_summary
    return hardware_summary().split(",")[0]


def _load_registrations() -> dict:
    """Pipelines that add rows import `register` from `pipelines.benchmark`; importing them registers the rows.

    Under `python -m` this file runs as __main__, so the registry is the one of the imported module."""
    import importlib
    for module in ("pipelines.cfg.pipeline", "pipelines.ldm.pipeline"):
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    return importlib.import_module("pipelines.benchmark").ROWS


if __name__ == "__main__":
    main()

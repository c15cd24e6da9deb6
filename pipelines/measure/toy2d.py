"""The generative learning trilemma, measured in 2-D, and the live-training bars of the 2-D playground.

    python -m pipelines.measure.toy2d --threads 2

On 8 Gaussians (the shipped checkpoints toy2d-8gaussians-{gan,ddpm,ddgan2,ddgan4}), n = 1000 samples each:
- quality: MMD (RBF, bandwidths 0.05 … 1) to 1000 held-out points, and the real-vs-real floor at the same n
  (the mean over FLOOR_PAIRS pairs of independent held-out draws);
- mode coverage: modes holding ≥ 2 % of the samples; share of samples within 3σ of a mode;
- speed: network evaluations per sample and milliseconds per 1,000 samples (best of 3, this machine).
Also every shipped DDPM (one per dataset) against its own held-out data (function `per_dataset`).
Rows: GAN (1 step), DDPM ancestral at 1000, 50, 10 and 4 steps, DDIM at 50, 10 and 4, DD-GAN at 2 and 4 steps.
The live bars: DDPM trained live with the tab's defaults on 8 Gaussians and two moons: the seconds to the first
streamed frame, to the first frame whose samples are within 2 × the floor, and to the end (function `live`).

Writes results/toy2d.json (the tab's table and scatter read it), each checkpoint's metrics.json and card, and the
README section between <!-- toy2d:start --> and <!-- toy2d:end -->.
"""
from __future__ import annotations

import argparse
import os
import time
from datetime import date

# idle OpenMP threads sleep instead of spinning: beside other jobs on 2 cores, spinning made these tiny MLPs
# 45x slower at 2 threads (50 sampling steps: 3.95 s spinning, 0.11 s passive). Read once, before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from ..cards import update_metrics
from ..checkpoints import PROJECT_ROOT, checkpoints_root, write_json
from ..readme import replace_section
from ..runtime import in_threads
from ..training import command_line, hardware_summary
from ..toy2d import checkpoint, data, metrics, sample, train

RESULTS = PROJECT_ROOT / "results" / "toy2d.json"
FLOOR_PAIRS = 5
N = metrics.N_EVAL
DATASET = "8gaussians"
LIVE_DATASETS = ("8gaussians", "moons")
LIVE_BUDGET_S = 30.0
FRAME_EVERY = 250       # as the tab streams (demos/playground2d.py)
ROWS = [  # (label, checkpoint model, sampler, steps)
    ("GAN", "gan", None, 1),
    ("DDPM", "ddpm", "DDPM (ancestral)", 1000), ("DDPM", "ddpm", "DDPM (ancestral)", 50),
    ("DDPM", "ddpm", "DDPM (ancestral)", 10), ("DDPM", "ddpm", "DDPM (ancestral)", 4),
    ("DDIM", "ddpm", "DDIM", 50), ("DDIM", "ddpm", "DDIM", 10), ("DDIM", "ddpm", "DDIM", 4),
    ("DD-GAN", "ddgan", None, 2), ("DD-GAN", "ddgan", None, 4),
]


def floor(dataset: str, n: int = N) -> float:
    """Mean MMD between the held-out set and FLOOR_PAIRS other independent draws of the same size."""
    held = data.sample(dataset, n, split="heldout")
    return sum(metrics.mmd(held, data.sample(dataset, n, seed=100 + i, split="heldout"))
               for i in range(FLOOR_PAIRS)) / FLOOR_PAIRS


def sampler_of(model: str, sampler: str | None, steps: int, dataset: str = DATASET):
    """() -> (N, 2) samples of a shipped checkpoint with seed 0, and the checkpoint's name."""
    net, config, _, _ = checkpoint.load(dataset, model, steps if model == "ddgan" else 4)
    if model == "gan":
        fn = lambda: sample.gan_sample(net, num_points=N, seed=0)           # noqa: E731
    elif model == "ddgan":
        fn = lambda: sample.ddgan_sample(net, num_points=N, seed=0)         # noqa: E731
    else:
        fn = lambda: sample.ddpm_sample(net, config["scheduler"], sampler=sampler, steps=steps,  # noqa: E731
                                        num_points=N, seed=0)
    return fn, checkpoint.name(dataset, model, steps if model == "ddgan" else 4)


def trilemma(dataset: str = DATASET) -> tuple[list[dict], float]:
    held = data.sample(dataset, N, split="heldout")
    fl = floor(dataset)
    rows = []
    for label, model, sampler, steps in ROWS:
        fn, name = sampler_of(model, sampler, steps, dataset)
        x, ms = metrics.timed(fn, repeats=3)
        cov = metrics.mode_coverage(x) if dataset == "8gaussians" else {}
        rows.append(dict(method=label, model=name, sampler=sampler or label, steps=steps, nfe=steps,
                         mmd=round(metrics.mmd(x, held), 4), mmd_over_floor=round(metrics.mmd(x, held) / fl, 2),
                         modes=cov.get("modes"), in_modes=round(cov["in_modes"], 3) if cov else None,
                         mode_shares=cov.get("shares"), ms_per_1000=round(ms * 1000 / N, 1)))
        print(f"{label:7s} {steps:5d} steps  MMD {rows[-1]['mmd']:.4f} ({rows[-1]['mmd_over_floor']:.2f}× floor)  "
              f"modes {rows[-1]['modes']}  in 3σ {rows[-1]['in_modes']}  {rows[-1]['ms_per_1000']:.1f} ms / 1000")
    return rows, fl


def live(dataset: str) -> dict:
    """DDPM trained live as the tab runs it (its defaults, train.THREADS threads, a frame of 1000 samples from 50
    ancestral steps every FRAME_EVERY steps, each frame's MMD computed; drawing the frame is the tab's, and
    `python scripts/live_training.py` times it through the tab): the seconds to the first frame, to the first frame
    whose MMD is ≤ 2 × the floor, and to the end; then the final model's MMD with 1000 ancestral steps."""
    points = data.sample(dataset, train.TRAIN_POINTS, 0)
    held = data.sample(dataset, N, split="heldout")
    fl = floor(dataset)
    start = time.perf_counter()
    first = reached = reached_step = None
    for p in in_threads(train.train_ddpm(points, seed=0, every=FRAME_EVERY, preview_steps=50), train.THREADS):
        now = time.perf_counter() - start
        first = now if first is None else first
        if reached is None and metrics.mmd(p.samples, held) <= 2 * fl:
            reached, reached_step = time.perf_counter() - start, p.step
    total = time.perf_counter() - start
    x = sample.ddpm_sample(p.model["denoiser"], p.model["config"], steps=1000, num_points=N, seed=0)
    m = metrics.mmd(x, held)
    out = dict(dataset=dataset, steps=p.step, first_frame_s=round(first, 2), train_s=round(total, 1),
               reached_2x_floor_s=None if reached is None else round(reached, 1), reached_2x_floor_step=reached_step,
               mmd=round(m, 4), floor=round(fl, 4), mmd_over_floor=round(m / fl, 2))
    out["met"] = bool(reached is not None and reached <= LIVE_BUDGET_S and first <= 1.0)
    print(f"live DDPM on {dataset}: first frame {first:.2f} s, MMD ≤ 2× floor at step {reached_step} after "
          f"{reached if reached is not None else float('nan'):.1f} s; {p.step} steps in {total:.1f} s, final MMD "
          f"{m:.4f} = {m / fl:.2f}× floor (1000 steps)")
    return out


def per_dataset() -> list[dict]:
    """Every shipped DDPM against its own held-out data: MMD at 1000 and 50 ancestral steps, and the floor."""
    out = []
    for dataset in data.DATASETS:
        fl = floor(dataset)
        held = data.sample(dataset, N, split="heldout")
        for steps in (1000, 50):
            fn, name = sampler_of("ddpm", "DDPM (ancestral)", steps, dataset)
            m = metrics.mmd(fn(), held)
            out.append(dict(dataset=dataset, model=name, steps=steps, mmd=round(m, 4), floor=round(fl, 4),
                            mmd_over_floor=round(m / fl, 2)))
            print(f"{name}: {steps} steps MMD {m:.4f} = {m / fl:.2f}× floor")
    return out


def bars(rows: list[dict], lives: list[dict]) -> list[dict]:
    by = {(r["method"], r["steps"]): r for r in rows}
    d4, ddpm4, ddpm1000, gan = by[("DD-GAN", 4)], by[("DDPM", 4)], by[("DDPM", 1000)], by[("GAN", 1)]
    out = [dict(bar=f"DDPM trained live on {lv['dataset']}: MMD ≤ 2× floor within {LIVE_BUDGET_S:.0f} s, first "
               f"frame ≤ 1 s", value=f"≤ 2× floor at step {lv['reached_2x_floor_step']} after "
               f"{lv['reached_2x_floor_s']} s; first frame {lv['first_frame_s']:.2f} s; all {lv['steps']} steps "
               f"{lv['train_s']:.1f} s, final {lv['mmd_over_floor']:.2f}× floor", met=lv["met"]) for lv in lives]
    out += [dict(bar="DDPM at 1000 steps covers 8/8 modes", value=f"{ddpm1000['modes']}/8", met=ddpm1000["modes"] == 8),
            dict(bar="DD-GAN at 4 steps covers ≥ 7/8 modes", value=f"{d4['modes']}/8", met=d4["modes"] >= 7),
            dict(bar="DD-GAN at 4 steps: MMD clearly better than DDPM at 4 steps (< 0.8×)",
                 value=f"{d4['mmd']:.4f} vs {ddpm4['mmd']:.4f}", met=d4["mmd"] < 0.8 * ddpm4["mmd"]),
            dict(bar="GAN coverage (reported as measured)", value=f"{gan['modes']}/8, {gan['in_modes']:.0%} within 3σ",
                 met=None)]
    return out


def markdown(doc: dict) -> str:
    lines = [f"The generative learning trilemma on 8 Gaussians, measured by `{doc['command']}` ({doc['created']}, "
             f"{doc['hardware']}): n = {N} samples against {N} held-out points; MMD with RBF bandwidths "
             f"{', '.join(map(str, metrics.BANDWIDTHS))}; real-vs-real floor {doc['floor']:.4f} (same n, mean of "
             f"{FLOOR_PAIRS} pairs); modes = modes holding ≥ 2 % of samples, in 3σ = share within 3σ of a mode.", "",
             "| method | steps (network evaluations) | MMD | × floor | modes | in 3σ | ms / 1,000 samples |",
             "|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        name = {"DDPM": "DDPM (ancestral)", "DDIM": "DDIM (η = 0)"}.get(r["method"], r["method"])
        lines.append(f"| {name} | {r['steps']} | {r['mmd']:.4f} | {r['mmd_over_floor']:.2f} | {r['modes']}/8 | "
                     f"{r['in_modes']:.1%} | {r['ms_per_1000']:.1f} |")
    lines += ["", "Every shipped DDPM on its own data (DDPM ancestral sampling, n = 1000, floor at the same n):", "",
              "| data | checkpoint | MMD, 1000 steps (× floor) | MMD, 50 steps (× floor) | floor |", "|---|---|---|---|---|"]
    by = {}
    for r in doc.get("datasets", []):
        by.setdefault(r["dataset"], {})[r["steps"]] = r
    for d, r in by.items():
        lines.append(f"| {data.DATASETS[d][0]} | `{r[1000]['model']}` | {r[1000]['mmd']:.4f} ({r[1000]['mmd_over_floor']:.2f}) "
                     f"| {r[50]['mmd']:.4f} ({r[50]['mmd_over_floor']:.2f}) | {r[1000]['floor']:.4f} |")
    lines += ["", "| bar | measured | met |", "|---|---|---|"]
    lines += [f"| {b['bar']} | {b['value']} | {'—' if b['met'] is None else ('yes' if b['met'] else '**no**')} |"
              for b in doc["bars"]]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-readme", action="store_true", help="do not rewrite the README section")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, fl = trilemma()
    datasets = per_dataset()
    lives = [live(d) for d in LIVE_DATASETS]
    doc = dict(command=command_line(), created=date.today().isoformat(), hardware=hardware_summary(),
               dataset=DATASET, n=N, bandwidths=list(metrics.BANDWIDTHS), floor=round(fl, 4), rows=rows, datasets=datasets,
               live=lives)
    doc["bars"] = bars(rows, lives)
    RESULTS.parent.mkdir(exist_ok=True)
    write_json(RESULTS, doc)
    for name in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == name]
        figures = []
        for r in mine:
            setting = f"{r['sampler']}, {r['steps']} steps, n = {N}"
            figures += [dict(figure=f"MMD to held-out ({setting})", value=r["mmd"], protocol=f"floor {fl:.4f}"),
                        dict(figure=f"modes covered of 8 ({setting})", value=r["modes"], protocol="≥ 2 % of samples"),
                        dict(figure=f"share within 3σ of a mode ({setting})", value=r["in_modes"], protocol="3σ = 0.3"),
                        dict(figure=f"ms per 1,000 samples ({setting})", value=r["ms_per_1000"],
                             protocol=f"{args.threads} threads, best of 3")]
        figures += [dict(figure=f"MMD to held-out (own data, DDPM (ancestral), {r['steps']} steps, n = {N})",
                         value=r["mmd"], protocol=f"floor {r['floor']:.4f}")
                    for r in datasets if r["model"] == name and r["dataset"] != DATASET]
        folder = checkpoints_root() / name
        update_metrics(folder, "toy2d", command_line(), figures)
        checkpoint.card(folder)
    for name in sorted({r["model"] for r in datasets} - {r["model"] for r in rows}):
        figures = [dict(figure=f"MMD to held-out (DDPM (ancestral), {r['steps']} steps, n = {N})", value=r["mmd"],
                        protocol=f"floor {r['floor']:.4f}") for r in datasets if r["model"] == name]
        folder = checkpoints_root() / name
        update_metrics(folder, "toy2d", command_line(), figures)
        checkpoint.card(folder)
    if not args.no_readme:
        replace_section("toy2d", markdown(doc))
    for b in doc["bars"]:
        print(("MET   " if b["met"] else "—     " if b["met"] is None else "MISSED"), b["bar"], ":", b["value"])


if __name__ == "__main__":
    main()

"""Fewest steps at equal quality: every diffusion model's quality against sampling steps, for three samplers.

    python -m pipelines.evaluate --frontier --threads 2 [--only cfg-mnist,...] [--n 300] [--write-readme]

(the same as `python -m pipelines.measure.frontier`). For each model shipped:

- the **reference** is DDIM 20 steps at fp32, the tabs' default before this measurement;
- each **point** is one sampler (DDIM, DPM-Solver++ 2M, UniPC; all three call the network once a step) at 4–50 steps,
  run at the precision the server picks for that model (`precision.choose(..., "auto")`: bf16 on a CPU with native
  bf16), with the reference's seeds;
- its figures are the precision measurement's (`measure/precision.py`: judge accuracy or confidence, FID on the
  judge's features, zero-SNR brightness), and a point **keeps quality** when it is no worse than the reference by
  more than that measurement's bounds: judge figures 1 point lower at most, FID 10 % higher, the brightness of
  "all black" 0.01 higher and of "all white" 0.01 lower (a point better than the reference keeps quality; a model
  whose reference has no finite sample, Lin et al.'s failure case, keeps it only where it still has none).

Each model's row keeps its own n, seed, steps and precision, so models measured in parts merge into one file. Steps
above the reference's 20 cannot make a cheaper default (a tab with no stable point up to 20 keeps DDIM 20); they
only test that quality holds further up, and `--steps` may leave them out where a slow model's run must be short.

A sampler's **cheapest stable point** is its fewest steps s such that every measured point of it from s up keeps
quality (one lucky point among failing neighbours is noise, not a frontier). Each tab's default sampler and steps
(`TABS`) are the cheapest point stable for every model the tab serves, among the samplers the tab offers
(`TAB_SAMPLERS`); a tie in steps goes to the sampler listed first. `tests/test_frontier.py` holds the tabs' defaults to `results/frontier.json`; the Metrics tab plots it.
"""
from __future__ import annotations

import argparse
import time

import torch

from ..checkpoints import PROJECT_ROOT, read_json, write_json
from ..precision import FP32, choose
from ..training import command_line, hardware_summary
from .precision import BOUNDS, at, compare, fmt, loaded_models

RESULTS = PROJECT_ROOT / "results" / "frontier.json"
SAMPLERS = ("DDIM", "DPM-Solver++ (multistep)", "UniPC (multistep)")
STEPS = (4, 5, 6, 8, 10, 15, 20, 30, 50)
REFERENCE = ("DDIM", 20)     # sampler, steps; at fp32
# tab (its demos/ module) -> the checkpoints it samples (its default must keep quality on every one)
TABS = {
    "ddpm": ("ddpm-mnist",),
    "cfg": ("cfg-mnist", "cfg-fashion-mnist"),
    "conditioning": ("cond-add-mnist", "cond-concat-mnist", "cond-cross-attention-mnist", "cond-adaln-mnist"),
    "zero_snr": ("brightness-eps-default", "brightness-eps-zerosnr", "brightness-v-default", "brightness-v-zerosnr"),
    "text2img": ("ldm-shapes",),
}
# the zero-SNR lesson is Lin et al.'s DDIM with its timestep spacings: its tab chooses DDIM's steps only
TAB_SAMPLERS = {"zero_snr": ("DDIM",)}


def measure_model(name: str, model, figures, n: int, seed: int, samplers=SAMPLERS, steps=STEPS, log=print) -> dict:
    """The reference and every (sampler, steps) point of one loaded model."""
    t0 = time.perf_counter()
    reference = figures(at(model, FP32), n, REFERENCE[1], seed, sampler=REFERENCE[0])
    row = {"n": n, "seed": seed, "steps": list(steps), "reference": reference,
           "reference_seconds": time.perf_counter() - t0, "points": []}
    served = choose(model.device, "auto", model=name)
    row["precision"] = served.name
    for sampler in samplers:
        for s in steps:
            t0 = time.perf_counter()
            fig = figures(at(model, served), n, s, seed, sampler=sampler)
            row["points"].append({"sampler": sampler, "steps": s, "figures": fig,
                                  "seconds": time.perf_counter() - t0})
            keeps, _ = compare(reference, fig, worse_only=True)
            log(f"  {name} {sampler} {s:>2} steps ({served.name}): {fig} {'keeps' if keeps else 'LOSES'} quality")
    return judged(row, samplers)


def judged(row: dict, samplers=SAMPLERS) -> dict:
    """Each point's verdict against the reference, and each sampler's cheapest stable point: derived from the
    measured figures alone, so a stored run is re-judged, not re-measured, when the rule changes."""
    for p in row["points"]:
        p["keeps_quality"], p["outside"] = compare(row["reference"], p["figures"], worse_only=True)
    row["cheapest"] = {sampler: cheapest_stable(row["points"], sampler) for sampler in samplers}
    return row


def cheapest_stable(points: list[dict], sampler: str) -> int | None:
    """The fewest steps s of `sampler` such that every measured point of it with steps ≥ s keeps quality."""
    best = None
    for p in sorted((p for p in points if p["sampler"] == sampler), key=lambda p: -p["steps"]):
        if not p["keeps_quality"]:
            break
        best = p["steps"]
    return best


def tab_default(doc: dict, tab: str) -> dict:
    """The cheapest (sampler, steps) stable for every measured model of `tab`; DDIM 20 when none is, or when none of
    its models was measured."""
    rows = [doc["models"][m] for m in TABS[tab] if m in doc.get("models", {})]
    best = None
    for order, sampler in enumerate(SAMPLERS):
        if sampler not in TAB_SAMPLERS.get(tab, SAMPLERS):
            continue
        per_model = [r["cheapest"].get(sampler) for r in rows]
        if rows and None not in per_model:
            point = (max(per_model), order, sampler)
            best = min(best, point) if best else point
    if best is None:
        return {"sampler": REFERENCE[0], "steps": REFERENCE[1], "measured": bool(rows)}
    return {"sampler": best[2], "steps": best[0], "measured": True}


def tab_choice(tab: str) -> tuple[str, int]:
    """(sampler, steps) the frontier chose for `tab`, from results/frontier.json (the reference when unmeasured)."""
    d = (read_json(RESULTS, {}) if RESULTS.exists() else {}).get("defaults", {}).get(tab)
    return (d["sampler"], d["steps"]) if d and d["measured"] else REFERENCE


def evaluate(n: int = 300, seed: int = 0, only=None, samplers=SAMPLERS, steps=STEPS, log=print) -> dict:
    doc = {"command": command_line(), "n": n, "seed": seed, "bounds": BOUNDS, "reference": list(REFERENCE),
           "steps": list(steps), "samplers": list(samplers), "hardware": hardware_summary(), "models": {}}
    for name, model, figures, _ in loaded_models(only, log):
        t0 = time.time()
        doc["models"][name] = measure_model(name, model, figures, n, seed, samplers, steps, log)
        log(f"{name}: cheapest stable points {doc['models'][name]['cheapest']} ({time.time() - t0:.0f} s)")
        yield doc


def sampler_label(sampler: str) -> str:
    return {"DPM-Solver++ (multistep)": "DPM-Solver++ 2M", "UniPC (multistep)": "UniPC"}.get(sampler, sampler)


def readme_section(doc: dict) -> str:
    lines = ["| model | points: n, steps, precision | reference: DDIM 20, fp32 | " +
             " | ".join(f"{sampler_label(s)}: fewest steps" for s in doc["samplers"]) + " |",
             "|---|---|---|" + "---|" * len(doc["samplers"])]
    for name, r in doc["models"].items():
        cells = []
        for s in doc["samplers"]:
            k = r["cheapest"].get(s)
            point = next((p for p in r["points"] if p["sampler"] == s and p["steps"] == k), None)
            cells.append(f"**{k}** ({fmt(point['figures'])})" if point else "none within bounds")
        steps = ", ".join(map(str, r["steps"]))
        lines.append(f"| {name} | n = {r['n']}; {steps}; {r['precision']} | {fmt(r['reference'])} | " +
                     " | ".join(cells) + " |")
    defaults = ", ".join(f"{tab}: {sampler_label(d['sampler'])} {d['steps']}" for tab, d in doc["defaults"].items())
    commands = " and ".join(f"`{c}`" for c in doc.get("commands", [doc["command"]]))
    return (f"Quality against sampling steps, {commands}, on {doc['hardware']}: each point at the precision the "
            "server picks on the machine that measured it (the conditional models: every class in turn; w = 3), "
            "against DDIM 20 at fp32 with the same seeds; a point keeps quality when it is no worse than the "
            "reference by more than the precision bounds (judge figures 1 point, FID 10 %, brightness 0.01). "
            "\"Fewest steps\": from there up, every measured point keeps quality. The tabs' defaults, the cheapest "
            f"point kept by all of a tab's models: {defaults}. The curves are in the Metrics tab.\n\n" +
            "\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", default=None, help="comma-separated steps (default: %s)" % ",".join(map(str, STEPS)))
    p.add_argument("--only", default=None, help="comma-separated checkpoint names (default: every diffusion model)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--write-readme", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = tuple(int(s) for s in args.steps.split(",")) if args.steps else STEPS
    old = read_json(RESULTS, {}) if RESULTS.exists() else {}
    t0, doc = time.time(), None
    for doc in evaluate(args.n, args.seed, args.only.split(",") if args.only else None, steps=steps):
        save(doc, old, time.time() - t0)   # after every model: a stopped run keeps what it measured
    if doc is None:
        print("nothing measured")
        return
    doc = save(doc, old, time.time() - t0)
    print(f"wrote {RESULTS.relative_to(PROJECT_ROOT)} ({doc['wall_seconds']} s)")
    if args.write_readme:
        from ..readme import replace_section
        replace_section("frontier", readme_section(doc))


def save(doc: dict, old: dict, seconds: float) -> dict:
    """Merge into the file's other models (measured in parts; each row keeps its own n and steps), recompute the
    tabs' defaults, write."""
    out = dict(doc)
    for row in old.get("models", {}).values():   # rows of a file written before rows carried their own n and steps
        row.setdefault("n", old["n"]), row.setdefault("seed", old["seed"]), row.setdefault("steps", old["steps"])
    out["models"] = {**old.get("models", {}), **doc["models"]}
    out["commands"] = sorted({*old.get("commands", [old.get("command")]), doc["command"]} - {None})
    out["wall_seconds"] = round(seconds) + (old.get("wall_seconds", 0) if old.get("models") else 0)
    out["models"] = {name: judged(row, out["samplers"]) for name, row in out["models"].items()}
    out["defaults"] = {tab: tab_default(out, tab) for tab in TABS}
    write_json(RESULTS, out)
    return out


if __name__ == "__main__":
    main()

"""Probe the MNIST DDPM while it trains: how its samples improve against training steps, from the saved states.

    python -m pipelines.ddpm.train --dataset mnist ... &                     # the trainer saves runs/ddpm-mnist/state
    python -m pipelines.measure.ddpm_probes --threads 1 --every 500          # beside it: one probe per 500 steps

Each probe loads the EMA weights of the state the trainer last saved (`runs/<name>/state`) into the shipped network's
architecture and samples `--n` images with DDIM `--steps` steps (20) (seeds 0…, `--batch` per seed) at fp32; the MNIST judge
gives the share judged with confidence > 0.9 and the class histogram's entropy. Probes go to `runs/<name>/probes.jsonl`
as they are made and, when the trainer has exported the checkpoint (`--until` reached), to
`checkpoints/<name>/probes.json`, which the card quotes (`pipelines.measure.ddpm`). Small n on purpose: the curve
shows where training stands; the card's n = 1000 figures are the measurement.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ..checkpoints import read_json, write_json
from ..training import command_line

PROBES = "probes.json"


def probe(model, state_dir: Path, n: int, batch: int, steps: int) -> dict:
    """One probe of the EMA weights in `state_dir` (loaded into `model.unet` in place)."""
    from .ddpm import judge_rows
    ema = torch.load(state_dir / "custom_checkpoint_0.pkl", weights_only=False)
    with torch.no_grad():
        for p, s in zip(model.unet.parameters(), ema["shadow_params"]):
            p.copy_(s.to(p.dtype))
    x = torch.cat([model.generate(sampler="DDIM", steps=steps, num_images=min(batch, n - i), seed=i // batch)
                   for i in range(0, n, batch)])
    confident, entropy, _ = (r["value"] for r in judge_rows(x, protocol=""))   # the card's own judge figures
    return {"confident": confident, "entropy": entropy}


def main(argv=None):
    from ..ddpm.pipeline import load_ddpm
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="ddpm-mnist")
    p.add_argument("--runs", default="runs")
    p.add_argument("--every", type=int, default=500, help="probe each saved state whose step is a multiple of this")
    p.add_argument("--until", type=int, default=None, help="stop after this step (default: the trainer's --steps)")
    p.add_argument("--n", type=int, default=160)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=20, help="DDIM steps per sample")
    p.add_argument("--poll", type=float, default=20.0, help="seconds between looks at the saved state")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    run = Path(args.runs) / args.name
    state, out = run / "state", run / "probes.jsonl"
    model = load_ddpm.__wrapped__(args.name, "cpu")
    done = {json.loads(line)["step"] for line in out.read_text().splitlines()} if out.exists() else set()
    while True:
        step = int((state / "step.txt").read_text()) if (state / "step.txt").exists() else 0
        if (step % args.every == 0 or step == args.until) and step not in done and step > 0:
            t0 = time.time()
            row = {"step": step, **probe(model, state, args.n, args.batch, args.steps)}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done.add(step)
            print(f"step {step}: confident {row['confident']:.3f}, entropy {row['entropy']:.3f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
        if args.until and step >= args.until:
            break
        time.sleep(args.poll)
    rows = sorted((json.loads(line) for line in out.read_text().splitlines()), key=lambda r: r["step"])
    folder = model.path
    write_json(folder / PROBES, {"command": command_line(), "n": args.n, "sampler": f"DDIM {args.steps} steps, η = 0",
                                 "seeds": f"0… ({args.batch} images each)", "weights": "EMA of each saved state, fp32",
                                 "probes": rows})
    print(f"wrote {folder / PROBES}")


def probes_md(folder: Path) -> str:
    """The card's table of the probes (empty when the run had none)."""
    doc = read_json(Path(folder) / PROBES, {})
    if not doc.get("probes"):
        return ""
    lines = ["## Samples against training steps", "",
             f"Probed while training by `{doc['command']}`: {doc['n']} images per probe, {doc['sampler']}, seeds "
             f"{doc['seeds']}, the {doc['weights']} (a small sample: the figures above are the measurement).", "",
             "| step | judged confident (> 0.9) | class-histogram entropy / log 10 |", "|---|---|---|"]
    lines += [f"| {r['step']:,} | {r['confident']:.3f} | {r['entropy']:.3f} |" for r in doc["probes"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

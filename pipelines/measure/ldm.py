"""Prompt adherence of the shapes latent diffusion model, judged by the shipped shapes judge.

    python -m pipelines.measure.ldm --threads 2          # the protocol below -> checkpoints/ldm-shapes/metrics.json
    python -m pipelines.measure.ldm --quick              # smoke test (16 prompts, 10 steps) -> results/quick/
    python -m pipelines.measure.ldm --write-readme       # also refresh the README's text-to-image figures

Protocol: `--n` prompts written with the HELD-OUT caption phrasings (test split of `pipelines.shapes.data`, never
seen in training), one image each, DDIM `--steps` steps with the model's own schedule, at every CFG scale w in
`--scales` (0, 1, 3, 7), the same seeds at every w (batch k of 16 uses seed·1000 + k). The judge
(`checkpoints/shapes-judge`) reads each image; a figure is the share of images whose attribute (shape, colour,
size, position, background) is the one the prompt asked for, and "all" the share with all five right.
References at the same n: the judge on the real test images of those prompts, and on their VAE reconstructions
D(μ(x)) (the ceiling: every generated image is drawn by that decoder). Target (issue 6): at the best w, shape and
colour each right in ≥ 90% of the samples.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ..cards import update_metrics
from ..checkpoints import PROJECT_ROOT, checkpoints_root, read_json, write_json
from ..shapes.data import ATTRIBUTE_NAMES, heldout_prompts, shapes_tensors, to_float
from ..training import command_line, hardware_summary
from ..ldm import NAME
from ..ldm.card import write_ldm_card
from ..ldm.pipeline import load_ldm
from .context import Context
from .protocol import Protocol
from .samplers import generate_for, ldm_sample, shapes_prompts

SCALES = (0, 1, 3, 7)
TARGET = 0.9
EVALUATION = "pipelines.measure.ldm"


def evaluate(n: int = 240, steps: int = 20, scales=SCALES, seed: int = 0, name: str = NAME, device=None,
             log=print) -> dict:
    from ..shapes.judge import load_judge
    from ..ldm.vae import reconstruct

    model, judge = load_ldm(name, device), load_judge("cpu")
    captions, labels = heldout_prompts(n, seed)
    # references: the real test images of these prompts, and their reconstructions through the model's VAE
    real8, _, _ = shapes_tensors("test", n, seed=seed)
    real = judge.score(to_float(real8), labels)
    recon = judge.score(reconstruct(model.vae, real8), labels)
    log(f"judge on real images: {_fmt(real)}; on VAE reconstructions: {_fmt(recon)}")
    sweep = []
    for w in scales:
        t0 = time.time()
        images = generate_for(model, captions, w, steps, seed)
        acc = judge.score(images, labels)
        sweep.append({"w": w, **acc, "seconds": round(time.time() - t0, 1)})
        log(f"w = {w:g}: {_fmt(acc)} ({time.time() - t0:.0f} s)")
    best = max(sweep, key=lambda r: (min(r["shape"], r["colour"]), r["all"]))
    protocol = (f"{n} held-out-phrasing prompts, 1 image each, DDIM {steps} steps ({model.spacing} spacing), "
                f"seeds {seed}·1000 + batch, same noise at every w; shapes-judge")
    return {"command": command_line(), "checkpoint": name, "weights": model.weights_hash, "n": n, "steps": steps,
            "seed": seed, "phrasings": "heldout", "judge_test_accuracy": judge.test_accuracy,
            "real": real, "reconstructed": recon, "sweep": sweep, "best_scale": best["w"],
            "best": {a: best[a] for a in (*ATTRIBUTE_NAMES, "all")},
            "target": TARGET, "target_met": best["shape"] >= TARGET and best["colour"] >= TARGET,
            "protocol": protocol, "hardware": hardware_summary()}


def _fmt(acc: dict) -> str:
    return " / ".join(f"{a} {acc[a]:.3f}" for a in (*ATTRIBUTE_NAMES, "all"))


def _cells(acc: dict) -> str:
    return " / ".join(f"{acc[a]:.3f}" for a in ATTRIBUTE_NAMES) + f"; {acc['all']:.3f}"


def rows(doc: dict) -> list[dict]:
    head = "judge accuracy (shape / colour / size / position / background; all five)"
    out = [{"figure": f"{head}, real test images", "value": _cells(doc["real"]), "protocol": doc["protocol"]},
           {"figure": f"{head}, their VAE reconstructions (the ceiling)", "value": _cells(doc["reconstructed"]),
            "protocol": doc["protocol"]}]
    out += [{"figure": f"{head}, generated at w = {r['w']:g}", "value": _cells(r), "protocol": doc["protocol"]}
            for r in doc["sweep"]]
    b = doc["best"]
    out.append({"figure": "best w (max of min(shape, colour)) and its shape / colour accuracy",
                "value": f"w = {doc['best_scale']:g}: {b['shape']:.3f} / {b['colour']:.3f} "
                         f"({'meets' if doc['target_met'] else 'misses'} the ≥ {doc['target']:.0%} target)",
                "protocol": doc["protocol"]})
    return out


def readme_section(folder: str | Path | None = None) -> str:
    """The README's text-to-image figures, read from checkpoints/ldm-shapes/metrics.json."""
    m = read_json(Path(folder or checkpoints_root() / NAME) / "metrics.json", {})
    doc = m.get("adherence")
    if not doc:
        return "_No measured figures yet: run `python -m pipelines.measure.ldm --write-readme`._"
    lines = ["| images | shape | colour | size | position | background | all five |", "|---|---|---|---|---|---|---|"]
    for label, acc in [("real test images", doc["real"]), ("VAE reconstructions (ceiling)", doc["reconstructed"])] + \
            [(f"generated, w = {r['w']:g}", r) for r in doc["sweep"]]:
        lines.append(f"| {label} | " + " | ".join(f"{acc[a]:.3f}" for a in (*ATTRIBUTE_NAMES, "all")) + " |")
    return (f"Prompt adherence of `ldm-shapes`, measured by `{doc['command']}` ({doc['protocol']}): the share of "
            f"images whose attribute is the one the prompt asked for. Best w = {doc['best_scale']:g} "
            f"({'meets' if doc['target_met'] else 'misses'} the target: shape and colour ≥ {doc['target']:.0%}).\n\n"
            + "\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=240, help="held-out prompts (one image each) per scale")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--scales", default=",".join(map(str, SCALES)))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=NAME)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--quick", action="store_true", help="16 prompts, 10 steps; written to results/quick/ only")
    p.add_argument("--write-readme", action="store_true", help="refresh the README's text-to-image figures")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n, steps = (16, 10) if args.quick else (args.n, args.steps)
    scales = [float(s) if "." in s else int(s) for s in args.scales.split(",")]
    t0 = time.time()
    doc = evaluate(n, steps, scales, args.seed, args.name, args.device)
    doc["wall_seconds"] = round(time.time() - t0)
    if args.quick:
        out = PROJECT_ROOT / "results" / "quick"
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / f"{args.name}.json", dict(doc, rows=rows(doc)))
        print(f"quick run (not a measurement): wrote {out / (args.name + '.json')} ({doc['wall_seconds']} s)")
        return
    folder = load_ldm(args.name, args.device).path
    update_metrics(folder, EVALUATION, doc["command"], rows(doc), adherence=doc)
    write_ldm_card(folder)
    print(f"wrote {folder / 'metrics.json'} and README.md ({doc['wall_seconds']} s); best w = {doc['best_scale']:g}, "
          f"target {'met' if doc['target_met'] else 'missed'}")
    if args.write_readme:
        from ..readme import replace_section
        replace_section("ldm", readme_section(folder))


# ----------------------------------------------------------------------------- in the evaluation command
T2I_PLOT = "Text to image on captioned shapes, held-out prompts: latent diffusion vs StackGAN"


def t2i_protocol(p: Protocol, what: str) -> str:
    return (f"{p.n:,} held-out-phrasing test prompts, 1 image each, {what}, seeds {p.seed}·1000 + batch; accuracy = "
            "the shapes judge reads both the requested shape and colour")


def suite_rows(ctx: Context) -> list[dict]:
    """FID, IS and judge accuracy of latent diffusion on held-out prompts (`python -m pipelines.evaluate`)."""
    p = ctx.protocol
    images, w = ldm_sample(p.n, p.seed, p.guided_steps)
    _, labels = shapes_prompts(p.n, p.seed)
    setting = f"w = {w:g} (its measured best), DDIM {p.guided_steps} steps"
    return ctx.score(images, "shapes", "latent diffusion (ldm-shapes)", setting,
                     protocol=t2i_protocol(p, setting), labels=labels,
                     plot=dict(name=T2I_PLOT, x="latent diffusion", x_label="model", series="held-out prompts"))


if __name__ == "__main__":
    main()

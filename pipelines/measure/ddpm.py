"""Measure the shipped MNIST DDPM and write its model card.

    python -m pipelines.measure.ddpm                                        # n=1000, DDIM 50 (a few minutes)
    python -m pipelines.measure.ddpm --sampler "DDPM (ancestral)" --steps 1000   # all 1000 ancestral steps (long)

Figures (into checkpoints/ddpm-mnist/metrics.json, then README.md via cards.write_card):
  - the MNIST judge's verdict on samples: share judged with confidence > 0.9, and the class histogram;
  - FID and IS on the judge's features against the MNIST test split, beside the same figures for
    n real training images (the floor at this n: FID is biased upwards at small n).

Each sampler's figures are rows of their own (the protocol names it); measuring one sampler keeps the other's rows.
Bar (issue 17), with DDIM 50 and with DDPM ancestral over all 1000 steps: FID ≤ 3× the floor, ≥ 85% judged with
confidence > 0.9, the class histogram near uniform.
"""
from __future__ import annotations

import argparse
import time

import torch

from ..cards import format_value, update_metrics, write_card
from ..metrics.scoring import real_floor, score_images
from ..training import command_line
from ..ddpm.pipeline import load_ddpm
from .context import Context
from .ddpm_probes import probes_md
from .samplers import DDPM_SAMPLERS, ddpm_sample

SUMMARY = """A DDPM (Ho et al. 2020) trained here on the MNIST training set: a diffusers `UNet2DModel`
(28→14→7, self-attention at 7×7), ε-prediction, linear betas 1e-4…0.02 over T = 1000 steps, EMA weights
stored in fp16. Folder layout is diffusers' `DDPMPipeline` (`unet/`, `scheduler/`), so
`DDPMPipeline.from_pretrained` loads it too. Sampled live in the "Forward & reverse diffusion" tab."""


FID_BAR, CONFIDENT_BAR = 3.0, 0.85


def judge_rows(x: torch.Tensor, protocol: str) -> list[dict]:
    from ..classifier import load_classifier
    probs = load_classifier("mnist").predict_proba(x)
    hist = torch.bincount(probs.argmax(-1), minlength=10).float() / len(x)
    entropy = -(hist[hist > 0] * hist[hist > 0].log()).sum().item() / torch.log(torch.tensor(10.0)).item()
    return [
        dict(figure="judged a digit with confidence > 0.9", value=(probs.max(-1).values > 0.9).float().mean().item(),
             protocol=protocol),
        dict(figure="class-histogram entropy / log 10 (1 = uniform)", value=entropy, protocol=protocol),
        dict(figure="largest class share", value=hist.max().item(), protocol=protocol),
    ]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="ddpm-mnist")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--sampler", default="DDIM", choices=list(DDPM_SAMPLERS))
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_ddpm(args.name)
    # 1. samples: batch b uses seed + b, so any n reproduces the first images of a larger run
    x = torch.cat([model.generate(sampler=args.sampler, steps=args.steps, num_images=min(args.batch, args.n - i),
                                  seed=args.seed + i // args.batch)
                   for i in range(0, args.n, args.batch)])
    protocol = f"{DDPM_SAMPLERS[args.sampler]}, {args.steps} steps, n={args.n}, seeds {args.seed}…"
    rows = judge_rows(x, protocol)
    # 2. FID / IS on the judge's features, and the real-data floor at the same n
    s, floor = score_images(x, "mnist", "mnist-classifier"), real_floor("mnist", "mnist-classifier", args.n)
    rows += [dict(figure=s.fid_label, value=s.fid, protocol=protocol + "; vs MNIST test split"),
             dict(figure=floor.fid_label + " — real training images (floor)", value=floor.fid,
                  protocol=f"n={args.n} real training images vs MNIST test split"),
             dict(figure=s.is_label, value=s.is_mean, protocol=protocol),
             dict(figure=floor.is_label + " — real training images", value=floor.is_mean,
                  protocol=f"n={args.n} real training images")]
    rows.append(dict(figure="issue 17's bar: FID ≤ 3× the floor and ≥ 85% judged confident",
                     value=("meets" if s.fid <= FID_BAR * floor.fid and rows[0]["value"] >= CONFIDENT_BAR else "misses")
                     + f" (FID {s.fid / floor.fid:.2f}× the floor, {rows[0]['value']:.1%} confident)", protocol=protocol))
    evaluation = "ddpm-card" if args.sampler == "DDIM" else f"ddpm-card-{args.sampler}"
    update_metrics(model.path, evaluation, command_line(), rows)
    write_card(model.path, "MNIST DDPM", SUMMARY, extra=probes_md(model.path))
    for r in rows:
        print(f"{r['figure']}: {format_value(r)}   ({r['protocol']})")


# ----------------------------------------------------------------------------- in the evaluation command
def suite_rows(ctx: Context) -> list[dict]:
    """FID and IS against sampling steps, DDIM beside strided DDPM ancestral (`python -m pipelines.evaluate`)."""
    load_ddpm()  # CheckpointMissing -> skipped
    p, rows = ctx.protocol, []
    for sampler, label in DDPM_SAMPLERS.items():
        for steps in p.steps:
            t0 = time.time()
            images = ddpm_sample(sampler, p.n, p.seed, steps)
            ctx.log(f"  {label}, {steps} steps: {p.n} images in {time.time() - t0:.0f}s")
            rows += ctx.score(images, "mnist", "MNIST DDPM", f"{label}, {steps} steps",
                              protocol=f"{p.n:,} samples, {steps} {label} steps, seeds {p.seed}·1000 + batch",
                              plot=dict(name="MNIST DDPM: quality vs sampling steps", x=steps,
                                        x_label="sampling steps", series=label))
    return rows


if __name__ == "__main__":
    main()

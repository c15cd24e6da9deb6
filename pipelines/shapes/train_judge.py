"""Train the shapes attribute judge on freshly generated images; then measure it and write its card.

    python -m pipelines.shapes.train_judge --threads 1

Data: items 0..N-1 of the generator's train split, each rendered at 64 px and at 32 px (the 32 px
copy is upsampled to 64 by the judge, as a StackGAN Stage I output would be); half of every batch
is the 32 px version. Light augmentation (pixel noise, small brightness / contrast / colour shifts)
keeps the judge from depending on the renderer's exact pixel values, since it is meant to judge
generated images. Model selection: none; the last weights are shipped. A few minutes on 1 CPU thread.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ..checkpoints import write_json
from ..training import add_run_args, command_line, hardware_summary, run_paths
from .data import ATTRIBUTE_NAMES, ATTRIBUTES, DATA_VERSION, shapes_tensors
from .judge import LABEL_SMOOTHING, NAME, ShapesJudge


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Per-image pixel noise (sigma up to 0.08), contrast x[0.9, 1.1], brightness and per-channel shifts
    of up to 0.05 each."""
    n = len(x)
    sigma = 0.08 * torch.rand(n, 1, 1, 1, generator=g)
    contrast = 0.9 + 0.2 * torch.rand(n, 1, 1, 1, generator=g)
    shift = 0.05 * (2 * torch.rand(n, 1, 1, 1, generator=g) - 1) + 0.05 * (2 * torch.rand(n, 3, 1, 1, generator=g) - 1)
    return (x * contrast + shift + sigma * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def batch_at(x64, x32, idx, model, g):
    """Half the batch from the 64 px renders, half from the 32 px renders (upsampled by the judge)."""
    half = len(idx) // 2
    return augment(torch.cat([model.preprocess(x64[idx[:half]]), model.preprocess(x32[idx[half:]])]), g)


@torch.no_grad()
def accuracies(model, x, y) -> dict[str, float]:
    return {a: v for a, v in model.score(x, y).items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-images", type=int, default=20_000)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--val-images", type=int, default=1000)
    add_run_args(p)
    args = p.parse_args(argv)
    _, out = run_paths(args, NAME)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)

    t0 = time.time()
    x64, _, y = shapes_tensors("train", args.train_images, 64)
    x32, _, y32 = shapes_tensors("train", args.train_images, 32)
    assert torch.equal(y, y32)
    xv64, _, yv = shapes_tensors("val", args.val_images, 64)
    xv32, _, _ = shapes_tensors("val", args.val_images, 32)
    print(f"rendered {2 * (args.train_images + args.val_images):,} images in {time.time() - t0:.0f} s", flush=True)

    model = ShapesJudge(width=args.width)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.15)
    curve, running, step = [], None, 0
    while step < args.steps:
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y) - args.batch_size + 1, args.batch_size):
            idx = perm[i:i + args.batch_size]
            model.train()
            logits = model(batch_at(x64, x32, idx, model, g))
            loss = sum(F.cross_entropy(logits[a], y[idx, j], label_smoothing=LABEL_SMOOTHING)
                       for j, a in enumerate(ATTRIBUTE_NAMES))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step(), sched.step()
            step += 1
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if step % 50 == 0:
                curve.append([step, round(running, 4)])
            if step % 500 == 0 or step == args.steps:
                v64, v32 = accuracies(model, xv64, yv), accuracies(model, xv32, yv)
                print(f"step {step}/{args.steps}: loss {running:.4f}  val@64 "
                      + " ".join(f"{a} {v64[a]:.3f}" for a in ATTRIBUTE_NAMES)
                      + f"  val@32 all {v32['all']:.3f}  ({time.time() - t0:.0f} s)", flush=True)
            if step == args.steps:
                break

    out.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()},
              out / "model.safetensors")
    write_json(out / "config.json", dict(model.config, data={
        "generator": "pipelines.shapes.data", "version": DATA_VERSION,
        "attributes": {a: list(v) for a, v in ATTRIBUTES.items()}}))
    model.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in state.items()})
    v64, v32 = accuracies(model, xv64, yv), accuracies(model, xv32, yv)
    write_json(out / "training_record.json", {
        "command": command_line(), "dataset": f"captioned shapes (pipelines.shapes.data v{DATA_VERSION}), "
                                              "train split, rendered at 64 px and 32 px",
        "train_images": args.train_images, "steps": step, "batch_size": args.batch_size,
        "epochs": round(step * args.batch_size / args.train_images, 2),
        "parameters": sum(p.numel() for p in model.parameters()),
        "wall_seconds": round(time.time() - t0), "hardware": hardware_summary(),
        "final_loss": curve[-1][1] if curve else None, "loss_curve": curve,
        "val_accuracy_64px": v64, "val_accuracy_32px": v32, "val_images": args.val_images,
        "note": "val accuracies are measured with the fp16-stored weights, as shipped",
    })
    if args.output is None:  # the shipped judge: measure it on the test split and write its card
        from .evaluate_judge import evaluate
        evaluate()
    print(f"saved {out}")


if __name__ == "__main__":
    main()

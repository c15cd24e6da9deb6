"""Train a judge classifier on the real training set; records its accuracy on the real test set.

    python -m pipelines.classifier.train --dataset mnist
    python -m pipelines.classifier.train --dataset fashion-mnist --epochs 8
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ..checkpoints import write_json
from ..data import dataset_tensors
from ..training import add_run_args, command_line, hardware_summary, run_paths
from .model import JudgeCNN


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 2 pixels: cheap, and keeps the judge honest on slightly off-centre samples."""
    dx, dy = torch.randint(-2, 3, (2,), generator=generator).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


@torch.no_grad()
def accuracy(model, x, y) -> float:
    model.eval()
    return (model.predict_proba(x).argmax(-1) == y).float().mean().item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    add_run_args(p)
    args = p.parse_args(argv)
    _, out = run_paths(args, f"classifier-{args.dataset}")
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x, y = dataset_tensors(args.dataset, True, args.data_root)
    x_test, y_test = dataset_tensors(args.dataset, False, args.data_root)

    model = JudgeCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * (len(x) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    t0, curve, step = time.time(), [], 0
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x) - args.batch_size + 1, args.batch_size):
            idx = perm[i:i + args.batch_size]
            loss = F.cross_entropy(model(augment(x[idx], gen)), y[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step(), sched.step()
            step += 1
            if step % 50 == 0:
                curve.append([step, round(loss.item(), 4)])
        acc = accuracy(model, x_test, y_test)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.4f}, test accuracy {acc:.4f}", flush=True)

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items() if v.is_floating_point()}
              | {k: v for k, v in model.state_dict().items() if not v.is_floating_point()},
              out / "model.safetensors")
    write_json(out / "config.json", model.config)
    model.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    write_json(out / "training_record.json", {
        "command": command_line(), "dataset": args.dataset, "train_images": len(x), "epochs": args.epochs,
        "steps": step, "batch_size": args.batch_size, "wall_seconds": round(time.time() - t0),
        "hardware": hardware_summary(), "final_loss": curve[-1][1] if curve else None, "loss_curve": curve,
        "test_accuracy": accuracy(model, x_test, y_test), "test_images": len(x_test),
        "note": "test_accuracy is measured with the fp16-stored weights, as shipped",
    })
    if args.output is None:  # the shipped judge: measure it and write its card
        from .evaluate import evaluate
        evaluate(args.dataset, f"python -m pipelines.classifier.evaluate --dataset {args.dataset}")
    print(f"saved {out}")


if __name__ == "__main__":
    main()

"""Train the convolutional VAE on MNIST (loss = BCE + β·KL, see model.py).

    python -m pipelines.vae.train --latent-dim 2  --beta 1.0 --epochs 8     # -> checkpoints/vae-mnist-2d
    python -m pipelines.vae.train --latent-dim 16 --beta 1.0 --epochs 8     # -> checkpoints/vae-mnist-16d
    python -m pipelines.measure.vae --name vae-mnist-2d                      # then: figures + model card

β (`--beta`) is the trade-off knob of the β-VAE (Higgins et al. 2017): β < 1 favours sharp
reconstructions over a well-filled latent space, β > 1 favours a smooth latent space close to
N(0, I) (better interpolations and samples) over reconstruction detail. β = 1 is the true ELBO.

Resumable: weights, optimiser and RNG state go to `runs/<name>/state.pt` after every epoch;
re-running the same command continues from there. `--threads 1` keeps it polite on a shared CPU.
"""
from __future__ import annotations

import argparse
import time

import torch
from safetensors.torch import save_file

from ..checkpoints import write_json
from ..data import dataset_tensors
from ..training import (RunLog, add_earlier_arg, add_run_args, command_line, downsample_curve, earlier_runs, hardware_summary,
                        run_paths, with_earlier)
from ..runtime import count_parameters
from .model import ConvVAE, to_unit, vae_loss


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--beta", type=float, default=1.0, help="weight of the KL term (1 = the ELBO)")
    p.add_argument("--width", type=int, default=32, help="channels of the first conv (second has 2x)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="Adam's peak rate (width 64 needs 1e-3: at 2e-3 its "
                   "posterior collapses onto the prior, KL ≈ 0, within 150 steps)")
    p.add_argument("--mixed-precision", default="no", choices=["no", "bf16"],
                   help="bf16 autocast for the convolutions and linear layers (the loss stays fp32)")
    p.add_argument("--name", default=None, help="run / checkpoint name (default: vae-mnist-<latent-dim>d)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (smoke tests)")
    add_run_args(p)
    add_earlier_arg(p)
    return p.parse_args(argv)


@torch.no_grad()
def test_elbo(model: ConvVAE, x: torch.Tensor, seed: int, batch_size: int = 1000) -> float:
    """Mean ELBO per test image (nats), one seeded z = μ + σ·ε per image, in fp32: the figure of the card."""
    model.eval()
    gen, total = torch.Generator().manual_seed(seed), 0.0
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        logits, mu, logvar = model(xb, gen)
        total -= vae_loss(logits, xb, mu, logvar)[0].item() * len(xb)
    model.train()
    return total / len(x)


def main(argv=None):
    args = parse_args(argv)
    name = args.name or f"vae-mnist-{args.latent_dim}d"
    run_dir, out_dir = run_paths(args, name)
    torch.manual_seed(args.seed)

    # 1. data: MNIST training images as Bernoulli means in [0, 1] (BCE needs targets in [0, 1]); the test
    #    split only measures the ELBO after each epoch (the curve the card shows), it never trains
    x_train = to_unit(dataset_tensors("mnist", train=True, root=args.data_root, limit=args.limit)[0])
    x_test = to_unit(dataset_tensors("mnist", train=False, root=args.data_root, limit=args.limit)[0])
    steps_per_epoch = len(x_train) // args.batch_size
    total_steps = args.epochs * steps_per_epoch

    # 2. model + Adam with a cosine decay over the whole run
    model = ConvVAE(args.latent_dim, args.width)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps, eta_min=args.lr * 0.05)
    gen = torch.Generator().manual_seed(args.seed)

    # 3. resume
    log, epoch, step, state_path = RunLog(run_dir), 0, 0, run_dir / "state.pt"
    elbo_curve: list[list[float]] = []   # [step, test ELBO] after each epoch
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"]), opt.load_state_dict(state["opt"]), sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        epoch, step, elbo_curve = state["epoch"], state["step"], state.get("test_elbo_curve", [])
        sched.T_max = total_steps   # resumed with more --epochs: the cosine stretches to the new end
        print(f"resumed {name} at epoch {epoch} (step {step})", flush=True)

    # 4. minimise BCE + β·KL with one reparameterised sample z = μ + σ·ε per image
    t_last = time.time()
    while epoch < args.epochs:
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        for i in range(steps_per_epoch):
            x = x_train[perm[i * args.batch_size:(i + 1) * args.batch_size]]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.mixed_precision == "bf16"):
                logits, mu, logvar = model(x, gen)
            loss, rec, kl = vae_loss(logits.float(), x, mu.float(), logvar.float(), args.beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step(), sched.step()
            step += 1
            log.log(step=step, loss=loss.item(), rec=rec.item(), kl=kl.item())
            if step % 100 == 0:
                rate = 100 / (time.time() - t_last)
                t_last = time.time()
                print(f"epoch {epoch + 1} step {step}/{total_steps} loss {loss.item():.2f} "
                      f"(BCE {rec.item():.2f} + β·KL {args.beta:g}·{kl.item():.2f}) {rate:.1f} it/s", flush=True)
        epoch += 1
        elbo = test_elbo(model, x_test, args.seed)
        elbo_curve.append([step, round(elbo, 3)])
        print(f"epoch {epoch}: test ELBO {elbo:.2f} nats", flush=True)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "gen": gen.get_state(), "epoch": epoch, "step": step, "test_elbo_curve": elbo_curve}, state_path)
        log.save_meta()

    # 5. export: fp16 safetensors + config + training record (evaluation writes metrics.json and the card)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, out_dir / "model.safetensors")
    write_json(out_dir / "config.json", {"_class_name": "ConvVAE", **model.config})
    rows = log.rows(upto_step=step)
    tail = rows[-100:]
    write_json(out_dir / "training_record.json", with_earlier({
        "command": command_line(), "dataset": "mnist", "split": "train", "train_images": len(x_train),
        "latent_dim": args.latent_dim, "beta": args.beta, "width": args.width, "lr": args.lr, "seed": args.seed,
        "mixed_precision": args.mixed_precision,
        "steps": step, "batch_size": args.batch_size, "epochs": epoch, "parameters": count_parameters(model),
        "wall_seconds": round(log.wall_seconds()), "sessions": log.meta["sessions"], "hardware": hardware_summary(),
        "final_loss": sum(r["loss"] for r in tail) / max(1, len(tail)),
        "loss_note": "per image in nats: BCE summed over 784 pixels + β·KL (the negative ELBO when β = 1)",
        **{f"{key}_curve": [[s, round(v, 3)] for s, v in downsample_curve(rows, key)] for key in ("loss", "rec", "kl")},
        "test_elbo_curve": elbo_curve,
    }, earlier_runs(args.earlier, keep=("command", "width", "epochs", "wall_seconds", "test_elbo_curve"))))
    print(f"exported {name} to {out_dir} ({log.wall_seconds():.0f} s)", flush=True)


if __name__ == "__main__":
    main()

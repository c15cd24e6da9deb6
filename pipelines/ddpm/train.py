"""Train the MNIST DDPM (Ho et al. 2020, Algorithm 1) with accelerate: CPU, one GPU or many.

    python -m pipelines.ddpm.train --dataset mnist --steps 1500
    accelerate launch -m pipelines.ddpm.train --dataset mnist --steps 1500   # multi-GPU

Resumable: the full state (weights, EMA, optimiser, scheduler, RNG) is saved to
`runs/<name>/state` every `--save-every` steps and picked up again by re-running the same
command. At the end the EMA weights are exported to `checkpoints/<name>/` in diffusers'
DDPMPipeline layout (unet/ + scheduler/), with `training_record.json`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, TensorDataset

from ..checkpoints import read_json, write_json
from ..data import dataset_tensors
from ..runtime import count_parameters
from ..training import (EMA_DECAY, ResumableState, add_diffusion_args, add_run_args, autocast, command_line,
                        downsample_curve, hardware_summary, prepare_diffusion_training, regression_target, run_paths,
                        training_scheduler)
from .model import UNET_CONFIG, build_unet


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    p.add_argument("--name", default=None, help="run / checkpoint name (default: ddpm-<dataset>)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="continue a finished run: start from its exported EMA weights with a fresh optimiser and "
                        "learning-rate schedule; --steps counts from its last step, and its stages and wall time "
                        "carry over into the new record")
    add_diffusion_args(p, mixed_precision="bf16", save_every=250)  # 1.6× fp32 (python -m pipelines.train_speed)
    add_run_args(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    name = args.name or f"ddpm-{args.dataset}"
    run_dir, out_dir = run_paths(args, name)
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    set_seed(args.seed)

    # 1. data: the training split as [-1, 1] tensors
    x_train, _ = dataset_tensors(args.dataset, train=True, root=args.data_root)
    loader = DataLoader(TensorDataset(x_train), batch_size=args.batch_size, shuffle=True, drop_last=True)

    # 2. model, noise schedule, optimiser with warm-up + cosine decay, EMA of the weights
    unet = build_unet()
    prior = init_weights(unet, args.init_from) if args.init_from else {}
    base = prior.get("steps", 0)   # a continued run counts its steps from the finished run's last one
    noise_scheduler = training_scheduler(args)
    unet, opt, loader, lr_sched, ema = prepare_diffusion_training(
        accelerator, unet, loader, argparse.Namespace(**dict(vars(args), steps=args.steps - base)))

    # 3. resume if a saved state exists
    state = ResumableState(accelerator, run_dir, out_dir, name)
    log, step = state.log, state.step
    if prior and step == 0:  # the first session of a continued run: the finished run's record is its past
        step = base
        log.meta["wall_seconds"], log.meta["sessions"] = prior.get("wall_seconds", 0), prior.get("sessions", 0) + 1
        log.meta["history"] = prior.get("history", []) + [
            {"command": command_line(), "from_step": base, "start": "EMA weights of the run before, fresh optimiser"}]

    # 4. Algorithm 1: x_0 ~ data, t ~ U{0..T-1}, ε ~ N(0, I); regress the target on x_t
    unet.train()
    while step < args.steps:
        for (x0,) in loader:
            noise = torch.randn_like(x0)
            t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
            x_t = noise_scheduler.add_noise(x0, noise, t)  # x_t = sqrt(ᾱ_t)·x_0 + sqrt(1−ᾱ_t)·ε
            target = regression_target(noise_scheduler, x0, noise, t)  # ε or v
            with autocast(accelerator):  # bf16 where chosen (--mixed-precision)
                pred = unet(x_t, t).sample
            loss = F.mse_loss(pred.float(), target)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(unet.parameters(), 1.0)
            opt.step(), lr_sched.step(), opt.zero_grad(set_to_none=True)
            ema.step(unet.parameters())
            step += 1
            if state.step_done(step, args.steps, args.save_every, every=50, loss=loss.item(),
                               lr=lr_sched.get_last_lr()[0]):
                break

    # 5. export the EMA weights (fp16 on disk) + scheduler config + training record
    if accelerator.is_main_process:
        export = build_unet()
        ema.copy_to(export.parameters())
        out_dir.mkdir(parents=True, exist_ok=True)
        export.half().save_pretrained(out_dir / "unet")
        noise_scheduler.save_pretrained(out_dir / "scheduler")
        write_json(out_dir / "model_index.json", {"_class_name": "DDPMPipeline", "_diffusers_version": "0.42.1",
                                                  "scheduler": ["diffusers", "DDPMScheduler"],
                                                  "unet": ["diffusers", "UNet2DModel"]})
        rows = log.rows(upto_step=step)
        tail = [r["loss"] for r in rows[-100:]]
        write_json(out_dir / "training_record.json", {
            "command": command_line(), "dataset": args.dataset, "split": "train",
            "train_images": len(x_train), "steps": step, "batch_size": args.batch_size * accelerator.num_processes,
            **({"continued_from_step": base} if base else {}),
            "epochs": round(step * args.batch_size * accelerator.num_processes / len(x_train), 2),
            "lr": args.lr, "mixed_precision": args.mixed_precision,
            "channels_last": args.channels_last, "ema_decay": EMA_DECAY,
            "schedule": args.schedule, "prediction_type": args.prediction_type, "zero_snr": args.zero_snr,
            "parameters": count_parameters(export), "unet_config": UNET_CONFIG,
            "wall_seconds": round(log.wall_seconds()), "sessions": log.meta["sessions"],
            "history": log.meta["history"],
            "hardware": hardware_summary(), "final_loss": sum(tail) / max(1, len(tail)),
            "loss_curve": prior.get("loss_curve", []) + downsample_curve(rows),
        })
        accelerator.print(f"exported {name} to {out_dir}")


def init_weights(unet, checkpoint: str) -> dict:
    """Load a finished run's exported UNet into `unet` (fp32); return that run's training record."""
    from diffusers import UNet2DModel
    unet.load_state_dict(UNet2DModel.from_pretrained(Path(checkpoint) / "unet").float().state_dict())
    return read_json(Path(checkpoint) / "training_record.json", {})


if __name__ == "__main__":
    main()

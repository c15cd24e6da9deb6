"""Train a class-conditional DDPM for classifier-free guidance (Ho & Salimans 2022, Algorithm 1).

    python -m pipelines.cfg.train --dataset mnist
    python -m pipelines.cfg.train --dataset fashion-mnist
    python -m pipelines.cfg.train --dataset cifar10 --channels 64,128,256 --steps 50000   # downloads CIFAR-10
    python -m pipelines.cfg.train --dataset brightness-mnist --zero-snr --prediction-type v_prediction \
        --name zsnr-v-zero                                                                 # the zero-SNR lesson
    python -m pipelines.cfg.train --dataset mnist --conditioning adaln --name cond-adaln-mnist \
        --probe-every 250                                                                  # the conditioning lesson
    accelerate launch -m pipelines.cfg.train --dataset mnist                                # multi-GPU

One network learns both models: every image keeps its label with probability 1 − p_uncond and gets the
learned null label otherwise (a fresh coin per image). Resumable like `pipelines.ddpm.train`: the full
state is saved to `runs/<name>/state` every `--save-every` steps and picked up by re-running the same
command. At the end the EMA weights are exported (fp16) to `checkpoints/<name>/`: config.json,
model.safetensors, scheduler/, training_record.json, and a model card.
"""
from __future__ import annotations

import argparse
import shlex

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import save_file
from torch.utils.data import DataLoader, TensorDataset

from ..checkpoints import write_json
from ..data import CLASS_NAMES, dataset_tensors
from ..runtime import count_parameters
from ..training import (EMA_DECAY, ResumableState, add_diffusion_args, add_run_args, autocast, command_line,
                        hardware_summary, loss_summary, prepare_diffusion_training, regression_target, run_paths,
                        training_scheduler)
from .model import CONDITIONINGS, ClassConditionalUNet, drop_labels

P_UNCOND = 0.1


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=list(CLASS_NAMES))
    p.add_argument("--name", default=None, help="run / checkpoint name (default: cfg-<dataset>)")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch-size", type=int, default=96)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--p-uncond", type=float, default=P_UNCOND, help="probability of dropping each label")
    p.add_argument("--channels", default="32,64,64", help="UNet widths at full, 1/2 and 1/4 resolution")
    p.add_argument("--emb-dim", type=int, default=128)
    p.add_argument("--conditioning", default="add", choices=CONDITIONINGS, help="how the label enters the UNet")
    p.add_argument("--probe-every", type=int, default=0,
                   help="save the EMA weights to runs/<name>/probes/ every N steps (0: never), for measuring how "
                        "early the model obeys its label (python -m pipelines.measure.conditioning)")
    add_diffusion_args(p)
    add_run_args(p)
    return p.parse_args(argv)


def save_probe(ema, net, path) -> None:
    """The EMA weights at this step, in fp16: one point of the accuracy-against-training-steps curve."""
    ema.copy_to(net.parameters())
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, path)


def main(argv=None):
    args = parse_args(argv)
    name = args.name or f"cfg-{args.dataset}"
    run_dir, out_dir = run_paths(args, name)
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    set_seed(args.seed)

    # 1. data: the training split as [-1, 1] tensors with their labels
    x_train, y_train = dataset_tensors(args.dataset, train=True, root=args.data_root)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True, drop_last=True)

    # 2. model, noise schedule, optimiser with warm-up + cosine decay, EMA of the weights
    def build():
        return ClassConditionalUNet(in_channels=x_train.shape[1], image_size=x_train.shape[-1],
                                    num_classes=len(CLASS_NAMES[args.dataset]),
                                    channels=[int(c) for c in args.channels.split(",")], emb_dim=args.emb_dim,
                                    conditioning=args.conditioning)
    model = build()
    noise_scheduler = training_scheduler(args)
    model, opt, loader, lr_sched, ema = prepare_diffusion_training(accelerator, model, loader, args)

    # 3. resume if a saved state exists
    state = ResumableState(accelerator, run_dir, out_dir, name)
    log, step = state.log, state.step

    # 4. x_0, y ~ data; y -> null with prob p (per image); t ~ U{0..T-1}; regress ε (or v) on (x_t, t, y)
    null_label = accelerator.unwrap_model(model).null_label
    model.train()
    while step < args.steps:
        for x0, y in loader:
            y = drop_labels(y, args.p_uncond, null_label)
            noise = torch.randn_like(x0)
            t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
            x_t = noise_scheduler.add_noise(x0, noise, t)  # x_t = sqrt(ᾱ_t)·x_0 + sqrt(1−ᾱ_t)·ε
            with autocast(accelerator):  # bf16 where chosen (--mixed-precision)
                pred = model(x_t, t, y)
            loss = F.mse_loss(pred.float(), regression_target(noise_scheduler, x0, noise, t))  # ε or v
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(), lr_sched.step(), opt.zero_grad(set_to_none=True)
            ema.step(model.parameters())
            step += 1
            if args.probe_every and step % args.probe_every == 0 and accelerator.is_main_process:
                save_probe(ema, build(), run_dir / "probes" / f"step-{step:06d}.safetensors")
            if state.step_done(step, args.steps, args.save_every, loss=loss.item(), lr=lr_sched.get_last_lr()[0]):
                break

    # 5. export the EMA weights (fp16 on disk) + scheduler config + training record + card
    if accelerator.is_main_process:
        export = build()
        ema.copy_to(export.parameters())
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file({k: v.half().contiguous() for k, v in export.state_dict().items()}, out_dir / "model.safetensors")
        write_json(out_dir / "config.json", dict(export.config, _class_name="ClassConditionalUNet",
                                                 dataset=args.dataset, class_names=CLASS_NAMES[args.dataset]))
        noise_scheduler.save_pretrained(out_dir / "scheduler")
        write_json(out_dir / "training_record.json", {
            "command": command_line() if argv is None else "python -m pipelines.cfg.train " + shlex.join(argv), "dataset": args.dataset, "split": "train",
            "train_images": len(x_train), "steps": step, "batch_size": args.batch_size * accelerator.num_processes,
            "epochs": round(step * args.batch_size * accelerator.num_processes / len(x_train), 2),
            "lr": args.lr, "mixed_precision": args.mixed_precision,
            "channels_last": args.channels_last, "ema_decay": EMA_DECAY,
            "conditioning": args.conditioning, "probe_every": args.probe_every, "p_uncond": args.p_uncond, "label_dropout": "per sample, to a learned null embedding",
            "schedule": args.schedule, "zero_terminal_snr": args.zero_snr, "prediction_type": args.prediction_type,
            "timestep_spacing": noise_scheduler.config.timestep_spacing,
            "parameters": count_parameters(export), "model_config": export.config,
            "wall_seconds": round(log.wall_seconds()), "sessions": log.meta["sessions"],
            "history": log.meta["history"],
            "hardware": hardware_summary(), **loss_summary(log, step),
        })
        from .card import write_cfg_card
        write_cfg_card(out_dir)
        accelerator.print(f"exported {name} to {out_dir}")


if __name__ == "__main__":
    main()

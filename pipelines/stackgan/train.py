"""Train StackGAN on captioned shapes: Stage I (32 px) first, then Stage II (64 px) on top of the frozen Stage I.

    python -m pipelines.stackgan.train --stage 1 --threads 2                          # -> checkpoints/stackgan-stage1
    python -m pipelines.stackgan.train --stage 2 --threads 2                          # -> checkpoints/stackgan-stage2
    python -m pipelines.stackgan.train --stage 2 --upsample pixelshuffle --threads 2  # -> ...-stage2-pixelshuffle

The shipped checkpoints add `--steps 8000` (Stage I), `--steps 2000 --ndf 32` / `--steps 1500` (Stage II nearest /
PixelShuffle), `--sketch-skip` (Stage II) and `--projection --hard-attributes adaptive` (both stages;
pipelines/stackgan/__init__.py: COMMANDS).

Each optimiser step (Zhang et al. 2017, Algorithm as in the paper's code; `model.py` has the networks and losses):

    1. φ = the captions' sentence embeddings (frozen MiniLM, mean-pooled; computed once and cached)
    2. fake = G_0(z, ĉ_0(φ))                              Stage I
       fake = G(G_0(z, ĉ_0(φ)), ĉ(φ))                      Stage II, G_0 frozen (eval mode, no gradient)
    3. D step:  BCE(D(real, φ), 1) + ½·[BCE(D(real, φ_wrong), 0) + BCE(D(fake, φ), 0)]   (matching-aware)
                φ_wrong: a share `--hard-negatives` of them the right caption with one attribute changed
                (`negatives.py`: a random caption can be rejected by colour alone, so D never checked shape)
    4. G step:  BCE(D(fake, φ), 1) + λ·KL(N(μ, Σ) ‖ N(0, I))                           (eq. 5, λ = 2)

Adam, lr 2e-4, β = (0.5, 0.999) for both networks (the paper's). Every `--probe-every` steps a fixed set of
held-out prompts (8 prompts x 8 noise vectors) is drawn; the log records the judge's adherence and the
within-prompt diversity of those samples next to D's probabilities and the generator's gradient norm, which is
what the tab's failure-modes panel reads (mode collapse, non-convergence, vanishing gradients).

Any `CaptionedImages` dataset trains the same way (`--data folder --captions folder` for CUB-200 birds with the
captions of Reed et al.); adherence and diversity probes need the shapes' attribute labels and are skipped without.
Resumable (`runs/<name>/state`); the export is the generator and discriminator (safetensors) + config + record +
card, plus `training_samples.png` (the probe samples over training).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import time
from pathlib import Path

import torch

from ..checkpoints import checkpoints_root, weights_hash, write_json
from ..shapes.data import ATTRIBUTE_NAMES, DATA_VERSION, collate, shapes_tensors, to_float
from ..text_encoder import MODEL_NAME
from ..training import (ResumableState, add_earlier_arg, add_run_args, command_line, downsample_curve, earlier_runs,
                        hardware_summary, run_paths, with_earlier)
from . import NAMES, STAGE1_COMMAND
from .pipeline import load_generator
from .negatives import AdaptivePick, hard_negative_captions, pick_wrong
from .model import KL_WEIGHT, UPSAMPLES, StageIDiscriminator, StageIGenerator, StageIIDiscriminator, \
    StageIIGenerator, count_parameters, discriminator_loss, generator_loss, set_text_statistics

TRAIN_IMAGES = 10_000
PROBE_PROMPTS, PROBE_Z = 8, 8
CURVE_KEYS = ("d_loss", "g_loss", "g_adv", "kl", "d_real", "d_wrong", "d_fake", "g_grad_norm",
              *(f"d_wrong_{a}" for a in ATTRIBUTE_NAMES))   # the last five: D(wrong) on each attribute's hard negatives


# ----------------------------------------------------------------------------- data
def sentence_embeddings(captions: list[str], cache_dir: Path, batch_size: int = 256, log=print) -> torch.Tensor:
    """φ of every caption (N, 384), cached in `cache_dir` under a name made of the captions and the encoder, so
    both stages (and every variant) of one dataset encode its captions once."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    key = hashlib.sha256(json.dumps([MODEL_NAME, captions]).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"sentence-embeddings-{key}.safetensors"
    if cache.exists():
        with safe_open(str(cache), "pt") as f:
            if (f.metadata() or {}).get("key") == key:
                return f.get_tensor("phi")
    from ..text_encoder import load_text_encoder
    encoder, t0, out = load_text_encoder("cpu"), time.time(), []
    for i in range(0, len(captions), batch_size):
        out.append(encoder.encode(captions[i:i + batch_size]).pooled)
    phi = torch.cat(out).contiguous()
    log(f"encoded {len(captions)} captions with {MODEL_NAME} ({time.time() - t0:.0f} s)")
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({"phi": phi}, str(cache), metadata={"key": key})
    return phi


def training_data(args, resolution: int, run_dir: Path, log=print):
    """(images uint8 or float (N, 3, R, R), φ (N, 384), labels (N, 5) or None) from the shapes or a folder."""
    if args.data:
        from ..shapes.data import ImageCaptionFolder
        ds = ImageCaptionFolder(args.data, args.captions, resolution=resolution, seed=args.seed)
        images, captions, _ = collate([ds[i] for i in range(min(len(ds), args.train_images))])
        return images, sentence_embeddings(captions, run_dir.parent / "cache", log=log), None
    images, captions, labels = shapes_tensors("train", args.train_images, resolution=resolution, seed=args.seed)
    return images, sentence_embeddings(captions, run_dir.parent / "cache", log=log), labels


def as_float(images: torch.Tensor) -> torch.Tensor:
    return to_float(images) if images.dtype == torch.uint8 else images


# ----------------------------------------------------------------------------- the probe
class Probe:
    """A fixed set of held-out prompts and noise vectors, drawn every few steps while training."""

    def __init__(self, z_dim: int, seed: int = 0):
        from ..shapes.data import heldout_prompts
        from ..text_encoder import load_text_encoder
        self.captions, self.labels = heldout_prompts(PROBE_PROMPTS, seed)
        self.phi = load_text_encoder("cpu").encode(self.captions).pooled.repeat_interleave(PROBE_Z, 0)
        g = torch.Generator().manual_seed(1234 + seed)
        self.z = torch.randn(PROBE_PROMPTS * PROBE_Z, z_dim, generator=g)
        self.eps = torch.randn(PROBE_PROMPTS * PROBE_Z, 2, 1024, generator=g)  # enough for any c_dim <= 1024
        self.snapshots: list[tuple[int, torch.Tensor]] = []

    @torch.no_grad()
    def __call__(self, draw, step: int) -> dict:
        """`draw(z, φ, eps0, eps1)` -> images; returns the probe's log fields and keeps the first 4 per prompt."""
        from ..shapes.diversity import within_prompt_diversity
        from ..shapes.judge import load_judge
        images = draw(self.z, self.phi, self.eps[:, 0], self.eps[:, 1]).float().cpu()
        acc = load_judge("cpu").score(images, [lab for lab in self.labels for _ in range(PROBE_Z)])
        groups = images.view(PROBE_PROMPTS, PROBE_Z, *images.shape[1:])
        self.snapshots.append((step, groups[:, :4].reshape(-1, *images.shape[1:]).clone()))
        return {"shape": acc["shape"], "colour": acc["colour"], "all": acc["all"],
                "diversity": within_prompt_diversity(groups)}

    def save_strip(self, path: Path, run_dir: Path) -> None:
        """training_samples.png: one row per probe (4 samples of each of the 8 prompts), oldest at the top; the
        rows of earlier sessions come from runs/<name>/probes/."""
        from torchvision.utils import save_image
        probes = run_dir / "probes"
        probes.mkdir(parents=True, exist_ok=True)
        for step, imgs in self.snapshots:
            torch.save(imgs.half(), probes / f"{step:06d}.pt")
        files = sorted(probes.glob("*.pt"))
        keep = files[:: max(1, len(files) // 10)][:10] + ([files[-1]] if files else [])
        rows = [torch.load(f).float() for f in dict.fromkeys(keep)]
        if rows:
            save_image(torch.cat(rows), path, nrow=len(rows[0]), normalize=True, value_range=(-1, 1), padding=1)


# ----------------------------------------------------------------------------- the command
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", type=int, choices=[1, 2], required=True)
    p.add_argument("--upsample", default="nearest", choices=list(UPSAMPLES), help="Stage II's up-sampling blocks")
    p.add_argument("--name", default=None, help="run / checkpoint name (default: by stage and up-sampling)")
    p.add_argument("--stage1", default=None, help="Stage I checkpoint folder for --stage 2 "
                                                  "(default: checkpoints/stackgan-stage1)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default: 4000 Stage I, 1500 Stage II)")
    p.add_argument("--batch-size", type=int, default=None, help="default: 64 Stage I, 32 Stage II")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--hard-negatives", type=float, default=0.5,
                   help="share of D's wrong captions that are the right caption with one attribute changed "
                        "(negatives.py; 0 = the paper's random captions only)")
    p.add_argument("--hard-attributes", default="uniform", choices=["uniform", "adaptive"],
                   help="which attribute a hard negative changes: uniformly, or more often the ones D still accepts "
                        "(negatives.AdaptivePick)")
    p.add_argument("--kl-weight", type=float, default=KL_WEIGHT, help="λ of the conditioning-augmentation KL")
    p.add_argument("--c-dim", type=int, default=64, help="dimension of the conditioning vector ĉ")
    p.add_argument("--z-dim", type=int, default=64)
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--ndf", type=int, default=None, help="D width (default: 32 Stage I, 16 Stage II)")
    p.add_argument("--res-blocks", type=int, default=2)
    p.add_argument("--spectral-norm", action=argparse.BooleanOptionalAction, default=True,
                   help="spectrally normalise D instead of BatchNorm (--no-spectral-norm: the paper's D)")
    p.add_argument("--sketch-skip", action="store_true",
                   help="Stage II draws a correction to the up-sampled sketch (model.StageIIGenerator)")
    p.add_argument("--projection", action="store_true",
                   help="add the projection discriminator's term ⟨W t, Σ h⟩ to D's matching logit (model.MatchingLogit)")
    p.add_argument("--train-images", type=int, default=TRAIN_IMAGES)
    p.add_argument("--data", default=None, help="an image folder to train on instead of the shapes (e.g. CUB)")
    p.add_argument("--captions", default=None, help="its mirrored caption tree (one caption per line)")
    p.add_argument("--probe-every", type=int, default=250)
    p.add_argument("--save-every", type=int, default=250)
    add_run_args(p)
    add_earlier_arg(p)
    args = p.parse_args(argv)
    args.name = args.name or NAMES[(args.stage, args.upsample if args.stage == 2 else "nearest")]
    args.steps = args.steps or (4000 if args.stage == 1 else 1500)
    args.batch_size = args.batch_size or (64 if args.stage == 1 else 32)
    args.ndf = args.ndf or (32 if args.stage == 1 else 16)
    return args


def main(argv=None):
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    args = parse_args(argv)
    run_dir, out_dir = run_paths(args, args.name)
    accelerator = Accelerator(mixed_precision="no")
    set_seed(args.seed)
    dev = accelerator.device

    # 1. the networks (Stage II: on top of the frozen, shipped Stage I)
    if args.stage == 1:
        stage1, resolution = None, 32
        G = StageIGenerator(c_dim=args.c_dim, z_dim=args.z_dim, ngf=args.ngf)
        D = StageIDiscriminator(ndf=args.ndf, spectral_norm=args.spectral_norm, projection=args.projection)
    else:
        stage1_dir = Path(args.stage1) if args.stage1 else checkpoints_root() / NAMES[(1, "nearest")]
        if not (stage1_dir / "generator.safetensors").is_file():
            raise SystemExit(f"No Stage I generator in {stage1_dir}: train it first with  {STAGE1_COMMAND}")
        stage1, resolution = load_generator(stage1_dir).to(dev).eval(), 64
        G = StageIIGenerator(c_dim=args.c_dim, ngf=args.ngf, res_blocks=args.res_blocks, upsample=args.upsample,
                             sketch_skip=args.sketch_skip)
        D = StageIIDiscriminator(ndf=args.ndf, spectral_norm=args.spectral_norm, projection=args.projection)
    z_dim = stage1.config["z_dim"] if stage1 is not None else args.z_dim

    # 2. data: images at this stage's resolution and the captions' φ
    images, phi_all, labels = training_data(args, resolution, run_dir, log=accelerator.print)
    set_text_statistics(G, phi_all), set_text_statistics(D, phi_all)   # φ standardised inside both (buffers)
    tensors = [images, phi_all]
    if labels is not None and args.hard_negatives > 0:   # φ of each image's five one-attribute-changed captions
        hard = hard_negative_captions(labels, args.seed)
        tensors.append(sentence_embeddings(hard, run_dir.parent / "cache", log=accelerator.print)
                       .view(len(labels), len(ATTRIBUTE_NAMES), -1))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*tensors), batch_size=args.batch_size,
                                         shuffle=True, drop_last=True)
    opt_g = torch.optim.Adam(G.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=args.lr, betas=(0.5, 0.999))
    G, D, opt_g, opt_d, loader = accelerator.prepare(G, D, opt_g, opt_d, loader)
    state = ResumableState(accelerator, run_dir, out_dir, args.name)
    step = state.step
    probe = Probe(z_dim, args.seed) if labels is not None else None

    def draw(z, phi, eps0=None, eps1=None):
        """z, φ -> this stage's images (eps: the conditioning-augmentation noise; None = fresh)."""
        eps0 = eps0[:, :stage1.config["c_dim"] if stage1 is not None else args.c_dim] if eps0 is not None else None
        sketch, mu, logvar = (stage1 if stage1 is not None else G)(z.to(dev), phi.to(dev), eps0)
        if stage1 is None:
            return sketch, mu, logvar
        return G(sketch, phi.to(dev), eps1[:, :args.c_dim].to(dev) if eps1 is not None else None)

    def probe_draw(z, phi, eps0, eps1):
        G.eval()
        out = draw(z, phi, eps0, eps1)[0]
        G.train()
        return out

    adaptive = AdaptivePick() if args.hard_attributes == "adaptive" else None
    G.train(), D.train()
    while step < args.steps:
        for real, phi, *phi_hard in loader:
            # 1-2. the captions' φ and this stage's fake images
            real = as_float(real)
            z = torch.randn(len(real), z_dim, device=dev)
            if stage1 is not None:
                with torch.no_grad():
                    sketch = stage1(z, phi)[0]
                fake, mu, logvar = G(sketch, phi)
            else:
                fake, mu, logvar = G(z, phi)
            # 3. the discriminator: real+matching -> 1, real+mismatched -> 0, fake+matching -> 0
            phi_wrong, which = pick_wrong(phi, phi_hard[0] if phi_hard else None, args.hard_negatives,
                                          weights=adaptive.weights if adaptive else None)
            d_loss, probs = discriminator_loss(D, real, fake, phi, phi_wrong, which)
            if adaptive:
                adaptive.update(probs)
            opt_d.zero_grad(set_to_none=True)
            accelerator.backward(d_loss)
            opt_d.step()
            # 4. the generator: fool D on (fake, φ), keep ĉ's distribution near N(0, I)
            g_loss, parts = generator_loss(D, fake, phi, mu, logvar, args.kl_weight)
            opt_g.zero_grad(set_to_none=True)
            accelerator.backward(g_loss)
            grad_norm = torch.norm(torch.stack([p.grad.norm() for p in G.parameters() if p.grad is not None])).item()
            opt_g.step()
            step += 1
            fields = {"loss": g_loss.item(), "d_loss": d_loss.item(), "g_loss": g_loss.item(), **parts, **probs,
                      "g_grad_norm": grad_norm}  # step_done adds the seconds since the session began
            if probe is not None and (step % args.probe_every == 0 or step == args.steps or step == 1):
                fields["probe"] = probe(probe_draw, step)
                accelerator.print(f"step {step}: probe {json.dumps({k: round(v, 3) for k, v in fields['probe'].items()})}")
            if state.step_done(step, args.steps, args.save_every, note=f" D {d_loss.item():.3f} "
                               f"D(real) {probs['d_real']:.2f} D(wrong) {probs['d_wrong']:.2f} "
                               f"D(fake) {probs['d_fake']:.2f}", **fields):
                break
            if probe is not None and step % args.save_every == 0:
                probe.save_strip(run_dir / "training_samples.png", run_dir)
                probe.snapshots.clear()

    # 5. export both networks, config, record and card
    if accelerator.is_main_process:
        export(args, argv, out_dir, run_dir, accelerator.unwrap_model(G), accelerator.unwrap_model(D), state, step,
               stage1_dir if stage1 is not None else None, images, probe)


def export(args, argv, out_dir: Path, run_dir: Path, G, D, state, step: int, stage1_dir, images, probe) -> None:
    from safetensors.torch import save_file

    from .card import write_stackgan_card
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(out_dir / "generator.safetensors"))
    save_file({k: v.contiguous() for k, v in D.state_dict().items()}, str(out_dir / "discriminator.safetensors"))
    config = {"stage": args.stage, "generator": type(G).__name__, "generator_config": G.config,
              "discriminator": type(D).__name__, "discriminator_config": D.config,
              "resolution": 32 if args.stage == 1 else 64, "text_encoder": MODEL_NAME, "pooled": "mean, L2-normalised",
              "data": {"name": "shapes" if not args.data else "folder", "version": DATA_VERSION}}
    if stage1_dir is not None:
        config["stage1"] = {"name": stage1_dir.name, "weights": weights_hash(stage1_dir)}
    write_json(out_dir / "config.json", config)
    if probe is not None:
        probe.save_strip(out_dir / "training_samples.png", run_dir)
    rows = state.log.rows(upto_step=step)
    curves = {k: downsample_curve(have, k) for k in CURVE_KEYS if (have := [r for r in rows if k in r])}
    probes = [{"step": r["step"], **r["probe"]} for r in rows if "probe" in r]
    earlier = earlier_runs(args.earlier, keep=("command", "steps", "wall_seconds", "hard_negatives", "probes", "curves"))
    write_json(out_dir / "training_record.json", with_earlier({
        "command": command_line() if argv is None else "python -m pipelines.stackgan.train " + shlex.join(argv),
        "stage": args.stage, "upsample": args.upsample if args.stage == 2 else None,
        "dataset": (f"captioned shapes v{DATA_VERSION} (pipelines.shapes.data), training phrasings only, "
                    f"{'32' if args.stage == 1 else '64'} px") if not args.data else f"image folder {Path(args.data).name}",
        "train_images": len(images), "steps": step, "batch_size": args.batch_size,
        "epochs": round(step * args.batch_size / len(images), 2), "lr": args.lr, "adam_betas": [0.5, 0.999],
        "kl_weight": args.kl_weight, "hard_negatives": args.hard_negatives if probe is not None else 0.0,
        "hard_attributes": args.hard_attributes,
        "spectral_norm": args.spectral_norm, "parameters": count_parameters(G),
        "parameters_discriminator": count_parameters(D), "wall_seconds": round(state.log.wall_seconds()),
        "hardware": hardware_summary(), "history": state.log.meta.get("history", []),
        "final_loss": sum(r["g_loss"] for r in rows[-100:]) / max(1, len(rows[-100:])),
        "final_d_loss": sum(r["d_loss"] for r in rows[-100:]) / max(1, len(rows[-100:])),
        "loss_curve": curves.get("g_loss", []), "curves": curves, "probes": probes,
        "probe_protocol": f"{PROBE_PROMPTS} held-out-phrasing test prompts x {PROBE_Z} fixed noise vectors, "
                          "judged by shapes-judge; diversity = mean pairwise RMS pixel distance within a prompt"},
        earlier))
    write_stackgan_card(out_dir)
    print(f"exported {out_dir}")


if __name__ == "__main__":
    main()

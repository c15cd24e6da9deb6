"""Does a GPU give what the CPU gives? Each tab's main action and a short training run on two devices, compared
within stated tolerances, with the times printed.

    python scripts/gpu_check.py                     # CUDA against the CPU; without CUDA it says so and exits 0
    python scripts/gpu_check.py --device cpu        # the same checks, the CPU against itself (a dry run)
    python scripts/gpu_check.py --only ddpm,vae --train-steps 0

How the two are compared:
- every action runs at fp32 on both devices, TF32 off, with the noise drawn on the CPU (`runtime.randn`), so one seed
  is one x_T everywhere and the two runs follow the same path up to float rounding;
- **images**: mean |Δ| ≤ 0.01 and max |Δ| ≤ 0.5 between the two devices' images in [-1, 1] (rounding can flip a
  pixel near an edge of a deterministic path; a device that computes something else gives mean |Δ| of 0.1 or more);
- **training**: the class-conditional trainer's own command for `--train-steps` steps, seed 0, on each device in a
  fresh process; the mean loss of the last 10 steps agrees within 10 %;
- **times**: each action once more on the device at the precision the server picks there (bf16 or fp16 autocast on
  a GPU), after a warm-up, beside the CPU's fp32 time.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..checkpoints import CheckpointMissing
from ..precision import FP32, choose
from .frontier import tab_choice
from .precision import at

IMAGE_TOLERANCE = {"mean": 0.01, "max": 0.5}
LOSS_TOLERANCE = 0.10
PROMPT = "a picture of a large red circle sitting in the centre against a white backdrop"


def actions() -> dict[str, tuple[str, callable, callable]]:
    """tab -> (the checkpoint, load(device), main action(model) -> images in [-1, 1]) at the tab's defaults."""
    from ..cfg.pipeline import CONDITIONING_MODELS, load_cfg
    from ..ddpm.pipeline import load_ddpm
    from ..ldm.pipeline import NAME as LDM, load_ldm
    from ..stackgan.pipeline import STAGE2, load_stackgan
    from ..vae.pipeline import load_vae
    from ..zero_snr import load_variant

    def sampled(tab):
        sampler, steps = tab_choice(tab)
        return dict(sampler=sampler, steps=steps, seed=0)

    out = {
        "ddpm": ("ddpm-mnist", lambda d: load_ddpm("ddpm-mnist", d),
                 lambda m: m.generate(num_images=16, **sampled("ddpm"))),
        "cfg": ("cfg-mnist", lambda d: load_cfg("cfg-mnist", d),
                lambda m: m.generate(list(range(10)) + list(range(6)), scale=3.0, **sampled("cfg"))),
    }
    for mechanism, name in CONDITIONING_MODELS.items():
        out[f"conditioning ({mechanism})"] = (name, lambda d, n=name: load_cfg(n, d),
                                              lambda m: m.generate(list(range(10)), scale=3.0,
                                                                   **sampled("conditioning")))
    out["zero_snr"] = ("brightness-v-zerosnr", lambda d: load_variant("brightness-v-zerosnr", d),
                       lambda m: m.generate([0] * 8 + [1] * 8, scale=3.0, **sampled("zero_snr")))
    out["text2img"] = (LDM, lambda d: load_ldm(LDM, d),
                       lambda m: m.generate(PROMPT, scale=3.0, num_images=4, **sampled("text2img")))
    out["stackgan"] = (STAGE2, lambda d: load_stackgan(STAGE2, d),
                       lambda m: m.several_z(PROMPT, n=4, seed=0).stage2)
    out["vae"] = ("vae-mnist-16d", lambda d: load_vae("vae-mnist-16d", d), vae_action)
    return out


def vae_action(vae) -> torch.Tensor:
    """The VAE tab's interpolation: two digits (decoded from seeded z, so no data is read), encoded, interpolated
    linearly in latent space, decoded."""
    z = torch.randn(2, vae.latent_dim, generator=torch.Generator().manual_seed(0))
    x1, x2 = vae.decode(z).split(1)
    return vae.interpolate(x1, x2, torch.linspace(0, 1, 8))[0]


def at_precision(model, precision):
    """The model at `precision` where its pipeline has the switch (the GANs and the VAE run fp32)."""
    return at(model, precision) if hasattr(model, "precision") else model


def image_difference(a: torch.Tensor, b: torch.Tensor) -> dict:
    """mean and max |a − b| of two batches of images in [-1, 1], and whether they are within IMAGE_TOLERANCE."""
    if a.shape != b.shape:
        return {"mean": float("inf"), "max": float("inf"), "within": False}
    d = (a.detach().float().cpu() - b.detach().float().cpu()).abs()
    out = {"mean": d.mean().item(), "max": d.max().item()}
    out["within"] = all(out[k] <= IMAGE_TOLERANCE[k] for k in IMAGE_TOLERANCE)
    return out


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def check_actions(device: str, against: str = "cpu", only=None, log=print) -> dict:
    """Each tab's action on `against` and on `device` at fp32 (compared), then on `device` at its served precision."""
    results = {}
    for tab, (name, load, act) in actions().items():
        if only and not any(tab.startswith(o) for o in only):
            continue
        try:
            ref_model, model = load(against), load(device)
        except CheckpointMissing as exc:
            log(f"{tab}: skipped ({exc})")
            continue
        ref_s, ref = timed(lambda: act(at_precision(ref_model, FP32)))
        act(at_precision(model, FP32))                                    # warm-up (kernels, caches)
        dev_s, out = timed(lambda: act(at_precision(model, FP32)))
        served = choose(device, "auto", model=name)
        served_s, _ = timed(lambda: act(at_precision(model, served)))
        diff = image_difference(ref, out)
        results[tab] = {"model": name, **diff, f"{against}_fp32_s": ref_s, f"{device}_fp32_s": dev_s,
                        f"{device}_{served.name}_s": served_s}
        log(f"{tab:<28} {'ok ' if diff['within'] else 'DIFFERS'} mean |Δ| {diff['mean']:.2e}, max {diff['max']:.2e}; "
            f"{against} fp32 {ref_s:.2f} s, {device} fp32 {dev_s:.2f} s, {device} {served.name} {served_s:.2f} s")
    return results


def check_training(device: str, against: str = "cpu", steps: int = 30, log=print) -> dict | None:
    """The class-conditional trainer for `steps` steps on each device (fresh processes, seed 0): final losses."""
    from ..train_speed import run_one
    if steps <= 0:
        return None
    env = {"cpu": {"CUDA_VISIBLE_DEVICES": ""}}
    out = {}
    with tempfile.TemporaryDirectory(prefix="diffusion-lab-gpu-check-") as tmp:
        for k, dev in enumerate((against, device)):
            t0 = time.perf_counter()
            rows = run_one("pipelines.cfg.train", ["--dataset", "mnist"], ["--mixed-precision", "no"], steps,
                           torch.get_num_threads(), Path(tmp), f"gpu-check-{k}", extra_env=env.get(dev, {}))
            last = rows[-10:]
            out[dev if dev not in out else f"{dev} (again)"] = {"final_loss": sum(r["loss"] for r in last) / len(last),
                                                                "seconds": time.perf_counter() - t0}
    (a, b) = out.values()
    out["within"] = abs(a["final_loss"] - b["final_loss"]) <= LOSS_TOLERANCE * a["final_loss"]
    log(f"training, {steps} steps: final loss {a['final_loss']:.4f} ({against}, {a['seconds']:.1f} s) vs "
        f"{b['final_loss']:.4f} ({device}, {b['seconds']:.1f} s): {'ok' if out['within'] else 'DIFFERS'}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="the device to check (default: cuda when present)")
    p.add_argument("--against", default="cpu", help="the device it must agree with")
    p.add_argument("--only", default=None, help="comma-separated tabs (default: every tab's main action)")
    p.add_argument("--train-steps", type=int, default=30, help="steps of the short training run (0: none)")
    args = p.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else None)
    if device is None:
        print("No CUDA device on this machine: nothing to check (pass --device cpu for a dry run on the CPU).")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False     # fp32 on the GPU means fp32, as on the CPU
    torch.backends.cudnn.allow_tf32 = False
    print(f"checking {device} against {args.against} ({torch.__version__}, {os.cpu_count()} CPU cores)")
    results = check_actions(device, args.against, args.only.split(",") if args.only else None)
    training = check_training(device, args.against, args.train_steps)
    failed = [tab for tab, r in results.items() if not r["within"]] + (["training"] if training and
                                                                        not training["within"] else [])
    print("all within tolerance" if not failed else f"outside tolerance: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

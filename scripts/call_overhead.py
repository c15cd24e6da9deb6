"""What one network call costs beyond its images: the figure behind `demos.common.CALL_OVERHEAD`.

    python scripts/call_overhead.py                 # the served precision (auto), 2 torch threads

A request's budget counts image-steps. But a denoising step of one image is not 1/16 of a step of sixteen: each
network call has a fixed part (the time embedding, every layer's kernel launches, Python). With the time of one
step of b images fitted as t(b) = a + c·b over two batch sizes, a / c is that fixed part in images: a step of
b images costs as much as b + a / c images would if calls were free. Each tab's network, with its guidance (the
guided models run cond + uncond in one call of 2b), timed by its own pipeline, best of three.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project's packages

BATCHES, STEPS = (1, 4, 8, 16), 10  # 16: the text-to-image tab's most images


def _timer(run, images: int, rounds: int = 3) -> float:
    """Seconds per denoising step of `images` images, best of `rounds` (after one warm-up)."""
    run(images)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        run(images)
        best = min(best, time.perf_counter() - t0)
    return best / STEPS


def networks():
    """(name, run(images)) for every tab's sampling network: one DDIM run of STEPS steps, without decoding."""
    from pipelines.cfg.pipeline import load_cfg
    from pipelines.ddpm.pipeline import load_ddpm
    from pipelines.ldm.pipeline import load_ldm
    ddpm, cfg, ldm = load_ddpm(), load_cfg(), load_ldm()
    yield "ddpm-mnist (Forward & reverse)", lambda n: ddpm.frames(sampler="DDIM", steps=STEPS, num_images=n).last()
    yield "cfg-mnist (CFG, Zero SNR, Conditioning)", lambda n: cfg.frames(3, steps=STEPS, num_images=n).last()
    yield "ldm-shapes (Text to image)", lambda n: ldm.frames("a red circle", steps=STEPS, num_images=n).last()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default="auto", help="as `python app.py --precision` (default: what it serves)")
    args = p.parse_args(argv)
    os.environ.setdefault("DIFFUSION_LAB_PRECISION", args.precision)
    import torch
    torch.set_num_threads(args.threads)
    rows = []
    for name, run in networks():
        times = [_timer(run, b) for b in BATCHES]
        per_image, fixed = fit_line(BATCHES, times)
        worst = max(abs(fixed + per_image * b - t) / t for b, t in zip(BATCHES, times))
        rows.append({"network": name, "ms_per_step": {b: round(1e3 * t, 2) for b, t in zip(BATCHES, times)},
                     "ms_fixed": round(1e3 * fixed, 2), "ms_per_image": round(1e3 * per_image, 3),
                     "overhead_images": round(fixed / per_image, 2), "worst_fit_error": round(worst, 3),
                     "image_steps_in_5_s": round(5.0 / per_image)})
        print(json.dumps(rows[-1]), flush=True)


def fit_line(xs, ys) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line through (xs, ys)."""
    n, mx, my = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx

if __name__ == "__main__":
    main()

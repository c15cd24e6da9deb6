"""The 2-D playground's live runs as a student sees them: each tab handler streamed with the sliders' defaults,
frames drawn and encoded as the tab sends them, timed on this machine.

    python scripts/live_training.py                 # 2 torch threads (the server's), seed 0

For each run: seconds to the first frame, to the first frame whose MMD (in the status line) is ≤ 2 × the real-vs-real
floor, the last step reached, the whole run, and whether the server's time limit (demos.playground2d.LIVE_SECONDS)
stopped it. `python -m pipelines.measure.toy2d` times the trainer alone, for the README's bars.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project's packages
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as app.py serves

RUNS = (("ddpm", "8 Gaussians on a ring"), ("ddpm", "two moons"), ("gan", "8 Gaussians on a ring"))


def timed(stream, floor: float) -> dict:
    """Drain a handler's stream, reading each frame's status line (the tab's English one)."""
    start, first, reached, status = time.perf_counter(), None, None, ""
    for frame in stream:
        now = time.perf_counter() - start
        first = now if first is None else first
        status = frame[1]
        mmd = float(re.search(r"MMD to held-out ([0-9.]+)", status).group(1))
        if reached is None and mmd <= 2 * floor:
            reached = now
    step = re.search(r"step ([0-9,]+)/", status).group(1)
    return dict(first_frame_s=round(first, 2), reached_2x_floor_s=None if reached is None else round(reached, 1),
                last_step=int(step.replace(",", "")), total_s=round(time.perf_counter() - start, 1),
                stopped_by_limit="stopped" in status, status=status)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the server (a live run trains on 1)")
    args = p.parse_args(argv)
    import torch

    from demos import playground2d as tab
    from pipelines.measure.toy2d import floor
    torch.set_num_threads(args.threads)
    tab.train_ddpm_live(tab.DATASETS[0], None, list(tab.PREDICTIONS)[0], 100, 0).close()   # imports, fonts
    for kind, dataset in RUNS:
        steps = tab.LIVE_DEFAULT_STEPS[kind]
        if kind == "ddpm":
            stream, name = tab.train_ddpm_live(dataset, None, list(tab.PREDICTIONS)[0], steps, 0), "DDPM"
        else:
            model = list(tab.GAN_MODELS)[0]
            stream, name = tab.train_gan_live(dataset, None, model, steps, 0), model
        out = timed(stream, floor(tab.KEY[dataset]))
        print(f"{name} on {dataset}, {steps} steps (the slider's default): first frame {out['first_frame_s']:.2f} s, "
              f"MMD ≤ 2× floor after {out['reached_2x_floor_s']} s, step {out['last_step']:,} in "
              f"{out['total_s']:.1f} s{' (stopped by the time limit)' if out['stopped_by_limit'] else ''}")
        print(f"  last status: {out['status']}")


if __name__ == "__main__":
    main()

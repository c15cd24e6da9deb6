"""Training throughput on this machine: steps/s of the DDPM, class-conditional and latent-diffusion trainers in fp32,
bf16 autocast, and bf16 + channels-last memory, with the loss curves of the same short seeded run side by side.

    python -m pipelines.train_speed                        # 40 steps per run, 2 threads: results/, README section
    python -m pipelines.train_speed --steps 12 --no-readme # a quick look

Every run is the trainer's own command in a fresh process (accelerate keeps process-wide state), with the same seed,
data order and batch, writing to a scratch folder that is deleted afterwards. Steps/s is measured from the trainers'
logs after `--warmup` steps (the first steps allocate and tune kernels)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .checkpoints import PROJECT_ROOT, checkpoints_root

MODES = {  # name -> the trainer options that select it
    "fp32": ["--mixed-precision", "no", "--no-channels-last"],
    "bf16": ["--mixed-precision", "bf16", "--no-channels-last"],
    "bf16 + channels-last": ["--mixed-precision", "bf16", "--channels-last"],
}


def trainers() -> dict[str, tuple[str, list[str]]]:
    """name -> (trainer module, its options), at each trainer's default batch size and network."""
    return {
        "DDPM (UNet2DModel, MNIST, batch 128)": ("pipelines.ddpm.train", ["--dataset", "mnist"]),
        "class-conditional (hand-written UNet, MNIST, batch 96)": ("pipelines.cfg.train", ["--dataset", "mnist"]),
        "latent diffusion (UNet2DConditionModel, 4×16×16, batch 32)": (
            "pipelines.ldm.train", ["--vae", str(checkpoints_root() / "ldm-shapes" / "vae"), "--train-images", "512"]),
    }


def run_one(module: str, options: list[str], mode: list[str], steps: int, threads: int, scratch: Path,
            name: str, extra_env: dict | None = None) -> list[dict]:
    """One short training run in its own process (`extra_env` added to its environment); returns its log rows
    (step, seconds, loss, ...)."""
    cmd = [sys.executable, "-m", module, *options, *mode, "--steps", str(steps), "--threads", str(threads),
           "--seed", "0", "--name", name, "--runs", str(scratch / "runs"), "--output", str(scratch / name),
           "--save-every", str(10 * steps), "--warmup", "10"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1", **(extra_env or {}))
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    log = scratch / "runs" / name / "log.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def steps_per_second(rows: list[dict], warmup: int) -> float:
    timed = [r for r in rows if r["step"] >= warmup]
    return (timed[-1]["step"] - timed[0]["step"]) / (timed[-1]["seconds"] - timed[0]["seconds"])


def measure(steps: int = 40, threads: int = 2, warmup: int = 5, only: list[str] | None = None) -> dict:
    out = {"command": " ".join(["python -m pipelines.train_speed", *sys.argv[1:]]), "steps": steps,
           "threads": threads, "warmup_steps": warmup, "trainers": {}}
    with tempfile.TemporaryDirectory(prefix="diffusion-lab-train-speed-") as tmp:
        for k, (trainer, (module, options)) in enumerate(trainers().items()):
            if only and not any(o in module for o in only):
                continue
            row = out["trainers"][trainer] = {"module": module, "modes": {}}
            for j, (mode, switches) in enumerate(MODES.items()):
                rows = run_one(module, options, switches, steps, threads, Path(tmp), f"speed-{k}-{j}")
                row["modes"][mode] = {"steps_per_second": round(steps_per_second(rows, warmup), 4),
                                      "loss": [round(r["loss"], 5) for r in rows],
                                      "final_loss": round(sum(r["loss"] for r in rows[-10:]) / len(rows[-10:]), 5)}
                print(f"{trainer} · {mode}: {row['modes'][mode]['steps_per_second']:.3f} steps/s, "
                      f"final loss {row['modes'][mode]['final_loss']:.4f}", flush=True)
            fp32 = row["modes"]["fp32"]["steps_per_second"]
            for m in row["modes"].values():
                m["speedup"] = round(m["steps_per_second"] / fp32, 3)
    return out


def markdown(r: dict) -> str:
    head = "| trainer | " + " | ".join(f"{m}: steps/s (× fp32), final loss" for m in MODES) + " |"
    lines = [head, "|---|" + "---|" * len(MODES)]
    for trainer, row in r["trainers"].items():
        cells = [f"{m['steps_per_second']:.3f} (×{m['speedup']:.2f}), {m['final_loss']:.4f}" for m in row["modes"].values()]
        lines.append(f"| {trainer} | " + " | ".join(cells) + " |")
    return (f"Measured by `{r['command']}`: each trainer's own command for {r['steps']} steps in a fresh process per "
            f"mode, {r['threads']} torch threads, seed 0 (same data order and noise); steps/s after the first "
            f"{r['warmup_steps']} steps; final loss = mean of the last 10 steps (the curves: "
            "`results/train_speed.png`).\n\n" + "\n".join(lines))


def plot(r: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(r["trainers"]), figsize=(5 * len(r["trainers"]), 3.6), squeeze=False)
    for ax, (trainer, row) in zip(axes[0], r["trainers"].items()):
        for mode, m in row["modes"].items():
            ax.plot(range(1, len(m["loss"]) + 1), m["loss"], label=f"{mode} ({m['steps_per_second']:.2f} steps/s)")
        ax.set(title=trainer.split(" (")[0], xlabel="step", ylabel="training loss")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    p.add_argument("--only", nargs="*", help="trainer modules to run (e.g. ddpm cfg ldm)")
    p.add_argument("--no-readme", action="store_true")
    args = p.parse_args(argv)
    r = measure(args.steps, args.threads, args.warmup, args.only)
    out = PROJECT_ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / "train_speed.json").write_text(json.dumps(r, indent=2) + "\n")
    plot(r, out / "train_speed.png")
    print(markdown(r))
    if not args.no_readme and not args.only:
        from .readme import replace_section
        replace_section("train-speed", markdown(r))
    return r


if __name__ == "__main__":
    main()

"""Pieces every training command shares: run folders, resumable state, logs and records."""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from .checkpoints import read_json, write_json


def hardware_summary() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


LOCAL_OPTIONS = ("--runs", "--output", "--data-root", "--earlier")   # where files go on one machine, not how a
#                                                                      model was made (--earlier: the record says it)


def command_line() -> str:
    """The command being run, as a record can quote it: `python -m <module> <args>`, without the options that
    only name this machine's files and folders, and their values (a card must not carry machine paths)."""
    module = sys.argv[0]
    if module.endswith(".py"):
        parts = Path(module).resolve().with_suffix("").parts
        if "pipelines" in parts:
            module = "-m " + ".".join(parts[parts.index("pipelines"):])
    args, skipping = [], False
    for a in sys.argv[1:]:
        if a.startswith("--"):
            skipping = a in LOCAL_OPTIONS
            if skipping or a.startswith(tuple(f"{o}=" for o in LOCAL_OPTIONS)):
                continue
        elif skipping:   # a value of a local option (--earlier takes several)
            continue
        args.append(a)
    return "python " + " ".join([module] + args)


def add_earlier_arg(p) -> None:
    p.add_argument("--earlier", nargs="*", default=[], metavar="RECORD",
                   help="earlier runs of this model (oldest first), started afresh and superseded by this one: their "
                        "training_record.json or checkpoint folder; their commands and wall time go into this run's "
                        "record, so the card counts the model's whole CPU budget")


def earlier_runs(paths, keep=("command", "steps", "epochs", "wall_seconds")) -> list[dict]:
    """The earlier runs of one model (oldest first), each started afresh and superseded by the run being recorded:
    from each a training_record.json (or a checkpoint folder holding one, whose weights hash is kept too) the `keep`
    fields, its own earlier runs before it. A record quotes them so its card counts the model's whole CPU budget.
    A run named twice (directly and inside a later run's record) is counted once."""
    from .checkpoints import weights_hash
    runs = []
    for path in map(Path, paths):
        record = read_json(path / "training_record.json" if path.is_dir() else path, None)
        if not isinstance(record, dict) or not isinstance(record.get("wall_seconds"), (int, float)):
            raise SystemExit(f"--earlier {path.name}: not a training record with a wall time")
        entry = {k: record[k] for k in keep if k in record}
        if path.is_dir():
            entry["weights"] = weights_hash(path)
        for run in record.get("earlier_runs", []) + [entry]:
            if run not in runs:
                runs.append(run)
    return runs


def with_earlier(record: dict, earlier: list[dict]) -> dict:
    """`record` plus its earlier runs and the wall time of every run of the model (nothing when there are none)."""
    if not earlier:
        return record
    return {**record, "earlier_runs": earlier,
            "total_wall_seconds": round(record["wall_seconds"] + sum(r["wall_seconds"] for r in earlier))}


EMA_DECAY = 0.9995


def add_run_args(p) -> None:
    """The options every training command shares: seed, threads, data root, run and export folders."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--data-root", default=None, help="torchvision data root (default: $DIFFUSION_LAB_DATA_ROOT)")
    p.add_argument("--runs", default="runs", help="where resumable state and logs go")
    p.add_argument("--output", default=None, help="export folder (default: checkpoints/<name>)")


def mixed_precision_for(choice: str) -> str:
    """accelerate's mixed_precision for a trainer's --mixed-precision: "auto" is bf16 where the hardware runs it
    natively (a CPU with AVX-512 BF16 or AMX, a GPU with bf16), else "no" (fp32). Emulated bf16 is far slower than
    fp32: on a CPU without it, a 1024² bf16 GEMM ran at 0.8 GFLOP/s against 90 for fp32 (2 threads, AMD EPYC)."""
    if choice != "auto":
        return choice
    import torch
    from .precision import cpu_has_native_bf16
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "no"


def add_diffusion_args(p, schedule: str = "linear (DDPM)", zero_snr: bool = False, prediction_type: str = "epsilon",
                       mixed_precision: str = "auto", save_every: int = 100) -> None:
    """The noise-schedule options every diffusion trainer shares (Lin et al.'s two training choices included)."""
    from .schedules import SCHEDULES, SPACINGS
    p.add_argument("--schedule", default=schedule, choices=list(SCHEDULES))
    p.add_argument("--zero-snr", action=argparse.BooleanOptionalAction, default=zero_snr,
                   help="rescale the betas to zero terminal SNR (Lin et al. 2024, Algorithm 1)")
    p.add_argument("--prediction-type", default=prediction_type, choices=["epsilon", "v_prediction"])
    p.add_argument("--timestep-spacing", default=None, choices=list(SPACINGS),
                   help="stored as the sampling default (default: trailing with zero SNR, else leading)")
    p.add_argument("--mixed-precision", default=mixed_precision, type=mixed_precision_for, choices=["no", "bf16", "fp16"],
                   help="auto (default): bf16 where the hardware has it natively, else no (fp32)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False,
                   help="keep weights and images in channels-last (NHWC) memory: faster convolutions on CPUs with "
                        "oneDNN (see python -m pipelines.train_speed)")
    p.add_argument("--save-every", type=int, default=save_every, help="save the resumable state every N steps")


def training_scheduler(args):
    """The DDPMScheduler of a trainer's options; its stored spacing is the sampling default."""
    from diffusers import DDPMScheduler

    from .schedules import schedule_config
    spacing = args.timestep_spacing or ("trailing" if args.zero_snr else "leading")
    return DDPMScheduler(**schedule_config(args.schedule, args.zero_snr, prediction_type=args.prediction_type,
                                           timestep_spacing=spacing))


def regression_target(scheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the network learns to predict: ε, or v = sqrt(ᾱ_t)·ε − sqrt(1 − ᾱ_t)·x_0 (Lin et al. eq. 8)."""
    if scheduler.config.prediction_type == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    return noise


def run_paths(args, name: str) -> tuple[Path, Path]:
    """Apply --threads; return (runs/<name>, the export folder)."""
    from .checkpoints import checkpoints_root
    if args.threads:
        torch.set_num_threads(args.threads)
    return Path(args.runs) / name, Path(args.output or checkpoints_root() / name)


class RunLog:
    """`runs/<name>/log.jsonl` plus the wall time accumulated over resumed sessions."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "log.jsonl"
        self.meta_path = self.run_dir / "meta.json"
        self.meta = read_json(self.meta_path, {"wall_seconds": 0.0, "sessions": 0})
        self.meta["sessions"] += 1
        self._t0 = time.time()

    def record_session(self, start_step: int, previous: dict | None = None) -> None:
        """Note which command ran from which step; a run resumed with a new --steps shows both commands."""
        history = self.meta.setdefault("history", [])
        if not history and start_step > 0 and previous and previous.get("command"):
            history.append({"command": previous["command"], "from_step": 0})
        if not history or history[-1]["command"] != command_line():
            history.append({"command": command_line(), "from_step": start_step})

    def wall_seconds(self) -> float:
        return self.meta["wall_seconds"] + time.time() - self._t0

    def log(self, **row) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def save_meta(self) -> None:
        write_json(self.meta_path, dict(self.meta, wall_seconds=self.wall_seconds()))
        self.meta["wall_seconds"], self._t0 = self.wall_seconds(), time.time()

    def rows(self, upto_step: int | None = None) -> list[dict]:
        if not self.path.exists():
            return []
        rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        # a resumed run repeats the steps after its last saved state; keep the latest of each
        by_step = {r["step"]: r for r in rows if upto_step is None or r["step"] <= upto_step}
        return [by_step[s] for s in sorted(by_step)]


def downsample_curve(rows: list[dict], key: str = "loss", points: int = 100, smooth: int = 20) -> list[list[float]]:
    """[(step, running-mean loss)] with at most `points` entries, for model cards and plots."""
    if not rows:
        return []
    vals = [r[key] for r in rows]
    out, every = [], max(1, len(rows) // points)
    for i in range(0, len(rows), every):
        window = vals[max(0, i - smooth + 1): i + 1]
        out.append([rows[i]["step"], sum(window) / len(window)])
    if out[-1][0] != rows[-1]["step"]:
        window = vals[-smooth:]
        out.append([rows[-1]["step"], sum(window) / len(window)])
    return out


def warmup_cosine(warmup: int, steps: int):
    """LR multiplier for LambdaLR: linear warm-up over `warmup` steps, then cosine decay to 0 at `steps`."""
    return lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))


def loss_summary(log: RunLog, upto_step: int) -> dict:
    """The loss fields of a training record: final loss (mean of the last 100 steps) and the curve."""
    rows = log.rows(upto_step=upto_step)
    tail = [r["loss"] for r in rows[-100:]]
    return {"final_loss": sum(tail) / max(1, len(tail)), "loss_curve": downsample_curve(rows)}


def prepare_diffusion_training(accelerator, model, loader, args):
    """AdamW with warm-up + cosine decay and an EMA of the weights, prepared by accelerate; with --channels-last
    the weights and every 4-D input are kept in channels-last memory.

    Returns (model, opt, loader, lr_sched, ema); the EMA is part of the saved state."""
    from diffusers.training_utils import EMAModel
    if getattr(args, "channels_last", False):
        use_channels_last(model)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(args.warmup, args.steps))
    ema = EMAModel(model.parameters(), decay=EMA_DECAY, use_ema_warmup=True, power=3 / 4)
    model, opt, loader, lr_sched = accelerator.prepare(model, opt, loader, lr_sched)
    ema.to(accelerator.device)
    accelerator.register_for_checkpointing(ema)
    return model, opt, loader, lr_sched, ema


@contextlib.contextmanager
def autocast(accelerator):
    """accelerate's autocast for the forward pass; in bf16 on a CPU also the math backend of scaled-dot-product
    attention. PyTorch's CPU flash-attention kernel runs its bf16 backward 4× slower than fp32 (profiled on the DDPM
    UNet, batch 128: 458 vs 108 ms a step), so with it bf16 training was no faster than fp32; the math backend's
    attention is plain bf16 matrix products (the DDPM step: 1.10 s -> 0.66 s; see python -m pipelines.train_speed)."""
    with accelerator.autocast():
        if accelerator.device.type == "cpu" and accelerator.mixed_precision == "bf16":
            from torch.nn.attention import SDPBackend, sdpa_kernel
            with sdpa_kernel(SDPBackend.MATH):
                yield
        else:
            yield


def use_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """Weights in channels-last memory, and every 4-D positional input converted on the way in (a forward pre-hook),
    so a trainer's loop needs no change. The values are the same; only their order in memory differs."""
    model.to(memory_format=torch.channels_last)

    def to_nhwc(module, inputs):
        return tuple(x.contiguous(memory_format=torch.channels_last) if torch.is_tensor(x) and x.ndim == 4 else x
                     for x in inputs)
    model.register_forward_pre_hook(to_nhwc)
    return model


class ResumableState:
    """accelerate's full training state in runs/<name>/state: loaded if present, saved on request."""

    def __init__(self, accelerator, run_dir: Path, out_dir: Path, name: str):
        from .checkpoints import read_json
        self.accelerator, self.dir, self.log, self.step = accelerator, Path(run_dir) / "state", RunLog(run_dir), 0
        if (self.dir / "step.txt").exists():
            accelerator.load_state(str(self.dir))
            self.step = int((self.dir / "step.txt").read_text())
            accelerator.print(f"resumed {name} at step {self.step}")
        self.log.record_session(self.step, previous=read_json(Path(out_dir) / "training_record.json", {}))
        self._t_last, self._last_step = time.time(), self.step
        self._t_session = time.time()

    def step_done(self, step: int, total: int, save_every: int, every: int = 25, note: str = "", **fields) -> bool:
        """The bookkeeping after optimiser step `step`, the same in every trainer: log `fields` (loss, lr, ...),
        print progress every `every` steps, save the resumable state every `save_every`; True once `total` is reached."""
        acc = self.accelerator
        if acc.is_main_process:
            self.log.log(step=step, seconds=round(time.time() - self._t_session, 3), **fields)  # since this session began
            if step % every == 0 or step == total:
                per_step = (time.time() - self._t_last) / max(step - self._last_step, 1)
                self._t_last, self._last_step = time.time(), step
                acc.print(f"step {step}/{total} loss {fields['loss']:.4f}{note} ({per_step:.2f} s/step, "
                          f"{1 / max(per_step, 1e-9):.2f} it/s)", flush=True)
        if step % save_every == 0 or step == total:
            self.save(step)
        return step >= total

    def save(self, step: int) -> None:
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            self.accelerator.save_state(str(self.dir))
            (self.dir / "step.txt").write_text(str(step))
            self.log.save_meta()

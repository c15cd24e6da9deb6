"""Seeded trainers for the 2-D models, written as generators: each yields a `Progress` every `every` steps (loss
curve so far, current samples), so a tab can stream a model learning live; a hard cap bounds every run.

    python -m pipelines.toy2d.train --dataset 8gaussians --model ddpm          # -> checkpoints/toy2d-8gaussians-ddpm
    python -m pipelines.toy2d.train --dataset 8gaussians --model ddgan --denoising-steps 4
    python -m pipelines.toy2d.train --dataset 8gaussians --model gan

Losses (per batch of data points x_0):
    DDPM    L = E_{t, ε} ‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖²     (or the v target, v = √ᾱ_t ε − √(1 − ᾱ_t) x_0)
    DD-GAN  D: softplus(−D(x_{t−1}, x_t, t)) + softplus(D(x'_{t−1}, x_t, t)) + γ/2 ‖∇_{x_{t−1}} D(x_{t−1}, x_t, t)‖²
            G: softplus(−D(x'_{t−1}, x_t, t)),  x'_{t−1} ~ q(x_{t−1} | x_t, G(x_t, z, t))      (non-saturating, R1)
    GAN     D: softplus(−D(x)) + softplus(D(G(z))),  G: softplus(−D(G(z)))
Same seed, same data, same thread count → the same run (weights are initialised and batches drawn from a seeded
torch.Generator, never from the global RNG that other users' requests share).
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from typing import Iterator

# idle OpenMP threads sleep instead of spinning: beside other jobs on 2 cores, spinning made these tiny MLPs
# 45x slower at 2 threads (50 sampling steps: 3.95 s spinning, 0.11 s passive). Read once, before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import nn

from ..training import regression_target
from . import data as toy_data
from .models import (DDGANDiscriminator, DDGANGenerator, Denoiser, GANDiscriminator, GANGenerator,
                     posterior_sample)
from .schedule import DEFAULT_SCHEDULE, ddgan_alphas_cumprod, ddpm_config

MAX_STEPS = 20_000          # no run, live or not, trains longer
TRAIN_POINTS = 20_000       # a fresh dataset draw of this size is the training set
PREVIEW_POINTS = 1000
DEFAULTS = {  # model -> steps, batch, lr (the live defaults and the shipped checkpoints' settings)
    "ddpm": dict(steps=3000, batch=256, lr=8e-3),
    "ddgan": dict(steps=10000, batch=256, lr=3e-4),
    "gan": dict(steps=5000, batch=256, lr=1e-3),
}
R1_GAMMA = 0.05
# these MLPs' layers are too small to split between threads: a DD-GAN step (hidden 64) took 26.5 ms at 1 thread against
# 32.9 at 2, a DDPM step 8.0 against 13.4 (AMD EPYC, 2 cores). They train on one (`runtime.in_threads` in a server).
THREADS = 1


@dataclass
class Progress:
    step: int                    # optimiser steps done
    steps: int                   # the run's length
    loss: float                  # running mean of the loss (DDPM: the MSE; GANs: the generator's loss)
    curve: list                  # [[step, loss], ...] so far (GANs: "g" and "d" in `curves`)
    samples: torch.Tensor        # (PREVIEW_POINTS, 2): what the model generates now (fixed seed)
    seconds: float               # wall time since the start
    model: dict = field(default_factory=dict)   # the networks being trained ({"denoiser": ...} / {"G": ..., "D": ...})
    curves: dict = field(default_factory=dict)  # every loss curve: name -> [[step, value], ...]
    done: bool = False


def seeded_init(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """PyTorch's default Linear initialisation (U(±1/√fan_in) for weights and biases), drawn from `generator`."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = 1 / m.in_features ** 0.5
            with torch.no_grad():
                m.weight.uniform_(-bound, bound, generator=generator)
                m.bias.uniform_(-bound, bound, generator=generator)
    return module


def _check(steps: int, every: int) -> tuple[int, int]:
    steps, every = int(steps), int(every)
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"Training steps must be between 1 and {MAX_STEPS:,}, got {steps:,}.")
    return steps, max(1, every)


def _batches(points: torch.Tensor, batch: int, g: torch.Generator):
    while True:
        yield points[torch.randint(0, len(points), (batch,), generator=g)]


class _Running:
    """A running mean over the last `every` values, logged as one curve point per `log_every` steps."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, v: float):
        self.total, self.count = self.total + v, self.count + 1

    def take(self) -> float:
        v = self.total / max(self.count, 1)
        self.total, self.count = 0.0, 0
        return v


def _optimise(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One gradient step on `loss`: clear the gradients, back-propagate, update."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _log_every(steps: int) -> int:
    return max(1, steps // 200)


def train_ddpm(points: torch.Tensor, *, steps: int = DEFAULTS["ddpm"]["steps"], batch: int = DEFAULTS["ddpm"]["batch"],
               lr: float = DEFAULTS["ddpm"]["lr"], seed: int = 0, every: int = 250,
               schedule: str = DEFAULT_SCHEDULE, zero_snr: bool = False, prediction_type: str = "epsilon",
               preview_steps: int = 100, hidden: int = 64, layers: int = 3) -> Iterator[Progress]:
    """Train ε_θ (or v_θ) on `points`; yield a Progress at step 0 (instantly), every `every` steps and at the end."""
    from .sample import ddpm_sample
    steps, every = _check(steps, every)
    g = torch.Generator().manual_seed(int(seed))
    model = seeded_init(Denoiser(hidden, layers), g)
    config = ddpm_config(schedule, zero_snr, prediction_type)
    scheduler = DDPMScheduler.from_config(config)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # a short warm-up, then cosine decay to 5 %: large early steps, a settled end
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * (0.05 + 0.95 * 0.5 * (1 + torch.cos(torch.tensor(s / steps * 3.14159)).item())))
    start, running, curve, loss_now = time.perf_counter(), _Running(), [], float("nan")
    log_every = _log_every(steps)
    info = dict(config=config, model_config=model.config, seed=seed, lr=lr, batch=batch)

    def progress(step, done=False):
        model.eval()
        samples = ddpm_sample(model, config, sampler="DDPM (ancestral)", steps=preview_steps, num_points=PREVIEW_POINTS,
                              seed=0)
        model.train()
        return Progress(step, steps, loss_now, list(curve), samples, time.perf_counter() - start,
                        dict(denoiser=model, **info), {"loss": list(curve)}, done)

    yield progress(0)
    data_iter = _batches(points.float(), batch, g)
    for step in range(1, steps + 1):
        x0 = next(data_iter)
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), generator=g)
        x_t = scheduler.add_noise(x0, noise, t)
        loss = F.mse_loss(model(x_t, t), regression_target(scheduler, x0, noise, t))
        _optimise(opt, loss)
        sched.step()
        running.add(loss.item())
        if step % log_every == 0 or step == steps:
            loss_now = running.take()
            curve.append([step, round(loss_now, 5)])
        if step % every == 0 or step == steps:
            yield progress(step, done=step == steps)


def _d_loss_r1(D, real, fake, cond_args, gamma):
    """Non-saturating D loss + R1 penalty γ/2 ‖∇_real D‖² (Mescheder et al. 2018), which keeps D smooth near the data."""
    real = real.detach().requires_grad_(gamma > 0)
    d_real = D(real, *cond_args)
    loss = F.softplus(-d_real).mean() + F.softplus(D(fake.detach(), *cond_args)).mean()
    if gamma > 0:
        grad, = torch.autograd.grad(d_real.sum(), real, create_graph=True)
        loss = loss + gamma / 2 * grad.pow(2).sum(1).mean()
    return loss


def train_ddgan(points: torch.Tensor, *, denoising_steps: int = 4, steps: int = DEFAULTS["ddgan"]["steps"],
                batch: int = DEFAULTS["ddgan"]["batch"], lr: float = DEFAULTS["ddgan"]["lr"], seed: int = 0,
                every: int = 250, gamma: float = R1_GAMMA, hidden: int = 128, layers: int = 3) -> Iterator[Progress]:
    """DD-GAN on `points` with a T = denoising_steps chain (Xiao et al. 2022, Algorithm 1 in 2-D)."""
    from .sample import ddgan_sample
    steps, every = _check(steps, every)
    if denoising_steps not in (1, 2, 3, 4, 8):
        raise ValueError("DD-GAN's denoising steps must be 1, 2, 3, 4 or 8.")
    g = torch.Generator().manual_seed(int(seed))
    G = seeded_init(DDGANGenerator(denoising_steps, hidden, layers), g)
    D = seeded_init(DDGANDiscriminator(denoising_steps, hidden, layers), g)
    abar = ddgan_alphas_cumprod(denoising_steps).float()
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.9))
    start, run_g, run_d, curve_g, curve_d = time.perf_counter(), _Running(), _Running(), [], []
    log_every, loss_now = _log_every(steps), float("nan")
    info = dict(seed=seed, lr=lr, batch=batch, gamma=gamma, model_config=G.config)

    def progress(step, done=False):
        samples = ddgan_sample(G, num_points=PREVIEW_POINTS, seed=0)
        return Progress(step, steps, loss_now, list(curve_g), samples, time.perf_counter() - start,
                        dict(G=G, D=D, **info), {"G": list(curve_g), "D": list(curve_d)}, done)

    yield progress(0)
    data_iter = _batches(points.float(), batch, g)
    for step in range(1, steps + 1):
        x0 = next(data_iter)
        t = torch.randint(0, denoising_steps, (batch,), generator=g)
        # a true pair: x_{t−1} ~ q(x_{t−1} | x_0) in one jump, then x_t ~ q(x_t | x_{t−1}) (one forward step)
        abar_prev = torch.where(t > 0, abar[(t - 1).clamp(min=0)], torch.ones(batch)).reshape(-1, 1)
        alpha_t = (abar[t].reshape(-1, 1) / abar_prev)
        x_prev = abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * torch.randn(x0.shape, generator=g)
        x_t = alpha_t.sqrt() * x_prev + (1 - alpha_t).sqrt() * torch.randn(x0.shape, generator=g)
        z = torch.randn(batch, G.z_dim, generator=g)
        fake_prev = posterior_sample(G(x_t, z, t), x_t, t, abar, torch.randn(x0.shape, generator=g))
        # discriminator on (x_{t−1}, x_t, t), real vs fake
        loss_d = _d_loss_r1(D, x_prev, fake_prev, (x_t, t), gamma)
        _optimise(opt_d, loss_d)
        # generator: make D call its denoising real
        loss_g = F.softplus(-D(fake_prev, x_t, t)).mean()
        _optimise(opt_g, loss_g)
        run_g.add(loss_g.item())
        run_d.add(loss_d.item())
        if step % log_every == 0 or step == steps:
            loss_now = run_g.take()
            curve_g.append([step, round(loss_now, 5)])
            curve_d.append([step, round(run_d.take(), 5)])
        if step % every == 0 or step == steps:
            yield progress(step, done=step == steps)


def train_gan(points: torch.Tensor, *, steps: int = DEFAULTS["gan"]["steps"], batch: int = DEFAULTS["gan"]["batch"],
              lr: float = DEFAULTS["gan"]["lr"], seed: int = 0, every: int = 250, hidden: int = 64,
              layers: int = 3) -> Iterator[Progress]:
    """A plain non-saturating GAN on `points` (no R1, no tricks: the mode-collapse side of the story)."""
    from .sample import gan_sample
    steps, every = _check(steps, every)
    g = torch.Generator().manual_seed(int(seed))
    G = seeded_init(GANGenerator(hidden, layers), g)
    D = seeded_init(GANDiscriminator(hidden, layers), g)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.9))
    start, run_g, run_d, curve_g, curve_d = time.perf_counter(), _Running(), _Running(), [], []
    log_every, loss_now = _log_every(steps), float("nan")
    info = dict(seed=seed, lr=lr, batch=batch, model_config=G.config)

    def progress(step, done=False):
        return Progress(step, steps, loss_now, list(curve_g), gan_sample(G, num_points=PREVIEW_POINTS, seed=0),
                        time.perf_counter() - start, dict(G=G, D=D, **info), {"G": list(curve_g), "D": list(curve_d)},
                        done)

    yield progress(0)
    data_iter = _batches(points.float(), batch, g)
    for step in range(1, steps + 1):
        real = next(data_iter)
        fake = G(torch.randn(batch, G.z_dim, generator=g))
        loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
        _optimise(opt_d, loss_d)
        loss_g = F.softplus(-D(fake)).mean()
        _optimise(opt_g, loss_g)
        run_g.add(loss_g.item())
        run_d.add(loss_d.item())
        if step % log_every == 0 or step == steps:
            loss_now = run_g.take()
            curve_g.append([step, round(loss_now, 5)])
            curve_d.append([step, round(run_d.take(), 5)])
        if step % every == 0 or step == steps:
            yield progress(step, done=step == steps)


def train(model: str, points: torch.Tensor, **kwargs) -> Iterator[Progress]:
    """The trainer of `model` ("ddpm", "ddgan", "gan")."""
    return {"ddpm": train_ddpm, "ddgan": train_ddgan, "gan": train_gan}[model](points, **kwargs)


def last(run: Iterator[Progress]) -> Progress:
    p = None
    for p in run:
        pass
    return p


def main(argv=None):
    from .checkpoint import save
    from ..training import command_line, hardware_summary
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=list(toy_data.DATASETS), default="8gaussians")
    p.add_argument("--model", choices=["ddpm", "ddgan", "gan"], default="ddpm")
    p.add_argument("--denoising-steps", type=int, default=4, help="DD-GAN's T (2 to 4)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--prediction-type", choices=["epsilon", "v_prediction"], default="epsilon")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=THREADS)
    p.add_argument("--output", default=None, help="folder (default checkpoints/toy2d-<dataset>-<model>)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    points = toy_data.sample(args.dataset, TRAIN_POINTS, args.seed)
    kwargs = dict(seed=args.seed, every=10 ** 9)
    if args.steps:
        kwargs["steps"] = args.steps
    if args.model == "ddpm":
        kwargs["prediction_type"] = args.prediction_type
    if args.model == "ddgan":
        kwargs["denoising_steps"] = args.denoising_steps
    start = time.perf_counter()
    result = last(train(args.model, points, **kwargs))
    wall = time.perf_counter() - start
    record = dict(command=command_line(), dataset=args.dataset, train_images=len(points), steps=result.steps,
                  batch_size=result.model["batch"], lr=result.model["lr"], seed=args.seed,
                  wall_seconds=round(wall, 1), hardware=hardware_summary(), final_loss=result.loss,
                  loss_curve=result.curve, curves=result.curves)
    folder = save(result, args.model, args.dataset, record, args.output)
    print(f"{folder.name}: {result.steps} steps in {wall:.1f} s, final loss {result.loss:.4f}")


if __name__ == "__main__":
    main()

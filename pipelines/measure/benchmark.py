"""Speed of the main pipelines on this machine, with a baseline measured in the same run.

    python -m pipelines.benchmark                 # prints a table
    python -m pipelines.benchmark --write-readme  # also refreshes the README's speed section
    python -m pipelines.benchmark --only ldm      # re-measure one group, keep the others' last rows

The benchmarks are the explicit list `BENCHMARKS` below: each is `rows(args) -> list of rows`, and each
times a model against a baseline measured in the same run (the seeds' one-image ancestral sampler, the
reference two-pass CFG sampler). `latency` times the tabs' main actions end to end, as a student waits, through
`gradio_client` on a launched `python app.py` (pipelines/measure/latency.py), against their sampling alone.

Torch threads are pinned (--threads) and each figure is the median of --repeats runs. Absolute
times are noisy on shared machines; the ratios, measured in one run, are the figures to quote.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ..cards import replace_groups
from ..checkpoints import PROJECT_ROOT, CheckpointMissing, read_json, write_json
from ..guidance import two_pass_predictor
from ..readme import replace_section
from ..runtime import cpu_generator, randn, torch_threads
from ..sampling import denoise
from . import latency, peers
from .frontier import sampler_label, tab_choice


# ----------------------------------------------------------------------------- timing
def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def naive_ancestral(unet, scheduler, num_images: int, seed: int = 0) -> torch.Tensor:
    """The seeds' sampler: all T ancestral steps, one image at a time, written out by hand."""
    betas, alphas, abar = scheduler.betas, scheduler.alphas, scheduler.alphas_cumprod
    g, out = cpu_generator(seed), []
    for _ in range(num_images):
        x = randn((1, 1, 28, 28), g)
        for t in reversed(range(len(betas))):
            eps = unet(x, torch.tensor([t])).sample
            mean = (x - betas[t] / (1 - abar[t]).sqrt() * eps) / alphas[t].sqrt()
            x = mean + (betas[t].sqrt() * randn(x.shape, g) if t > 0 else 0)
        out.append(x)
    return torch.cat(out)


def bench_ddpm(args) -> list[dict]:
    from diffusers import DDPMScheduler

    from ..ddpm.pipeline import load_ddpm

    t0 = time.perf_counter()
    model = load_ddpm(device="cpu")
    load_s = time.perf_counter() - t0
    model.generate(sampler="DDIM", steps=2, num_images=2, seed=0)  # warm-up

    sampler, tab_steps = tab_choice("ddpm")   # the tab's default (results/frontier.json)

    def first_frame():
        next(model.frames(sampler=sampler, steps=tab_steps, num_images=16, seed=0))

    rows = [dict(name="MNIST DDPM: load checkpoint", seconds=load_s)]
    rows.append(dict(name=f"MNIST DDPM: first streamed frame ({sampler_label(sampler)} {tab_steps}, the tab's default, "
                          "16 images)", seconds=timed(first_frame, args.repeats)))
    ddim = {}
    for steps in (20, 50):
        ddim[steps] = timed(lambda: model.generate(sampler="DDIM", steps=steps, num_images=16, seed=0), args.repeats)
        rows.append(dict(name=f"MNIST DDPM: 16 images, DDIM {steps} steps (batched)", seconds=ddim[steps],
                         images_per_s=16 / ddim[steps]))
    default = timed(lambda: model.generate(sampler=sampler, steps=tab_steps, num_images=16, seed=0), args.repeats)
    rows.append(dict(name=f"MNIST DDPM: 16 images, {sampler_label(sampler)} {tab_steps} steps (the tab's default, "
                          "DDIM 20's quality)", seconds=default, images_per_s=16 / default))
    # the baseline: 1000 ancestral steps, one image per forward pass; timed on --naive-images images
    sched = DDPMScheduler.from_config(model.scheduler_config)
    per_image = timed(lambda: naive_ancestral(model.unet, sched, args.naive_images), 1) / args.naive_images
    rows.append(dict(name=f"baseline: seeds' sampler, 1000 ancestral steps, 1 image at a time "
                          f"(timed on {args.naive_images}, ×16)", seconds=16 * per_image, images_per_s=1 / per_image))
    for steps in (20, 50):
        rows.append(dict(name=f"speed-up of DDIM {steps} (batched) over the baseline", ratio=16 * per_image / ddim[steps]))
    return rows


# ----------------------------------------------------------------------------- class-conditional DDPM (CFG)
def bench_guided(name: str = "cfg-mnist", num_images: int = 16, steps: int = 25, scale: float = 3.0,
                 reference_steps: int = 1000, threads: int = 2, repeats: int = 2, sampler: str = "DDIM") -> dict:
    """Time 16 guided images: `sampler` with cond+uncond in ONE batched forward, versus the reference sampler
    (DDPM ancestral, 1000 steps, two separate forward passes per step), measured in the same run.

    `reference_steps` < 1000 times only that many reference steps and extrapolates linearly (reported); 0 times none.
    """
    from diffusers import DDPMScheduler

    from ..cfg.pipeline import load_cfg

    with torch_threads(threads):
        model = load_cfg(name, "cpu")
        classes = [i % len(model.class_names) for i in range(num_images)]
        cond, uncond = model.labels(classes)
        model.generate(classes, scale=scale, sampler="DDIM", steps=2, seed=0)  # warm-up
        ours = []
        for r in range(repeats):
            t0 = time.perf_counter()
            model.generate(classes, scale=scale, sampler=sampler, steps=steps, seed=r)
            ours.append(time.perf_counter() - t0)
        best = min(ours)
        out = {"model": name, "images": num_images, "scale": scale, "threads": threads, "guided_sampler": sampler,
               "guided_ddim_steps": steps, "guided_seconds": round(best, 3),
               "guided_images_per_second": round(num_images / best, 2)}
        if not reference_steps:
            return out
        ref_sched = DDPMScheduler.from_config(model.scheduler_config)
        predict = two_pass_predictor(model.forward, cond, uncond, scale)
        n_ref = min(reference_steps, ref_sched.config.num_train_timesteps)
        t0 = time.perf_counter()
        for step in denoise(predict, ref_sched, (num_images, *model.shape), ref_sched.config.num_train_timesteps,
                            cpu_generator(0), model.device):
            if step.i + 1 >= n_ref:
                break
        ref = (time.perf_counter() - t0) * ref_sched.config.num_train_timesteps / n_ref
        return {**out, "reference": "DDPM ancestral, 1000 steps, 2 separate forward passes per step",
                "reference_seconds": round(ref, 2), "reference_steps_timed": n_ref,
                "reference_images_per_second": round(num_images / ref, 3), "speedup": round(ref / best, 1)}


def bench_cfg(args) -> list[dict]:
    """The CFG rows: batched guided DDIM 20 (the evaluation's steps) and the tab's default, against the reference
    two-pass sampler."""
    r = bench_guided(steps=20, threads=args.threads, repeats=args.repeats)
    sampler, steps = tab_choice("cfg")
    d = bench_guided(steps=steps, sampler=sampler, reference_steps=0, threads=args.threads, repeats=args.repeats)
    return [dict(name=f"MNIST CFG: 16 guided images, DDIM {r['guided_ddim_steps']} steps, cond+uncond in one batch",
                 seconds=r["guided_seconds"], images_per_s=r["guided_images_per_second"]),
            dict(name=f"MNIST CFG: 16 guided images, {sampler_label(sampler)} {steps} steps (the tab's default, "
                      "DDIM 20's quality)", seconds=d["guided_seconds"], images_per_s=d["guided_images_per_second"]),
            dict(name="baseline: reference CFG sampler, 1000 DDPM steps, 2 separate forward passes per step",
                 seconds=r["reference_seconds"], images_per_s=r["reference_images_per_second"]),
            dict(name="speed-up of batched guided DDIM over the reference CFG sampler", ratio=r["speedup"]),
            dict(name="speed-up of the tab's default over the reference CFG sampler",
                 ratio=r["reference_seconds"] / d["guided_seconds"])]


# ----------------------------------------------------------------------------- latent diffusion
BENCH_PROMPT = "a picture of a large blue triangle sitting in the middle against a white backdrop"


def bench_ldm(num_images: int = 4, steps: int = 20, scale: float = 3.0, threads: int = 2, repeats: int = 3,
              name: str = "ldm-shapes", sampler: str = "DDIM") -> dict:
    """Time 4 guided 64x64 images (`sampler`, `steps`, w = 3) on the CPU, split into text encoding, the UNet loop and
    VAE decoding; and the same UNet loop with two separate passes per step (the reference way) as the baseline."""
    from ..ldm.pipeline import load_ldm

    with torch_threads(threads):
        model = load_ldm(name, "cpu")
        model.generate(BENCH_PROMPT, scale=scale, sampler="DDIM", steps=2, num_images=num_images, seed=0)  # warm-up
        parts = {"text": [], "unet": [], "vae": [], "unet_two_pass": []}
        for r in range(repeats):
            t0 = time.perf_counter()
            embeds = model.encode_prompt(BENCH_PROMPT, "", num_images)
            t1 = time.perf_counter()
            step = None
            for step in model.frames(BENCH_PROMPT, scale=scale, sampler=sampler, steps=steps, num_images=num_images,
                                     seed=r, embeds=embeds):
                pass
            t2 = time.perf_counter()
            model.decode(step.x)
            t3 = time.perf_counter()
            scheduler, _ = model.make_scheduler(sampler)
            cond, uncond = embeds.conditions()
            for _ in denoise(two_pass_predictor(model.forward, cond, uncond, scale), scheduler,
                             model.latent_shape(num_images), steps, cpu_generator(r), model.device):
                pass
            t4 = time.perf_counter()
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[key].append(dt)
        med = {k: statistics.median(v) for k, v in parts.items()}
        total = med["text"] + med["unet"] + med["vae"]
        return {"images": num_images, "sampler": sampler, "steps": steps, "scale": scale, "threads": threads, "seconds": total,
                **{f"{k}_seconds": v for k, v in med.items()}, "images_per_second": num_images / total,
                "two_pass_seconds": med["text"] + med["unet_two_pass"] + med["vae"]}


def bench_ldm_rows(args) -> list[dict]:
    """The latent-diffusion rows: the split of one guided batch, and one batched pass against two."""
    sampler, steps = tab_choice("text2img")
    try:
        r = bench_ldm(threads=args.threads, repeats=args.repeats, sampler=sampler, steps=steps)
        ddim = bench_ldm(threads=args.threads, repeats=args.repeats)
    except CheckpointMissing as exc:
        print(f"ldm-shapes skipped: {exc}")
        return []
    what = (f"{r['images']} images 64x64, {sampler_label(sampler)} {r['steps']} steps (the tab's default, DDIM 20's "
            f"quality), CFG w = {r['scale']:g}")
    return [dict(name=f"Shapes LDM: {what} (cond+uncond in one batch)", seconds=r["seconds"],
                 images_per_s=r["images_per_second"]),
            dict(name="Shapes LDM: of which text encoding (prompt + negative prompt, MiniLM)",
                 seconds=r["text_seconds"]),
            dict(name=f"Shapes LDM: of which UNet ({r['steps']} guided steps)", seconds=r["unet_seconds"]),
            dict(name="Shapes LDM: of which VAE decoding", seconds=r["vae_seconds"]),
            dict(name=f"baseline: Shapes LDM, {what}, 2 separate UNet passes per step", seconds=r["two_pass_seconds"],
                 images_per_s=r["images"] / r["two_pass_seconds"]),
            dict(name="speed-up of one batched CFG pass over two passes (Shapes LDM)",
                 ratio=r["two_pass_seconds"] / r["seconds"]),
            dict(name=f"Shapes LDM: the same at DDIM {ddim['steps']} steps (cond+uncond in one batch)",
                 seconds=ddim["seconds"], images_per_s=ddim["images_per_second"]),
            dict(name="speed-up of the tab's default over DDIM 20 (Shapes LDM)", ratio=ddim["seconds"] / r["seconds"])]


# the benchmarks, in the order of the table: group name -> rows(args)
BENCHMARKS = {"ddpm": bench_ddpm, "cfg": bench_cfg, "ldm": bench_ldm_rows, "latency": latency.rows, "peers": peers.rows}


def markdown(rows: list[dict], header: str) -> str:
    lines = [header, "", "| measurement | time (s) | images/s | ratio |", "|---|---|---|---|"]
    for r in rows:
        s = f"{r['seconds']:.3f}" if "seconds" in r else ""
        ips = f"{r['images_per_s']:.2f}" if "images_per_s" in r else ""
        ratio = (f"{r['ratio']:.1f}×" if r["ratio"] < 10 else f"{r['ratio']:.0f}×") if "ratio" in r else ""
        lines.append(f"| {r['name']} | {s} | {ips} | {ratio} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--naive-images", type=int, default=1)
    p.add_argument("--only", nargs="*", default=None, help="subset of the registered rows, e.g. ddpm cfg")
    p.add_argument("--write-readme", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name, fn in BENCHMARKS.items():
        if args.only is None or name in args.only:
            rows += [dict(r, group=name) for r in fn(args)]
    if args.only:  # keep the other groups' rows of the last full run
        old = read_json(PROJECT_ROOT / "results" / "benchmark.json", {"rows": []})
        rows = replace_groups(old["rows"], rows, "group", redone=args.only)
    header = (f"Measured by `python -m pipelines.benchmark` on {_machine()} with torch.set_num_threads({args.threads}), "
              f"median of {args.repeats} runs.")
    if args.only:
        header += (f" Rows of {', '.join(args.only)} re-measured by `python -m pipelines.benchmark --only "
                   f"{' '.join(args.only)}`; the others are from the last full run.")
    text = markdown(rows, header)
    print(text)
    out = PROJECT_ROOT / "results"
    out.mkdir(exist_ok=True)
    write_json(out / "benchmark.json", {"threads": args.threads, "rows": rows})
    if args.write_readme:
        replace_section("benchmark", text)


def _machine() -> str:
    from ..training import hardware_summary
    return hardware_summary().split(",")[0]


if __name__ == "__main__":
    main()

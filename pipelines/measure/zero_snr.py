"""Measure the four zero-terminal-SNR models; writes each one's metrics.json + card, and the README table.

    python -m pipelines.measure.zero_snr [--write-readme]
    python -m pipelines.measure.zero_snr --quick          # small n, for tests

Figures (DDIM, η = 0, fixed seeds; brightness = mean pixel value on a 0–1 scale):
1. extremes: ask for "all black" and "all white" at CFG scale w, with every timestep spacing; report the mean
   brightness of the samples and how far it is from the target (0 and 1);
2. the unconditional brightness distribution (w = 0, the model's own spacing) against the data's: the
   Wasserstein-1 distance between the two histograms of per-image mean brightness, and the share of
   near-flat extremes (brightness < 0.05 or > 0.95);
3. over-exposure at large w: the share of pixels the sampler leaves outside [−1, 1] (before clipping) for
   digits at w = 7, with and without the guidance rescale φ = 0.7;
4. non-finite samples (NaN/inf), e.g. an ε model sampled from t = T of a zero-SNR schedule.
"""
from __future__ import annotations

import argparse
import time

import torch

from ..cards import update_metrics
from ..cfg.card import write_cfg_card
from ..data import dataset_tensors
from ..images import finite_samples
from ..schedules import SPACINGS
from ..training import command_line, hardware_summary
from ..zero_snr import VARIANTS, brightness, load_variant, variant_label
from .context import Context
from .samplers import ZERO_SNR_SCALE, guided_sample

BLACK, WHITE = "all black", "all white"
EXTREME_SCALE, OVEREXPOSE_SCALE, RESCALE_PHI = 3.0, 7.0, 0.7
EVALUATION = "zero-snr"


def wasserstein_1d(a: torch.Tensor, b: torch.Tensor, bins: int = 1000) -> float:
    """W1 between two samples on [0, 1]: the area between their empirical CDFs."""
    grid = torch.linspace(0, 1, bins + 1)
    cdf = lambda s: torch.searchsorted(s.sort().values.contiguous(), grid, right=True).float() / len(s)  # noqa: E731
    return (cdf(a) - cdf(b)).abs().mean().item()


def extreme_share(b: torch.Tensor, margin: float = 0.05) -> float:
    return ((b < margin) | (b > 1 - margin)).float().mean().item()


@torch.no_grad()
def measure_model(name: str, n: int, uncond_n: int, steps: int, seed: int, data_b: torch.Tensor,
                  spacings=SPACINGS, log=print) -> dict:
    model = load_variant(name)
    own = model.scheduler_config.get("timestep_spacing", "leading")
    black, white = model.class_index(BLACK), model.class_index(WHITE)
    out = {"name": name, "weights": model.weights_hash, "own_spacing": own, "extremes": {}}
    # 1. "all black" / "all white" with each spacing, one batch, same seeds for every model
    for spacing in spacings:
        x = model.generate([black] * n + [white] * n, scale=EXTREME_SCALE, sampler="DDIM", steps=steps, seed=seed, spacing=spacing,
                           clamp=False)
        ok = finite_samples(x)
        b = brightness(torch.nan_to_num(x))
        out["extremes"][spacing] = {
            "black": b[:n][ok[:n]].mean().item() if ok[:n].any() else None,
            "white": b[n:][ok[n:]].mean().item() if ok[n:].any() else None,
            "non_finite": 1 - ok.float().mean().item()}
        log(f"{name} {spacing}: {out['extremes'][spacing]}")
    # 2. unconditional brightness distribution (w = 0) with the model's own spacing
    x = torch.cat([model.generate([0] * len(chunk), scale=0.0, sampler="DDIM", steps=steps, seed=seed + 1 + k, clamp=False)
                   for k, chunk in enumerate(torch.arange(uncond_n).split(50))])  # the label is ignored at w = 0
    ok = finite_samples(x)
    b = brightness(x[ok]) if ok.any() else torch.empty(0)
    out["unconditional"] = {"brightness": [round(v, 4) for v in b.tolist()], "non_finite": 1 - ok.float().mean().item(),
                            "w1_to_data": wasserstein_1d(b, data_b) if len(b) else None,
                            "extreme_share": extreme_share(b) if len(b) else None}
    # 3. over-exposure at large w, without and with the φ rescale (digits 0-9)
    digits = [d for d in range(10) for _ in range(max(1, n // 8))]
    out["overexposure"] = {}
    for phi in (0.0, RESCALE_PHI):
        x = model.generate(digits, scale=OVEREXPOSE_SCALE, rescale=phi, sampler="DDIM", steps=steps, seed=seed + 2, clamp=False)
        x = x[finite_samples(x)]
        out["overexposure"][str(phi)] = (x.abs() > 1).float().mean().item() if len(x) else None
    return out


def rows_for(m: dict, n: int, uncond_n: int, steps: int) -> list[dict]:
    fmt = lambda v: "non-finite" if v is None else f"{v:.3f}"  # noqa: E731
    proto = f"DDIM {steps} steps, w = {EXTREME_SCALE:g}, {n} samples per target, fixed seeds"
    rows = []
    for spacing, e in m["extremes"].items():
        tag = " (this model's spacing)" if spacing == m["own_spacing"] else ""
        rows.append({"figure": f"mean brightness for 'all black' / 'all white', {spacing} spacing{tag}",
                     "value": f"{fmt(e['black'])} / {fmt(e['white'])}", "protocol": proto + " (targets 0 / 1)"})
        if e["non_finite"]:
            rows.append({"figure": f"non-finite samples, {spacing} spacing", "value": e["non_finite"],
                         "protocol": proto})
    u = m["unconditional"]
    rows += [{"figure": "unconditional brightness: W1 distance to the data", "value": fmt(u["w1_to_data"]),
              "protocol": f"{uncond_n} samples at w = 0, {m['own_spacing']} spacing, vs brightness-mnist test set"},
             {"figure": "unconditional share of near-flat extremes (< 0.05 or > 0.95)", "value": fmt(u["extreme_share"]),
              "protocol": "data: see the data row"}]
    o = m["overexposure"]
    rows.append({"figure": f"pixels outside [-1, 1] at w = {OVEREXPOSE_SCALE:g}: φ = 0 / φ = {RESCALE_PHI}",
                 "value": f"{fmt(o['0.0'])} / {fmt(o[str(RESCALE_PHI)])}",
                 "protocol": f"digits 0-9, DDIM {steps} steps, before clipping"})
    return rows


def evaluate(n: int = 32, uncond_n: int = 200, steps: int = 25, seed: int = 0, log=print) -> dict:
    x_data, _ = dataset_tensors("brightness-mnist", train=False)
    data_b = brightness(x_data)
    results = {"command": command_line(), "n": n, "uncond_n": uncond_n, "steps": steps, "seed": seed,
               "extreme_scale": EXTREME_SCALE, "overexpose_scale": OVEREXPOSE_SCALE, "rescale_phi": RESCALE_PHI,
               "data": {"extreme_share": extreme_share(data_b),
                        "histogram": torch.histc(data_b, 20, 0, 1).div(len(data_b)).tolist()},
               "hardware": hardware_summary(), "models": {}}
    for (v, z), name in VARIANTS.items():
        t0 = time.time()
        m = measure_model(name, n, uncond_n, steps, seed, data_b, log=log)
        m.update(label=variant_label(v_prediction=v, zero_snr=z), v_prediction=v, zero_snr=z, seconds=round(time.time() - t0, 1))
        results["models"][name] = m
    return results


def write(results: dict) -> None:
    """Each model's metrics.json rows + card; the per-model raw figures stay in its metrics.json."""
    for name, m in results["models"].items():
        folder = load_variant(name).path
        rows = rows_for(m, results["n"], results["uncond_n"], results["steps"])
        rows.append({"figure": "data: share of near-flat extremes", "value": results["data"]["extreme_share"],
                     "protocol": "brightness-mnist test set (10,000 images)"})
        update_metrics(folder, EVALUATION, results["command"], rows, zero_snr=dict(m, data=results["data"],
                       protocol={k: results[k] for k in ("n", "uncond_n", "steps", "seed", "extreme_scale",
                                                         "overexpose_scale", "rescale_phi")}))
        write_cfg_card(folder)


def readme_section(results: dict) -> str:
    fmt = lambda v: "NaN" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["| model | own spacing | 'all black' → 0 (leading · trailing · linspace) | 'all white' → 1 (same) | "
             "unconditional W1 to data | unconditional extremes (data " + f"{results['data']['extreme_share']:.3f}) | "
             f"pixels outside [−1, 1] at w = {OVEREXPOSE_SCALE:g}, φ = 0 / {RESCALE_PHI} |", "|---|---|---|---|---|---|---|"]
    for name, m in results["models"].items():
        e, u, o = m["extremes"], m["unconditional"], m["overexposure"]
        lines.append(f"| {m['label']} (`{name}`) | {m['own_spacing']} | "
                     + " · ".join(fmt(e[s]["black"]) for s in SPACINGS) + " | "
                     + " · ".join(fmt(e[s]["white"]) for s in SPACINGS) + f" | {fmt(u['w1_to_data'])} | "
                     f"{fmt(u['extreme_share'])} | {fmt(o['0.0'])} / {fmt(o[str(RESCALE_PHI)])} |")
    return (f"Measured by `{results['command']}` (DDIM {results['steps']} steps, CFG w = {EXTREME_SCALE:g}, "
            f"{results['n']} samples per target, {results['uncond_n']} unconditional samples, fixed seeds; "
            "brightness on a 0–1 scale; NaN = every sample non-finite):\n\n" + "\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=32, help="samples per target ('all black', 'all white')")
    p.add_argument("--uncond-n", type=int, default=200)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="n = 4, 24 unconditional, 10 steps; writes nothing")
    p.add_argument("--write-readme", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.n, args.uncond_n, args.steps = 4, 24, 10
    results = evaluate(args.n, args.uncond_n, args.steps, args.seed)
    if args.quick:
        print(readme_section(results))
        return results
    write(results)
    if args.write_readme:
        from ..readme import replace_section
        replace_section("zero-snr", readme_section(results))
    print(readme_section(results))
    return results


# ----------------------------------------------------------------------------- in the evaluation command
def suite_rows(name: str, ctx: Context) -> list[dict]:
    """FID and IS on brightness-varied MNIST, and the share of non-finite samples (`python -m pipelines.evaluate`)."""
    v_prediction, zero_snr = next(k for k, n in VARIANTS.items() if n == name)
    label = variant_label(v_prediction=v_prediction, zero_snr=zero_snr)
    model = load_variant(name)  # CheckpointMissing -> skipped
    spacing, k = model.scheduler_config.get("timestep_spacing", "leading"), len(model.class_names)
    p = ctx.protocol
    steps = p.guided_steps
    images, _ = guided_sample(name, ZERO_SNR_SCALE, p.n, p.seed, steps)
    ok = finite_samples(images)
    protocol = (f"{p.n:,} samples, the {k} classes requested in turn, DDIM {steps} steps with the model's own "
                f"{spacing} spacing, w = {ZERO_SNR_SCALE:g}, seeds {p.seed}·1000 + batch")
    plot = dict(name="Zero terminal SNR × v-prediction on brightness-varied MNIST (MNIST-judge features)",
                x="v" if v_prediction else "ε", x_label="prediction target",
                series=f"{'zero-terminal-SNR' if zero_snr else 'default'} schedule, {spacing} spacing")
    title, setting = f"{label} ({name})", f"w = {ZERO_SNR_SCALE:g}, DDIM {steps} steps, {spacing} spacing"
    non_finite = dict(model=title, setting=setting, dataset="brightness-mnist", n=p.n, features=None,
                      metric="non-finite", figure=f"share of non-finite samples (NaN/inf), n={p.n:,}",
                      value=round(1 - ok.float().mean().item(), 4), protocol=protocol, plot=plot)
    if ok.sum() < max(2, p.n // 2):   # FID of a handful of images would say nothing
        ctx.log(f"  {int((~ok).sum())} of {p.n} samples are non-finite: FID and IS not computed")
        return [non_finite]
    left_out = f"; the {int((~ok).sum())} non-finite samples left out" if not ok.all() else ""
    return ctx.score(images[ok], "brightness-mnist", title, setting, protocol=protocol + left_out,
                     plot=plot) + [non_finite]


if __name__ == "__main__":
    main()

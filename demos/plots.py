"""Matplotlib figures for the tabs (object-oriented API: no global pyplot state between users)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from pipelines.schedules import SCHEDULES, alphas_cumprod, log_snr  # noqa: E402

from .common import SAMPLER_KEYS  # noqa: E402
from .i18n import tr  # noqa: E402

# each schedule's key in the translation tables (schedule.<key>: its full name, schedule.<key>_short: its short one)
SCHEDULE_KEYS = dict(zip(SCHEDULES, ("linear", "scaled_linear", "cosine")))


def schedule_plot(highlight: str | None = None, zero_snr: bool = False, t: int | None = None) -> Figure:
    """ᾱ_t and log SNR(t) for every schedule, with and without zero terminal SNR."""
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_a, ax_s = fig.subplots(1, 2)
    for i, name in enumerate(SCHEDULES):
        color = f"C{i}"
        for zsnr, style in ((False, "-"), (True, "--")):
            abar = alphas_cumprod(name, zsnr)
            bold = name == highlight and zsnr == zero_snr
            label = f"{tr('schedule.' + SCHEDULE_KEYS[name] + '_short')}{tr('plots.schedule_zero') if zsnr else ''}"
            kw = dict(color=color, ls=style, lw=2.6 if bold else 1.1, alpha=1 if bold else 0.6, label=label)
            ax_a.plot(abar.numpy(), **kw)
            ax_s.plot(log_snr(abar).numpy(), **kw)
    if t is not None:
        for ax in (ax_a, ax_s):
            ax.axvline(t, color="k", lw=0.8, ls=":")
    ax_a.set(title=tr("plots.abar_title"), xlabel="t", ylim=(-0.02, 1.02))
    ax_s.set(title=tr("plots.logsnr_title"), xlabel="t")
    ax_a.legend(fontsize=7, ncol=1)
    for ax in (ax_a, ax_s):
        ax.grid(alpha=0.3)
    return fig


def curves_plot(curves: dict[str, list], title: str, xlabel: str, ylabel: str, log: bool = False,
                markers: bool = True) -> Figure:
    """curves: label -> [[x, y], ...], one line each."""
    fig = Figure(figsize=(5, 2.8), layout="constrained")
    ax = fig.subplots()
    for label, curve in curves.items():
        if curve:
            xs, ys = zip(*curve)
            ax.plot(xs, ys, label=label, marker="o" if markers else None, ms=3)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, yscale="log" if log else "linear")
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    return fig


def loss_plot(curves: dict[str, list], title: str | None = None, ylabel: str | None = None) -> Figure:
    """curves: label -> [[step, value], ...], on a log scale."""
    return curves_plot(curves, tr("plots.training_loss") if title is None else title, tr("plots.step"),
                       tr("plots.loss") if ylabel is None else ylabel,
                       log=True, markers=False)


def metrics_plot(rows: list[dict], name: str) -> Figure | None:
    """One evaluation plot of results/metrics.json: value vs x per series, one panel per metric (FID, IS),
    with the real-data floor at the same n and features as a dashed line."""
    mine = [r for r in rows if (r.get("plot") or {}).get("name") == name]
    if not mine:
        return None
    metrics = list(dict.fromkeys(r["metric"] for r in mine))
    fig = Figure(figsize=(4.2 * len(metrics), 3.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    multi_features = len({r["features"] for r in mine if r.get("features")}) > 1
    for ax, metric in zip(axes, metrics):
        series: dict[str, list] = {}
        drawn = set()   # each floor once per panel
        for r in mine:
            if r["metric"] == metric:
                label = r["plot"]["series"] + (f" [{r['features']}]" if multi_features and r.get("features") else "")
                series.setdefault(label, []).append((r["plot"]["x"], r["value"], r))
        for i, (label, pts) in enumerate(series.items()):
            if all(isinstance(p[0], (int, float)) for p in pts):   # categories (e.g. "ε", "v") keep their order
                pts.sort(key=lambda p: p[0])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=f"C{i}", label=label)
            ref = pts[0][2]
            for f in rows:
                if (f.get("floor") and f["metric"] == metric and f["features"] == ref.get("features")
                        and f["n"] == ref["n"] and f.get("dataset") == ref.get("dataset") and id(f) not in drawn):
                    drawn.add(id(f))
                    ax.axhline(f["value"], color=f"C{i}" if multi_features else "k", ls="--", lw=1,
                               label=tr("plots.real_same_n") + (f" [{f['features']}]" if multi_features else ""))
        figures = {r["figure"] for r in mine if r["metric"] == metric}
        ax.set(title=figures.pop() if len(figures) == 1 else metric, xlabel=mine[0]["plot"].get("x_label", ""),
               ylabel=metric)
        ax.title.set_fontsize(9)
        if metric == "FID":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(name, fontsize=10)
    return fig


# the figures of results/frontier.json, in the order of the panels, and the bound each is held to
FRONTIER_FIGURES = {"fid": "fid_relative", "accuracy": "judge", "confident": "judge", "shape": "judge",
                    "colour": "judge", "black": "brightness", "white": "brightness"}


def frontier_plot(row: dict, name: str, bounds: dict, chosen: dict | None = None) -> Figure:
    """One model of results/frontier.json: each figure against sampling steps, a line per sampler, the reference
    (DDIM 20, fp32) as a dashed line, the band a point may fall short of it by and still keep quality (shaded, on the
    worse side only: a point better than the reference keeps quality), and the tab's chosen default as a star."""
    from pipelines.measure.precision import HIGHER_IS_WORSE
    keys = [k for k in FRONTIER_FIGURES if k in row["reference"]]
    fig = Figure(figsize=(4.2 * len(keys), 3.3), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    samplers = list(dict.fromkeys(p["sampler"] for p in row["points"]))
    for ax, key in zip(axes, keys):
        for i, sampler in enumerate(samplers):
            pts = [(p["steps"], p["figures"][key]) for p in row["points"]
                   if p["sampler"] == sampler and p["figures"].get(key) is not None]
            if not pts:
                continue
            ax.plot(*zip(*pts), "o-", ms=3, lw=1.2, color=f"C{i}",
                    label=tr(SAMPLER_KEYS[sampler]) if sampler in SAMPLER_KEYS else sampler)
            hit = [v for s, v in pts if chosen and chosen["sampler"] == sampler and s == chosen["steps"]]
            if hit:
                ax.plot([chosen["steps"]], hit, "*", ms=15, color=f"C{i}", mec="k", zorder=5,
                        label=tr("plots.frontier_chosen", steps=chosen["steps"]))
        ref = row["reference"][key]
        if ref is not None:
            allowed = bounds[FRONTIER_FIGURES[key]] * (ref if key == "fid" else 1)
            limit = ref + allowed if key in HIGHER_IS_WORSE else ref - allowed
            ax.axhspan(min(ref, limit), max(ref, limit), color="k", alpha=0.10, lw=0)
            ax.axhline(ref, color="k", ls="--", lw=1, label=tr("plots.frontier_reference"))
        else:
            ax.text(0.5, 0.02, tr("plots.frontier_no_reference"), transform=ax.transAxes, ha="center", fontsize=8)
        ax.set(title=tr("plots.frontier_worse_up" if key in HIGHER_IS_WORSE else "plots.frontier_worse_down",
                        figure=key),
               xlabel=tr("plots.frontier_steps"), xscale="log")
        ax.minorticks_off()   # the log axis' minor labels (3×10¹, 4×10¹) would crowd the steps
        ax.set_xticks([4, 6, 10, 20, 50], labels=["4", "6", "10", "20", "50"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(tr("plots.frontier_title", model=name, precision=row.get("precision", "?")), fontsize=10)
    return fig


def quality_diversity_plot(sweeps: dict[str, list[dict]], real_diversity: dict[str, float] | None = None) -> Figure:
    """Classifier-free guidance: judge accuracy and sample diversity against the scale w.

    sweeps: label -> [{"w", "accuracy", "diversity"}, ...] (the `quality_diversity` of a metrics.json).
    """
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax_q, ax_d = fig.subplots(1, 2)
    for i, (label, rows) in enumerate(sweeps.items()):
        ws = [r["w"] for r in rows]
        ax_q.plot(ws, [100 * r["accuracy"] for r in rows], "o-", color=f"C{i}", label=label)
        ax_d.plot(ws, [r["diversity"] for r in rows], "o-", color=f"C{i}", label=label)
        if real_diversity and label in real_diversity:
            ax_d.axhline(real_diversity[label], color=f"C{i}", ls="--", lw=1,
                         label=tr("plots.real_test_images", label=label))
    ax_q.set(title=tr("plots.quality_title"), xlabel=tr("plots.guidance_w"), ylabel="%", ylim=(0, 102))
    ax_d.set(title=tr("plots.diversity_title"), xlabel=tr("plots.guidance_w"))
    for ax in (ax_q, ax_d):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def terminal_snr_plot(schedule: str, zero_snr: bool) -> Figure:
    """One schedule with and without the zero-terminal-SNR rescale: sqrt(ᾱ_t) and log SNR(t), ᾱ_T printed."""
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax_a, ax_s = fig.subplots(1, 2)
    for zsnr, color in ((False, "C0"), (True, "C3")):
        abar = alphas_cumprod(schedule, zsnr)
        bold = zsnr == zero_snr
        label = f"{tr('plots.rescaled') if zsnr else tr('plots.as_is')}: ᾱ_T = {abar[-1].item():.3g}"
        kw = dict(color=color, lw=2.6 if bold else 1.2, alpha=1 if bold else 0.6, label=label)
        ax_a.plot(abar.sqrt().numpy(), **kw)
        ax_s.plot(log_snr(abar).numpy(), **kw)
    ax_a.set(title=tr("plots.sqrt_abar_title"), xlabel="t", ylim=(-0.02, 1.02))
    ax_s.set(title=tr("plots.terminal_logsnr_title"), xlabel="t")
    inset = ax_a.inset_axes([0.45, 0.45, 0.5, 0.45])
    for zsnr, color in ((False, "C0"), (True, "C3")):
        inset.plot(range(900, 1000), alphas_cumprod(schedule, zsnr)[900:].sqrt().numpy(), color=color)
    inset.set_title("t = 900…999", fontsize=7)
    inset.tick_params(labelsize=6)
    for ax in (ax_a, ax_s):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(tr("schedule." + SCHEDULE_KEYS[schedule]) if schedule in SCHEDULE_KEYS else schedule, fontsize=9)
    return fig


def brightness_plot(data_hist: list[float], samples: dict[str, list[float]], bins: int = 20) -> Figure:
    """Histogram of per-image mean brightness (0-1): the data (bars) against each model's samples (lines)."""
    import numpy as np
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax = fig.subplots()
    edges = np.linspace(0, 1, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    ax.bar(centres, data_hist, width=1 / bins, color="0.8", edgecolor="0.5", label=tr("plots.brightness_data"))
    for i, (label, values) in enumerate(samples.items()):
        if values:
            h, _ = np.histogram(np.clip(values, 0, 1), bins=edges)
            ax.plot(centres, h / len(values), "o-", color=f"C{i}", lw=2 if "zero" in label and "v-" in label else 1.2,
                    label=f"{label} (n={len(values)})")
    ax.set(title=tr("plots.brightness_title"), xlabel=tr("plots.brightness_x"), ylabel=tr("plots.brightness_y"),
           xlim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig

"""Matplotlib figures for the tabs (object-oriented API: no global pyplot state between users)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from pipelines.schedules import SCHEDULES, alphas_cumprod, log_snr  # noqa: E402


def schedule_plot(highlight: str | None = None, zero_snr: bool = False, t: int | None = None) -> Figure:
    """ᾱ_t and log SNR(t) for every schedule, with and without zero terminal SNR."""
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_a, ax_s = fig.subplots(1, 2)
    for i, name in enumerate(SCHEDULES):
        color = f"C{i}"
        for zsnr, style in ((False, "-"), (True, "--")):
            abar = alphas_cumprod(name, zsnr)
            bold = name == highlight and zsnr == zero_snr
            label = f"{name.split(' (')[0]}{' + zero SNR' if zsnr else ''}"
            kw = dict(color=color, ls=style, lw=2.6 if bold else 1.1, alpha=1 if bold else 0.6, label=label)
            ax_a.plot(abar.numpy(), **kw)
            ax_s.plot(log_snr(abar).numpy(), **kw)
    if t is not None:
        for ax in (ax_a, ax_s):
            ax.axvline(t, color="k", lw=0.8, ls=":")
    ax_a.set(title=r"$\bar\alpha_t$ (signal kept)", xlabel="t", ylim=(-0.02, 1.02))
    ax_s.set(title=r"$\log \mathrm{SNR}(t) = \log \bar\alpha_t - \log(1-\bar\alpha_t)$", xlabel="t")
    ax_a.legend(fontsize=7, ncol=1)
    for ax in (ax_a, ax_s):
        ax.grid(alpha=0.3)
    return fig


def loss_plot(curves: dict[str, list], title: str = "training loss", ylabel: str = "loss") -> Figure:
    """curves: label -> [[step, value], ...]."""
    fig = Figure(figsize=(5, 2.8), layout="constrained")
    ax = fig.subplots()
    for label, curve in curves.items():
        if curve:
            xs, ys = zip(*curve)
            ax.plot(xs, ys, label=label)
    ax.set(title=title, xlabel="step", ylabel=ylabel, yscale="log")
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    return fig

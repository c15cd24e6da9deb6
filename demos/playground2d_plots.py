"""Matplotlib figures of the 2-D playground (object-oriented API: no pyplot state shared between users), returned
as PNG images carrying their settings (pipelines/infotext.py). Their words are in the request's language; a formula in
a Persian text is written in Unicode, not in mathtext, which would draw the whole text's letters unjoined."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402
from PIL import Image  # noqa: E402

from pipelines.infotext import attach  # noqa: E402
from pipelines.toy2d.data import EXTENT  # noqa: E402

from .i18n import is_rtl, tr  # noqa: E402

LIM = (-EXTENT - 0.3, EXTENT + 0.3)
CLASS_COLOURS = ("#d62728", "#2ca02c", "#1f77b4")


_SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def math(latex: str, plain: str) -> str:
    """A formula inside a figure's text: matplotlib's mathtext (`latex`), or on a right-to-left page the `plain`
    Unicode one (mathtext draws every glyph of the text it is in on its own: Persian letters would come apart)."""
    return plain if is_rtl() else latex


def subscript(n: int) -> str:
    return str(n).translate(_SUBSCRIPT)


def to_png(fig: Figure, **settings) -> Image.Image:
    """The figure as a PIL image (110 dpi) with the settings that made it in its PNG text chunks."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    buf.seek(0)
    img = Image.open(buf).convert("RGB")
    img.load()
    return attach(img, tab="playground2d", **settings)


def arrows(vectors, length: float, cap_percentile: float = 80) -> np.ndarray:
    """Arrows to draw: lengths scaled so the cap_percentile-th vector is `length` long, and none longer (far from
    the data the score grows linearly, and uncapped arrows there would hide the ones near the data)."""
    v = np.asarray(vectors, dtype=np.float64)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    cap = np.percentile(norm, cap_percentile) + 1e-12
    return v / cap * length * np.minimum(1.0, cap / np.maximum(norm, 1e-12))


def _square(ax, title: str = ""):
    ax.set(xlim=LIM, ylim=LIM, aspect="equal", title=title)
    ax.grid(alpha=0.25)
    ax.tick_params(labelsize=8)


def scatter(ax, pts, title: str = "", colour: str = "C0", s: float = 3, alpha: float = 0.5, label=None):
    pts = np.asarray(pts)
    ax.scatter(pts[:, 0], pts[:, 1], s=s, c=colour, alpha=alpha, linewidths=0, label=label, rasterized=True)
    _square(ax, title)


def data_figure(train, held, title: str) -> Figure:
    fig = Figure(figsize=(4.6, 4.6), layout="constrained")
    ax = fig.subplots()
    scatter(ax, train, title, "C0", label=tr("playground2d.plot_training_shown", n=len(train)))
    scatter(ax, held, title, "C1", alpha=0.6, label=tr("playground2d.plot_heldout_n", n=len(held)))
    ax.legend(fontsize=8, loc="upper right", markerscale=4)
    return fig


def forward_figure(x0, x_t, t: int, abar: float, abars, schedule: str) -> Figure:
    fig = Figure(figsize=(9.5, 4.3), layout="constrained")
    ax_x0, ax_xt, ax_a = fig.subplots(1, 3, gridspec_kw=dict(width_ratios=[1, 1, 0.9]))
    scatter(ax_x0, x0, tr("playground2d.plot_x0_data", x0=math("$x_0$", "x₀")))
    lim = max(3.5, float(np.abs(np.asarray(x_t)).max()) * 1.05)
    formula = math(r"$\sqrt{\bar\alpha_t}\,x_0+\sqrt{1-\bar\alpha_t}\,\varepsilon$", "√ᾱₜ x₀ + √(1−ᾱₜ) ε")
    scatter(ax_xt, x_t, tr("playground2d.plot_xt_at", xt=math("$x_t$", "xₜ"), t=t, formula=formula), "C3")
    ax_xt.set(xlim=(-lim, lim), ylim=(-lim, lim))
    circle = np.linspace(0, 2 * np.pi, 100)
    ax_xt.plot(2 * np.cos(circle), 2 * np.sin(circle), "k:", lw=0.8, label=tr("playground2d.plot_prior_circle"))
    ax_xt.legend(fontsize=7, loc="upper right")
    ax_a.plot(np.asarray(abars), label=r"$\bar\alpha_t$")
    ax_a.plot(1 - np.asarray(abars), label=r"$1-\bar\alpha_t$")
    ax_a.axvline(t, color="k", ls=":", lw=1)
    abar_symbol = math(r"$\bar\alpha_t$", "ᾱₜ")
    ax_a.set(title=tr("playground2d.plot_schedule_abar", schedule=schedule, abar=abar_symbol, value=abar), xlabel="t",
             ylim=(-0.02, 1.02))
    ax_a.legend(fontsize=8)
    ax_a.grid(alpha=0.3)
    return fig


def training_figure(curves: dict, samples, held, title: str, status: str) -> Figure:
    """Loss curves | samples now over the held-out data. A live run draws one every few hundred steps, so its margins
    are fixed: the constrained layout's extra drawing pass took half of each frame's 0.55 s."""
    fig = Figure(figsize=(9.5, 4.2))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.86, wspace=0.22)
    ax_l, ax_s = fig.subplots(1, 2)
    for name, curve in curves.items():
        if curve:
            c = np.asarray(curve)
            ax_l.plot(c[:, 0], c[:, 1], label=tr("plots.loss") if name == "loss" else name)   # or G, D
    ax_l.set(title=tr("playground2d.plot_loss_title"), xlabel=tr("playground2d.plot_optimiser_step"))
    if any(curves.values()):
        ax_l.legend(fontsize=8)
        if "loss" in curves:
            ax_l.set_yscale("log")
    ax_l.grid(alpha=0.3)
    scatter(ax_s, held, "", "0.75", alpha=0.35, label=tr("playground2d.plot_heldout_data"))
    scatter(ax_s, samples, title, "C3", alpha=0.6, label=tr("playground2d.plot_samples_now"))
    ax_s.legend(fontsize=8, loc="upper right", markerscale=4)
    fig.suptitle(status, fontsize=10)
    return fig


def field_figure(grid, learned, true, data_pts, trajectories, t: int, what: str, agreement: str) -> Figure:
    """Two quiver panels: the learned field and the true one, same grid, same arrow scale (lengths compare; arrows
    longer than the 80th percentile of the true ones are capped there); trajectories (steps, particles, 2) are drawn
    on the learned panel."""
    fig = Figure(figsize=(10, 5), layout="constrained")
    axes = fig.subplots(1, 2)
    g, L, T = np.asarray(grid), np.asarray(learned), np.asarray(true)
    cap = np.percentile(np.linalg.norm(T, axis=1), 80) + 1e-12      # one scale for both panels: lengths compare
    for ax, vec, name in ((axes[0], L, "learned"), (axes[1], T, "true")):
        scatter(ax, data_pts, "", "0.8", s=2, alpha=0.4)
        norm = np.linalg.norm(vec, axis=1, keepdims=True)
        v = vec / cap * 0.3 * np.minimum(1.0, cap / np.maximum(norm, 1e-12))
        ax.quiver(g[:, 0], g[:, 1], v[:, 0], v[:, 1], angles="xy", scale_units="xy", scale=1, width=0.004,
                  color="C0" if name == "learned" else "C2")
        shown = tr("playground2d.plot_score") if what == "score" else what   # ε is a symbol
        _square(ax, tr(f"playground2d.plot_field_{name}", what=shown, t=t))
    if trajectories is not None:
        path = np.asarray(trajectories)
        for k in range(path.shape[1]):
            axes[0].plot(path[:, k, 0], path[:, k, 1], "-", color="C3", lw=1, alpha=0.8)
            axes[0].plot(path[-1, k, 0], path[-1, k, 1], "o", color="C3", ms=3)
        axes[0].plot([], [], "-", color="C3",
                     label=tr("playground2d.plot_trajectories", path=math("$x_T\\to x_0$", "x_T → x₀")))
        axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(agreement, fontsize=10)
    return fig


def _ellipse(ax, mean, var, colour, label):
    for k, ls in ((1, "-"), (2, "--")):
        ax.add_patch(Ellipse(mean, 2 * k * np.sqrt(var), 2 * k * np.sqrt(var), fill=False, ec=colour, lw=1.8, ls=ls,
                             label=label if k == 1 else None))


ZOOM_BELOW = 0.15   # a Gaussian whose 2σ circle is smaller than this (data units) hides under the mean's star


def _zoom(ax, samples, mean, var):
    """An inset, ±3σ around the mean: a short step's Gaussian (σ = 0.01 at N = 4 from t = 250) is far smaller than
    the star that marks its mean, and would not be seen at all."""
    m, sd = np.asarray(mean), float(np.sqrt(var))
    inset = ax.inset_axes([0.62, 0.04, 0.34, 0.34])
    pts = np.asarray(samples)
    inset.scatter(pts[:, 0], pts[:, 1], s=3, c="C1", alpha=0.5, linewidths=0)
    _ellipse(inset, m, var, "k", None)
    inset.set(xlim=(m[0] - 3 * sd, m[0] + 3 * sd), ylim=(m[1] - 3 * sd, m[1] + 3 * sd), aspect="equal",
              xticks=[], yticks=[])
    inset.set_title(tr("playground2d.plot_zoom", sd=sd), fontsize=7)
    ax.indicate_inset_zoom(inset, edgecolor="0.3")


def gaussian_figure(x_t, post_samples, ddpm_mean, ddpm_var, gauss_samples, data_pts, t: int, s: int, n_steps: int,
                    rows: list, chosen: int) -> Figure:
    """Top: q(x_s | x_t) (samples of the exact mixture) vs DDPM's N(μ̃, β̃ I) (samples + 1σ/2σ circles).
    Bottom: samples of the N-step ancestral sampler with the exact ε, for each N in rows [(N, points)]."""
    fig = Figure(figsize=(11, 7.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.25, 1])
    ax_true, ax_gauss = top.subplots(1, 2)
    where = "x_0" if s < 0 else f"x_{{{s}}}"
    q = math(f"$q({where}\\mid x_{{{t}}})$", f"q({'x₀' if s < 0 else 'x' + subscript(s)} | x{subscript(t)})")
    normal = math("$\\mathcal{N}(\\tilde\\mu, \\tilde\\beta I)$", "N(μ̃, β̃ I)")
    for ax, pts, colour, name in ((ax_true, post_samples, "C2", tr("playground2d.plot_true_posterior", q=q)),
                                  (ax_gauss, gauss_samples, "C1", tr("playground2d.plot_ddpm_gaussian", n=normal))):
        scatter(ax, data_pts, "", "0.82", s=2, alpha=0.4)
        scatter(ax, pts, tr("playground2d.plot_steps_delta", name=name, n=n_steps, delta=1000 // n_steps), colour, s=4,
                alpha=0.5)
        ax.plot(*np.asarray(x_t), marker="X", ms=11, color="k", ls="",
                label=tr("playground2d.plot_picked", xt=math("$x_t$", "xₜ")))
    for ax in (ax_true, ax_gauss):
        ax.plot(*np.asarray(ddpm_mean), marker="*", ms=14, color="C1", mec="k", ls="",
                label=tr("playground2d.plot_ddpm_mean", mu=math("$\\tilde\\mu$", "μ̃")))
    _ellipse(ax_gauss, np.asarray(ddpm_mean), ddpm_var, "k", tr("playground2d.plot_gaussian_circles"))
    _ellipse(ax_true, np.asarray(ddpm_mean), ddpm_var, "C1", tr("playground2d.plot_ddpm_circles"))
    if 2 * np.sqrt(ddpm_var) < ZOOM_BELOW:
        _zoom(ax_gauss, gauss_samples, ddpm_mean, ddpm_var)
    for ax in (ax_true, ax_gauss):
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    axes = bottom.subplots(1, len(rows))
    for ax, (n, pts) in zip(np.atleast_1d(axes), rows):
        scatter(ax, data_pts, "", "0.82", s=2, alpha=0.4)
        scatter(ax, pts, tr("playground2d.plot_n_chosen", n=n) if n == chosen else f"N = {n}",
                "C3" if n == chosen else "C0", s=3)
        ax.tick_params(labelsize=6)
    bottom.suptitle(tr("playground2d.plot_exact_rows"), fontsize=9)
    return fig


def cfg_figure(samples_by_class, grid, field, mix_samples, labels, w: float, label: int, t: int, names) -> Figure:
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax_s, ax_f = fig.subplots(1, 2)
    pts, lab = np.asarray(mix_samples), np.asarray(labels)
    for y, colour in enumerate(CLASS_COLOURS):
        scatter(ax_s, pts[lab == y], "", colour, s=2, alpha=0.18)
        scatter(ax_f, pts[lab == y], "", colour, s=2, alpha=0.18)
    scatter(ax_s, samples_by_class, tr("playground2d.plot_cfg_samples", label=names[label], w=w), "k", s=4, alpha=0.7)
    ax_s.set(xlim=(-3, 3), ylim=(-3, 3))
    g, v = np.asarray(grid), arrows(field, 0.3)
    ax_f.quiver(g[:, 0], g[:, 1], v[:, 0], v[:, 1], angles="xy", scale_units="xy", scale=1, width=0.004,
                color="k")
    guided = math(r"$\nabla\log q_t(x) + w\,\nabla\log q_t(y\mid x)$", "∇log qₜ(x) + w ∇log qₜ(y | x)")
    _square(ax_f, tr("playground2d.plot_guided_score", score=guided, t=t))
    ax_f.set(xlim=(-3, 3), ylim=(-3, 3))
    return fig


def trilemma_figure(rows: list[dict], floor: float) -> Figure:
    """Quality (MMD / floor, lower is better) against speed (network evaluations, log), marker size = modes covered."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FormatStrFormatter
    fig = Figure(figsize=(6.8, 4.6), layout="constrained")
    ax = fig.subplots()
    colours = {"GAN": "C3", "DDPM": "C0", "DDIM": "C9", "DD-GAN": "C2"}
    offsets = {"GAN": (7, 4), "DDPM": (7, -16), "DDIM": (7, 6), "DD-GAN": (-62, 6)}
    for r in sorted(rows, key=lambda r: -r["modes"]):   # the smaller marker on top: DDPM 4 and DDIM 4 coincide
        ax.scatter(r["nfe"], r["mmd_over_floor"], s=20 + 25 * r["modes"], c=colours[r["method"]], alpha=0.8,
                   edgecolors="k")
        ax.annotate(f"{r['method']} {r['steps']}: {r['modes']}/8", (r["nfe"], r["mmd_over_floor"]),
                    xytext=offsets[r["method"]], textcoords="offset points", fontsize=7)
    handles = [Line2D([], [], marker="o", ls="", color=c, markeredgecolor="k", ms=8, label=m)
               for m, c in colours.items()]
    ax.legend(handles=handles, fontsize=8, loc="upper right")
    ax.axhline(1, color="k", ls=":", lw=1)
    ax.text(1.05, 1.03, tr("playground2d.plot_floor", floor=floor), fontsize=7)
    ax.set(xscale="log", yscale="log", xlabel=tr("playground2d.plot_nfe"), ylabel=tr("playground2d.plot_quality"),
           title=tr("playground2d.plot_trilemma_title"))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlim(0.4, 2500)
    ax.grid(alpha=0.3, which="both")
    return fig

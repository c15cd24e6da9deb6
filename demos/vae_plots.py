"""Matplotlib figures for the VAE tab (object-oriented API, no pyplot state shared between users)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .i18n import tr  # noqa: E402

PATH_STYLE = {"linear": dict(color="k", ls="-", marker="o"), "spherical": dict(color="crimson", ls="--", marker="s")}


def _draw_paths(ax, paths: dict, endpoints):
    for method, z in paths.items():
        z = np.asarray(z)
        ax.plot(z[:, 0], z[:, 1], lw=1.6, ms=3, label=tr("vae.path", method=tr(f"vae.{method}") if method in PATH_STYLE else method), **PATH_STYLE.get(method, {}))
    if endpoints is not None:
        for (x, y), name in zip(np.asarray(endpoints), ("A", "B")):
            ax.scatter([x], [y], s=220, marker="*", c="gold", edgecolors="k", linewidths=1.2, zorder=5)
            ax.annotate(name, (x, y), xytext=(6, 6), textcoords="offset points", fontsize=12, weight="bold",
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", alpha=0.8))


def latent_map_plot(mu, labels, grid_image, extent: float, paths: dict, endpoints=None,
                    class_names=None) -> Figure:
    """Left: test-set μ coloured by class. Right: the decoder's output over the same square.

    mu (N, 2), labels (N,), grid_image: HxW uint8 (decoded n×n tiles), paths: method -> (steps, 2) z path,
    endpoints: (2, 2) = μ_A, μ_B.
    """
    mu, labels = np.asarray(mu), np.asarray(labels)
    fig = Figure(figsize=(11, 5.2), layout="constrained")
    ax_s, ax_g = fig.subplots(1, 2)
    sc = ax_s.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=3, alpha=0.5,
                      rasterized=True)
    cb = fig.colorbar(sc, ax=ax_s, ticks=range(10), fraction=0.05, pad=0.01)
    if class_names:
        cb.ax.set_yticklabels(class_names)
    cb.set_label(tr("vae.class"))
    ax_g.imshow(grid_image, cmap="gray", extent=(-extent, extent, -extent, extent), origin="upper",
                interpolation="nearest")
    for ax in (ax_s, ax_g):
        _draw_paths(ax, paths, endpoints)
        ax.set(xlim=(-extent, extent), ylim=(-extent, extent), xlabel="$z_1$", ylabel="$z_2$", aspect="equal")
    ax_s.set_title(tr("vae.mu_title", n=len(mu)))
    ax_g.set_title(tr("vae.grid_title"))
    ax_s.legend(loc="lower right", fontsize=8)
    ax_s.grid(alpha=0.3)
    return fig


def vae_loss_plot(record: dict) -> Figure:
    """Total loss, BCE and KL running means from a VAE training record."""
    fig = Figure(figsize=(6, 2.8), layout="constrained")
    ax = fig.subplots()
    for key, label in (("loss_curve", tr("vae.loss_total")), ("rec_curve", tr("vae.loss_rec")), ("kl_curve", "KL")):
        curve = record.get(key) or []
        if curve:
            xs, ys = zip(*curve)
            ax.plot(xs, ys, label=label)
    ax.set(title=tr("vae.loss_title"), xlabel=tr("plots.step"), yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig

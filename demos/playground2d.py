"""The 2-D playground: diffusion trained live in seconds, its score field against the true one, the Gaussian
reverse-step assumption, DD-GAN and a GAN, the trilemma measured, and classifier-free guidance in 2-D."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict

import gradio as gr
import numpy as np
import torch
from PIL import Image

from pipelines.checkpoints import CheckpointMissing, read_json
from pipelines.images import open_image
from pipelines.toy2d import checkpoint, data, metrics, score
from pipelines.toy2d.sample import ddgan_frames, ddpm_frames, gan_frames
from pipelines.toy2d.schedule import DEFAULT_SCHEDULE, T, TOY_SCHEDULES, ddpm_alphas_cumprod, ddpm_config, \
    posterior_mean_var
from pipelines.toy2d.train import TRAIN_POINTS, train

from .common import (MAX_SEED, Player, check_bool, check_choice, check_number, cost_scale, formula, received_file,
                     samples_image, seed_box, user_errors)
from .playground2d_plots import (cfg_figure, data_figure, field_figure, forward_figure, gaussian_figure, to_png,
                                 trilemma_figure, training_figure)

DRAWN = "my drawing (canvas below)"
DATASETS = [label for label, _ in data.DATASETS.values()] + [DRAWN]
KEY = {label: key for key, (label, _) in data.DATASETS.items()}
PREDICTIONS = {"ε (epsilon)": "epsilon", "v (velocity)": "v_prediction"}
GAN_MODELS = {"DD-GAN, 4 steps": ("ddgan", 4), "DD-GAN, 2 steps": ("ddgan", 2), "GAN (1 step)": ("gan", 1)}
FIELD_SHOWN = ("ε (what the network outputs)", "score ∇ log q_t = −ε / √(1−ᾱ_t)")
STEP_CHOICES = (1000, 100, 50, 10, 4, 2)
ROW_STEPS = (2, 4, 10, 50, 1000)
FIELD_DEFAULTS = (100, "ε (what the network outputs)", 12, 0)   # t, field, particles, seed: what the page opens on
GAUSS_DEFAULTS = (1.0, 0.6, 250, "4", 0)                         # x, y, t, N, seed
CFG_DEFAULTS = ("red", 3.0, 300, 0)                               # class, w, t, seed
SHOWN_POINTS = 1500
LIVE_SECONDS = 30          # a live training run stops here (× the server's cost scale) ...
LIVE_MAX_STEPS = {"ddpm": 6000, "ddgan": 3000, "gan": 6000}   # ... or at this many optimiser steps
LIVE_TRAINING = frozenset({"toy2d_train_ddpm", "toy2d_train_gan"})  # run one at a time (demos/queue_policy.py)
FRAME_EVERY = 250          # one streamed frame per this many steps
GAUSS_POINTS = 400         # samples per N in the Gaussian-assumption panel (the exact ε costs points × data points)

MEMO_SIZE = 128           # figures kept: every visitor's page load asks for the same few (data, x_t, shipped models)
_memo_store: OrderedDict = OrderedDict()
_memo_lock = threading.Lock()


def _memo(key, make):
    """make() once per key (checked inputs only): a page load shows the same figures to every visitor, and computing
    them for each (sampling, matplotlib) held the server for seconds while a class opened the page. A caller that
    asks while another computes the same key waits for that result instead of computing it again."""
    with _memo_lock:
        entry = _memo_store.get(key)
        if entry is None:
            entry = _memo_store[key] = {"done": threading.Event(), "value": None, "error": None}
            owner = True
        else:
            _memo_store.move_to_end(key)
            owner = False
    if owner:
        try:
            entry["value"] = make()
        except BaseException as exc:
            entry["error"] = exc
            with _memo_lock:
                _memo_store.pop(key, None)      # an error is not kept: the next call tries again
            raise
        finally:
            entry["done"].set()
            with _memo_lock:
                while len(_memo_store) > MEMO_SIZE:
                    _memo_store.popitem(last=False)
    entry["done"].wait()
    if entry["error"] is not None:
        raise entry["error"]
    return entry["value"]


INTRO_MD = r"""
Everything here is **2-D**, so each model is a small MLP that trains in seconds on this CPU, and what images hide can
be drawn exactly: the score field, the true reverse step, the modes a sampler misses. Pick a dataset (or draw one);
every section below uses it. Code: `pipelines/toy2d/`.
"""

FORWARD_MD = r"""
**Forward process.** $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$, $\varepsilon\sim\mathcal N(0,I)$: the cloud shrinks
by $\sqrt{\bar\alpha_t}$ and blurs until, at $t = T$, it is $\mathcal N(0, I)$ (the dotted circle). Its density is the data density
convolved with a Gaussian: for a mixture, $q_t = \sum_k \pi_k\,\mathcal N(\sqrt{\bar\alpha_t}\mu_k,\ \bar\alpha_t\Sigma_k + (1-\bar\alpha_t)I)$.
The schedules are diffusers' `DDPMScheduler` configs of the first tab.
"""

TRAIN_MD = r"""
**DDPM, trained live.** $\mathcal L = \mathbb E_{x_0,t,\varepsilon}\,\lVert \varepsilon - \varepsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\varepsilon,\ t)\rVert^2$
(or the v target $v = \sqrt{\bar\alpha_t}\varepsilon - \sqrt{1-\bar\alpha_t}x_0$), an MLP of three residual blocks (64 wide) with a
sinusoidal embedding of $t$, Adam, seeded. The shipped model of each dataset is shown at once; **Train live** retrains
it from scratch here, streaming the loss and 1000 samples (50 ancestral steps) every 250 steps, and stops at its step
cap or after 30 s. The score field and the Gaussian panel then use your model.
"""

FIELD_MD = r"""
**What the network learns.** A perfect ε-network outputs $\varepsilon^*(x,t) = -\sqrt{1-\bar\alpha_t}\,\nabla_x\log q_t(x)$, so it *is* the
score field up to a scale. The **true** score is exact: $\nabla\log q_t(x) = \sum_k r_k(x)\,\big(-C_k^{-1}(x - m_k)\big)$ with the
responsibilities $r_k$ of the noised components $\mathcal N(m_k, C_k)$ — analytic for 8 Gaussians, and for the other datasets
the empirical measure of 2,000 data points (a mixture of $\mathcal N(\sqrt{\bar\alpha_t}x_i, (1-\bar\alpha_t)I)$, exact for those points).
Red: reverse trajectories of a few particles (DDIM, 50 steps) from $x_T$ to $x_0$.
"""

GAUSS_MD = r"""
**Why is the reverse step Gaussian?** DDPM samples $x_{t-\Delta} \sim \mathcal N(\tilde\mu(x_t,\hat x_0),\ \tilde\beta I)$. The true reverse step is
$q(x_s\mid x_t) \propto q_s(x_s)\,\mathcal N(x_t;\ a\,x_s,\ b\,I)$ with $a = \sqrt{\bar\alpha_t/\bar\alpha_s}$, $b = 1-\bar\alpha_t/\bar\alpha_s$:
for a mixture, again a mixture, with weights $w_k\propto\pi_k\,\mathcal N(x_t;\ a\,m_k,\ a^2C_k + bI)$.
For a **small** step ($b\to 0$) the likelihood is far sharper than $q_s$ and one Gaussian is right; for a **large** one
($N = 2$ to $4$ steps) the true posterior is multimodal and the Gaussian — even with a perfect network, whose mean
$\tilde\mu(x_t, \mathbb E[x_0\mid x_t])$ is exactly the true mean — puts its mass *between* the modes.
Type $x_t$'s coordinates below, pick $t$ and $N$ ($\Delta = 1000/N$).
"""

GAN_MD = r"""
**DD-GAN** (Xiao et al. 2022) keeps the few large steps but drops the Gaussian: a generator $G(x_t, z, t)\to\hat x_0$, then
$x_{t-1}\sim q(x_{t-1}\mid x_t,\hat x_0)$ (the DDPM posterior), can be multimodal through $z$. A discriminator
$D(x_{t-1}, x_t, t)$ judges real pairs against generated ones: $\min_G\max_D\ \mathbb E[\log D(x_{t-1},x_t,t)] + \mathbb E[\log(1-D(x'_{t-1},x_t,t))]$
(non-saturating, with an R1 penalty), on a chain of $T = 2$ or $4$ steps. A **plain GAN** $G(z)\to x$ is the one-step
extreme: fast, and prone to dropping modes. Train them live here (the shipped 8-Gaussian models are in the table).
"""

CFG_MD = r"""
**Classifier-free guidance in 2-D.** Three overlapping classes, each a mixture of two Gaussians, with exact scores.
The guided score $\tilde s = \nabla\log q_t(x) + w\,\big(\nabla\log q_t(x\mid y) - \nabla\log q_t(x)\big) = \nabla\log q_t(x) + w\,\nabla\log q_t(y\mid x)$
is the app's $\tilde\varepsilon = \varepsilon_\varnothing + w(\varepsilon_y - \varepsilon_\varnothing)$. $w = 0$: all classes; $w = 1$: class $y$
exactly; $w > 1$ samples $\propto q(x)\,q(y\mid x)^w$: pulled to where the classifier is surest, the class's far side, and
off the data — the picture behind the CFG tab's accuracy-up, diversity-down plot. 100 DDPM steps, 400 samples.
"""


# ---------------------------------------------------------------- inputs
def _drawing_points(drawing, n: int, seed: int, split: str = "train") -> torch.Tensor:
    """The sketch pad's strokes -> n points (pipelines/toy2d/data.points_from_strokes); clear errors otherwise."""
    img = drawing.get("composite") if isinstance(drawing, dict) else drawing
    if img is None or img == "":
        raise ValueError("The canvas is empty: draw a distribution (strokes, a filled shape) on the canvas, then "
                         "press the button again.")
    if not isinstance(img, Image.Image):
        img = open_image(received_file(img))  # an upload only; size-checked before decoding; 16-bit and float read
    rgba = np.asarray(img.convert("RGBA").resize((128, 128)), dtype=np.float32)
    ink = (rgba[..., 3] > 100) & (rgba[..., :3].min(-1) < 200)   # opaque strokes that are not white
    return data.points_from_strokes(ink, n, seed, split)


@user_errors
def use_drawing(drawing):
    """'Use my drawing': check the strokes first (a clear message if they are too few or degenerate), then switch
    the dataset to them (which redraws every panel)."""
    _drawing_points(drawing, 10, 0)
    return gr.update(value=DRAWN)


def dataset_points(dataset, drawing, n: int, seed: int = 0, split: str = "train") -> torch.Tensor:
    check_choice(dataset, "Dataset", DATASETS)
    if dataset == DRAWN:
        return _drawing_points(drawing, n, seed, split)
    return data.sample(KEY[dataset], n, seed, split)


def truth(dataset, drawing):
    """The data distribution whose noised scores and posteriors are exact: the mixture itself, or the empirical
    measure of 2,000 points."""
    if dataset != DRAWN and data.mixture(KEY[dataset]) is not None:
        return data.mixture(KEY[dataset])
    return score.empirical(dataset_points(dataset, drawing, score.MAX_EMPIRICAL_POINTS, seed=0))


def _seed(seed) -> int:
    return check_number(seed, "Seed", 0, MAX_SEED, integer=True)


def current_ddpm(dataset, live_model):
    """(Denoiser, scheduler config, where it came from): this session's live-trained model when it was trained on
    this dataset, else the shipped checkpoint."""
    if isinstance(live_model, dict) and live_model.get("dataset") == dataset and live_model.get("model") == "ddpm":
        return live_model["net"], live_model["config"], f"your live-trained model ({live_model['steps']:,} steps)"
    if dataset == DRAWN:
        raise ValueError("Your drawing has no trained model yet: press **Train live** in the DDPM section first.")
    net, config, record, _ = checkpoint.load(KEY[dataset], "ddpm")
    return net, config["scheduler"], f"the shipped model ({record.get('steps', 0):,} steps)"


# ---------------------------------------------------------------- data and forward process
@user_errors
def show_data(dataset, drawing, seed):
    seed = _seed(seed)
    if check_choice(dataset, "Dataset", DATASETS) != DRAWN:
        return _memo(("data", dataset, seed), lambda: _show_data(dataset, None, seed))
    return _show_data(dataset, drawing, seed)


def _show_data(dataset, drawing, seed):
    train_pts = dataset_points(dataset, drawing, SHOWN_POINTS, seed)
    held = dataset_points(dataset, drawing, 500, seed, "heldout")
    fig = data_figure(train_pts, held, dataset)
    note = f"**{dataset}**: {SHOWN_POINTS:,} training points shown (the models train on {TRAIN_POINTS:,}), 500 held-out."
    if dataset != DRAWN and data.mixture(KEY[dataset]) is not None:
        m = data.mixture(KEY[dataset])
        note += (f" Exact parameters: {m.k} components, weights {m.weights[0]:.3f} each, σ = {data.RING_STD}, means on a "
                 f"circle of radius {data.RING_RADIUS}.")
    return to_png(fig, dataset=dataset, seed=seed), note


@user_errors
def forward(dataset, drawing, schedule, zero_snr, t, seed):
    check_choice(schedule, "Schedule", TOY_SCHEDULES)
    zero_snr = check_bool(zero_snr, "Zero terminal SNR")
    t = check_number(t, "t", 0, T - 1, integer=True)
    seed = _seed(seed)
    if check_choice(dataset, "Dataset", DATASETS) != DRAWN:
        return _memo(("forward", dataset, schedule, zero_snr, t, seed),
                     lambda: _forward(dataset, None, schedule, zero_snr, t, seed))
    return _forward(dataset, drawing, schedule, zero_snr, t, seed)


def _forward(dataset, drawing, schedule, zero_snr, t, seed):
    x0 = dataset_points(dataset, drawing, SHOWN_POINTS, seed)
    abars = ddpm_alphas_cumprod(ddpm_config(schedule, zero_snr))
    abar = float(abars[t])
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    x_t = abar ** 0.5 * x0 + (1 - abar) ** 0.5 * eps
    fig = forward_figure(x0, x_t, t, abar, abars.numpy(), schedule.split(" (")[0] + (" + zero SNR" if zero_snr else ""))
    return to_png(fig, dataset=dataset, schedule=schedule, zero_snr=zero_snr, t=t, seed=seed)


# ---------------------------------------------------------------- training live
def _train_live(kind: str, dataset, drawing, steps, seed, **kwargs):
    seed = _seed(seed)
    steps = check_number(steps, "Training steps", 100, LIVE_MAX_STEPS[kind], integer=True)
    points = dataset_points(dataset, drawing, TRAIN_POINTS, seed)
    held = dataset_points(dataset, drawing, metrics.N_EVAL, seed, "heldout")
    budget = LIVE_SECONDS * cost_scale()
    progress = None
    for progress in train(kind, points, steps=steps, seed=seed, every=FRAME_EVERY, **kwargs):
        over = progress.seconds > budget and not progress.done
        m = metrics.mmd(progress.samples, held)
        cover = metrics.mode_coverage(progress.samples) if dataset == data.DATASETS["8gaussians"][0] else None
        # both coverage figures: a ring of samples between the modes touches all 8 but lies within 3σ of none
        status = (f"step {progress.step:,}/{steps:,}, {progress.seconds:.1f} s, MMD to held-out {m:.3f}"
                  + (f", {cover['modes']}/8 modes, {cover['in_modes']:.0%} of samples within 3σ of one" if cover else ""))
        if over:
            status += f" (stopped: this server's {budget:.0f} s limit per live run)"
        yield progress, status, over or progress.done
        if over:
            break


@user_errors
def train_ddpm_live(dataset, drawing, prediction, steps, seed):
    """Stream DDPM training: (figure, status, the trained model for this session)."""
    prediction_type = PREDICTIONS[check_choice(prediction, "Prediction", list(PREDICTIONS))]
    held = dataset_points(dataset, drawing, 600, 0, "heldout")
    for p, status, done in _train_live("ddpm", dataset, drawing, steps, seed, prediction_type=prediction_type,
                                       preview_steps=50):
        fig = training_figure(p.curves, p.samples, held, "samples (50 ancestral steps)", status)
        live = None
        if done:
            live = dict(dataset=dataset, model="ddpm", net=p.model["denoiser"].eval().requires_grad_(False),
                        config=p.model["config"], steps=p.step)
        yield (to_png(fig, dataset=dataset, model="ddpm", prediction=prediction, steps=int(steps), seed=int(seed)),
               ("done: " if done else "training: ") + status, live if done else gr.update())


@user_errors
def train_gan_live(dataset, drawing, model, steps, seed):
    kind, t_steps = GAN_MODELS[check_choice(model, "Model", list(GAN_MODELS))]
    kwargs = dict(denoising_steps=t_steps, hidden=64) if kind == "ddgan" else {}
    held = dataset_points(dataset, drawing, 600, 0, "heldout")
    for p, status, done in _train_live(kind, dataset, drawing, steps, seed, **kwargs):
        fig = training_figure(p.curves, p.samples, held, f"{model} samples", status)
        yield (to_png(fig, dataset=dataset, model=model, steps=int(steps), seed=int(seed)),
               ("done: " if done else "training: ") + status)


def shipped(dataset):
    """The shipped DDPM of a dataset at once: its loss curve and 1000 samples (private: on load and on change)."""
    try:
        check_choice(dataset, "Dataset", DATASETS)
        if dataset == DRAWN:
            return None, "Draw a distribution on the canvas above, then press **Train live**.", None
        net, config, record, weights = checkpoint.load(KEY[dataset], "ddpm")
    except (ValueError, CheckpointMissing) as exc:
        return None, str(exc), None
    return (*_memo(("shipped", dataset, weights), lambda: _shipped(dataset, net, config, record)), None)


def _shipped(dataset, net, config, record):
    x = ddpm_frames(net, config["scheduler"], steps=100, num_points=metrics.N_EVAL, seed=0).last().x
    held = data.sample(KEY[dataset], metrics.N_EVAL, split="heldout")
    status = (f"shipped model: {record['steps']:,} steps in {record['wall_seconds']:.0f} s "
              f"(`{record['command']}`); MMD to held-out {metrics.mmd(x, held):.3f}")
    fig = training_figure({"loss": record.get("loss_curve", [])}, x, held[:600], "samples (100 ancestral steps)",
                          f"shipped model, {record['steps']:,} steps: MMD to held-out {metrics.mmd(x, held):.3f}")
    return to_png(fig, dataset=dataset, model="ddpm", checkpoint=checkpoint.name(KEY[dataset], "ddpm")), status


def shipped_gan(dataset, model):
    """The shipped DD-GAN / GAN of 8 Gaussians at once (private: on load and on change); other data: train live."""
    try:
        kind, t_steps = GAN_MODELS[check_choice(model, "Model", list(GAN_MODELS))]
        check_choice(dataset, "Dataset", DATASETS)
        key = KEY.get(dataset)
        net, _, record, weights = checkpoint.load(key, kind, t_steps) if key else (None, None, None, None)
    except (ValueError, CheckpointMissing):
        net = None
    if net is None:
        return None, f"No shipped {model} for {dataset}: press **Train DD-GAN / GAN live**."
    return _memo(("shipped_gan", dataset, model, weights), lambda: _shipped_gan(dataset, model, net, record))


def _shipped_gan(dataset, model, net, record):
    kind, t_steps = GAN_MODELS[model]
    key = KEY[dataset]
    run = ddgan_frames(net, num_points=metrics.N_EVAL) if kind == "ddgan" else gan_frames(net, num_points=metrics.N_EVAL)
    x = run.last().x
    held = data.sample(key, metrics.N_EVAL, split="heldout")
    cov = metrics.mode_coverage(x) if key == "8gaussians" else None
    measured = f"MMD to held-out {metrics.mmd(x, held):.3f}" + (f", {cov['modes']}/8 modes" if cov else "")
    status = f"shipped {model}: {record['steps']:,} steps in {record['wall_seconds']:.0f} s ({record['command']}); {measured}"
    fig = training_figure(record.get("curves", {}), x, held[:600], f"{model} samples",
                          f"shipped {model}, {record['steps']:,} steps: {measured}")
    return to_png(fig, dataset=dataset, model=model, checkpoint=checkpoint.name(key, kind, t_steps)), status


# ---------------------------------------------------------------- score field
FIELD_GRID = 17


@user_errors
def score_field(dataset, drawing, t, shown, particles, seed, live_model=None):
    t = check_number(t, "t", 1, T - 1, integer=True)
    check_choice(shown, "Field", FIELD_SHOWN)
    particles = check_number(particles, "Particles", 0, 32, integer=True)
    seed = _seed(seed)
    net, config, source = current_ddpm(dataset, live_model)
    if dataset != DRAWN and source.startswith("the shipped"):
        return _memo(("field", dataset, t, shown, particles, seed, id(net)),
                     lambda: _score_field(dataset, None, t, shown, particles, seed, net, config, source))
    return _score_field(dataset, drawing, t, shown, particles, seed, net, config, source)


def _score_field(dataset, drawing, t, shown, particles, seed, net, config, source):
    mix = truth(dataset, drawing)
    abar = float(ddpm_alphas_cumprod(config)[t])
    lim = data.EXTENT
    axis = torch.linspace(-lim, lim, FIELD_GRID)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        out = net(grid, torch.tensor(t))
    if config["prediction_type"] == "v_prediction":   # ε = √ᾱ v + √(1−ᾱ) x_t
        out = abar ** 0.5 * out + (1 - abar) ** 0.5 * grid
    true_eps = score.true_eps(mix, grid, abar).float()
    if shown == FIELD_SHOWN[0]:
        learned, true, what = out, true_eps, "ε"
    else:
        learned, true, what = -out / (1 - abar) ** 0.5, -true_eps / (1 - abar) ** 0.5, "score"
    cos = torch.nn.functional.cosine_similarity(out, true_eps, dim=1)
    rel = ((out - true_eps).norm(dim=1) / true_eps.norm(dim=1).clamp(min=1e-6)).median()
    traj = None
    if particles:
        x_T = torch.randn(particles, 2, generator=torch.Generator().manual_seed(seed))
        run = ddpm_frames(net, config, sampler="DDIM", steps=50, num_points=particles, seed=seed, x_T=x_T)
        traj = torch.stack([x_T] + [s.x for s in run])
    agreement = (f"{source}: mean cosine(learned ε, true ε) = {cos.mean():.3f}, median relative error "
                 f"{rel:.2f} over the grid")
    pts = dataset_points(dataset, drawing, 800, 0)
    fig = field_figure(grid, learned, true, pts, traj, t, what, agreement)
    return to_png(fig, dataset=dataset, t=t, field=what, particles=particles, seed=seed), agreement


# ---------------------------------------------------------------- the Gaussian assumption
@user_errors
def gaussian_step(dataset, drawing, x, y, t, n_steps, seed):
    x = check_number(x, "x_t (x)", -4, 4)
    y = check_number(y, "x_t (y)", -4, 4)
    t = check_number(t, "t", 1, T - 1, integer=True)
    n_steps = int(check_choice(int(check_number(n_steps, "N", 1, 1000, integer=True)), "N", STEP_CHOICES))
    seed = _seed(seed)
    if check_choice(dataset, "Dataset", DATASETS) != DRAWN:
        return _memo(("gauss", dataset, x, y, t, n_steps, seed), lambda: _gaussian_step(dataset, None, x, y, t, n_steps, seed))
    return _gaussian_step(dataset, drawing, x, y, t, n_steps, seed)


def _gaussian_step(dataset, drawing, x, y, t, n_steps, seed):
    mix = truth(dataset, drawing)
    config = ddpm_config()
    abars = ddpm_alphas_cumprod(config)
    s = t - T // n_steps
    abar_t, abar_s = float(abars[t]), (float(abars[s]) if s >= 0 else 1.0)
    x_t = torch.tensor([x, y], dtype=torch.float64)
    post = score.true_posterior(mix, x_t, abar_t, abar_s)
    g = torch.Generator().manual_seed(seed)
    post_samples = post.sample(1500, g)
    x0_hat = score.true_x0(mix, x_t[None], abar_t)
    mean, var = posterior_mean_var(x0_hat, x_t[None], abar_t, abar_s)
    gauss = mean.float() + float(var) ** 0.5 * torch.randn(1500, 2, generator=g)
    rows = []
    exact = mix.k <= 64     # an analytic mixture: every N is cheap; the empirical measure costs points × data points
    sub = mix if exact else score.empirical(mix.means[:300].float())
    for n in ROW_STEPS if exact else ROW_STEPS[:-1] + (200,):
        def exact_eps(xb, tb):
            return score.true_eps(sub, xb, float(abars[int(tb)])).float()
        rows.append((n, ddpm_frames(None, config, steps=n, num_points=GAUSS_POINTS, seed=seed,
                                    predict=exact_eps).last().x))
    true_mean = (post.weights[:, None] * post.means).sum(0)
    spread = (post.weights[:, None, None] * (post.covs + torch.einsum("ki,kj->kij", post.means - true_mean,
                                                                       post.means - true_mean))).sum(0)
    note = (f"Step t = {t} → {'x_0' if s < 0 else s} (N = {n_steps}): the true posterior's mean is "
            f"({float(true_mean[0]):.2f}, {float(true_mean[1]):.2f}) and its std {float(spread.trace() / 2) ** 0.5:.3f}; "
            f"DDPM's Gaussian has the same mean ({float(mean[0, 0]):.2f}, {float(mean[0, 1]):.2f}) and std "
            f"{float(var) ** 0.5:.3f}" + ("" if exact else "; the sampled rows use 300 data points and N ≤ 200 (cost)")
            + ".")
    pts = dataset_points(dataset, drawing, 800, 0)
    fig = gaussian_figure(x_t.numpy(), post_samples, mean[0].numpy(), float(var), gauss, pts, t, s, n_steps, rows,
                          n_steps)
    return to_png(fig, dataset=dataset, x=x, y=y, t=t, N=n_steps, seed=seed), note


# ---------------------------------------------------------------- trilemma
def _results():
    from pipelines.measure.toy2d import RESULTS
    return read_json(RESULTS, None)


@user_errors
def trilemma():
    doc = _results()
    if not doc:
        return None, "No measurement yet: run `python -m pipelines.measure.toy2d --threads 2`."
    from pipelines.measure.toy2d import markdown

    def make():
        return to_png(trilemma_figure(doc["rows"], doc["floor"]), measured=doc["created"]), markdown(doc)
    return _memo(("trilemma", doc["created"], doc["floor"], doc["command"], str(doc["rows"])), make)


# ---------------------------------------------------------------- CFG
CFG_CLASSES = list(data.CLASS_NAMES)


@user_errors
def cfg_2d(label, w, t, seed):
    y = CFG_CLASSES.index(check_choice(label, "Class", CFG_CLASSES))
    w = check_number(w, "w", 0, 10)
    t = check_number(t, "t", 1, T - 1, integer=True)
    seed = _seed(seed)
    return _memo(("cfg", label, y, w, t, seed), lambda: _cfg_2d(label, y, w, t, seed))


def _cfg_2d(label, y, w, t, seed):
    mix = data.class_mixture()
    config = ddpm_config()
    abars = ddpm_alphas_cumprod(config)

    def guided_eps(xb, tb):
        abar = float(abars[int(tb)])
        return (-(1 - abar) ** 0.5 * score.guided_score(mix, xb, abar, y, w)).float()

    samples = ddpm_frames(None, config, steps=100, num_points=400, seed=seed, predict=guided_eps).last().x
    axis = torch.linspace(-3, 3, 17)
    grid = torch.cartesian_prod(axis, axis)
    field = score.guided_score(mix, grid, float(abars[t]), y, w)
    pts = mix.sample(1500, torch.Generator().manual_seed(1))
    labels = mix.labels[torch.cdist(pts.double(), mix.means).argmin(1)]
    on_data = float(torch.exp(mix.log_prob(samples)).median())
    share = float((mix.labels[score.responsibilities(mix, samples.double()).argmax(1)] == y).float().mean())
    note = (f"w = {w:g}: {share:.0%} of samples lie where class '{label}' is the most likely component's; median data "
            f"density at the samples {on_data:.3f} (lower = further off the data).")
    fig = cfg_figure(samples, grid, field, pts, labels, w, y, t, CFG_CLASSES)
    return to_png(fig, label=label, w=w, t=t, seed=seed), note


# ---------------------------------------------------------------- layout
def warm() -> None:
    """Fill the memo with what every page load shows (a daemon thread from build(): the server starts at once)."""
    try:
        show_data(DATASETS[0], None, 0)
        forward(DATASETS[0], None, DEFAULT_SCHEDULE, False, 200, 0)
        shipped(DATASETS[0])
        shipped_gan(DATASETS[0], list(GAN_MODELS)[0])
        trilemma()
        score_field(DATASETS[0], None, *FIELD_DEFAULTS)
        gaussian_step(DATASETS[0], None, *GAUSS_DEFAULTS)
        cfg_2d(*CFG_DEFAULTS)
    except Exception:  # a missing checkpoint or result: the page load reports it itself
        pass


def build():
    threading.Thread(target=warm, daemon=True, name="playground2d-warm").start()
    formula(INTRO_MD)
    with gr.Row():
        with gr.Column(scale=1):
            dataset = gr.Dropdown(DATASETS, value=DATASETS[0], label="Dataset")
            data_seed = seed_box(0)
            with gr.Accordion("Draw a distribution", open=False):
                drawing = gr.Sketchpad(label="Pick the brush (left), draw strokes or shapes", height=300,
                                       canvas_size=(300, 300), type="filepath",
                                       brush=gr.Brush(default_size=10, colors=["#000000"], default_color="#000000"))
                use_drawing_btn = gr.Button("Use my drawing")
            data_note = gr.Markdown()
        with gr.Column(scale=1):
            data_plot = samples_image("Training (blue) and held-out (orange) points", height=540)
    show_btn = gr.Button("Show the data", elem_classes=["advanced"])
    live_model = gr.State(None)

    gr.Markdown("## Forward process")
    formula(FORWARD_MD)
    with gr.Row():
        schedule = gr.Dropdown(TOY_SCHEDULES, value=DEFAULT_SCHEDULE, label="Noise schedule")
        zero_snr = gr.Checkbox(False, label="Zero terminal SNR")
        t_fwd = gr.Slider(0, T - 1, value=200, step=1, label="t")
    fwd_player = Player(t_fwd, 0, T - 1, step=50, fps=3)
    fwd_plot = samples_image("x_0, x_t and the schedule", height=510)

    gr.Markdown("## DDPM, trained live")
    formula(TRAIN_MD)
    with gr.Row():
        prediction = gr.Radio(list(PREDICTIONS), value=list(PREDICTIONS)[0], label="Network predicts",
                              elem_classes=["advanced"])
        ddpm_steps = gr.Slider(100, LIVE_MAX_STEPS["ddpm"], value=3000, step=100, label="Training steps",
                               info=f"at most {LIVE_MAX_STEPS['ddpm']:,} steps or {LIVE_SECONDS} s per run")
        train_seed = seed_box(0)
    train_btn = gr.Button("Train live", variant="primary")
    train_status = gr.Textbox(label="Training status", interactive=False)
    train_plot = samples_image("Loss and samples", height=500)

    gr.Markdown("## The score field: learned against true")
    formula(FIELD_MD)
    with gr.Row():
        t_field = gr.Slider(1, T - 1, value=FIELD_DEFAULTS[0], step=1, label="t of the field")
        shown = gr.Radio(list(FIELD_SHOWN), value=FIELD_DEFAULTS[1], label="Draw")
        particles = gr.Slider(0, 32, value=FIELD_DEFAULTS[2], step=1, label="Particles to follow",
                              elem_classes=["advanced"])
        field_seed = seed_box(0)
    field_btn = gr.Button("Draw the fields", variant="primary")
    field_note = gr.Markdown()
    field_plot = samples_image("Learned (left) and true (right) field", height=590)

    gr.Markdown("## The Gaussian assumption of the reverse step")
    formula(GAUSS_MD)
    with gr.Row():
        gx = gr.Number(GAUSS_DEFAULTS[0], label="x_t: x", minimum=-4, maximum=4)
        gy = gr.Number(GAUSS_DEFAULTS[1], label="x_t: y", minimum=-4, maximum=4)
        t_gauss = gr.Slider(1, T - 1, value=GAUSS_DEFAULTS[2], step=1, label="t (the step starts here)")
        n_steps = gr.Radio([str(n) for n in STEP_CHOICES], value=GAUSS_DEFAULTS[3], label="sampling steps N")
        gauss_seed = seed_box(0)
    gauss_btn = gr.Button("Compare the true step with the Gaussian", variant="primary")
    gauss_note = gr.Markdown()
    gauss_plot = samples_image("True posterior vs DDPM's Gaussian; samples at each N", height=850)

    gr.Markdown("## DD-GAN and a plain GAN, trained live")
    formula(GAN_MD)
    with gr.Row():
        gan_model = gr.Radio(list(GAN_MODELS), value=list(GAN_MODELS)[0], label="Model")
        gan_steps = gr.Slider(100, LIVE_MAX_STEPS["ddgan"], value=2000, step=100, label="Training steps",
                              info=f"at most {LIVE_MAX_STEPS['ddgan']:,} steps or {LIVE_SECONDS} s per run")
        gan_seed = seed_box(0)
    gan_btn = gr.Button("Train DD-GAN / GAN live", variant="primary")
    gan_status = gr.Textbox(label="DD-GAN / GAN training status", interactive=False)
    gan_plot = samples_image("Generator and discriminator loss; samples", height=500)

    gr.Markdown("## The trilemma, measured: quality, mode coverage, speed")
    tri_plot = samples_image("MMD / floor against network evaluations", height=540)
    tri_table = gr.Markdown()
    tri_btn = gr.Button("Reload the measured table", elem_classes=["advanced"])

    gr.Markdown("## Classifier-free guidance in 2-D")
    formula(CFG_MD)
    with gr.Row():
        cfg_class = gr.Radio(CFG_CLASSES, value=CFG_DEFAULTS[0], label="Class y")
        cfg_w = gr.Slider(0, 10, value=CFG_DEFAULTS[1], step=0.5, label="Guidance scale w")
        cfg_t = gr.Slider(1, T - 1, value=CFG_DEFAULTS[2], step=1, label="t of the drawn field",
                          elem_classes=["advanced"])
        cfg_seed = seed_box(0)
    cfg_btn = gr.Button("Sample with guidance", variant="primary")
    cfg_note = gr.Markdown()
    cfg_plot = samples_image("Guided samples (black) over the three classes; the guided field", height=590)

    raw = dict(preprocess=False)
    data_in = [dataset, drawing, data_seed]
    show_btn.click(show_data, data_in, [data_plot, data_note], api_name="toy2d_data", **raw)
    fwd_in = [dataset, drawing, schedule, zero_snr, t_fwd, data_seed]
    t_fwd.release(forward, fwd_in, fwd_plot, api_name="toy2d_forward", **raw)
    fwd_player.then_run(forward, fwd_in, fwd_plot, **raw)
    for ctl in (schedule, zero_snr):
        ctl.change(forward, fwd_in, fwd_plot, api_visibility="private", **raw)

    # every panel follows the dataset, only once its points could be made (a bad drawing stops at one message);
    # .input, not .change: "Use my drawing" sets the dropdown itself and redraws even when it already says "drawing"
    private = dict(api_visibility="private", **raw)
    for event in (dataset.input(show_data, data_in, [data_plot, data_note], **private),
                  use_drawing_btn.click(use_drawing, drawing, dataset, **private).success(
                      show_data, data_in, [data_plot, data_note], **private)):
        event.success(forward, fwd_in, fwd_plot, **private).success(
            shipped, dataset, [train_plot, train_status, live_model], **private)

    train_btn.click(train_ddpm_live, [dataset, drawing, prediction, ddpm_steps, train_seed],
                    [train_plot, train_status, live_model], api_name="toy2d_train_ddpm", **raw)
    field_btn.click(score_field, [dataset, drawing, t_field, shown, particles, field_seed, live_model],
                    [field_plot, field_note], api_name="toy2d_score_field", **raw)
    gauss_btn.click(gaussian_step, [dataset, drawing, gx, gy, t_gauss, n_steps, gauss_seed],
                    [gauss_plot, gauss_note], api_name="toy2d_gaussian_step", **raw)
    gan_btn.click(train_gan_live, [dataset, drawing, gan_model, gan_steps, gan_seed], [gan_plot, gan_status],
                  api_name="toy2d_train_gan", **raw)
    for ctl in (gan_model, dataset):
        ctl.change(shipped_gan, [dataset, gan_model], [gan_plot, gan_status], **private)
    tri_btn.click(trilemma, None, [tri_plot, tri_table], api_name="toy2d_trilemma")
    cfg_btn.click(cfg_2d, [cfg_class, cfg_w, cfg_t, cfg_seed], [cfg_plot, cfg_note], api_name="toy2d_cfg", **raw)
    return {"load": [(show_data, data_in, [data_plot, data_note], raw), (forward, fwd_in, fwd_plot, raw),
                     (shipped, [dataset], [train_plot, train_status, live_model], raw),
                     (shipped_gan, [dataset, gan_model], [gan_plot, gan_status], raw),
                     (trilemma, [], [tri_plot, tri_table]),
                     (score_field, [dataset, drawing, t_field, shown, particles, field_seed, live_model],
                      [field_plot, field_note], raw),
                     (gaussian_step, [dataset, drawing, gx, gy, t_gauss, n_steps, gauss_seed], [gauss_plot, gauss_note],
                      raw),
                     (cfg_2d, [cfg_class, cfg_w, cfg_t, cfg_seed], [cfg_plot, cfg_note], raw)]}

"""The 2-D playground: diffusion trained live in seconds, its score field against the true one, the Gaussian
reverse-step assumption, DD-GAN and a GAN, the trilemma measured, and classifier-free guidance in 2-D."""
from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict

import gradio as gr
import numpy as np
import torch
from PIL import Image

from pipelines.checkpoints import CheckpointMissing, read_json
from pipelines.images import open_image
from pipelines.runtime import in_threads
from pipelines.toy2d import checkpoint, data, metrics, score
from pipelines.toy2d.sample import ddgan_frames, ddpm_frames, gan_frames
from pipelines.toy2d.schedule import DEFAULT_SCHEDULE, TOY_SCHEDULES, ddpm_alphas_cumprod, ddpm_config, \
    posterior_mean_var
from pipelines.toy2d.schedule import T as T_STEPS  # the diffusion's T (T is the translation keys' marker here)
from pipelines.toy2d.train import DEFAULTS, THREADS, TRAIN_POINTS, train

from .common import (MAX_SEED, Player, check_bool, check_choice, check_number, cost_scale, formula, labelled,
                     received_file, samples_image, seed_box, user_errors)
from .i18n import LANGUAGES, T, _PLACEHOLDER, current_lang, language, tr
from .lessons import Exposed
from .playground2d_plots import (cfg_figure, data_figure, field_figure, forward_figure, gaussian_figure, to_png,
                                 trilemma_figure, training_figure)
from .plots import SCHEDULE_KEYS as SCHEDULE_NAMES
from .zerogpu import gpu_task

DRAWN = "my drawing (canvas below)"
DATASETS = [label for label, _ in data.DATASETS.values()] + [DRAWN]
KEY = {label: key for key, (label, _) in data.DATASETS.items()}
PREDICTIONS = {"ε (epsilon)": "epsilon", "v (velocity)": "v_prediction"}
GAN_MODELS = {"DD-GAN, 4 steps": ("ddgan", 4), "DD-GAN, 2 steps": ("ddgan", 2), "GAN (1 step)": ("gan", 1)}
FIELD_SHOWN = ("ε (what the network outputs)", "score ∇ log q_t = −ε / √(1−ᾱ_t)")
# the choices' labels in the page's language (the values, what the API takes, stay as they are; in English each label
# is its value): tests/test_i18n.py checks that
DATASET_KEYS = {label: f"playground2d.data_{key}" for key, (label, _) in data.DATASETS.items()} | {
    DRAWN: "playground2d.data_drawn"}
PREDICTION_KEYS = dict(zip(PREDICTIONS, ("playground2d.prediction_epsilon", "playground2d.prediction_v")))
GAN_KEYS = dict(zip(GAN_MODELS, ("playground2d.gan_ddgan4", "playground2d.gan_ddgan2", "playground2d.gan_gan")))
FIELD_KEYS = dict(zip(FIELD_SHOWN, ("playground2d.field_eps", "playground2d.field_score")))
SCHEDULE_KEYS = {s: f"schedule.{SCHEDULE_NAMES[s]}" for s in TOY_SCHEDULES}
CLASS_KEYS = {name: f"playground2d.class_{name}" for name in data.CLASS_NAMES}
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
# the sliders' defaults: runs that end inside LIVE_SECONDS on 2 cores (`python scripts/live_training.py` times them);
# DDPM's is the trainer's own, which `python -m pipelines.measure.toy2d` times for the live bars
LIVE_DEFAULT_STEPS = {"ddpm": DEFAULTS["ddpm"]["steps"], "gan": 1000}
GAUSS_POINTS = 400         # samples per N in the Gaussian-assumption panel (the exact ε costs points × data points)

MEMO_SIZE = 128           # figures kept: every visitor's page load asks for the same few (data, x_t, shipped models)
_memo_store: OrderedDict = OrderedDict()
_memo_lock = threading.Lock()


def _memo(key, make):
    """make() once per key (checked inputs only): a page load shows the same figures to every visitor, and computing
    them for each (sampling, matplotlib) held the server for seconds while a class opened the page. A caller that
    asks while another computes the same key waits for that result instead of computing it again. The figures and
    notes are written in the request's language, so the language is part of the key."""
    key = (current_lang(), *key)
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


# ---------------------------------------------------------------- texts in the page's language
def label_text(value, keys: dict, lang: str | None = None) -> str:
    """A choice as its control labels it (in English, the value itself); anything else as it is."""
    return tr(keys[value], lang) if isinstance(value, str) and value in keys else str(value)


def dataset_text(dataset, lang: str | None = None) -> str:
    return label_text(dataset, DATASET_KEYS, lang)


def _english_pattern(key: str) -> re.Pattern:
    """The English text of `key` as a pattern that matches any text made from it, its placeholders as groups."""
    text, parts, last, seen = tr(key, "en"), [], 0, set()
    for m in _PLACEHOLDER.finditer(text):
        name = m.group(1)
        parts += [re.escape(text[last:m.start()]), f"(?P={name})" if name in seen else f"(?P<{name}>.+?)"]
        seen.add(name)
        last = m.end()
    return re.compile("".join(parts) + re.escape(text[last:]))


def match_english(text: str, keys) -> tuple[str, dict] | None:
    """(key, placeholder values) of the key among `keys` whose English text `text` was made from, else None: for
    the English texts the pipelines write (the drawing's errors, the measured bars of results/toy2d.json)."""
    for key in keys:
        m = _english_pattern(key).fullmatch(text)
        if m:
            return key, m.groupdict()
    return None


# data.points_from_strokes' messages, as locales/en.toml has them (tests/test_i18n.py checks they still match)
DRAWING_ERRORS = ("playground2d.drawing_small", "playground2d.drawing_few", "playground2d.drawing_spot",
                  "playground2d.drawing_line")


# ---------------------------------------------------------------- inputs
def _drawing_points(drawing, n: int, seed: int, split: str = "train") -> torch.Tensor:
    """The sketch pad's strokes -> n points (pipelines/toy2d/data.points_from_strokes); clear errors otherwise."""
    img = drawing.get("composite") if isinstance(drawing, dict) else drawing
    if img is None or img == "":
        raise ValueError(tr("playground2d.canvas_empty"))
    if not isinstance(img, Image.Image):
        img = open_image(received_file(img))  # an upload only; size-checked before decoding; 16-bit and float read
    rgba = np.asarray(img.convert("RGBA").resize((128, 128)), dtype=np.float32)
    ink = (rgba[..., 3] > 100) & (rgba[..., :3].min(-1) < 200)   # opaque strokes that are not white
    try:
        return data.points_from_strokes(ink, n, seed, split)
    except ValueError as exc:  # its messages are English: in the page's language
        found = match_english(str(exc), DRAWING_ERRORS)
        raise (ValueError(tr(found[0], **found[1])) if found else exc) from None


@user_errors
def use_drawing(drawing):
    """'Use my drawing': check the strokes first (a clear message if they are too few or degenerate), then switch
    the dataset to them (which redraws every panel)."""
    _drawing_points(drawing, 10, 0)
    return gr.update(value=DRAWN)


def dataset_points(dataset, drawing, n: int, seed: int = 0, split: str = "train") -> torch.Tensor:
    check_choice(dataset, "playground2d.dataset", DATASETS)
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
    return check_number(seed, "common.seed", 0, MAX_SEED, integer=True)


def is_live(dataset, live_model) -> bool:
    """Whether this session's live-trained model (the State) was trained on this dataset."""
    return isinstance(live_model, dict) and live_model.get("dataset") == dataset and live_model.get("model") == "ddpm"


def current_ddpm(dataset, live_model):
    """(Denoiser, scheduler config, where it came from): this session's live-trained model when it was trained on
    this dataset, else the shipped checkpoint."""
    if is_live(dataset, live_model):
        return live_model["net"], live_model["config"], tr("playground2d.source_live", steps=live_model["steps"])
    if dataset == DRAWN:
        raise ValueError(tr("playground2d.drawing_untrained"))
    net, config, record, _ = checkpoint.load(KEY[dataset], "ddpm")
    return net, config["scheduler"], tr("playground2d.source_shipped", steps=record.get("steps", 0))


# ---------------------------------------------------------------- data and forward process
@user_errors
def show_data(dataset, drawing, seed):
    """Plot a 2-D toy dataset (no network runs): 1,500 of its training points and 500 held-out points, as an image,
    and a note (Markdown) on the data, with the exact mixture parameters of the 8 Gaussians.

    Args:
        dataset: the 2-D data: "8 Gaussians on a ring", "two moons", "Swiss roll", "concentric circles", "checkerboard", or "my drawing (canvas below)" (points sampled from drawing).
        drawing: the drawn distribution, used only with "my drawing (canvas below)": an image-editor value whose composite is an image file of dark, opaque strokes or shapes on a white or transparent canvas; else leave empty.
        seed: the random seed of the points, a whole number from 0 to 2147483647.
    """
    seed = _seed(seed)
    if check_choice(dataset, "playground2d.dataset", DATASETS) != DRAWN:
        return _memo(("data", dataset, seed), lambda: _show_data(dataset, None, seed))
    return _show_data(dataset, drawing, seed)


def _show_data(dataset, drawing, seed):
    train_pts = dataset_points(dataset, drawing, SHOWN_POINTS, seed)
    held = dataset_points(dataset, drawing, 500, seed, "heldout")
    fig = data_figure(train_pts, held, dataset_text(dataset))
    note = tr("playground2d.data_note", dataset=dataset_text(dataset), shown=SHOWN_POINTS, train=TRAIN_POINTS, held=500)
    if dataset != DRAWN and data.mixture(KEY[dataset]) is not None:
        m = data.mixture(KEY[dataset])
        note += tr("playground2d.data_exact", k=m.k, weight=m.weights[0], std=data.RING_STD, radius=data.RING_RADIUS)
    return to_png(fig, dataset=dataset, seed=seed), note


@user_errors
def forward(dataset, drawing, schedule, zero_snr, t, seed):
    """Noise a 2-D toy dataset with the closed-form forward process q(x_t | x_0) (no network runs): returns one image
    of the points x_0, the noised points x_t at timestep t, and the schedule's ᾱ_t.

    Args:
        dataset: the 2-D data: "8 Gaussians on a ring", "two moons", "Swiss roll", "concentric circles", "checkerboard", or "my drawing (canvas below)" (points sampled from drawing).
        drawing: the drawn distribution, used only with "my drawing (canvas below)": an image-editor value whose composite is an image file of dark, opaque strokes or shapes on a white or transparent canvas; else leave empty.
        schedule: the noise schedule: "linear (DDPM)" or "cosine (improved DDPM)".
        zero_snr: true to rescale the schedule to zero terminal SNR (x_999 is pure noise), false to use it as is.
        t: the timestep, a whole number from 0 to 999 (0 = the data itself).
        seed: the random seed of the points and of the noise, a whole number from 0 to 2147483647.
    """
    check_choice(schedule, "ddpm.schedule_name", TOY_SCHEDULES)
    zero_snr = check_bool(zero_snr, "ddpm.zero_snr_name")
    t = check_number(t, "t", 0, T_STEPS - 1, integer=True)
    seed = _seed(seed)
    if check_choice(dataset, "playground2d.dataset", DATASETS) != DRAWN:
        return _memo(("forward", dataset, schedule, zero_snr, t, seed),
                     lambda: _forward(dataset, None, schedule, zero_snr, t, seed))
    return _forward(dataset, drawing, schedule, zero_snr, t, seed)


def _forward(dataset, drawing, schedule, zero_snr, t, seed):
    x0 = dataset_points(dataset, drawing, SHOWN_POINTS, seed)
    abars = ddpm_alphas_cumprod(ddpm_config(schedule, zero_snr))
    abar = float(abars[t])
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    x_t = abar ** 0.5 * x0 + (1 - abar) ** 0.5 * eps
    name = tr(f"schedule.{SCHEDULE_NAMES[schedule]}_short") + (tr("plots.schedule_zero") if zero_snr else "")
    fig = forward_figure(x0, x_t, t, abar, abars.numpy(), name)   # in English: "linear", "cosine + zero SNR"
    return to_png(fig, dataset=dataset, schedule=schedule, zero_snr=zero_snr, t=t, seed=seed)


# ---------------------------------------------------------------- training live
def _train_live(kind: str, dataset, drawing, steps, seed, **kwargs):
    seed = _seed(seed)
    steps = check_number(steps, "playground2d.train_steps", 100, LIVE_MAX_STEPS[kind], integer=True)
    points = dataset_points(dataset, drawing, TRAIN_POINTS, seed)
    held = dataset_points(dataset, drawing, metrics.N_EVAL, seed, "heldout")
    budget = LIVE_SECONDS * cost_scale()
    progress = None
    for progress in in_threads(train(kind, points, steps=steps, seed=seed, every=FRAME_EVERY, **kwargs), THREADS):
        over = progress.seconds > budget and not progress.done
        m = metrics.mmd(progress.samples, held)
        cover = metrics.mode_coverage(progress.samples) if dataset == data.DATASETS["8gaussians"][0] else None
        # both coverage figures: a ring of samples between the modes touches all 8 but lies within 3σ of none
        status = (tr("playground2d.live_status", step=progress.step, steps=steps, seconds=progress.seconds, mmd=m)
                  + (tr("playground2d.live_cover", modes=cover["modes"], share=cover["in_modes"]) if cover else ""))
        if over:
            status += tr("playground2d.live_stopped", budget=budget)
        yield progress, status, over or progress.done
        if over:
            break


@gpu_task()
@user_errors
def train_ddpm_live(dataset, drawing, prediction, steps, seed):
    """Train a small DDPM on a 2-D toy dataset live, streaming an update every 250 steps: an image of the loss curve
    and of samples (50 ancestral steps) over the held-out points, and a status line (step, seconds, MMD to the held-out
    points, and for the 8 Gaussians the modes covered). A run stops after steps, or after this server's limit of
    30 seconds (× its cost scale). The trained model is kept for the page's session (for the score field).

    Args:
        dataset: the 2-D data: "8 Gaussians on a ring", "two moons", "Swiss roll", "concentric circles", "checkerboard", or "my drawing (canvas below)" (points sampled from drawing).
        drawing: the drawn distribution, used only with "my drawing (canvas below)": an image-editor value whose composite is an image file of dark, opaque strokes or shapes on a white or transparent canvas; else leave empty.
        prediction: what the network predicts: "ε (epsilon)" (the noise) or "v (velocity)".
        steps: optimiser steps, a whole number from 100 to 6000 (in steps of 100 on the page); the run also stops at this server's time limit.
        seed: the random seed of the training points, the initial weights and the batches, a whole number from 0 to 2147483647.
    """
    prediction_type = PREDICTIONS[check_choice(prediction, "playground2d.prediction_name", list(PREDICTIONS))]
    held = dataset_points(dataset, drawing, 600, 0, "heldout")
    for p, status, done in _train_live("ddpm", dataset, drawing, steps, seed, prediction_type=prediction_type,
                                       preview_steps=50):
        fig = training_figure(p.curves, p.samples, held, tr("playground2d.samples_ancestral", steps=50), status)
        live = None
        if done:
            live = dict(dataset=dataset, model="ddpm", net=p.model["denoiser"].eval().requires_grad_(False),
                        config=p.model["config"], steps=p.step)
        yield (to_png(fig, dataset=dataset, model="ddpm", prediction=prediction, steps=int(steps), seed=int(seed)),
               _live_line(status, done), live if done else gr.update())


@gpu_task()
@user_errors
def train_gan_live(dataset, drawing, model, steps, seed):
    """Train a DD-GAN (a denoising diffusion GAN of 4 or 2 steps) or a plain GAN on a 2-D toy dataset live, streaming
    an update every 250 steps: an image of the generator and discriminator losses and of samples over the held-out
    points, and a status line (step, seconds, MMD to the held-out points, and for the 8 Gaussians the modes covered).
    A run stops after steps, or after this server's limit of 30 seconds (× its cost scale).

    Args:
        dataset: the 2-D data: "8 Gaussians on a ring", "two moons", "Swiss roll", "concentric circles", "checkerboard", or "my drawing (canvas below)" (points sampled from drawing).
        drawing: the drawn distribution, used only with "my drawing (canvas below)": an image-editor value whose composite is an image file of dark, opaque strokes or shapes on a white or transparent canvas; else leave empty.
        model: "DD-GAN, 4 steps", "DD-GAN, 2 steps" or "GAN (1 step)".
        steps: optimiser steps, a whole number from 100 to 3000 (in steps of 100 on the page); the run also stops at this server's time limit.
        seed: the random seed of the training points, the initial weights and the batches, a whole number from 0 to 2147483647.
    """
    kind, t_steps = GAN_MODELS[check_choice(model, "playground2d.gan_model", list(GAN_MODELS))]
    kwargs = dict(denoising_steps=t_steps, hidden=64) if kind == "ddgan" else {}
    held = dataset_points(dataset, drawing, 600, 0, "heldout")
    for p, status, done in _train_live(kind, dataset, drawing, steps, seed, **kwargs):
        title = tr("playground2d.model_samples", model=label_text(model, GAN_KEYS))
        fig = training_figure(p.curves, p.samples, held, title, status)
        yield to_png(fig, dataset=dataset, model=model, steps=int(steps), seed=int(seed)), _live_line(status, done)


def _live_line(status: str, done: bool) -> str:
    """The status box's line: 'training: …' while it runs, 'done: …' at the end."""
    return tr("playground2d.live_done" if done else "playground2d.live_training", status=status)


def shipped(dataset):
    """The shipped DDPM of a dataset at once: its loss curve and 1000 samples (private: on load and on change)."""
    try:
        check_choice(dataset, "playground2d.dataset", DATASETS)
        if dataset == DRAWN:
            return None, tr("playground2d.shipped_drawn"), None
        net, config, record, weights = checkpoint.load(KEY[dataset], "ddpm")
    except (ValueError, CheckpointMissing) as exc:
        return None, str(exc), None
    return (*_memo(("shipped", dataset, weights), lambda: _shipped(dataset, net, config, record)), None)


def _shipped(dataset, net, config, record):
    x = ddpm_frames(net, config["scheduler"], steps=100, num_points=metrics.N_EVAL, seed=0).last().x
    held = data.sample(KEY[dataset], metrics.N_EVAL, split="heldout")
    mmd = metrics.mmd(x, held)
    status = tr("playground2d.shipped_status", steps=record["steps"], seconds=record["wall_seconds"],
                command=record["command"], mmd=mmd)
    fig = training_figure({"loss": record.get("loss_curve", [])}, x, held[:600],
                          tr("playground2d.samples_ancestral", steps=100),
                          tr("playground2d.shipped_title", steps=record["steps"], mmd=mmd))
    return to_png(fig, dataset=dataset, model="ddpm", checkpoint=checkpoint.name(KEY[dataset], "ddpm")), status


def shipped_gan(dataset, model):
    """The shipped DD-GAN / GAN of 8 Gaussians at once (private: on load and on change); other data: train live."""
    try:
        kind, t_steps = GAN_MODELS[check_choice(model, "playground2d.gan_model", list(GAN_MODELS))]
        check_choice(dataset, "playground2d.dataset", DATASETS)
        key = KEY.get(dataset)
        net, _, record, weights = checkpoint.load(key, kind, t_steps) if key else (None, None, None, None)
    except (ValueError, CheckpointMissing):
        net = None
    if net is None:
        return None, tr("playground2d.no_shipped_gan", model=label_text(model, GAN_KEYS),
                        dataset=dataset_text(dataset))
    return _memo(("shipped_gan", dataset, model, weights), lambda: _shipped_gan(dataset, model, net, record))


def _shipped_gan(dataset, model, net, record):
    kind, t_steps = GAN_MODELS[model]
    key = KEY[dataset]
    run = ddgan_frames(net, num_points=metrics.N_EVAL) if kind == "ddgan" else gan_frames(net, num_points=metrics.N_EVAL)
    x = run.last().x
    held = data.sample(key, metrics.N_EVAL, split="heldout")
    cov = metrics.mode_coverage(x) if key == "8gaussians" else None
    measured = (tr("playground2d.gan_measured", mmd=metrics.mmd(x, held))
                + (tr("playground2d.gan_modes", modes=cov["modes"]) if cov else ""))
    name = label_text(model, GAN_KEYS)
    status = tr("playground2d.shipped_gan_status", model=name, steps=record["steps"], seconds=record["wall_seconds"],
                command=record["command"], measured=measured)
    fig = training_figure(record.get("curves", {}), x, held[:600], tr("playground2d.model_samples", model=name),
                          tr("playground2d.shipped_gan_title", model=name, steps=record["steps"], measured=measured))
    return to_png(fig, dataset=dataset, model=model, checkpoint=checkpoint.name(key, kind, t_steps)), status


# ---------------------------------------------------------------- score field
FIELD_GRID = 17


@gpu_task()
@user_errors
def score_field(dataset, drawing, t, shown, particles, seed, live_model=None):
    """Compare a trained 2-D DDPM's field at timestep t with the true one (exact for the data): an image of the
    learned (left) and true (right) field on a 17×17 grid, with particles following DDIM (50 steps) from noise, and a
    note (Markdown) on their agreement (mean cosine, median relative error). The model is the dataset's shipped one,
    or the page session's model trained live on this dataset (a drawing has no shipped model).

    Args:
        dataset: the 2-D data: "8 Gaussians on a ring", "two moons", "Swiss roll", "concentric circles", "checkerboard", or "my drawing (canvas below)" (points sampled from drawing).
        drawing: the drawn distribution, used only with "my drawing (canvas below)": an image-editor value whose composite is an image file of dark, opaque strokes or shapes on a white or transparent canvas; else leave empty.
        t: the timestep of the field, a whole number from 1 to 999.
        shown: what to draw: "ε (what the network outputs)" or "score ∇ log q_t = −ε / √(1−ᾱ_t)".
        particles: how many particles to follow, a whole number from 0 to 32 (0 = none).
        seed: the random seed of the particles' starting noise, a whole number from 0 to 2147483647.
        live_model: the model trained live in this session (kept by the page; leave empty).
    """
    t = check_number(t, "t", 1, T_STEPS - 1, integer=True)
    check_choice(shown, "playground2d.field_name", FIELD_SHOWN)
    particles = check_number(particles, "playground2d.particles_name", 0, 32, integer=True)
    seed = _seed(seed)
    net, config, source = current_ddpm(dataset, live_model)
    if dataset != DRAWN and not is_live(dataset, live_model):  # the shipped model
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
    agreement = tr("playground2d.agreement", source=source, cos=cos.mean(), rel=rel)
    pts = dataset_points(dataset, drawing, 800, 0)
    fig = field_figure(grid, learned, true, pts, traj, t, what, agreement)
    return to_png(fig, dataset=dataset, t=t, field=what, particles=particles, seed=seed), agreement


# ---------------------------------------------------------------- the Gaussian assumption
@gpu_task()
@user_errors
def gaussian_step(dataset, drawing, x, y, t, n_steps, seed):
    """Test DDPM's Gaussian assumption for one reverse step (exact, no trained network): from the point x_t = (x, y)
    at timestep t, a step of a sampler with N steps goes to s = t − 1000 / N. Returns an image of samples of the true
    posterior q(x_s | x_t) beside DDPM's Gaussian of the same mean, and of samples drawn with the exact ε at several
    N, and a note (Markdown) with both means and spreads.

    Args:
        dataset: the 2-D data: "8 Gaussians on a ring", "two moons", "Swiss roll", "concentric circles", "checkerboard", or "my drawing (canvas below)" (points sampled from drawing).
        drawing: the drawn distribution, used only with "my drawing (canvas below)": an image-editor value whose composite is an image file of dark, opaque strokes or shapes on a white or transparent canvas; else leave empty.
        x: the first coordinate of x_t, a number from -4 to 4.
        y: the second coordinate of x_t, a number from -4 to 4.
        t: the timestep the step starts at, a whole number from 1 to 999.
        n_steps: the sampler's number of steps N, one of "1000", "100", "50", "10", "4", "2" (fewer steps = a bigger step).
        seed: the random seed of the samples, a whole number from 0 to 2147483647.
    """
    x = check_number(x, "playground2d.x_name", -4, 4)
    y = check_number(y, "playground2d.y_name", -4, 4)
    t = check_number(t, "t", 1, T_STEPS - 1, integer=True)
    n_steps = int(check_choice(int(check_number(n_steps, "N", 1, 1000, integer=True)), "N", STEP_CHOICES))
    seed = _seed(seed)
    if check_choice(dataset, "playground2d.dataset", DATASETS) != DRAWN:
        return _memo(("gauss", dataset, x, y, t, n_steps, seed), lambda: _gaussian_step(dataset, None, x, y, t, n_steps, seed))
    return _gaussian_step(dataset, drawing, x, y, t, n_steps, seed)


def _gaussian_step(dataset, drawing, x, y, t, n_steps, seed):
    mix = truth(dataset, drawing)
    config = ddpm_config()
    abars = ddpm_alphas_cumprod(config)
    s = t - T_STEPS // n_steps
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
    note = tr("playground2d.gauss_note", t=t, target=tr("playground2d.gauss_x0") if s < 0 else s, n=n_steps,
              mean_x=float(true_mean[0]), mean_y=float(true_mean[1]), std=float(spread.trace() / 2) ** 0.5,
              gauss_x=float(mean[0, 0]), gauss_y=float(mean[0, 1]), gauss_std=float(var) ** 0.5,
              cost="" if exact else tr("playground2d.gauss_cost"))
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
    """The generative learning trilemma measured on the 8 Gaussians (read from the results of
    `python -m pipelines.measure.toy2d`; nothing is sampled): an image of sample quality (MMD to held-out points over
    the real-vs-real floor) against network evaluations per sample for DDPM, DD-GAN and a GAN, and the measured table
    (Markdown: MMD, modes covered, milliseconds per 1,000 samples). Takes no arguments."""
    doc = _results()
    if not doc:
        return None, tr("playground2d.no_trilemma")

    def make():
        return to_png(trilemma_figure(doc["rows"], doc["floor"]), measured=doc["created"]), trilemma_md(doc)
    return _memo(("trilemma", doc["created"], doc["floor"], doc["command"], str(doc["rows"])), make)


# the English texts of the measured bars (pipelines.measure.toy2d.bars) and of their measured values
BAR_KEYS = ("playground2d.bar_live", "playground2d.bar_ddpm_modes", "playground2d.bar_ddgan_modes",
            "playground2d.bar_ddgan_mmd", "playground2d.bar_gan")
BAR_VALUE_KEYS = ("playground2d.bar_live_value", "playground2d.bar_ddgan_mmd_value", "playground2d.bar_gan_value")


def trilemma_md(doc: dict, lang: str | None = None) -> str:
    """pipelines.measure.toy2d.markdown(doc) in the request's language: in English exactly that text (a test checks);
    in Persian its words translated around the measured figures. A bar's text that the locale tables do not know
    (results written by another version) is shown as the results file has it."""
    from pipelines.measure.toy2d import FLOOR_PAIRS, N
    lang = lang or current_lang()

    def cell(text: str, keys) -> str:  # a text of the results file, translated when the tables know it
        found = match_english(text, keys) if lang != "en" else None
        if not found:
            return text
        key, values = found
        if values.get("dataset") in data.DATASETS:   # the bars name a dataset by its key
            values["dataset"] = dataset_text(data.DATASETS[values["dataset"]][0], lang)
        return tr(key, lang, **values)

    lines = [tr("playground2d.trilemma_intro", lang, command=doc["command"], created=doc["created"],
                hardware=doc["hardware"], n=N, bandwidths=", ".join(map(str, metrics.BANDWIDTHS)),
                floor=doc["floor"], pairs=FLOOR_PAIRS), "",
             tr("playground2d.trilemma_head", lang), "|---|---|---|---|---|---|---|"]
    methods = {"DDPM": tr("sampler.ancestral", lang), "DDIM": tr("playground2d.trilemma_ddim", lang)}
    for r in doc["rows"]:
        lines.append(f"| {methods.get(r['method'], r['method'])} | {r['steps']} | {r['mmd']:.4f} | "
                     f"{r['mmd_over_floor']:.2f} | {r['modes']}/8 | {r['in_modes']:.1%} | {r['ms_per_1000']:.1f} |")
    lines += ["", tr("playground2d.trilemma_datasets", lang), "", tr("playground2d.trilemma_datasets_head", lang),
              "|---|---|---|---|---|"]
    by = {}
    for r in doc.get("datasets", []):
        by.setdefault(r["dataset"], {})[r["steps"]] = r
    for d, r in by.items():
        lines.append(f"| {dataset_text(data.DATASETS[d][0], lang)} | `{r[1000]['model']}` | {r[1000]['mmd']:.4f} "
                     f"({r[1000]['mmd_over_floor']:.2f}) | {r[50]['mmd']:.4f} ({r[50]['mmd_over_floor']:.2f}) | "
                     f"{r[1000]['floor']:.4f} |")
    lines += ["", tr("playground2d.trilemma_bars_head", lang), "|---|---|---|"]
    met = {None: "—", True: tr("playground2d.yes", lang), False: tr("playground2d.no", lang)}
    lines += [f"| {cell(b['bar'], BAR_KEYS)} | {cell(str(b['value']), BAR_VALUE_KEYS)} | "
              f"{met[None if b['met'] is None else bool(b['met'])]} |" for b in doc["bars"]]
    return "\n".join(lines)


# ---------------------------------------------------------------- CFG
CFG_CLASSES = list(data.CLASS_NAMES)


@gpu_task()
@user_errors
def cfg_2d(label, w, t, seed):
    """Classifier-free guidance in 2-D with the exact guided score of three overlapping classes (no trained network):
    400 samples of 100 DDPM steps guided towards one class at scale w, drawn as an image over the three classes' points
    with the guided field at timestep t, and a note (Markdown: the share of samples in the class, the median data
    density at the samples).

    Args:
        label: the class y to guide towards: "red", "green" or "blue".
        w: the guidance scale, from 0 to 10 (0 = unconditional, 1 = conditional without guidance, above 1 = guided).
        t: the timestep of the drawn field, a whole number from 1 to 999.
        seed: the random seed of the samples, a whole number from 0 to 2147483647.
    """
    y = CFG_CLASSES.index(check_choice(label, "playground2d.class_name", CFG_CLASSES))
    w = check_number(w, "w", 0, 10)
    t = check_number(t, "t", 1, T_STEPS - 1, integer=True)
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
    note = tr("playground2d.cfg_note", w=w, share=share, label=label_text(label, CLASS_KEYS), density=on_data)
    fig = cfg_figure(samples, grid, field, pts, labels, w, y, t, [label_text(c, CLASS_KEYS) for c in CFG_CLASSES])
    return to_png(fig, label=label, w=w, t=t, seed=seed), note


# ---------------------------------------------------------------- layout
def warm() -> None:
    """Fill the memo with what every page load shows (a daemon thread from build(): the server starts at once), in
    each language, English first: the figures and notes are written in the page's language."""
    for lang in LANGUAGES:
        with language(lang):
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
    formula(T("playground2d.intro_md"))
    with gr.Row():
        with gr.Column(scale=1):
            dataset = gr.Dropdown(labelled(DATASETS, DATASET_KEYS), value=DATASETS[0], label=T("playground2d.dataset"))
            data_seed = seed_box(0)
            with gr.Accordion(T("playground2d.draw"), open=False):
                drawing = gr.Sketchpad(label=T("playground2d.sketch"), height=300,
                                       canvas_size=(300, 300), type="filepath",
                                       brush=gr.Brush(default_size=10, colors=["#000000"], default_color="#000000"))
                use_drawing_btn = gr.Button(T("playground2d.use_drawing"))
            data_note = gr.Markdown()
        with gr.Column(scale=1):
            data_plot = samples_image("playground2d.data_plot", height=540)
    show_btn = gr.Button(T("playground2d.show"), elem_classes=["advanced"])
    live_model = gr.State(None)

    gr.Markdown(T("playground2d.title_forward"))
    formula(T("playground2d.forward_md"))
    with gr.Row():
        schedule = gr.Dropdown(labelled(TOY_SCHEDULES, SCHEDULE_KEYS), value=DEFAULT_SCHEDULE,
                               label=T("playground2d.schedule"))
        zero_snr = gr.Checkbox(False, label=T("playground2d.zero_snr"))
        t_fwd = gr.Slider(0, T_STEPS - 1, value=200, step=1, label="t")
    fwd_player = Player(t_fwd, 0, T_STEPS - 1, step=50, fps=3)
    fwd_plot = samples_image("playground2d.forward_plot", height=510)

    gr.Markdown(T("playground2d.title_train"))
    formula(T("playground2d.train_md"))
    with gr.Row():
        prediction = gr.Radio(labelled(PREDICTIONS, PREDICTION_KEYS), value=list(PREDICTIONS)[0],
                              label=T("playground2d.prediction"), elem_classes=["advanced"])
        ddpm_steps = gr.Slider(100, LIVE_MAX_STEPS["ddpm"], value=LIVE_DEFAULT_STEPS["ddpm"], step=100,
                               label=T("playground2d.train_steps"),
                               info=T("playground2d.steps_info", most=LIVE_MAX_STEPS["ddpm"], seconds=LIVE_SECONDS))
        train_seed = seed_box(0)
    train_btn = gr.Button(T("playground2d.train"), variant="primary")
    train_status = gr.Textbox(label=T("playground2d.train_status"), interactive=False)
    train_plot = samples_image("playground2d.train_plot", height=500)

    gr.Markdown(T("playground2d.title_field"))
    formula(T("playground2d.field_md"))
    with gr.Row():
        t_field = gr.Slider(1, T_STEPS - 1, value=FIELD_DEFAULTS[0], step=1, label=T("playground2d.t_field"))
        shown = gr.Radio(labelled(FIELD_SHOWN, FIELD_KEYS), value=FIELD_DEFAULTS[1], label=T("playground2d.shown"))
        particles = gr.Slider(0, 32, value=FIELD_DEFAULTS[2], step=1, label=T("playground2d.particles"),
                              elem_classes=["advanced"])
        field_seed = seed_box(0)
    field_btn = gr.Button(T("playground2d.field_run"), variant="primary")
    field_note = gr.Markdown()
    field_plot = samples_image("playground2d.field_plot", height=590)

    gr.Markdown(T("playground2d.title_gauss"))
    formula(T("playground2d.gauss_md"))
    with gr.Row():
        gx = gr.Number(GAUSS_DEFAULTS[0], label=T("playground2d.gauss_x"), minimum=-4, maximum=4)
        gy = gr.Number(GAUSS_DEFAULTS[1], label=T("playground2d.gauss_y"), minimum=-4, maximum=4)
        t_gauss = gr.Slider(1, T_STEPS - 1, value=GAUSS_DEFAULTS[2], step=1, label=T("playground2d.t_gauss"))
        n_steps = gr.Radio([str(n) for n in STEP_CHOICES], value=GAUSS_DEFAULTS[3], label=T("playground2d.n_steps"))
        gauss_seed = seed_box(0)
    gauss_btn = gr.Button(T("playground2d.gauss_run"), variant="primary")
    gauss_note = gr.Markdown()
    gauss_plot = samples_image("playground2d.gauss_plot", height=850)

    gr.Markdown(T("playground2d.title_gan"))
    formula(T("playground2d.gan_md"))
    with gr.Row():
        gan_model = gr.Radio(labelled(GAN_MODELS, GAN_KEYS), value=list(GAN_MODELS)[0],
                             label=T("playground2d.gan_model"))
        gan_steps = gr.Slider(100, LIVE_MAX_STEPS["ddgan"], value=LIVE_DEFAULT_STEPS["gan"], step=100,
                              label=T("playground2d.train_steps"),
                              info=T("playground2d.steps_info", most=LIVE_MAX_STEPS["ddgan"], seconds=LIVE_SECONDS))
        gan_seed = seed_box(0)
    gan_btn = gr.Button(T("playground2d.gan_run"), variant="primary")
    gan_status = gr.Textbox(label=T("playground2d.gan_status"), interactive=False)
    gan_plot = samples_image("playground2d.gan_plot", height=500)

    gr.Markdown(T("playground2d.title_trilemma"))
    tri_plot = samples_image("playground2d.trilemma_plot", height=540)
    tri_table = gr.Markdown()
    tri_btn = gr.Button(T("playground2d.trilemma_reload"), elem_classes=["advanced"])

    gr.Markdown(T("playground2d.title_cfg"))
    formula(T("playground2d.cfg_md"))
    with gr.Row():
        cfg_class = gr.Radio(labelled(CFG_CLASSES, CLASS_KEYS), value=CFG_DEFAULTS[0],
                             label=T("playground2d.cfg_class"))
        cfg_w = gr.Slider(0, 10, value=CFG_DEFAULTS[1], step=0.5, label=T("playground2d.cfg_w"))
        cfg_t = gr.Slider(1, T_STEPS - 1, value=CFG_DEFAULTS[2], step=1, label=T("playground2d.cfg_t"),
                          elem_classes=["advanced"])
        cfg_seed = seed_box(0)
    cfg_btn = gr.Button(T("playground2d.cfg_run"), variant="primary")
    cfg_note = gr.Markdown()
    cfg_plot = samples_image("playground2d.cfg_plot", height=590)

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
    # the t slider redraws on release and the player's ticks, which a lesson step cannot press: "Show the data"
    # redraws x_t too (as changing the dataset does), so a step that moves t can show it
    show_btn.click(forward, fwd_in, fwd_plot, **private)
    lesson = Exposed(dict(dataset=dataset, data_seed=data_seed, data=data_plot, data_note=data_note,
                          schedule=schedule, zero_snr=zero_snr, t=t_fwd, forward=fwd_plot,
                          prediction=prediction, train_steps=ddpm_steps, train_seed=train_seed,
                          train_status=train_status, training=train_plot,
                          field_t=t_field, shown=shown, particles=particles, field_seed=field_seed, field=field_plot,
                          field_note=field_note,
                          x=gx, y=gy, gauss_t=t_gauss, n_steps=n_steps, gauss_seed=gauss_seed, gaussian=gauss_plot,
                          gaussian_note=gauss_note,
                          gan_model=gan_model, gan_steps=gan_steps, gan_seed=gan_seed, gan_status=gan_status,
                          gan=gan_plot, trilemma=tri_plot, trilemma_table=tri_table,
                          cfg_class=cfg_class, w=cfg_w, cfg_t=cfg_t, cfg_seed=cfg_seed, cfg=cfg_plot, cfg_note=cfg_note),
                     dict(show=show_btn, train=train_btn, draw_field=field_btn, compare=gauss_btn, train_gan=gan_btn,
                          reload_trilemma=tri_btn, sample_cfg=cfg_btn))
    return {"load": [(show_data, data_in, [data_plot, data_note], raw), (forward, fwd_in, fwd_plot, raw),
                     (shipped, [dataset], [train_plot, train_status, live_model], raw),
                     (shipped_gan, [dataset, gan_model], [gan_plot, gan_status], raw),
                     (trilemma, [], [tri_plot, tri_table]),
                     (score_field, [dataset, drawing, t_field, shown, particles, field_seed, live_model],
                      [field_plot, field_note], raw),
                     (gaussian_step, [dataset, drawing, gx, gy, t_gauss, n_steps, gauss_seed], [gauss_plot, gauss_note],
                      raw),
                     (cfg_2d, [cfg_class, cfg_w, cfg_t, cfg_seed], [cfg_plot, cfg_note], raw)], "lesson": lesson}

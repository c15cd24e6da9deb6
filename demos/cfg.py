"""Classifier-free guidance: class-conditional DDPMs on MNIST and Fashion-MNIST with a guidance scale w."""
from __future__ import annotations

import gradio as gr
import torch

from pipelines.checkpoints import checkpoints_root, read_json
from pipelines.cfg.pipeline import MAX_SCALE, MODELS, load_cfg, train_command
from pipelines.data import CLASS_NAMES
from pipelines.images import grid, labelled_grid, side_by_side

from pipelines.infotext import attach

from .common import (FramesView, SettingsDrop, budget_info, check_choice, check_cost, check_number, echo, formula,
                     samples_image, seed_box, steps_run, user_errors, write_gif)
from .plots import quality_diversity_plot

SAMPLERS = ("DDIM", "DPM-Solver++ (multistep)", "DDPM (ancestral)")
MAX_IMAGES, MAX_STEPS, MAX_FRAMES, SLIDER_MAX = 36, 250, 25, 15.0
ALL_CLASSES = sorted({c for names in CLASS_NAMES.values() for c in names})
MAX_IMAGE_STEPS = 1_500  # images × guided steps per request: ≈ 5.4 s at 3.6 ms per image-step (2 CPU threads)
SWEEP_SCALES, MAX_SWEEP_SCALES = "0, 1, 3, 7", 6
DATASET = {"MNIST": "mnist", "Fashion-MNIST": "fashion-mnist"}

INTRO_MD = f"""
One network, two models. A class-conditional DDPM $\\varepsilon_\\theta(x_t, t, y)$ is trained with the label
dropped (replaced by a **null label** $\\varnothing$) for 10% of the images, so it also learns the unconditional
model $\\varepsilon_\\theta(x_t, t, \\varnothing)$. At sampling time the two predictions are mixed with a scale $w$.
Both models are trained here on 2 CPU cores and shipped in `checkpoints/` with their model cards.

**Two fixes to the reference implementation** (the assignment's code) are made here:
1. *Label dropout per image.* The reference drops the label for the **whole batch at once**, so each step trains
   either only the conditional or only the unconditional model. Here every image flips its own coin ($p = 0.1$),
   as in Ho & Salimans (2022), Algorithm 1.
2. *A separate null embedding.* The reference's "no label" **reuses label 0**, so "unconditional" collides with the
   first class (digit 0 / T-shirt) and the unconditional model is biased towards it. Here the label table has an
   extra learned row, index 10, that means "no label".

CIFAR-10 (the original assignment's data) is not available offline here, so **no CIFAR-10 checkpoint ships**;
on a machine with internet, `{train_command("cfg-cifar10")} --channels 64,128,256 --steps 50000` trains one
(torchvision downloads the data).
"""

TRAIN_MD = r"""
**Conditioning.** $\mathrm{emb} = \mathrm{MLP}(\mathrm{PE}(t)) + E[y]$: the label embedding is *added* to the
timestep embedding and scales/shifts the features of every residual and attention block.
**Training** (per image): $y \leftarrow \varnothing$ with probability $0.1$; minimise $\lVert \varepsilon - \varepsilon_\theta(x_t, t, y)\rVert^2$.
"""

GUIDE_MD = r"""
**Guided noise prediction** (one batched forward for $y$ and $\varnothing$):
$$\tilde\varepsilon = \varepsilon_\theta(x_t,\varnothing) + w\,\big(\varepsilon_\theta(x_t, y) - \varepsilon_\theta(x_t,\varnothing)\big) = \texttt{torch.lerp}(\varepsilon_\varnothing, \varepsilon_y, w)$$
$w = 0$: unconditional · $w = 1$: plain conditional · $w > 1$: pushed away from the unconditional model,
i.e. sampling $\propto p(x)\,p(y\mid x)^{w}$ with an implicit classifier — sharper classes, less variety.
**φ (guidance rescale**, Lin et al. 2024): $\tilde\varepsilon \leftarrow \phi\,\tilde\varepsilon\,\frac{\sigma(\varepsilon_y)}{\sigma(\tilde\varepsilon)} + (1-\phi)\,\tilde\varepsilon$ tames over-saturation at large $w$.
"""

SWEEP_MD = r"""
**CFG sweep.** One row per class, one column per scale $w$. Every scale starts from the **same seed**, so within
a row the noise $x_T$ (and, for DDPM, every step's noise) is identical: only $w$ changes.
"""

QD_MD = r"""
**Quality vs diversity.** As $w$ grows, the judge (a CNN trained here on the real data) recognises the requested
class more often, while the samples of one class become more alike: diversity is the mean pairwise distance between
the judge's 128-d features of samples of the same class (dashed: real test images). Precomputed by
`python -m pipelines.measure.cfg --dataset mnist` (and `fashion-mnist`) into each checkpoint's `metrics.json`.
"""


# ---------------------------------------------------------------- helpers
def _model(model_name: str):
    check_choice(model_name, "Model", MODELS)
    return load_cfg(MODELS[model_name])


def _class(model_name: str, label) -> str:
    """The class as its name, checked before any model is loaded."""
    names = CLASS_NAMES[DATASET[model_name]]
    if str(label) not in names:
        raise ValueError(f"Unknown class {echo(label)} for {model_name}; choose one of {names}.")
    return str(label)


def _scale(scale) -> float:
    return check_number(scale, "CFG scale w", 0, MAX_SCALE)


def _frame(x: torch.Tensor, x0: torch.Tensor, nrow: int):
    return side_by_side(grid(x, nrow, scale=2), grid(x0, nrow, scale=2))


def parse_scales(text) -> list[float]:
    """'0, 1, 3, 7' -> [0.0, 1.0, 3.0, 7.0], each checked against the allowed range."""
    parts = [p for p in str(text or "").replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise ValueError(f"Give at least one guidance scale, e.g. '{SWEEP_SCALES}'.")
    if len(parts) > MAX_SWEEP_SCALES:
        raise ValueError(f"At most {MAX_SWEEP_SCALES} scales per sweep, got {len(parts)}.")
    return [check_number(p.strip(), "Each sweep scale w", 0, MAX_SCALE) for p in parts]


# ---------------------------------------------------------------- callbacks
@user_errors
def generate(model_name, label, scale, rescale, sampler, steps, num_images, seed, progress=gr.Progress()):
    """Stream (x_t, x̂_0) frames of guided sampling for one class, then the gallery and the GIF."""
    check_choice(model_name, "Model", MODELS)
    label = _class(model_name, label)
    check_choice(sampler, "Sampler", SAMPLERS)
    scale = _scale(scale)
    rescale = check_number(rescale, "Guidance rescale φ", 0, 1)
    steps = check_number(steps, "Steps", 1, MAX_STEPS, integer=True)
    num_images = check_number(num_images, "Number of images", 1, MAX_IMAGES, integer=True)
    seed = check_number(seed, "Seed", 0, 2**31 - 1, integer=True)
    check_cost(num_images, steps_run(sampler, steps), MAX_IMAGE_STEPS)
    model = _model(model_name)
    c = model.class_index(label)
    nrow = max(1, int(num_images ** 0.5 + 0.999))
    frames, step = [], None
    run = model.frames(c, scale=scale, rescale=rescale, sampler=sampler, steps=steps, num_images=num_images, seed=seed)
    for step in run.thinned(MAX_FRAMES):
        img = _frame(step.x, step.denoised, nrow)
        frames.append((img, f"step {step.i + 1}/{step.n}  (t={step.t})"))
        progress((step.i + 1, step.n), desc="guided denoising")
        status = f"step {step.i + 1}/{step.n}, t = {step.t}"
        yield img, grid(step.x.clamp(-1, 1), nrow, scale=3), status, *FramesView.update([], None)
    gif = write_gif([f for f, _ in frames], "cfg", duration_ms=120)
    final = attach(grid(step.x.clamp(-1, 1), nrow, scale=3), tab="cfg", model_name=model_name,
                   checkpoint=MODELS[model_name], weights=model.weights_hash, label=label, scale=scale, rescale=rescale,
                   sampler=sampler, steps=steps, num_images=num_images, seed=seed, schedule=model.record.get("schedule"),
                   precision=model.precision.name)
    done = f"done: {model.class_names[c]!s} at w = {scale:g}, {step.n} steps, seed {seed}"
    yield frames[-1][0], final, done, *FramesView.update(frames, gif)


@user_errors
def sweep(model_name, scales, steps, seed, progress=gr.Progress()):
    """One row per class, one column per w; the same seed (same noise) for every w."""
    ws = parse_scales(scales)
    steps = check_number(steps, "Steps", 1, MAX_STEPS, integer=True)
    seed = check_number(seed, "Seed", 0, 2**31 - 1, integer=True)
    model = _model(model_name)
    check_cost(len(ws) * len(model.class_names), steps, MAX_IMAGE_STEPS)
    x = model.sweep(ws, steps=steps, seed=seed, progress=lambda k, n: progress((k, n), desc="scales done"))
    return labelled_grid(x.transpose(0, 1), model.class_names, [f"w = {w:g}" for w in ws], scale=2,
                         label_width=80 if model_name == "MNIST" else 86)


def model_changed(model_name, label=None):
    """New class choices (keeping the class when the new model has it: a restored PNG sets both), the model's card
    summary, its quality–diversity plot and figures."""
    names = CLASS_NAMES[DATASET.get(model_name, "mnist")]
    return gr.Dropdown(choices=names, value=label if label in names else names[0]), *model_summary(model_name)


def model_summary(model_name):
    return model_info(model_name), qd_plot(model_name), metrics_md(model_name)


def model_info(model_name) -> str:
    try:
        m = _model(model_name)
    except Exception as exc:  # a missing checkpoint must not break the page
        return f"**Model not available.** {exc}"
    r = m.record
    return (f"**Model:** hand-written `ClassConditionalUNet`, {m.parameters:,} parameters, trained on "
            f"{r.get('train_images', 0):,} {model_name} training images for {r.get('steps', '?')} steps × batch "
            f"{r.get('batch_size', '?')} (≈{r.get('epochs', '?')} epochs) in {r.get('wall_seconds', 0) / 60:.0f} min "
            f"on {r.get('hardware', '?')}; final loss {r.get('final_loss', float('nan')):.4f}. "
            f"Weights `{m.weights_hash}`. Retrain: `{r.get('command', train_command(MODELS[model_name]))}`")


def _metrics(model_name) -> dict:
    return read_json(checkpoints_root() / MODELS.get(model_name, "") / "metrics.json", {}) if model_name in MODELS else {}


def qd_plot(model_name=None):
    sweeps, real = {}, {}
    for name in MODELS:
        m = _metrics(name)
        if m.get("quality_diversity"):
            sweeps[name], real[name] = m["quality_diversity"], m.get("real_diversity")
    return quality_diversity_plot(sweeps, real) if sweeps else None


def metrics_md(model_name) -> str:
    m = _metrics(model_name)
    if not m:
        return (f"_No measured figures for {model_name} yet: run "
                f"`python -m pipelines.measure.cfg --dataset {DATASET.get(model_name, 'mnist')}`._")
    lines = ["| figure | value |", "|---|---|"]
    for r in m.get("rows", []):
        v = r["value"]
        lines.append(f"| {r['figure']} | {v:.4g} |" if isinstance(v, float) else f"| {r['figure']} | {v} |")
    return "\n".join(lines) + "\n\n" + "  \n".join(f"Reproduce: `{c}`" for c in m.get("commands", {}).values())


def sync_number(w):
    return w


def sync_slider(w):
    try:
        return gr.Slider(value=min(float(w), SLIDER_MAX))
    except (TypeError, ValueError):
        return gr.Slider()


# ---------------------------------------------------------------- layout
def build():
    gr.Markdown("## Classifier-free guidance", latex_delimiters=[{"left": "$", "right": "$", "display": False}])
    formula(INTRO_MD)
    with gr.Row():
        with gr.Column(scale=1):
            model_name = gr.Radio(list(MODELS), value="MNIST", label="Model (class-conditional DDPM trained here)")
            label = gr.Dropdown(CLASS_NAMES["mnist"], value="3", label="Class y")
            with gr.Row():
                scale_slider = gr.Slider(0, SLIDER_MAX, value=3, step=0.25, label="CFG scale w (0 = unconditional, "
                                         "1 = conditional)")
                scale = gr.Number(value=3, minimum=0, maximum=MAX_SCALE, label=f"w (type up to {MAX_SCALE:g})")
            rescale = gr.Slider(0, 1, value=0, step=0.05, label="Guidance rescale φ (0 = off)")
            sampler = gr.Dropdown(list(SAMPLERS), value="DDIM", label="Sampler")
            steps = gr.Slider(1, MAX_STEPS, value=25, step=1, label="Steps (DDPM ancestral always runs all 1000)")
            num_images = gr.Slider(1, MAX_IMAGES, value=16, step=1, label="Number of images",
                                   info=budget_info(MAX_IMAGE_STEPS, ancestral=True))
            seed = seed_box(0)
            run = gr.Button("Generate with guidance", variant="primary")
            status = gr.Textbox(label="Progress", interactive=False)
            SettingsDrop("cfg", dict(model_name=model_name, label=label, scale=scale, rescale=rescale, sampler=sampler,
                                     steps=steps, num_images=num_images, seed=seed),
                         # the class list follows the model: any model's class passes here, generate checks the pair
                         checks={"label": lambda v: check_choice(v, "Class y", ALL_CLASSES)})
        with gr.Column(scale=2):
            formula(GUIDE_MD)
            formula(TRAIN_MD)
            with gr.Row():
                live = gr.Image(label="Now: x_t (left) and predicted x̂₀ (right)", type="pil", interactive=False,
                                height=300)
                final = samples_image("Samples (PNG with its settings inside)")
    frames = FramesView("Guided reverse process")

    formula(SWEEP_MD)
    with gr.Row():
        with gr.Column(scale=1):
            sweep_scales = gr.Textbox(SWEEP_SCALES, label=f"Scales w (comma-separated, at most {MAX_SWEEP_SCALES})")
            sweep_steps = gr.Slider(1, 100, value=20, step=1, label="DDIM steps")
            sweep_seed = seed_box(0)
            run_sweep = gr.Button("Run the CFG sweep", variant="primary")
        with gr.Column(scale=2):
            sweep_img = gr.Image(label="CFG sweep: rows = classes, columns = w", type="pil", interactive=False,
                                 height=560)

    formula(QD_MD)
    with gr.Row():
        qd = gr.Plot(label="Quality and diversity against w")
        figures = gr.Markdown()
    with gr.Accordion("Model card: parameters and training record", open=False,
                      elem_classes=["advanced"]):
        info = gr.Markdown()

    # the slider drives the number box; a typed number beyond the slider's range just pins the slider at its end
    scale_slider.release(sync_number, scale_slider, scale, api_visibility="private", show_progress="hidden")
    for event in (scale.submit, scale.blur):
        event(sync_slider, scale, scale_slider, api_visibility="private", show_progress="hidden")
    model_name.change(model_changed, [model_name, label], [label, info, qd, figures], api_visibility="private",
                      preprocess=False)  # the raw class: a restored one may not be in the old model's list yet
    run.click(generate, [model_name, label, scale, rescale, sampler, steps, num_images, seed],
              [live, final, status, *frames.outputs], api_name="cfg_generate", preprocess=False)
    run_sweep.click(sweep, [model_name, sweep_scales, sweep_steps, sweep_seed], sweep_img, api_name="cfg_sweep",
                    preprocess=False)  # raw inputs reach our own checks, as in the other tabs
    return {"load": [(model_summary, [model_name], [info, qd, figures])]}

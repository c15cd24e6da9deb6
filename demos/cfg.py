"""Classifier-free guidance: class-conditional DDPMs on MNIST and Fashion-MNIST with a guidance scale w."""
from __future__ import annotations

import gradio as gr
import torch

from pipelines.checkpoints import checkpoints_root, read_json
from pipelines.cfg.pipeline import MAX_SCALE, MODELS, load_cfg, train_command
from pipelines.data import CLASS_NAMES
from pipelines.images import grid, labelled_grid, side_by_side

from pipelines.infotext import attach

from .common import (Budget, FramesView, SAMPLER_KEYS, SettingsDrop, StreamedFrames, budget_info, check_choice,
                     check_cost, check_number, echo, formula, labelled, samples_image, seed_box, steps_run, user_errors)
from .i18n import T, has, tr
from .lessons import Exposed
from .plots import quality_diversity_plot
from .zerogpu import gpu_task

SAMPLERS = ("DDIM", "DPM-Solver++ (multistep)", "UniPC (multistep)", "DDPM (ancestral)")
# the cheapest sampler and steps that keep DDIM 20 fp32's quality (python -m pipelines.evaluate --frontier;
# tests/test_frontier.py holds these to results/frontier.json)
DEFAULT_SAMPLER, DEFAULT_STEPS = "DPM-Solver++ (multistep)", 5
MAX_IMAGES, MAX_STEPS, MAX_FRAMES, SLIDER_MAX = 36, 250, 25, 15.0
ALL_CLASSES = sorted({c for names in CLASS_NAMES.values() for c in names})
BUDGET = Budget(2_100, overhead=6)  # per request: ≈ 5 s at 2.4 ms per guided image-step + 14 ms per call (bf16, 2 threads)
SWEEP_SCALES, MAX_SWEEP_SCALES = "0, 1, 3, 7", 6
DATASET = {"MNIST": "mnist", "Fashion-MNIST": "fashion-mnist"}

# ---------------------------------------------------------------- helpers
def class_choices(names, build: bool = False) -> list:
    """A class list as choices: the class name (what the API takes) with its translated label (Fashion-MNIST's)."""
    keyed = [n for n in names if has(f"classes.{n}")]
    if build:
        return labelled(names, {n: f"classes.{n}" for n in keyed})
    return [(tr(f"classes.{n}"), n) if n in keyed else n for n in names]


def _model(model_name: str):
    check_choice(model_name, "cfg.model_name", MODELS)
    return load_cfg(MODELS[model_name])


def _class(model_name: str, label) -> str:
    """The class as its name, checked before any model is loaded."""
    names = CLASS_NAMES[DATASET[model_name]]
    if str(label) not in names:
        raise ValueError(tr("cfg.unknown_class", label=echo(label), model=model_name, names=names))
    return str(label)


def _scale(scale) -> float:
    return check_number(scale, "cfg.scale_name", 0, MAX_SCALE)


def _frame(x: torch.Tensor, x0: torch.Tensor, nrow: int):
    return side_by_side(grid(x, nrow, scale=2), grid(x0, nrow, scale=2))


def parse_scales(text) -> list[float]:
    """'0, 1, 3, 7' -> [0.0, 1.0, 3.0, 7.0], each checked against the allowed range."""
    parts = [p for p in str(text or "").replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise ValueError(tr("cfg.no_scales", example=SWEEP_SCALES))
    if len(parts) > MAX_SWEEP_SCALES:
        raise ValueError(tr("cfg.too_many_scales", most=MAX_SWEEP_SCALES, got=len(parts)))
    return [check_number(p.strip(), "cfg.sweep_scale_name", 0, MAX_SCALE) for p in parts]


# ---------------------------------------------------------------- callbacks
@gpu_task()
@user_errors
def generate(model_name, label, scale, rescale, sampler, steps, num_images, seed, progress=gr.Progress()):
    """Generate images of one class with a class-conditional DDPM and classifier-free guidance of scale w, streaming
    the denoising: each update gives the current frame (x_t beside the predicted x̂_0), the samples so far and a status
    line; the last gives the final grid of samples (a PNG with its settings), every frame and an animated GIF.

    Args:
        model_name: the trained model, "MNIST" (digits) or "Fashion-MNIST" (clothes).
        label: the class to draw, a class of the chosen model: "0" … "9" for MNIST; for Fashion-MNIST one of "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot".
        scale: the guidance scale w, a number from 0 to 30 (0 = unconditional, 1 = conditional without guidance, above 1 = guided; the page's slider shows 0 to 15).
        rescale: the guidance rescale φ (Lin et al.), from 0 to 1; 0 turns it off, 0.7 is the paper's value.
        sampler: "DDIM", "DPM-Solver++ (multistep)", "UniPC (multistep)" or "DDPM (ancestral)" (the ancestral sampler always runs all 1000 training steps and ignores steps).
        steps: the denoising steps, a whole number from 1 to 250.
        num_images: how many images to generate, a whole number from 1 to 36; images × steps is also bounded by this server's per-request budget (a clear error when over it).
        seed: the random seed of the starting noise, a whole number from 0 to 2147483647.
    """
    check_choice(model_name, "cfg.model_name", MODELS)
    label = _class(model_name, label)
    check_choice(sampler, "ddpm.sampler_name", SAMPLERS)
    scale = _scale(scale)
    rescale = check_number(rescale, "cfg.rescale_name", 0, 1)
    steps = check_number(steps, "ddpm.steps_name", 1, MAX_STEPS, integer=True)
    num_images = check_number(num_images, "ddpm.images_name", 1, MAX_IMAGES, integer=True)
    seed = check_number(seed, "common.seed", 0, 2**31 - 1, integer=True)
    check_cost(num_images, steps_run(sampler, steps), BUDGET)
    model = _model(model_name)
    c = model.class_index(label)
    nrow = max(1, int(num_images ** 0.5 + 0.999))
    frames, step = StreamedFrames(), None
    run = model.frames(c, scale=scale, rescale=rescale, sampler=sampler, steps=steps, num_images=num_images, seed=seed)
    for step in run.thinned(MAX_FRAMES):
        live = frames.add(_frame(step.x, step.denoised, nrow),
                          tr("ddpm.frame_caption", i=step.i + 1, n=step.n, t=step.t))
        progress((step.i + 1, step.n), desc=tr("cfg.guided_denoising"))
        status = tr("ddpm.status_step", i=step.i + 1, n=step.n, t=step.t)
        yield live, grid(step.x.clamp(-1, 1), nrow, scale=3), status, *FramesView.update([], None)
    gif = frames.gif("cfg", duration_ms=120)
    final = attach(grid(step.x.clamp(-1, 1), nrow, scale=3), tab="cfg", model_name=model_name,
                   checkpoint=MODELS[model_name], weights=model.weights_hash, label=label, scale=scale, rescale=rescale,
                   sampler=sampler, steps=steps, num_images=num_images, seed=seed, schedule=model.record.get("schedule"),
                   precision=model.precision.label)
    name = str(model.class_names[c])
    done = tr("cfg.status_done", label=tr(f"classes.{name}") if has(f"classes.{name}") else name, scale=scale,
              n=step.n, seed=seed)
    yield frames.last, final, done, *FramesView.update(frames, gif)


@gpu_task()
@user_errors
def sweep(model_name, scales, steps, seed, progress=gr.Progress()):
    """Sweep the guidance scale: an image grid with one row per class of the model and one column per guidance scale
    w, every w starting from the same seed (the same noise), sampled with DDIM.

    Args:
        model_name: the trained model, "MNIST" (digits) or "Fashion-MNIST" (clothes).
        scales: the guidance scales, as text: 1 to 6 numbers separated by commas (e.g. "0, 1, 3, 7"), each from 0 to 30.
        steps: DDIM steps, a whole number from 1 to 100; (10 classes × scales) × steps is also bounded by this server's per-request budget.
        seed: the random seed of the starting noise, a whole number from 0 to 2147483647.
    """
    ws = parse_scales(scales)
    steps = check_number(steps, "ddpm.steps_name", 1, MAX_STEPS, integer=True)
    seed = check_number(seed, "common.seed", 0, 2**31 - 1, integer=True)
    model = _model(model_name)
    check_cost(len(ws) * len(model.class_names), steps, BUDGET, calls=len(ws))  # one batch per w
    desc = tr("cfg.scales_done")
    x = model.sweep(ws, steps=steps, seed=seed, progress=lambda k, n: progress((k, n), desc=desc))
    return labelled_grid(x.transpose(0, 1), model.class_names, [f"w = {w:g}" for w in ws], scale=2,
                         label_width=80 if model_name == "MNIST" else 86)


def model_changed(model_name, label=None):
    """New class choices (keeping the class when the new model has it: a restored PNG sets both), the model's card
    summary, its quality–diversity plot and figures."""
    names = CLASS_NAMES[DATASET.get(model_name, "mnist")]
    return (gr.Dropdown(choices=class_choices(names), value=label if label in names else names[0]),
            *model_summary(model_name))


def model_summary(model_name):
    return model_info(model_name), qd_plot(model_name), metrics_md(model_name)


def model_info(model_name) -> str:
    try:
        m = _model(model_name)
    except Exception as exc:  # a missing checkpoint must not break the page
        return tr("ddpm.model_missing", error=exc)
    r = m.record
    return tr("cfg.model_card", parameters=m.parameters, images=r.get('train_images', 0), model=model_name,
              steps=r.get('steps', '?'), batch=r.get('batch_size', '?'), epochs=r.get('epochs', '?'),
              minutes=r.get('wall_seconds', 0) / 60, hardware=r.get('hardware', '?'),
              loss=r.get('final_loss', float('nan')), weights=m.weights_hash,
              command=r.get('command', train_command(MODELS[model_name])))


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
        return tr("cfg.no_metrics", model=model_name, dataset=DATASET.get(model_name, 'mnist'))
    lines = [f"| {tr('cfg.figure')} | {tr('cfg.value')} |", "|---|---|"]
    for r in m.get("rows", []):
        v = r["value"]
        lines.append(f"| {r['figure']} | {v:.4g} |" if isinstance(v, float) else f"| {r['figure']} | {v} |")
    return "\n".join(lines) + "\n\n" + "  \n".join(tr("cfg.reproduce", command=c) for c in m.get("commands", {}).values())


def sync_number(w):
    return w


def sync_slider(w):
    try:
        return gr.Slider(value=min(float(w), SLIDER_MAX))
    except (TypeError, ValueError):
        return gr.Slider()


# ---------------------------------------------------------------- layout
def build():
    gr.Markdown(T("cfg.title"), latex_delimiters=[{"left": "$", "right": "$", "display": False}])
    formula(T("cfg.intro_md", command=train_command("cfg-cifar10")))
    with gr.Row():
        with gr.Column(scale=1):
            model_name = gr.Radio(list(MODELS), value="MNIST", label=T("cfg.model"))
            label = gr.Dropdown(class_choices(CLASS_NAMES["mnist"], build=True), value="3", label=T("cfg.class_y"))
            with gr.Row():
                scale_slider = gr.Slider(0, SLIDER_MAX, value=3, step=0.25, label=T("cfg.scale_slider"))
                scale = gr.Number(value=3, minimum=0, maximum=MAX_SCALE, label=T("cfg.scale_number", most=MAX_SCALE))
            rescale = gr.Slider(0, 1, value=0, step=0.05, label=T("cfg.rescale"))
            sampler = gr.Dropdown(labelled(SAMPLERS, SAMPLER_KEYS), value=DEFAULT_SAMPLER, label=T("ddpm.sampler"))
            steps = gr.Slider(1, MAX_STEPS, value=DEFAULT_STEPS, step=1, label=T("cfg.steps"))
            num_images = gr.Slider(1, MAX_IMAGES, value=16, step=1, label=T("ddpm.images"),
                                   info=budget_info(BUDGET, ancestral=True))
            seed = seed_box(0)
            run = gr.Button(T("cfg.run"), variant="primary")
            status = gr.Textbox(label=T("ddpm.progress"), interactive=False)
            SettingsDrop("cfg", dict(model_name=model_name, label=label, scale=scale, rescale=rescale, sampler=sampler,
                                     steps=steps, num_images=num_images, seed=seed),
                         # the class list follows the model: any model's class passes here, generate checks the pair
                         checks={"label": lambda v: check_choice(v, "cfg.class_y", ALL_CLASSES)})
        with gr.Column(scale=2):
            formula(T("cfg.guide_md"))
            formula(T("cfg.train_md"))
            with gr.Row():
                live = gr.Image(label=T("ddpm.live"), type="pil", interactive=False, height=300)
                final = samples_image("ddpm.samples")
    frames = FramesView("cfg.frames")

    formula(T("cfg.sweep_md"))
    with gr.Row():
        with gr.Column(scale=1):
            sweep_scales = gr.Textbox(SWEEP_SCALES, label=T("cfg.sweep_scales", most=MAX_SWEEP_SCALES))
            sweep_steps = gr.Slider(1, 100, value=20, step=1, label=T("cfg.sweep_steps"))
            sweep_seed = seed_box(0)
            run_sweep = gr.Button(T("cfg.run_sweep"), variant="primary")
        with gr.Column(scale=2):
            sweep_img = gr.Image(label=T("cfg.sweep_img"), type="pil", interactive=False, height=560)

    formula(T("cfg.qd_md"))
    with gr.Row():
        qd = gr.Plot(label=T("cfg.qd"))
        figures = gr.Markdown()
    with gr.Accordion(T("ddpm.card"), open=False, elem_classes=["advanced"]):
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
    lesson = Exposed(dict(model_name=model_name, label=label, scale=(scale, scale_slider), rescale=rescale,
                          sampler=sampler, steps=steps, num_images=num_images, seed=seed, live=live, samples=final,
                          status=status, sweep_scales=sweep_scales, sweep_steps=sweep_steps, sweep_seed=sweep_seed,
                          sweep=sweep_img, qd=qd, figures=figures), dict(generate=run, sweep=run_sweep))
    return {"load": [(model_summary, [model_name], [info, qd, figures])], "lesson": lesson}

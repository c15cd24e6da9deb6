"""Zero terminal SNR, v-prediction, trailing timesteps and CFG rescale (Lin et al. 2024) on four trained models."""
from __future__ import annotations

import gradio as gr
import torch
from torchvision.utils import make_grid

from pipelines.cfg.pipeline import MAX_SCALE
from pipelines.checkpoints import checkpoints_root, read_json
from pipelines.data import CLASS_NAMES
from pipelines.images import finite_samples, grid, labelled_grid, side_by_side
from pipelines.schedules import SPACINGS
from pipelines.zero_snr import SCHEDULE, VARIANTS, brightness, load_variant, variant_label

from pipelines.infotext import attach

from .cfg import BUDGET as CFG_BUDGET, class_choices
from .common import (FramesView, SettingsDrop, StreamedFrames, budget_info, check_bool, check_choice, check_cost,
                     check_number, echo, formula, labelled, md_escape, samples_image, seed_box, user_errors)
from .i18n import T, T_each, has, tr
from .lessons import Exposed
from .plots import brightness_plot, terminal_snr_plot
from .zerogpu import gpu_task

CLASSES = CLASS_NAMES["brightness-mnist"]
OWN = "the model's own (leading / trailing)"
SPACING_CHOICES = (OWN, *SPACINGS)
SPACING_KEYS = {OWN: "zero_snr.spacing_own"} | {s: f"zero_snr.spacing_{s}" for s in SPACINGS}  # the choices' labels
MAX_IMAGES, MAX_STEPS, COMPARE_IMAGES, MAX_FRAMES = 36, 200, 4, 25
# the cheapest DDIM steps that keep DDIM 20 fp32's quality (python -m pipelines.evaluate --frontier;
# tests/test_frontier.py holds these to results/frontier.json)
DEFAULT_STEPS = 20   # DDIM: the lesson's sampler, with its timestep spacings
BUDGET = CFG_BUDGET  # the same UNet as the CFG tab's

# ---------------------------------------------------------------- helpers
def variant_name(*, v_prediction: bool, zero_snr: bool) -> str:
    """The checkpoint of one variant; keyword-only flags, as `variant_label` takes them."""
    return VARIANTS[check_bool(v_prediction, "zero_snr.v_prediction"), check_bool(zero_snr, "ddpm.zero_snr_name")]


def variant_text(*, v_prediction: bool, zero_snr: bool, lang: str | None = None) -> str:
    """`variant_label` in the request's language (in English, exactly `variant_label`)."""
    return tr("zero_snr.variant", lang, prediction="v" if v_prediction else "ε",
              schedule=tr("zero_snr.schedule_zero" if zero_snr else "zero_snr.schedule_default", lang))


def spacing_text(spacing: str, lang: str | None = None) -> str:
    """A spacing's name as its choice is labelled (in English, the value itself)."""
    return tr(SPACING_KEYS[spacing], lang) if spacing in SPACING_KEYS else spacing


def class_text(label: str, lang: str | None = None) -> str:
    """A class as its choice is labelled: digits as they are, 'all black' and 'all white' translated."""
    return tr(f"classes.{label}", lang) if has(f"classes.{label}") else label


def resolve_spacing(spacing: str, zero_snr: bool) -> str:
    check_choice(spacing, "zero_snr.spacing", SPACING_CHOICES)
    return ("trailing" if zero_snr else "leading") if spacing == OWN else spacing


def warning(zero_snr, v_prediction, spacing, lang: str | None = None) -> str:
    """What this combination is known to do, in one sentence, before the user presses Generate."""
    try:
        spacing = resolve_spacing(spacing, zero_snr)
    except ValueError as exc:
        return f"{tr('common.warn', lang)} {md_escape(str(exc))}"  # its message echoes the value sent
    note = tr("common.note", lang)
    if zero_snr and not v_prediction and spacing in ("trailing", "linspace"):
        return tr("zero_snr.warn_break", lang)
    if zero_snr and not v_prediction:
        return tr("zero_snr.warn_fragile", lang)
    if not zero_snr and spacing == "leading":
        return tr("zero_snr.note_sd", lang, note=note)
    if not zero_snr:
        return tr("zero_snr.note_leak", lang, note=note)
    if spacing != "trailing":
        return tr("zero_snr.note_spacing", lang, note=note, spacing=spacing_text(spacing, lang))
    return tr("zero_snr.recipe", lang)


def _sample(zero_snr, v_prediction, label, scale, rescale, spacing, steps, num_images, seed):
    model = load_variant(variant_name(v_prediction=v_prediction, zero_snr=zero_snr))
    c = model.class_index(label)
    x = model.generate([c] * num_images, scale=scale, rescale=rescale, sampler="DDIM", steps=steps, seed=seed,
                       spacing=resolve_spacing(spacing, zero_snr), clamp=False)
    return x, finite_samples(x), model


def _readout(x: torch.Tensor, ok: torch.Tensor) -> str:
    bad = int((~ok).sum())
    b = brightness(torch.nan_to_num(x[ok])) if ok.any() else None
    text = tr("zero_snr.mean_brightness", mean=b.mean().item()) if b is not None else tr("zero_snr.no_finite")
    return text + (tr("zero_snr.non_finite", warn=tr("common.warn"), bad=bad, n=len(x)) if bad else "")


def _checked(label, scale, rescale, steps, num_images, seed, max_images=MAX_IMAGES):
    if str(label) not in CLASSES:
        raise ValueError(tr("zero_snr.unknown_class", label=echo(label), names=CLASSES))
    return (str(label), check_number(scale, "cfg.scale_name", 0, MAX_SCALE),
            check_number(rescale, "cfg.rescale_name", 0, 1),
            check_number(steps, "ddpm.steps_name", 1, MAX_STEPS, integer=True),
            check_number(num_images, "ddpm.images_name", 1, max_images, integer=True),
            check_number(seed, "common.seed", 0, 2**31 - 1, integer=True))


# ---------------------------------------------------------------- callbacks
@gpu_task()
@user_errors
def generate(zero_snr, v_prediction, label, scale, rescale, spacing, steps, num_images, seed, progress=gr.Progress()):
    """Generate brightness-varied MNIST digits with one of four models trained here (ε- or v-prediction, default or
    zero-terminal-SNR schedule; Lin et al. 2024), sampled with DDIM and streamed: each update gives a status line
    and the current frame (x_t beside the predicted x̂_0); the last gives the samples (a PNG with its settings),
    their mean brightness (Markdown), every frame and an animated GIF.

    Args:
        zero_snr: true for the model trained on the zero-terminal-SNR schedule, false for the default schedule.
        v_prediction: true for the v-prediction model, false for ε-prediction.
        label: the class to draw: a digit "0" … "9", "all black" or "all white" (brightness-varied MNIST).
        scale: the classifier-free guidance scale w, from 0 to 30 (0 = unconditional, 1 = conditional without guidance).
        rescale: the guidance rescale φ (Lin et al.), from 0 to 1; 0 turns it off, 0.7 is the paper's value.
        spacing: how DDIM's timesteps are spaced: "the model's own (leading / trailing)" (trailing with zero terminal SNR, else leading), "leading", "trailing" or "linspace".
        steps: DDIM steps, a whole number from 1 to 200.
        num_images: how many images to generate, a whole number from 1 to 36; images × steps is also bounded by this server's per-request budget (a clear error when over it).
        seed: the random seed of the starting noise, a whole number from 0 to 2147483647.
    """
    zero_snr = check_bool(zero_snr, "ddpm.zero_snr_name")
    v_prediction = check_bool(v_prediction, "zero_snr.v_prediction")
    label, scale, rescale, steps, num_images, seed = _checked(label, scale, rescale, steps, num_images, seed)
    check_cost(num_images, steps, BUDGET)
    own_spacing = resolve_spacing(spacing, zero_snr)
    model = load_variant(variant_name(v_prediction=v_prediction, zero_snr=zero_snr))
    nrow = max(1, int(num_images ** 0.5 + 0.999))
    frames, step, first_t = StreamedFrames(), None, None
    run = model.frames([model.class_index(label)] * num_images, scale=scale, rescale=rescale, sampler="DDIM",
                       steps=steps, seed=seed, spacing=own_spacing)
    for step in run.thinned(MAX_FRAMES):   # the first step is always shown: its t is where sampling starts
        first_t = step.t if first_t is None else first_t
        img = side_by_side(grid(torch.nan_to_num(step.x), nrow, scale=2),
                           grid(torch.nan_to_num(step.denoised), nrow, scale=2))
        live = frames.add(img, tr("ddpm.frame_caption", i=step.i + 1, n=step.n, t=step.t))
        progress((step.i + 1, step.n), desc=tr("ddpm.denoising"))
        status = tr("ddpm.status_step", i=step.i + 1, n=step.n, t=step.t)
        yield gr.update(), status, live, *FramesView.update([], None)[1:]
    x = step.x.cpu()
    ok = finite_samples(x)
    title = tr("zero_snr.result_title", variant=variant_text(v_prediction=v_prediction, zero_snr=zero_snr),
               spacing=spacing_text(own_spacing), t=first_t)
    final = attach(grid(torch.nan_to_num(x), nrow, scale=3), tab="zero-snr", checkpoint=model.path.name,
                   weights=model.weights_hash, zero_snr=zero_snr, v_prediction=v_prediction, label=label,
                   scale=scale, rescale=rescale, spacing=spacing, sampler="DDIM", steps=steps, num_images=num_images,
                   seed=seed, schedule=model.record.get("schedule"), precision=model.precision.label)
    gif = frames.gif("zero-snr", duration_ms=120)
    yield final, f"{title}: {_readout(x, ok)}", *FramesView.update(frames, gif)


@gpu_task()
@user_errors
def compare(label, scale, rescale, spacing, steps, seed, progress=gr.Progress()):
    """Compare the four models of the zero-terminal-SNR study side by side: a 2×2 grid of 4 samples each (rows ε- /
    v-prediction, columns default / zero-terminal-SNR schedule), every cell from the same seed (the same x_T), sampled
    with DDIM; and each model's mean brightness (Markdown).

    Args:
        label: the class to draw: a digit "0" … "9", "all black" or "all white" (brightness-varied MNIST).
        scale: the classifier-free guidance scale w, from 0 to 30 (0 = unconditional, 1 = conditional without guidance).
        rescale: the guidance rescale φ (Lin et al.), from 0 to 1; 0 turns it off, 0.7 is the paper's value.
        spacing: how DDIM's timesteps are spaced: "the model's own (leading / trailing)" (trailing with zero terminal SNR, else leading), "leading", "trailing" or "linspace".
        steps: DDIM steps, a whole number from 1 to 200; 4 models × 4 images × steps is also bounded by this server's per-request budget (a clear error when over it).
        seed: the random seed of the starting noise, a whole number from 0 to 2147483647.
    """
    label, scale, rescale, steps, _, seed = _checked(label, scale, rescale, steps, COMPARE_IMAGES, seed)
    check_choice(spacing, "zero_snr.spacing", SPACING_CHOICES)
    check_cost(4 * COMPARE_IMAGES, steps, BUDGET, calls=4)  # four models, one batch each
    cells, notes = [], []
    for k, (v, z) in enumerate(((False, False), (False, True), (True, False), (True, True))):
        x, ok, _ = _sample(z, v, label, scale, rescale, spacing, steps, COMPARE_IMAGES, seed)
        cells.append(make_grid(torch.nan_to_num(x).clamp(-1, 1), nrow=2, padding=1, pad_value=1.0)[:1])
        own = spacing_text(resolve_spacing(spacing, z))
        notes.append(f"- **{variant_text(v_prediction=v, zero_snr=z)}** ({own}): {_readout(x, ok)}")
        progress((k + 1, 4), desc=tr("conditioning.models_done"))
    body = torch.stack(cells).view(2, 2, *cells[0].shape)
    # the grid's own labels are drawn into the image in English (PIL's font has no Persian glyphs or shaping)
    img = labelled_grid(body, ["ε-prediction", "v-prediction"], ["default schedule", "zero terminal SNR"], scale=2,
                        label_width=96)
    head = tr("zero_snr.compare_head", label=class_text(label), scale=scale, rescale=rescale, steps=steps, seed=seed)
    return img, head + "\n" + "\n".join(notes)


def _measured() -> dict[str, dict]:
    return {name: read_json(checkpoints_root() / name / "metrics.json", {}) for name in VARIANTS.values()}


def brightness_figure():
    measured = _measured()  # the legend stays English: demos/plots.py picks the bold line by its English label
    data = next((m["zero_snr"]["data"] for m in measured.values() if m.get("zero_snr")), None)
    if data is None:
        return None
    samples = {variant_label(v_prediction=m["zero_snr"]["v_prediction"], zero_snr=m["zero_snr"]["zero_snr"]):
               m["zero_snr"]["unconditional"]["brightness"] for m in measured.values() if m.get("zero_snr")}
    return brightness_plot(data["histogram"], samples)


def figures_md() -> str:
    from pipelines.readme import read_section
    text = read_section("zero-snr")
    return text or tr("zero_snr.no_figures")


@user_errors
def schedule_changed(zero_snr, v_prediction, spacing):
    return (terminal_snr_plot(SCHEDULE, check_bool(zero_snr, "ddpm.zero_snr_name")),
            warning(zero_snr, v_prediction, spacing))


# ---------------------------------------------------------------- layout
def build():
    latex = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
    gr.Markdown(T("zero_snr.title"))
    formula(T("zero_snr.intro_md"))
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row():
                zero_snr = gr.Checkbox(True, label=T("zero_snr.zero_snr"))
                v_pred = gr.Checkbox(True, label=T("zero_snr.v_prediction"))
            spacing = gr.Radio(labelled(SPACING_CHOICES, SPACING_KEYS), value=OWN, label=T("zero_snr.spacing"))
            warn = gr.Markdown(T_each("zero_snr.recipe", lambda lang: warning(True, True, OWN, lang)),
                               latex_delimiters=latex)
            label = gr.Dropdown(class_choices(CLASSES, build=True), value="all black", label=T("zero_snr.class_label"))
            scale = gr.Slider(0, MAX_SCALE, value=3, step=0.25, label=T("cfg.scale_name"))
            rescale = gr.Slider(0, 1, value=0, step=0.05, label=T("zero_snr.rescale"))
            steps = gr.Slider(1, MAX_STEPS, value=DEFAULT_STEPS, step=1, label=T("zero_snr.steps"))
            num_images = gr.Slider(1, MAX_IMAGES, value=16, step=1, label=T("ddpm.images"),
                                   info=budget_info(BUDGET))
            seed = seed_box(0)
            with gr.Row():
                run = gr.Button(T("zero_snr.run"), variant="primary")
                run_compare = gr.Button(T("zero_snr.run_compare"))
            SettingsDrop("zero-snr", dict(zero_snr=zero_snr, v_prediction=v_pred, label=label, scale=scale,
                                          rescale=rescale, spacing=spacing, steps=steps, num_images=num_images,
                                          seed=seed))
        with gr.Column(scale=2):
            with gr.Row():
                samples = samples_image("zero_snr.samples", height=340)
                compare_img = gr.Image(label=T("zero_snr.compare_img"), type="pil", interactive=False, height=340)
            readout = gr.Markdown()
    frames = FramesView("zero_snr.frames")
    snr_plot = gr.Plot(label=T("zero_snr.snr_plot"))
    formula(T("zero_snr.points_md"))
    formula(T("zero_snr.brightness_md"))
    with gr.Row():
        hist = gr.Plot(label=T("zero_snr.hist"))
    figures = gr.Markdown()

    for ctl in (zero_snr, v_pred, spacing):
        ctl.change(schedule_changed, [zero_snr, v_pred, spacing], [snr_plot, warn], api_visibility="private",
                   show_progress="hidden")
    run.click(generate, [zero_snr, v_pred, label, scale, rescale, spacing, steps, num_images, seed],
              [samples, readout, *frames.outputs], api_name="zero_snr_generate", preprocess=False)
    run_compare.click(compare, [label, scale, rescale, spacing, steps, seed], [compare_img, readout],
                      api_name="zero_snr_compare", preprocess=False)
    lesson = Exposed(dict(zero_snr=zero_snr, v_prediction=v_pred, spacing=spacing, warning=warn, label=label,
                          scale=scale, rescale=rescale, steps=steps, num_images=num_images, seed=seed, samples=samples,
                          compare=compare_img, readout=readout, snr_plot=snr_plot, hist=hist, figures=figures),
                     dict(generate=run, compare=run_compare))
    return {"load": [(lambda: terminal_snr_plot(SCHEDULE, True), [], [snr_plot]),
                     (brightness_figure, [], [hist]), (figures_md, [], [figures])], "lesson": lesson}

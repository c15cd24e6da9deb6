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

from .cfg import BUDGET as CFG_BUDGET
from .common import (NOTE, WARN, FramesView, SettingsDrop, budget_info, check_bool, check_choice, check_cost,
                     check_number, echo, formula, samples_image, seed_box, user_errors, write_gif)
from .i18n import T
from .plots import brightness_plot, terminal_snr_plot

CLASSES = CLASS_NAMES["brightness-mnist"]
OWN = "the model's own (leading / trailing)"
SPACING_CHOICES = (OWN, *SPACINGS)
MAX_IMAGES, MAX_STEPS, COMPARE_IMAGES, MAX_FRAMES = 36, 200, 4, 25
BUDGET = CFG_BUDGET  # the same UNet as the CFG tab's

# ---------------------------------------------------------------- helpers
def variant_name(*, v_prediction: bool, zero_snr: bool) -> str:
    """The checkpoint of one variant; keyword-only flags, as `variant_label` takes them."""
    return VARIANTS[check_bool(v_prediction, "v-prediction"), check_bool(zero_snr, "Zero terminal SNR")]


def resolve_spacing(spacing: str, zero_snr: bool) -> str:
    check_choice(spacing, "Timestep spacing", SPACING_CHOICES)
    return ("trailing" if zero_snr else "leading") if spacing == OWN else spacing


def warning(zero_snr, v_prediction, spacing) -> str:
    """What this combination is known to do, in one sentence, before the user presses Generate."""
    try:
        spacing = resolve_spacing(spacing, zero_snr)
    except ValueError as exc:
        return f"{WARN} {exc}"
    if zero_snr and not v_prediction and spacing in ("trailing", "linspace"):
        return ("**Known to break:** an ε model sampled from $t = T$ of a zero-SNR schedule: "
                "$\\hat x_0 = (x_T - \\hat\\varepsilon)/\\sqrt{\\bar\\alpha_T}$ divides by zero, so the samples "
                "are NaN (shown as grey). Try it anyway, then switch on v-prediction.")
    if zero_snr and not v_prediction:
        return ("**Fragile:** an ε model on a zero-SNR schedule. \"leading\" never visits $t = T$, so it avoids the "
                "division by zero, but the network learned nothing useful at the noisiest steps.")
    if not zero_snr and spacing == "leading":
        return (f"{NOTE} Stable Diffusion's original setup: non-zero terminal SNR and sampling starts at $t < T$. "
                "Expect brightness pulled towards mid-grey.")
    if not zero_snr:
        return f"{NOTE} Non-zero terminal SNR: training leaked the mean brightness that pure noise at sampling lacks."
    if spacing != "trailing":
        return f"{NOTE} Zero SNR + v-prediction, but \"{spacing}\" spacing does not step evenly down from $t = T$."
    return "**The paper's recipe:** zero terminal SNR, v-prediction, trailing timesteps (add φ = 0.7 for large w)."


def _sample(zero_snr, v_prediction, label, scale, rescale, spacing, steps, num_images, seed):
    model = load_variant(variant_name(v_prediction=v_prediction, zero_snr=zero_snr))
    c = model.class_index(label)
    x = model.generate([c] * num_images, scale=scale, rescale=rescale, sampler="DDIM", steps=steps, seed=seed,
                       spacing=resolve_spacing(spacing, zero_snr), clamp=False)
    return x, finite_samples(x), model


def _readout(x: torch.Tensor, ok: torch.Tensor) -> str:
    bad = int((~ok).sum())
    b = brightness(torch.nan_to_num(x[ok])) if ok.any() else None
    text = f"mean brightness {b.mean().item():.3f} (0 = black, 1 = white)" if b is not None else "no finite samples"
    return text + (f"; {WARN} {bad} of {len(x)} samples non-finite (NaN/inf), shown grey" if bad else "")


def _checked(label, scale, rescale, steps, num_images, seed, max_images=MAX_IMAGES):
    if str(label) not in CLASSES:
        raise ValueError(f"Unknown class {echo(label)}; choose one of {CLASSES}.")
    return (str(label), check_number(scale, "CFG scale w", 0, MAX_SCALE), check_number(rescale, "Guidance rescale φ", 0, 1),
            check_number(steps, "Steps", 1, MAX_STEPS, integer=True),
            check_number(num_images, "Number of images", 1, max_images, integer=True),
            check_number(seed, "Seed", 0, 2**31 - 1, integer=True))


# ---------------------------------------------------------------- callbacks
@user_errors
def generate(zero_snr, v_prediction, label, scale, rescale, spacing, steps, num_images, seed, progress=gr.Progress()):
    """Stream (x_t, x̂_0) frames of one model, then the samples with their brightness, the gallery and a GIF."""
    zero_snr, v_prediction = check_bool(zero_snr, "Zero terminal SNR"), check_bool(v_prediction, "v-prediction")
    label, scale, rescale, steps, num_images, seed = _checked(label, scale, rescale, steps, num_images, seed)
    check_cost(num_images, steps, BUDGET)
    own_spacing = resolve_spacing(spacing, zero_snr)
    model = load_variant(variant_name(v_prediction=v_prediction, zero_snr=zero_snr))
    nrow = max(1, int(num_images ** 0.5 + 0.999))
    frames, step, first_t = [], None, None
    run = model.frames([model.class_index(label)] * num_images, scale=scale, rescale=rescale, sampler="DDIM",
                       steps=steps, seed=seed, spacing=own_spacing)
    for step in run.thinned(MAX_FRAMES):   # the first step is always shown: its t is where sampling starts
        first_t = step.t if first_t is None else first_t
        img = side_by_side(grid(torch.nan_to_num(step.x), nrow, scale=2),
                           grid(torch.nan_to_num(step.denoised), nrow, scale=2))
        frames.append((img, f"step {step.i + 1}/{step.n}  (t={step.t})"))
        progress((step.i + 1, step.n), desc="denoising")
        yield gr.update(), f"step {step.i + 1}/{step.n}, t = {step.t}", img, *FramesView.update([], None)[1:]
    x = step.x.cpu()
    ok = finite_samples(x)
    title = (f"{variant_label(v_prediction=v_prediction, zero_snr=zero_snr)}, {own_spacing} spacing "
             f"(sampling starts at t = {first_t})")
    final = attach(grid(torch.nan_to_num(x), nrow, scale=3), tab="zero-snr", checkpoint=model.path.name,
                   weights=model.weights_hash, zero_snr=zero_snr, v_prediction=v_prediction, label=label,
                   scale=scale, rescale=rescale, spacing=spacing, sampler="DDIM", steps=steps, num_images=num_images,
                   seed=seed, schedule=model.record.get("schedule"), precision=model.precision.name)
    gif = write_gif([f for f, _ in frames], "zero-snr", duration_ms=120)
    yield final, f"{title}: {_readout(x, ok)}", *FramesView.update(frames, gif)


@user_errors
def compare(label, scale, rescale, spacing, steps, seed, progress=gr.Progress()):
    """The 2×2 grid: rows ε / v, columns default / zero-SNR; every cell the same seed (same x_T)."""
    label, scale, rescale, steps, _, seed = _checked(label, scale, rescale, steps, COMPARE_IMAGES, seed)
    check_choice(spacing, "Timestep spacing", SPACING_CHOICES)
    check_cost(4 * COMPARE_IMAGES, steps, BUDGET, calls=4)  # four models, one batch each
    cells, notes = [], []
    for k, (v, z) in enumerate(((False, False), (False, True), (True, False), (True, True))):
        x, ok, _ = _sample(z, v, label, scale, rescale, spacing, steps, COMPARE_IMAGES, seed)
        cells.append(make_grid(torch.nan_to_num(x).clamp(-1, 1), nrow=2, padding=1, pad_value=1.0)[:1])
        notes.append(f"- **{variant_label(v_prediction=v, zero_snr=z)}** ({resolve_spacing(spacing, z)}): "
                     f"{_readout(x, ok)}")
        progress((k + 1, 4), desc="models done")
    body = torch.stack(cells).view(2, 2, *cells[0].shape)
    img = labelled_grid(body, ["ε-prediction", "v-prediction"], ["default schedule", "zero terminal SNR"], scale=2,
                        label_width=96)
    return img, f"'{label}', w = {scale:g}, φ = {rescale:g}, {steps} DDIM steps, seed {seed}:\n" + "\n".join(notes)


def _measured() -> dict[str, dict]:
    return {name: read_json(checkpoints_root() / name / "metrics.json", {}) for name in VARIANTS.values()}


def brightness_figure():
    measured = _measured()
    data = next((m["zero_snr"]["data"] for m in measured.values() if m.get("zero_snr")), None)
    if data is None:
        return None
    samples = {variant_label(v_prediction=m["zero_snr"]["v_prediction"], zero_snr=m["zero_snr"]["zero_snr"]):
               m["zero_snr"]["unconditional"]["brightness"] for m in measured.values() if m.get("zero_snr")}
    return brightness_plot(data["histogram"], samples)


def figures_md() -> str:
    from pipelines.readme import read_section
    text = read_section("zero-snr")
    return text or "_No measured figures yet: run `python -m pipelines.measure.zero_snr --write-readme`._"


@user_errors
def schedule_changed(zero_snr, v_prediction, spacing):
    return terminal_snr_plot(SCHEDULE, check_bool(zero_snr, "Zero terminal SNR")), warning(zero_snr, v_prediction, spacing)


# ---------------------------------------------------------------- layout
def build():
    latex = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
    gr.Markdown("## Zero terminal SNR, v-prediction, trailing timesteps, CFG rescale")
    formula(T("zero_snr.intro_md"))
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row():
                zero_snr = gr.Checkbox(True, label="Zero terminal SNR (rescaled betas)")
                v_pred = gr.Checkbox(True, label="v-prediction")
            spacing = gr.Radio(list(SPACING_CHOICES), value=OWN, label="Timestep spacing")
            warn = gr.Markdown(warning(True, True, OWN), latex_delimiters=latex)
            label = gr.Dropdown(CLASSES, value="all black", label="Class (digits, 'all black', 'all white')")
            scale = gr.Slider(0, MAX_SCALE, value=3, step=0.25, label="CFG scale w")
            rescale = gr.Slider(0, 1, value=0, step=0.05, label="Guidance rescale φ (0 = off, paper: 0.7)")
            steps = gr.Slider(1, MAX_STEPS, value=25, step=1, label="DDIM steps")
            num_images = gr.Slider(1, MAX_IMAGES, value=16, step=1, label="Number of images",
                                   info=budget_info(BUDGET))
            seed = seed_box(0)
            with gr.Row():
                run = gr.Button("Generate", variant="primary")
                run_compare = gr.Button("Compare all four (same seed)")
            SettingsDrop("zero-snr", dict(zero_snr=zero_snr, v_prediction=v_pred, label=label, scale=scale,
                                          rescale=rescale, spacing=spacing, steps=steps, num_images=num_images,
                                          seed=seed))
        with gr.Column(scale=2):
            with gr.Row():
                samples = samples_image("Samples (this model; PNG with its settings inside)", height=340)
                compare_img = gr.Image(label="2×2: the four models, same seed", type="pil", interactive=False,
                                       height=340)
            readout = gr.Markdown()
    frames = FramesView("Reverse process of this model (x_t left, predicted x̂₀ right)")
    snr_plot = gr.Plot(label="Noise schedule with and without the rescale")
    formula(T("zero_snr.points_md"))
    formula(T("zero_snr.brightness_md"))
    with gr.Row():
        hist = gr.Plot(label="Brightness of generated images vs data")
    figures = gr.Markdown()

    for ctl in (zero_snr, v_pred, spacing):
        ctl.change(schedule_changed, [zero_snr, v_pred, spacing], [snr_plot, warn], api_visibility="private",
                   show_progress="hidden")
    run.click(generate, [zero_snr, v_pred, label, scale, rescale, spacing, steps, num_images, seed],
              [samples, readout, *frames.outputs], api_name="zero_snr_generate", preprocess=False)
    run_compare.click(compare, [label, scale, rescale, spacing, steps, seed], [compare_img, readout],
                      api_name="zero_snr_compare", preprocess=False)
    return {"load": [(lambda: terminal_snr_plot(SCHEDULE, True), [], [snr_plot]),
                     (brightness_figure, [], [hist]), (figures_md, [], [figures])]}

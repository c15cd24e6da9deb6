"""Text to image: latent diffusion (Stable Diffusion in miniature) trained here, and real SD checkpoints."""
from __future__ import annotations

import math
import os

import gradio as gr
import torch

from pipelines.checkpoints import checkpoints_root, read_json
from pipelines.images import finite_samples, grid, labelled_grid, side_by_side
from pipelines.infotext import attach
from pipelines.ldm import NAME, TRAIN_COMMAND
from pipelines.ldm.pipeline import (MAX_IMAGES, MAX_SCALE, MAX_STEPS, MAX_STRIP, SAMPLERS, SD_EXAMPLES, channel_view,
                                    load_model)
from pipelines.schedules import SPACINGS
from pipelines.shapes.data import HELDOUT_TEMPLATES, caption_for

from .cfg import parse_scales
from .common import (WARN, FramesView, MAX_SEED, SettingsDrop, budget_info, check_choice, check_cost, check_number,
                     echo, echo_md, formula, samples_image, seed_box, user_errors, warn_notes, write_gif)

SHAPES = "Shapes LDM (trained here)"
SD = "Stable Diffusion (local folder or hub id)"
MODEL_CHOICES = (SHAPES, SD)
OWN = "the model's own"
ZERO_SNR_CHOICES = (OWN, "on", "off")
SPACING_CHOICES = (OWN, *SPACINGS)
MAX_FRAMES, MAX_FRAMES_SD, MAX_PROMPT_CHARS = 20, 5, 20_000
ALLOW_SD_ENV, SD_ALLOWLIST_ENV = "DIFFUSION_LAB_ALLOW_SD", "DIFFUSION_LAB_SD_ALLOWLIST"
SD_OFF = ("This server does not load Stable Diffusion checkpoints by name (a public server must not open folders or "
          "download models a visitor names). Run the app on your own machine (`python app.py`) to load one there; "
          "the shapes model works here.")
SWEEP_SCALES, MAX_SWEEP_IMAGES = "0, 1, 3, 7", 4
MAX_IMAGE_STEPS = 400  # images × guided steps per request (shapes model): ≈ 6.4 s at 16 ms per image-step
INTERP_MODES = ("between two prompts (token states, linear)", "between two seeds (latents, slerp)")

# examples written with the held-out phrasings (never seen in training), black and white backgrounds included
_EXAMPLE_SCENES = [
    (dict(shape="circle", colour="red", size="large", position="centre", background="white"), 0, ""),
    (dict(shape="triangle", colour="yellow", size="small", position="left", background="black"), 1, ""),
    (dict(shape="square", colour="blue", size="large", position="right", background="beige"), 2, ""),
    (dict(shape="cross", colour="green", size="small", position="centre", background="navy"), 0, ""),
    (dict(shape="circle", colour="purple", size="small", position="right", background="gray"), 1, "a square"),
    (dict(shape="triangle", colour="orange", size="large", position="left", background="white"), 2, "black background"),
]
EXAMPLES = [[caption_for(a, HELDOUT_TEMPLATES[k]), neg] for a, k, neg in _EXAMPLE_SCENES]

INTRO_MD = r"""
**Stable Diffusion is three networks**, and so is the model trained here on captioned coloured shapes
(`checkpoints/ldm-shapes`, 2 CPU cores):
1. a **VAE** that squeezes a 64×64×3 image into a 4×16×16 latent, $z = s\cdot\mathcal E(x)$, and draws it back,
   $x = \mathcal D(z/s)$; the scaling factor $s = 1/\operatorname{std}(z)$ is measured on the data, as SD did;
2. a **frozen pretrained text encoder** $\tau$ (all-MiniLM-L6-v2) that turns the prompt into token states $\tau(y)\in\mathbb R^{32\times 384}$;
3. a **UNet** that denoises latents and reads the text by **cross-attention** (not by adding an embedding):
   $$\mathrm{Attention}(Q,K,V)=\mathrm{softmax}\!\Big(\tfrac{QK^\top}{\sqrt d}\Big)V,\quad Q = W_Q\,\varphi(z_t),\ K = W_K\,\tau(y),\ V = W_V\,\tau(y)$$
   — every latent pixel asks every word what it should become.
"""

TRAIN_MD = r"""
**Training** (per image): $z_0 = s\cdot(\mu+\sigma\varepsilon')$ from the VAE, caption → "" with probability 0.1,
$z_t=\sqrt{\bar\alpha_t}z_0+\sqrt{1-\bar\alpha_t}\,\varepsilon$, minimise $\lVert v - v_\theta(z_t,t,\tau(y))\rVert^2$ with
$v=\sqrt{\bar\alpha_t}\varepsilon-\sqrt{1-\bar\alpha_t}z_0$ on a **zero-terminal-SNR** schedule (the lessons of the previous tab).
"""

SAMPLE_MD = r"""
**Sampling:** $z_T\sim\mathcal N(0,I)$ (seeded, on the CPU) → denoise with guidance → decode. The **negative prompt** takes
the place of the empty prompt as the unconditional condition:
$$\tilde v = v_\theta(z_t, \tau(y_{\text{neg}})) + w\,\big(v_\theta(z_t,\tau(y)) - v_\theta(z_t,\tau(y_{\text{neg}}))\big)$$
(both in one batched UNet call; $w=0$: unconditional, $w=1$: conditional). φ rescales $\tilde v$ towards the
standard deviation of the conditional prediction. Frames show $\mathcal D(\hat z_0/s)$ — the image the model is aiming
for at that step — next to the 4 latent channels of $z_t$ (grey = 0, ±3 at black/white).
"""

SWEEP_MD = r"""
**CFG sweep:** columns = $w$, rows = images; every column starts from the same seed (same $z_T$), so only $w$ changes.
"""

INTERP_MD = r"""
**Interpolation strips.** *Between two prompts:* the same $z_T$, with the condition moving linearly from one prompt's
token states to the other's, $c(\lambda)=(1-\lambda)\,\tau(y_a)+\lambda\,\tau(y_b)$. *Between two seeds:* one prompt,
$z_T$ moving along the great circle from seed a's noise to seed b's (slerp keeps it a typical Gaussian sample; the
straight line would pass near the origin, where noise is unusually small):
$$z_T(\lambda)=\frac{\sin((1-\lambda)\Omega)}{\sin\Omega}z_a+\frac{\sin(\lambda\Omega)}{\sin\Omega}z_b,\qquad \cos\Omega=\frac{z_a\cdot z_b}{|z_a||z_b|}$$
"""

SD_MD = f"""
**Real Stable Diffusion.** Choose *{SD}* and type a diffusers checkpoint: a local folder (with `model_index.json`) or,
when online, a hub id such as {", ".join(f"`{k}` ({v})" for k, v in SD_EXAMPLES.items())}. It loads through
`StableDiffusionPipeline.from_pretrained` and runs through the same five steps; the zero-SNR and spacing controls go
into its scheduler config (`rescale_betas_zero_snr`, `timestep_spacing`), φ is its `guidance_rescale`, and its
`prediction_type` comes from the checkpoint. fp16 on a GPU; on a CPU expect minutes per image at 512 px.
Loading a checkpoint by name is for your own machine: `python app.py` allows it there; a shared server (a Space,
`--host 0.0.0.0`, `--share`) does not, unless started with `--allow-sd`.
"""


# ---------------------------------------------------------------- input checks
def _zero_snr(choice) -> bool | None:
    check_choice(choice, "Zero terminal SNR", ZERO_SNR_CHOICES)
    return None if choice == OWN else choice == "on"


def _spacing(choice) -> str | None:
    check_choice(choice, "Timestep spacing", SPACING_CHOICES)
    return None if choice == OWN else choice


def _text(value, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {type(value).__name__}.")
    if len(value) > MAX_PROMPT_CHARS:
        raise ValueError(f"{name} is {len(value):,} characters long; the limit is {MAX_PROMPT_CHARS:,} "
                         "(and the text encoder reads only the first 30 word pieces).")
    return value


def sd_allowed(spec: str) -> bool:
    """Whether this server may load the Stable Diffusion checkpoint `spec`. Any folder or hub id only when the operator
    opted in (`python app.py --allow-sd`, the default for a server on loopback that is not a Space): on a public
    server a visitor could otherwise probe its disk or make it download gigabytes. Otherwise only the ids listed in
    DIFFUSION_LAB_SD_ALLOWLIST (comma-separated)."""
    if os.environ.get(ALLOW_SD_ENV) == "1":
        return True
    return spec in {s.strip() for s in os.environ.get(SD_ALLOWLIST_ENV, "").split(",") if s.strip()}


def _model(choice, spec):
    check_choice(choice, "Model", MODEL_CHOICES)
    if choice == SD:
        spec = _text(spec, "The Stable Diffusion checkpoint").strip()
        if not spec:
            raise ValueError("Type a Stable Diffusion checkpoint: a local diffusers folder (with model_index.json) or a "
                             f"hub id such as {next(iter(SD_EXAMPLES))} (downloaded when online).")
        if not sd_allowed(spec):
            raise ValueError(SD_OFF)
        return load_model(spec)
    return load_model(NAME)


def _check_cost(model_choice, images: int, steps: int) -> None:
    """The shapes model's per-request budget (a real SD checkpoint is opt-in, for the machine's own user)."""
    if model_choice == SHAPES:
        check_cost(images, steps, MAX_IMAGE_STEPS)


def _nrow(n: int) -> int:
    return max(1, math.ceil(math.sqrt(n)))


def _scale_for(model) -> int:
    """Enlarge the shapes model's 64 px images for the screen; SD's 512 px stay as they are."""
    return max(1, 192 // model.image_size)


def _frame(model, denoised: torch.Tensor, latents: torch.Tensor, nrow: int):
    """Decoded x̂₀ (left) and the 4 channels of the current latents, one row per image (right)."""
    pictures = grid(torch.nan_to_num(model.decode(denoised)), nrow, scale=_scale_for(model))
    channels = channel_view(latents)
    cells = channels.reshape(-1, 1, *channels.shape[-2:])
    side = max(1, 48 // channels.shape[-1])
    return side_by_side(pictures, grid(cells, nrow=channels.shape[1], scale=side))


# ---------------------------------------------------------------- callbacks
@user_errors
def generate(model_choice, sd_spec, prompt, negative_prompt, scale, rescale, sampler, steps, num_images, seed, zero_snr,
             spacing, progress=gr.Progress()):
    """Stream decoded x̂₀ + latent channels at the shown steps, then the samples (PNG with settings) and the GIF."""
    prompt, negative_prompt = _text(prompt, "The prompt"), _text(negative_prompt, "The negative prompt")
    scale = check_number(scale, "CFG scale w", 0, MAX_SCALE)
    rescale = check_number(rescale, "Guidance rescale φ", 0, 1)
    check_choice(sampler, "Sampler", SAMPLERS)
    steps = check_number(steps, "Steps", 1, MAX_STEPS, integer=True)
    num_images = check_number(num_images, "Number of images", 1, MAX_IMAGES, integer=True)
    seed = check_number(seed, "Seed", 0, MAX_SEED, integer=True)
    z, sp = _zero_snr(zero_snr), _spacing(spacing)
    _check_cost(model_choice, num_images, steps)
    model = _model(model_choice, sd_spec)
    run = model.frames(prompt, negative_prompt=negative_prompt, scale=scale, rescale=rescale, sampler=sampler,
                       steps=steps, num_images=num_images, seed=seed, spacing=sp, zero_snr=z)
    notes = warn_notes(run.notes)
    nrow = _nrow(num_images)
    shown = MAX_FRAMES if model.kind == "shapes" else MAX_FRAMES_SD
    frames, step = [], None
    for step in run.thinned(shown):
        img = _frame(model, step.denoised, step.x, nrow)
        frames.append((img, f"step {step.i + 1}/{step.n} (t = {step.t})"))
        progress((step.i + 1, step.n), desc="denoising latents")
        yield img, None, f"step {step.i + 1}/{step.n}, t = {step.t}{notes}", *FramesView.update([], None)
    x = model.decode(step.x)
    bad = int((~finite_samples(x)).sum())
    final = attach(grid(torch.nan_to_num(x), nrow, scale=_scale_for(model)), tab="text2img", model_choice=model_choice,
                   sd_spec=sd_spec if model_choice == SD else None, checkpoint=str(model.name),
                   weights=model.weights_hash, prompt=prompt, negative_prompt=negative_prompt, scale=scale,
                   rescale=rescale, sampler=sampler, steps=steps, num_images=num_images, seed=seed, zero_snr=zero_snr,
                   spacing=spacing, prediction_type=model.prediction_type)
    gif = write_gif([f for f, _ in frames], "text2img", duration_ms=150)
    what = f"“{echo_md(prompt)}”" if prompt.strip() else "the empty prompt (unconditional)"
    done = (f"done: {what} at w = {scale:g}, {step.n} {sampler} steps, seed {seed}"
            + (f"; {WARN} {bad} of {len(x)} images non-finite (shown grey)" if bad else "") + notes)
    yield frames[-1][0], final, done, *FramesView.update(frames, gif)


@user_errors
def sweep(model_choice, sd_spec, prompt, negative_prompt, scales, num_images, steps, seed, progress=gr.Progress()):
    """Rows = images, columns = w; the same seed for every w."""
    prompt, negative_prompt = _text(prompt, "The prompt"), _text(negative_prompt, "The negative prompt")
    ws = parse_scales(scales)
    num_images = check_number(num_images, "Images per scale", 1, MAX_SWEEP_IMAGES, integer=True)
    steps = check_number(steps, "Steps", 1, MAX_STEPS, integer=True)
    seed = check_number(seed, "Seed", 0, MAX_SEED, integer=True)
    _check_cost(model_choice, num_images * len(ws), steps)
    model = _model(model_choice, sd_spec)
    notes = warn_notes(model.encode_prompt(prompt, negative_prompt, 1).notes)
    x = model.sweep(prompt, ws, negative_prompt=negative_prompt, num_images=num_images, sampler="DDIM", steps=steps,
                    seed=seed, progress=lambda k, n: progress((k, n), desc="scales done"))
    img = labelled_grid(torch.nan_to_num(x).transpose(0, 1), [f"image {i + 1}" for i in range(num_images)],
                        [f"w = {w:g}" for w in ws], scale=max(1, _scale_for(model) - 1), label_width=64)
    return img, f"CFG sweep of “{echo_md(prompt)}”, DDIM {steps} steps, seed {seed}{notes}"


@user_errors
def interpolate(model_choice, sd_spec, mode, prompt, prompt_b, negative_prompt, seed, seed_b, frames, scale, steps,
                progress=gr.Progress()):
    """A strip of `frames` images between two prompts (same seed) or two seeds (same prompt)."""
    check_choice(mode, "Interpolation", INTERP_MODES)
    prompt, prompt_b = _text(prompt, "The prompt"), _text(prompt_b, "The second prompt")
    negative_prompt = _text(negative_prompt, "The negative prompt")
    seed = check_number(seed, "Seed", 0, MAX_SEED, integer=True)
    seed_b = check_number(seed_b, "Second seed", 0, MAX_SEED, integer=True)
    n = check_number(frames, "Frames", 2, MAX_STRIP, integer=True)
    scale = check_number(scale, "CFG scale w", 0, MAX_SCALE)
    steps = check_number(steps, "Steps", 1, MAX_STEPS, integer=True)
    _check_cost(model_choice, n, steps)
    model = _model(model_choice, sd_spec)
    progress(0, desc="denoising the strip as one batch")
    if mode == INTERP_MODES[0]:
        x, notes = model.interpolate_prompts(prompt, prompt_b, n, negative_prompt, seed, scale=scale, steps=steps)
        what = f"“{echo_md(prompt)}” → “{echo_md(prompt_b)}”, seed {seed}"
    else:
        x, notes = model.interpolate_seeds(prompt, seed, seed_b, n, negative_prompt, scale=scale, steps=steps)
        what = f"“{echo_md(prompt)}”, seed {seed} → seed {seed_b} (slerp)"
    strip = grid(torch.nan_to_num(x), nrow=n, scale=max(1, _scale_for(model) - 1))
    return strip, f"{what}, w = {scale:g}, {steps} DDIM steps, λ = 0 … 1 in {n} frames{warn_notes(notes)}"


def model_info(model_choice=SHAPES, sd_spec="") -> str:
    """What the chosen model is, or why it is not available (never raises: the page must build without it)."""
    try:
        model = _model(model_choice, sd_spec)
    except Exception as exc:  # a missing or broken checkpoint must not break the page
        # the shipped model's messages are the app's own Markdown; a typed checkpoint's may quote what was typed
        return f"**Model not available.** {exc if model_choice == SHAPES else echo(str(exc), 600)}"
    p = model.parameters
    head = (f"**{model.name}** ({model.kind}): latents {model.latent_channels}×{model.latent_size}×{model.latent_size} "
            f"→ images {model.image_size}×{model.image_size}; UNet {p['unet']:,} and VAE {p['vae']:,} parameters; "
            f"predicts {model.prediction_type}, zero terminal SNR {'on' if model.zero_snr else 'off'}, "
            f"\"{model.spacing}\" spacing; scaling factor {model.scaling_factor:.4f}.")
    r = model.record
    if model.kind == "shapes" and r:
        head += (f" Trained {r.get('steps', '?')} steps × batch {r.get('batch_size', '?')} on "
                 f"{r.get('train_images', 0):,} images in {r.get('wall_seconds', 0) / 60:.0f} min on "
                 f"{r.get('hardware', '?')}. Retrain: `{TRAIN_COMMAND}`")
    return head


def metrics_md() -> str:
    from pipelines.measure.ldm import readme_section
    if not (checkpoints_root() / NAME / "metrics.json").exists():
        return "_No measured figures yet: run `python -m pipelines.measure.ldm`._"
    doc = read_json(checkpoints_root() / NAME / "metrics.json", {})
    return readme_section() if doc.get("adherence") else "_No prompt-adherence figures yet._"


def load_sd_clicked(sd_spec):
    """Load (or explain why not) the typed SD checkpoint, and select it."""
    return gr.Radio(value=SD), model_info(SD, sd_spec)


# ---------------------------------------------------------------- layout
def build():
    gr.Markdown("## Text to image: latent diffusion")
    formula(INTRO_MD)
    with gr.Row():
        with gr.Column(scale=1):
            model_choice = gr.Radio(list(MODEL_CHOICES), value=SHAPES, label="Model")
            with gr.Row():
                sd_spec = gr.Textbox("", label="Stable Diffusion checkpoint: local folder or hub id",
                                     placeholder=next(iter(SD_EXAMPLES)), scale=3)
                check_sd = gr.Button("Load / check", size="sm", scale=1)
            prompt = gr.Textbox(EXAMPLES[0][0], label="Prompt (empty = unconditional)", lines=2)
            negative = gr.Textbox("", label="Negative prompt (replaces the empty prompt in guidance)")
            gr.Examples(EXAMPLES, inputs=[prompt, negative],
                        label="Prompts in the held-out phrasings (never trained on)")
            scale = gr.Slider(0, MAX_SCALE, value=3, step=0.25,
                              label="CFG scale w (0 = unconditional, 1 = conditional)")
            rescale = gr.Slider(0, 1, value=0, step=0.05, label="Guidance rescale φ (0 = off; 0.7 in Lin et al.)")
            with gr.Row():
                sampler = gr.Dropdown(list(SAMPLERS), value="DDIM", label="Sampler")
                steps = gr.Slider(1, MAX_STEPS, value=20, step=1, label="Steps")
            num_images = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="Number of images",
                                   info=budget_info(MAX_IMAGE_STEPS))
            seed = seed_box(0)
            with gr.Row(elem_classes=["advanced"]):
                zero_snr = gr.Radio(list(ZERO_SNR_CHOICES), value=OWN, label="Zero terminal SNR")
                spacing = gr.Radio(list(SPACING_CHOICES), value=OWN, label="Timestep spacing")
            run = gr.Button("Generate", variant="primary")
            status = gr.Markdown()
            SettingsDrop("text2img", dict(model_choice=model_choice, sd_spec=sd_spec, prompt=prompt,
                                          negative_prompt=negative, scale=scale, rescale=rescale, sampler=sampler,
                                          steps=steps, num_images=num_images, seed=seed, zero_snr=zero_snr,
                                          spacing=spacing))
        with gr.Column(scale=2):
            formula(SAMPLE_MD)
            with gr.Row():
                live = gr.Image(label="Now: decoded x̂₀ (left), latent channels of z_t (right; a row per image)",
                                type="pil", interactive=False, height=320)
                final = samples_image("Samples (PNG with its settings inside)", height=320)
            info = gr.Markdown()
    frames = FramesView("Reverse process in latent space")
    formula(TRAIN_MD)

    formula(SWEEP_MD)
    with gr.Row():
        with gr.Column(scale=1):
            sweep_scales = gr.Textbox(SWEEP_SCALES, label="Scales w (comma-separated)")
            sweep_images = gr.Slider(1, MAX_SWEEP_IMAGES, value=4, step=1, label="Images per scale")
            sweep_steps = gr.Slider(1, MAX_STEPS, value=20, step=1, label="DDIM steps")
            run_sweep = gr.Button("Run the CFG sweep (uses the prompt above)", variant="primary")
        with gr.Column(scale=2):
            sweep_img = gr.Image(label="CFG sweep: columns = w, rows = images", type="pil", interactive=False)
            sweep_note = gr.Markdown()

    formula(INTERP_MD)
    with gr.Row():
        with gr.Column(scale=1):
            mode = gr.Radio(list(INTERP_MODES), value=INTERP_MODES[0], label="Interpolate")
            prompt_b = gr.Textbox(EXAMPLES[1][0], label="Second prompt (prompt interpolation)", lines=2)
            seed_b = gr.Number(value=1, label="Second seed (seed interpolation)", precision=0, minimum=0,
                               maximum=MAX_SEED)
            n_frames = gr.Slider(2, MAX_STRIP, value=6, step=1, label="Frames in the strip")
            run_interp = gr.Button("Make the strip (uses prompt, negative prompt, w and seed above)",
                                   variant="primary")
        with gr.Column(scale=2):
            strip = gr.Image(label="Interpolation strip (λ = 0 → 1)", type="pil", interactive=False)
            strip_note = gr.Markdown()
    formula(SD_MD)
    figures = gr.Markdown()

    run.click(generate, [model_choice, sd_spec, prompt, negative, scale, rescale, sampler, steps, num_images, seed,
                         zero_snr, spacing], [live, final, status, *frames.outputs], api_name="text2img_generate",
              preprocess=False)
    run_sweep.click(sweep, [model_choice, sd_spec, prompt, negative, sweep_scales, sweep_images, sweep_steps, seed],
                    [sweep_img, sweep_note], api_name="text2img_sweep", preprocess=False)
    run_interp.click(interpolate, [model_choice, sd_spec, mode, prompt, prompt_b, negative, seed, seed_b, n_frames,
                                   scale, steps], [strip, strip_note], api_name="text2img_interpolate",
                     preprocess=False)
    check_sd.click(load_sd_clicked, [sd_spec], [model_choice, info], api_visibility="private")
    model_choice.change(model_info, [model_choice, sd_spec], info, api_visibility="private")
    return {"load": [(model_info, [model_choice, sd_spec], [info]), (metrics_md, [], [figures])]}

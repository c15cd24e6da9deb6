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
from pipelines.ldm.attention_maps import MAX_MAP_STEPS, attention_maps
from pipelines.ldm.pipeline import (MAX_IMAGES, MAX_SCALE, MAX_STEPS, MAX_STRIP, SAMPLERS, SD_EXAMPLES, channel_view,
                                    load_model)
from pipelines.schedules import SPACINGS
from pipelines.shapes.data import HELDOUT_TEMPLATES, caption_for

from .cfg import parse_scales
from .common import (WARN, Budget, FramesView, MAX_SEED, SettingsDrop, budget_info, check_choice, check_cost, check_number,
                     echo, echo_md, formula, samples_image, seed_box, user_errors, warn_notes, write_gif, write_png)

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
BUDGET = Budget(1_000, overhead=8)  # shapes model, per request: ≈ 5 s at 4.8 ms per guided image-step + 39 ms per call
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


ATTN_MD = r"""
**Cross-attention maps: where each word is read.** In every cross-attention layer the latent pixels ask the prompt's
tokens what to become:
$$A=\mathrm{softmax}\!\Big(\tfrac{QK^\top}{\sqrt d}+M\Big)\in\mathbb R^{hw\times L},\qquad Q=W_Q\,\varphi(z_t),\ K=W_K\,\tau(y)$$
(the softmax runs over the prompt's $L$ tokens; $M$ masks the padding). Row $p$ of $A$ says how pixel $p$ spreads its
attention over the tokens, so at every pixel the maps of all tokens **sum to 1**; column $j$, reshaped to $h\times w$,
is token $j$'s map. Shown: $A$ averaged over the heads, over the layers (all, or one latent resolution) and over the
chosen steps of the conditional pass, upsampled and laid over the generated image. Tokens are exactly as the
tokenizer split them: `[CLS]` / `[SEP]` (SD: `<|startoftext|>` / `<|endoftext|>`) and `##` word pieces included.
"""
ALL_RES = "all layers"
RES_CHOICES = (ALL_RES, "4×4", "8×8", "16×16", "32×32", "64×64")
SCALE_OWN, SCALE_SHARED = "each map to its own maximum", "one scale for every token"
MAP_SCALES = (SCALE_OWN, SCALE_SHARED)
MAP_COLORMAP, MAP_ALPHA, MAP_PX = "turbo", 0.55, 192


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


def _check_cost(model_choice, images: int, steps: int, calls: int = 1) -> None:
    """The shapes model's per-request budget (a real SD checkpoint is opt-in, for the machine's own user)."""
    if model_choice == SHAPES:
        check_cost(images, steps, BUDGET, calls=calls)


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
                   spacing=spacing, prediction_type=model.prediction_type, precision=model.precision.name)
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
    _check_cost(model_choice, num_images * len(ws), steps, calls=len(ws))  # one batch per w
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


# ---------------------------------------------------------------- attention maps
def _resolution(choice, result=None) -> int | None:
    check_choice(choice, "Resolution", RES_CHOICES)
    res = None if choice == ALL_RES else int(choice.split("×")[0])
    if result is not None and res is not None and res not in result.resolutions:
        have = ", ".join(f"{h}×{h}" for h in result.resolutions)
        raise ValueError(f"This UNet has cross-attention at {have} latent pixels only; pick one of those or "
                         f"\"{ALL_RES}\".")
    return res


def _step_range(first, last, steps: int) -> tuple[int, int]:
    first = check_number(first, "First step", 1, MAX_MAP_STEPS, integer=True)
    last = check_number(last, "Last step", 1, MAX_MAP_STEPS, integer=True)
    first, last = min(first, steps), min(last, steps)   # the sliders may reach past this run's steps
    if first > last:
        raise ValueError(f"The first step ({first}) must not come after the last step ({last}).")
    return first - 1, last - 1


def _colourise(maps: torch.Tensor, low: torch.Tensor, top: torch.Tensor):
    """(T, h, w) maps -> (T, 3, MAP_PX, MAP_PX) colours in [0, 1]: each map's `low` … `top` onto the colour map."""
    from matplotlib import colormaps
    up = torch.nn.functional.interpolate(maps[:, None].float(), size=(MAP_PX, MAP_PX), mode="bilinear",
                                         align_corners=False)[:, 0]
    v = ((up - low.view(-1, 1, 1)) / (top - low).clamp_min(1e-12).view(-1, 1, 1)).clamp(0, 1)
    rgb = torch.from_numpy(colormaps[MAP_COLORMAP](v.numpy())[..., :3]).float()
    return rgb.permute(0, 3, 1, 2)


def _overlays(result, resolution, steps: tuple[int, int], shared: bool) -> tuple[list[tuple], float]:
    """([(PIL overlay, caption)] for every token (and the padding, when the UNet reads it), the largest max)."""
    from pipelines.images import to_pil
    maps = result.maps(resolution, steps)                        # (L, h, w)
    n = len(result.tokens)
    shown, labels = maps[:n], [f"{i}: {echo(t, 40)}" for i, t in enumerate(result.tokens)]
    if result.length > n and maps[n:].sum() > 1e-3 * maps.sum():   # SD reads its padding: show it as one map
        shown = torch.cat([shown, maps[n:].sum(0, keepdim=True)])
        labels.append(f"padding ×{result.length - n}")
    share = shown.mean((1, 2))                                   # share of all attention (sums to 1 with padding)
    top, low = shown.amax((1, 2)), shown.amin((1, 2))
    if shared:   # one scale: 0 … the largest value of any map, so the maps compare with each other
        top, low = torch.full_like(top, float(top.max())), torch.zeros_like(low)
    image = torch.nn.functional.interpolate(((result.image + 1) / 2)[None], size=(MAP_PX, MAP_PX),
                                            mode="nearest")[0].clamp(0, 1)
    colours = _colourise(shown, low, top)
    out = (1 - MAP_ALPHA) * image + MAP_ALPHA * colours
    return [(to_pil(o * 2 - 1), f"{lab} · {s:.1%} of the attention · max {t:.2f}")
            for o, lab, s, t in zip(out, labels, share.tolist(), top.tolist())], float(top.max())


def _legend(shared: bool, top: float | None = None):
    """A colour bar: the scale's low end (left) to its high end (right)."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw, ImageFont
    bar = (colormaps[MAP_COLORMAP](torch.linspace(0, 1, 256).numpy())[:, :3] * 255).astype("uint8")
    img = Image.new("RGB", (276, 44), "white")
    img.paste(Image.fromarray(bar[None].repeat(16, 0)), (10, 4))
    draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=12)   # a scalable font: the bitmap one squashed spaces
    right = f"{top:.2f} (the largest map's max)" if shared and top is not None else "the map's own max"
    draw.text((10, 24), "0" if shared else "its own min", fill="black", font=font)
    draw.text((266 - int(draw.textlength(right, font=font)), 24), right, fill="black", font=font)
    return img


def _tokens_md(result) -> str:
    toks = " · ".join(f"{i}:&nbsp;{echo_md(t, 40)}" for i, t in enumerate(result.tokens))
    pad = result.length - len(result.tokens)
    return (f"**{len(result.tokens)} tokens, as the tokenizer split them** (special tokens and `##` word pieces "
            f"included): {toks}" + (f"; then {pad} padding positions." if pad else "."))


def _most_read_word(result) -> int:
    """The token the forming view opens on: the word (not [CLS], [SEP] or <|startoftext|>…) with the most attention."""
    share = result.maps().mean((1, 2))[:len(result.tokens)]
    words = [i for i, t in enumerate(result.tokens) if not (t.startswith("[") and t.endswith("]") or t.startswith("<|"))]
    return max(words, key=lambda i: float(share[i])) if words else 0


def _token_choices(result) -> list[tuple[str, int]]:
    return [(f"{i}: {t}", i) for i, t in enumerate(result.tokens)]


def _at_step_view(result, token, step, resolution):
    """One token's map at one step (the forming view), and its caption."""
    if result is None:
        return None
    token = check_number(token, "Token", 0, len(result.tokens) - 1, integer=True)
    step = check_number(step, "Step", 1, result.steps, integer=True)
    res = _resolution(resolution, result)
    maps = result.at_step(step - 1, res)[token:token + 1]
    image = torch.nn.functional.interpolate(((result.image + 1) / 2)[None], size=(MAP_PX, MAP_PX),
                                            mode="nearest")[0]
    over = (1 - MAP_ALPHA) * image + MAP_ALPHA * _colourise(maps, maps.amin((1, 2)), maps.amax((1, 2)))[0]
    from pipelines.images import to_pil
    return to_pil(over * 2 - 1)


@user_errors
def attention(model_choice, sd_spec, prompt, seed, scale, steps, resolution, first, last, colour_scale,
              progress=gr.Progress()):
    """Generate one image and show every token's cross-attention map over it."""
    prompt = _text(prompt, "The prompt")
    seed = check_number(seed, "Seed", 0, MAX_SEED, integer=True)
    scale = check_number(scale, "CFG scale w", 0, MAX_SCALE)
    steps = check_number(steps, "Steps", 1, MAX_MAP_STEPS, integer=True)
    res = _resolution(resolution)
    span = _step_range(first, last, steps)
    check_choice(colour_scale, "Colour scale", MAP_SCALES)
    _check_cost(model_choice, 1, steps)
    model = _model(model_choice, sd_spec)
    result = attention_maps(model, prompt, seed=seed, scale=scale, steps=steps,
                            progress=lambda k, n: progress((k, n), desc="denoising, recording attention"))
    res = _resolution(resolution, result)
    cells, top = _overlays(result, res, span, colour_scale == SCALE_SHARED)
    have = ", ".join(f"{h}×{h}" for h in result.resolutions)
    status = (f"“{echo_md(prompt)}”, w = {scale:g}, {steps} DDIM steps, seed {seed}: maps of steps "
              f"{span[0] + 1}–{span[1] + 1}, {resolution if res else 'all layers (' + have + ')'}; every pixel's "
              f"maps sum to 1 over the tokens.{warn_notes(result.notes)}")
    from pipelines.images import to_pil
    picture = to_pil(result.image, scale=MAP_PX // result.image.shape[-1] or 1)
    gallery = [(write_png(img, "attention"), cap) for img, cap in cells]
    token = _most_read_word(result)
    forming = _at_step_view(result, token, steps, resolution)
    return (picture, gallery, _legend(colour_scale == SCALE_SHARED, top), _tokens_md(result), status, result,
            gr.Dropdown(choices=_token_choices(result), value=token),
            gr.Slider(1, max(steps, 2), value=steps, step=1), forming)


@user_errors
def attention_redraw(result, resolution, first, last, colour_scale):
    """The gallery again from the recorded maps (a new resolution, step range or colour scale; no sampling)."""
    if result is None:
        return gr.skip(), gr.skip()
    res = _resolution(resolution, result)
    check_choice(colour_scale, "Colour scale", MAP_SCALES)
    cells, top = _overlays(result, res, _step_range(first, last, result.steps), colour_scale == SCALE_SHARED)
    return [(write_png(img, "attention"), cap) for img, cap in cells], _legend(colour_scale == SCALE_SHARED, top)


@user_errors
def attention_at_step(result, token, step, resolution):
    return _at_step_view(result, token, step, resolution)


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
                                   info=budget_info(BUDGET))
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
    with gr.Accordion("Attention maps: which pixels read which word", open=False):
        formula(ATTN_MD)
        with gr.Row():
            with gr.Column(scale=1):
                attn_prompt = gr.Textbox(EXAMPLES[0][0], label="Prompt", lines=2)
                attn_scale = gr.Slider(0.25, MAX_SCALE, value=3, step=0.25, label="CFG scale w (> 0: at w = 0 the "
                                       "prompt is never read)")
                attn_steps = gr.Slider(1, MAX_MAP_STEPS, value=20, step=1, label="Steps to record (DDIM)")
                attn_seed = seed_box(0)
                attn_res = gr.Radio(list(RES_CHOICES), value=ALL_RES, label="Layers: latent resolution",
                                    info="the shapes UNet has cross-attention at 8×8 and 4×4; SD at 64…8 (512 px)")
                with gr.Row():
                    attn_first = gr.Slider(1, MAX_MAP_STEPS, value=1, step=1, label="Average from step")
                    attn_last = gr.Slider(1, MAX_MAP_STEPS, value=MAX_MAP_STEPS, step=1, label="to step")
                attn_colour = gr.Radio(list(MAP_SCALES), value=SCALE_OWN, label="Colour scale")
                run_attn = gr.Button("Generate and map the attention (uses the model above)", variant="primary")
                attn_status = gr.Markdown()
            with gr.Column(scale=2):
                with gr.Row():
                    attn_image = gr.Image(label="Generated image", type="pil", interactive=False, height=220)
                    attn_legend = gr.Image(label="Colour legend (map laid over the image)", type="pil",
                                           interactive=False, height=80)
                attn_tokens = gr.Markdown()
                attn_gallery = gr.Gallery(label="Every token's map over the image (caption: token, its share of "
                                          "all attention, the map's max)", columns=6, height=460,
                                          object_fit="contain", format="png")
        with gr.Row():
            with gr.Column(scale=1):
                attn_token = gr.Dropdown(choices=[], label="Watch one token's map form", interactive=True)
                attn_step = gr.Slider(1, MAX_MAP_STEPS, value=1, step=1, label="Step (1 = the noisiest)")
            attn_forming = gr.Image(label="That token's map at that step alone", type="pil", interactive=False,
                                    height=220)
        attn_state = gr.State(None)
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
    run_attn.click(attention, [model_choice, sd_spec, attn_prompt, attn_seed, attn_scale, attn_steps, attn_res,
                               attn_first, attn_last, attn_colour],
                   [attn_image, attn_gallery, attn_legend, attn_tokens, attn_status, attn_state, attn_token,
                    attn_step, attn_forming], api_name="text2img_attention", preprocess=False)
    for control in (attn_res, attn_first, attn_last, attn_colour):
        control.change(attention_redraw, [attn_state, attn_res, attn_first, attn_last, attn_colour],
                       [attn_gallery, attn_legend], show_progress="hidden", api_visibility="private")
    for control in (attn_token, attn_step, attn_res):
        control.change(attention_at_step, [attn_state, attn_token, attn_step, attn_res], attn_forming,
                       show_progress="hidden", api_visibility="private")
    check_sd.click(load_sd_clicked, [sd_spec], [model_choice, info], api_visibility="private")
    model_choice.change(model_info, [model_choice, sd_spec], info, api_visibility="private")
    return {"load": [(model_info, [model_choice, sd_spec], [info]), (metrics_md, [], [figures])]}

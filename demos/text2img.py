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
from .common import (Budget, FramesView, MAX_ECHO, MAX_SEED, SAMPLER_KEYS, SettingsDrop, StreamedFrames, budget_info,
                     check_choice, check_cost, check_number, echo, echo_md, examples_table, formula, labelled,
                     samples_image, seed_box, user_errors, warn_notes, write_png)
from .i18n import T, T_each, has, maybe, tr
from .lessons import Exposed
from .zero_snr import SPACING_KEYS, spacing_text
from .zerogpu import gpu_task

SHAPES = "Shapes LDM (trained here)"
SD = "Stable Diffusion (local folder or hub id)"
MODEL_CHOICES = (SHAPES, SD)
OWN = "the model's own"
ZERO_SNR_CHOICES = (OWN, "on", "off")
SPACING_CHOICES = (OWN, *SPACINGS)
# frames streamed per request: each is the VAE decoding x̂₀ (~30 ms for 4 shapes images) and one more update through
# gradio, so the default 8 steps stream steps 1, 3, 5, 7 and 8 (5 frames, not 8; the request through the API then
# took 0.69 s against 1.49 s, bf16 against fp32 on two machines: python -m pipelines.benchmark --only latency)
MAX_FRAMES, MAX_FRAMES_SD, MAX_PROMPT_CHARS = 4, 5, 20_000
ALLOW_SD_ENV, SD_ALLOWLIST_ENV = "DIFFUSION_LAB_ALLOW_SD", "DIFFUSION_LAB_SD_ALLOWLIST"
SWEEP_SCALES, MAX_SWEEP_IMAGES = "0, 1, 3, 7", 4
# the cheapest sampler and steps that keep DDIM 20 fp32's quality (python -m pipelines.evaluate --frontier;
# tests/test_frontier.py holds these to results/frontier.json)
DEFAULT_SAMPLER, DEFAULT_STEPS = "DPM-Solver++ (multistep)", 8
BUDGET = Budget(1_000, overhead=8)  # shapes model, per request: ≈ 5 s at 4.8 ms per guided image-step + 39 ms per call
INTERP_MODES = ("between two prompts (token states, linear)", "between two seeds (latents, slerp)")
# the choices' labels (the values, what the API takes, stay as they are)
MODEL_KEYS = {SHAPES: "text2img.model_shapes", SD: "text2img.model_sd"}
ZERO_SNR_KEYS = {OWN: "text2img.own", "on": "text2img.on", "off": "text2img.off"}
OWN_SPACING_KEYS = {OWN: "text2img.own"} | {k: v for k, v in SPACING_KEYS.items() if k in SPACINGS}
INTERP_KEYS = dict(zip(INTERP_MODES, ("text2img.mode_prompts", "text2img.mode_seeds")))
SD_EXAMPLE_KEYS = {"stable-diffusion-v1-5/stable-diffusion-v1-5": "text2img.example_sd15",
                   "stabilityai/stable-diffusion-2-1": "text2img.example_sd21",
                   "ByteDance/sd2.1-base-zsnr-laionaes5": "text2img.example_zsnr"}

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



def sd_md(lang: str | None = None) -> str:
    """The Stable Diffusion explanation, with the example hub ids and what each one is."""
    examples = ", ".join(f"`{k}` ({tr(SD_EXAMPLE_KEYS[k], lang) if k in SD_EXAMPLE_KEYS else v})"
                         for k, v in SD_EXAMPLES.items())
    return tr("text2img.sd_md", lang, model=tr(MODEL_KEYS[SD], lang), examples=examples)


def quoted(text: str, limit: int = MAX_ECHO) -> str:
    """A prompt as a status line quotes it: escaped for Markdown (at most `limit` characters), in the language's
    quotation marks."""
    return tr("text2img.quoted", text=echo_md(text, limit))


ALL_RES = "all layers"
RES_CHOICES = (ALL_RES, "4×4", "8×8", "16×16", "32×32", "64×64")
SCALE_OWN, SCALE_SHARED = "each map to its own maximum", "one scale for every token"
MAP_SCALES = (SCALE_OWN, SCALE_SHARED)
MAP_SCALE_KEYS = {SCALE_OWN: "text2img.scale_own", SCALE_SHARED: "text2img.scale_shared"}
MAP_COLORMAP, MAP_ALPHA, MAP_PX = "turbo", 0.55, 192


# ---------------------------------------------------------------- input checks
def _zero_snr(choice) -> bool | None:
    check_choice(choice, "ddpm.zero_snr_name", ZERO_SNR_CHOICES)
    return None if choice == OWN else choice == "on"


def _spacing(choice) -> str | None:
    check_choice(choice, "zero_snr.spacing", SPACING_CHOICES)
    return None if choice == OWN else choice


def _text(value, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(tr("common.not_text", name=maybe(name), value=type(value).__name__))
    if len(value) > MAX_PROMPT_CHARS:
        raise ValueError(tr("text2img.too_long", name=maybe(name), length=len(value), limit=MAX_PROMPT_CHARS))
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
    check_choice(choice, "text2img.model", MODEL_CHOICES)
    if choice == SD:
        spec = _text(spec, "text2img.sd_spec_name").strip()
        if not spec:
            raise ValueError(tr("text2img.sd_missing", example=next(iter(SD_EXAMPLES))))
        if not sd_allowed(spec):
            raise ValueError(tr("text2img.sd_off"))
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
@gpu_task()
@user_errors
def generate(model_choice, sd_spec, prompt, negative_prompt, scale, rescale, sampler, steps, num_images, seed, zero_snr,
             spacing, progress=gr.Progress()):
    """Generate images from a text prompt with latent diffusion and classifier-free guidance, streaming the
    denoising: each update gives the current frame (the decoded x̂_0 beside the 4 latent channels) and a status line;
    the last gives the final grid of samples (a PNG with its settings), every frame and an animated GIF.

    Args:
        model_choice: the model: "Shapes LDM (trained here)" (a small latent diffusion model of captioned shapes, 64 px) or "Stable Diffusion (local folder or hub id)" (the checkpoint named in sd_spec).
        sd_spec: the Stable Diffusion checkpoint, a local diffusers folder or a hub id such as "stable-diffusion-v1-5/stable-diffusion-v1-5"; used only with the Stable Diffusion model, and only where this server allows it (--allow-sd or its allowlist); else leave empty.
        prompt: the text to draw, e.g. "a picture of a large red circle sitting in the centre against a white backdrop"; at most 20000 characters (the text encoder reads only its first tokens); empty = unconditional.
        negative_prompt: text to steer away from (it replaces the unconditional branch of the guidance), e.g. "black background"; may be empty; at most 20000 characters.
        scale: the guidance scale w, from 0 to 30 (0 = unconditional, 1 = conditional without guidance, above 1 = guided).
        rescale: the guidance rescale φ (Lin et al.), from 0 to 1; 0 turns it off, 0.7 is the paper's value.
        sampler: "DDIM", "DPM-Solver++ (multistep)" or "UniPC (multistep)".
        steps: the denoising steps, a whole number from 1 to 100.
        num_images: how many images to generate, a whole number from 1 to 16 (Stable Diffusion on a CPU: at most 4); for the shapes model images × steps is also bounded by this server's per-request budget (a clear error when over it).
        seed: the random seed of the starting noise, a whole number from 0 to 2147483647.
        zero_snr: the noise schedule's terminal SNR: "the model's own", "on" (rescaled to zero terminal SNR) or "off".
        spacing: how the sampler's timesteps are spaced: "the model's own", "leading", "trailing" or "linspace".
    """
    prompt = _text(prompt, "text2img.prompt_name")
    negative_prompt = _text(negative_prompt, "text2img.negative_name")
    scale = check_number(scale, "cfg.scale_name", 0, MAX_SCALE)
    rescale = check_number(rescale, "cfg.rescale_name", 0, 1)
    check_choice(sampler, "ddpm.sampler_name", SAMPLERS)
    steps = check_number(steps, "ddpm.steps_name", 1, MAX_STEPS, integer=True)
    num_images = check_number(num_images, "ddpm.images_name", 1, MAX_IMAGES, integer=True)
    seed = check_number(seed, "common.seed", 0, MAX_SEED, integer=True)
    z, sp = _zero_snr(zero_snr), _spacing(spacing)
    _check_cost(model_choice, num_images, steps)
    model = _model(model_choice, sd_spec)
    run = model.frames(prompt, negative_prompt=negative_prompt, scale=scale, rescale=rescale, sampler=sampler,
                       steps=steps, num_images=num_images, seed=seed, spacing=sp, zero_snr=z)
    notes = warn_notes(run.notes)
    nrow = _nrow(num_images)
    shown = MAX_FRAMES if model.kind == "shapes" else MAX_FRAMES_SD
    frames, step = StreamedFrames(), None
    for step in run.thinned(shown):
        live = frames.add(_frame(model, step.denoised, step.x, nrow),
                          tr("text2img.frame_caption", i=step.i + 1, n=step.n, t=step.t))
        progress((step.i + 1, step.n), desc=tr("text2img.denoising"))
        status = tr("ddpm.status_step", i=step.i + 1, n=step.n, t=step.t) + notes
        yield live, None, status, *FramesView.update([], None)
    x = model.decode(step.x)
    bad = int((~finite_samples(x)).sum())
    final = attach(grid(torch.nan_to_num(x), nrow, scale=_scale_for(model)), tab="text2img", model_choice=model_choice,
                   sd_spec=sd_spec if model_choice == SD else None, checkpoint=str(model.name),
                   weights=model.weights_hash, prompt=prompt, negative_prompt=negative_prompt, scale=scale,
                   rescale=rescale, sampler=sampler, steps=steps, num_images=num_images, seed=seed, zero_snr=zero_snr,
                   spacing=spacing, prediction_type=model.prediction_type, precision=model.precision.label)
    gif = frames.gif("text2img", duration_ms=150)
    what = quoted(prompt) if prompt.strip() else tr("text2img.empty_prompt")
    named = tr(SAMPLER_KEYS[sampler]) if sampler in SAMPLER_KEYS else sampler
    done = (tr("text2img.done", what=what, scale=scale, n=step.n, sampler=named, seed=seed)
            + (tr("text2img.non_finite", warn=tr("common.warn"), bad=bad, n=len(x)) if bad else "") + notes)
    yield frames.last, final, done, *FramesView.update(frames, gif)


@gpu_task()
@user_errors
def sweep(model_choice, sd_spec, prompt, negative_prompt, scales, num_images, steps, seed, progress=gr.Progress()):
    """Sweep the guidance scale for one prompt: an image grid with one row per image and one column per guidance
    scale w, every w starting from the same seed (the same noise), sampled with DDIM; and a note (Markdown).

    Args:
        model_choice: the model: "Shapes LDM (trained here)" (a small latent diffusion model of captioned shapes, 64 px) or "Stable Diffusion (local folder or hub id)" (the checkpoint named in sd_spec).
        sd_spec: the Stable Diffusion checkpoint, a local diffusers folder or a hub id such as "stable-diffusion-v1-5/stable-diffusion-v1-5"; used only with the Stable Diffusion model, and only where this server allows it (--allow-sd or its allowlist); else leave empty.
        prompt: the text to draw, e.g. "a picture of a large red circle sitting in the centre against a white backdrop"; at most 20000 characters (the text encoder reads only its first tokens); empty = unconditional.
        negative_prompt: text to steer away from (it replaces the unconditional branch of the guidance), e.g. "black background"; may be empty; at most 20000 characters.
        scales: the guidance scales, as text: 1 to 6 numbers separated by commas (e.g. "0, 1, 3, 7"), each from 0 to 30.
        num_images: images per scale, a whole number from 1 to 4.
        steps: DDIM steps, a whole number from 1 to 100; for the shapes model images × scales × steps is also bounded by this server's per-request budget (a clear error when over it).
        seed: the random seed of the starting noise, a whole number from 0 to 2147483647.
    """
    prompt = _text(prompt, "text2img.prompt_name")
    negative_prompt = _text(negative_prompt, "text2img.negative_name")
    ws = parse_scales(scales)
    num_images = check_number(num_images, "text2img.sweep_images", 1, MAX_SWEEP_IMAGES, integer=True)
    steps = check_number(steps, "ddpm.steps_name", 1, MAX_STEPS, integer=True)
    seed = check_number(seed, "common.seed", 0, MAX_SEED, integer=True)
    _check_cost(model_choice, num_images * len(ws), steps, calls=len(ws))  # one batch per w
    model = _model(model_choice, sd_spec)
    notes = warn_notes(model.encode_prompt(prompt, negative_prompt, 1).notes)
    x = model.sweep(prompt, ws, negative_prompt=negative_prompt, num_images=num_images, sampler="DDIM", steps=steps,
                    seed=seed, progress=lambda k, n: progress((k, n), desc=tr("cfg.scales_done")))
    # the grid's labels are drawn into the image in English (PIL's font has no Persian glyphs or shaping)
    img = labelled_grid(torch.nan_to_num(x).transpose(0, 1), [f"image {i + 1}" for i in range(num_images)],
                        [f"w = {w:g}" for w in ws], scale=max(1, _scale_for(model) - 1), label_width=64)
    return img, tr("text2img.sweep_note", prompt=quoted(prompt), steps=steps, seed=seed) + notes


@gpu_task()
@user_errors
def interpolate(model_choice, sd_spec, mode, prompt, prompt_b, negative_prompt, seed, seed_b, frames, scale, steps,
                progress=gr.Progress()):
    """Interpolate with latent diffusion: a strip of images from prompt to prompt_b (linearly between their text
    encoder states, the same seed), or from seed to seed_b (spherically between their starting latents, the same
    prompt), sampled with DDIM; and a note (Markdown).

    Args:
        model_choice: the model: "Shapes LDM (trained here)" (a small latent diffusion model of captioned shapes, 64 px) or "Stable Diffusion (local folder or hub id)" (the checkpoint named in sd_spec).
        sd_spec: the Stable Diffusion checkpoint, a local diffusers folder or a hub id such as "stable-diffusion-v1-5/stable-diffusion-v1-5"; used only with the Stable Diffusion model, and only where this server allows it (--allow-sd or its allowlist); else leave empty.
        mode: "between two prompts (token states, linear)" or "between two seeds (latents, slerp)".
        prompt: the text to draw (the strip's start when interpolating prompts), e.g. "a picture of a large red circle sitting in the centre against a white backdrop"; at most 20000 characters (the text encoder reads only its first tokens); empty = unconditional.
        prompt_b: the strip's last prompt when interpolating prompts (ignored between seeds); at most 20000 characters.
        negative_prompt: text to steer away from (it replaces the unconditional branch of the guidance), e.g. "black background"; may be empty; at most 20000 characters.
        seed: the random seed of the starting noise (the strip's start when interpolating seeds), a whole number from 0 to 2147483647.
        seed_b: the strip's last seed when interpolating seeds (ignored between prompts), a whole number from 0 to 2147483647.
        frames: images in the strip, a whole number from 2 to 10; for the shapes model frames × steps is also bounded by this server's per-request budget (a clear error when over it).
        scale: the guidance scale w, from 0 to 30 (0 = unconditional, 1 = conditional without guidance, above 1 = guided).
        steps: DDIM steps, a whole number from 1 to 100.
    """
    check_choice(mode, "vae.interpolation_name", INTERP_MODES)
    prompt, prompt_b = _text(prompt, "text2img.prompt_name"), _text(prompt_b, "text2img.prompt_b_name")
    negative_prompt = _text(negative_prompt, "text2img.negative_name")
    seed = check_number(seed, "common.seed", 0, MAX_SEED, integer=True)
    seed_b = check_number(seed_b, "text2img.seed_b_name", 0, MAX_SEED, integer=True)
    n = check_number(frames, "common.frames", 2, MAX_STRIP, integer=True)
    scale = check_number(scale, "cfg.scale_name", 0, MAX_SCALE)
    steps = check_number(steps, "ddpm.steps_name", 1, MAX_STEPS, integer=True)
    _check_cost(model_choice, n, steps)
    model = _model(model_choice, sd_spec)
    progress(0, desc=tr("text2img.denoising_strip"))
    if mode == INTERP_MODES[0]:
        x, notes = model.interpolate_prompts(prompt, prompt_b, n, negative_prompt, seed, scale=scale, steps=steps)
        what = tr("text2img.what_prompts", a=quoted(prompt), b=quoted(prompt_b), seed=seed)
    else:
        x, notes = model.interpolate_seeds(prompt, seed, seed_b, n, negative_prompt, scale=scale, steps=steps)
        what = tr("text2img.what_seeds", prompt=quoted(prompt), seed=seed, seed_b=seed_b)
    strip = grid(torch.nan_to_num(x), nrow=n, scale=max(1, _scale_for(model) - 1))
    return strip, tr("text2img.strip_note", what=what, scale=scale, steps=steps, n=n) + warn_notes(notes)


# ---------------------------------------------------------------- attention maps
def _resolution(choice, result=None) -> int | None:
    check_choice(choice, "text2img.resolution_name", RES_CHOICES)
    res = None if choice == ALL_RES else int(choice.split("×")[0])
    if result is not None and res is not None and res not in result.resolutions:
        have = ", ".join(f"{h}×{h}" for h in result.resolutions)
        raise ValueError(tr("text2img.no_resolution", have=have, all=tr("text2img.all_layers")))
    return res


def _step_range(first, last, steps: int) -> tuple[int, int]:
    first = check_number(first, "text2img.first_name", 1, MAX_MAP_STEPS, integer=True)
    last = check_number(last, "text2img.last_name", 1, MAX_MAP_STEPS, integer=True)
    first, last = min(first, steps), min(last, steps)   # the sliders may reach past this run's steps
    if first > last:
        raise ValueError(tr("text2img.step_order", first=first, last=last))
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
        labels.append(tr("text2img.padding", n=result.length - n))
    share = shown.mean((1, 2))                                   # share of all attention (sums to 1 with padding)
    top, low = shown.amax((1, 2)), shown.amin((1, 2))
    if shared:   # one scale: 0 … the largest value of any map, so the maps compare with each other
        top, low = torch.full_like(top, float(top.max())), torch.zeros_like(low)
    image = torch.nn.functional.interpolate(((result.image + 1) / 2)[None], size=(MAP_PX, MAP_PX),
                                            mode="nearest")[0].clamp(0, 1)
    colours = _colourise(shown, low, top)
    out = (1 - MAP_ALPHA) * image + MAP_ALPHA * colours
    return [(to_pil(o * 2 - 1), tr("text2img.map_caption", label=lab, share=s, top=t))
            for o, lab, s, t in zip(out, labels, share.tolist(), top.tolist())], float(top.max())


def _legend(shared: bool, top: float | None = None):
    """A colour bar: the scale's low end (left) to its high end (right). Its words stay English: they are drawn
    into the image, and PIL's font has no Persian glyphs or shaping."""
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
    return tr("text2img.tokens_md", n=len(result.tokens), tokens=toks) + (tr("text2img.tokens_pad", pad=pad)
                                                                          if pad else ".")


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
    token = check_number(token, "text2img.token_name", 0, len(result.tokens) - 1, integer=True)
    step = check_number(step, "text2img.step_name", 1, result.steps, integer=True)
    res = _resolution(resolution, result)
    maps = result.at_step(step - 1, res)[token:token + 1]
    image = torch.nn.functional.interpolate(((result.image + 1) / 2)[None], size=(MAP_PX, MAP_PX),
                                            mode="nearest")[0]
    over = (1 - MAP_ALPHA) * image + MAP_ALPHA * _colourise(maps, maps.amin((1, 2)), maps.amax((1, 2)))[0]
    from pipelines.images import to_pil
    return to_pil(over * 2 - 1)


@gpu_task()
@user_errors
def attention(model_choice, sd_spec, prompt, seed, scale, steps, resolution, first, last, colour_scale,
              progress=gr.Progress()):
    """Generate one image from a prompt with latent diffusion (DDIM) while recording the UNet's cross-attention, and
    show every token's attention map over the image. Returns the image, a gallery of one overlay per token, the colour
    legend, the tokens (Markdown), a status line, the recorded maps (for the page), and the token, the step and the
    overlay of the page's "forming" view (the most attended word at the last step).

    Args:
        model_choice: the model: "Shapes LDM (trained here)" (a small latent diffusion model of captioned shapes, 64 px) or "Stable Diffusion (local folder or hub id)" (the checkpoint named in sd_spec).
        sd_spec: the Stable Diffusion checkpoint, a local diffusers folder or a hub id such as "stable-diffusion-v1-5/stable-diffusion-v1-5"; used only with the Stable Diffusion model, and only where this server allows it (--allow-sd or its allowlist); else leave empty.
        prompt: the text to draw, e.g. "a picture of a large red circle sitting in the centre against a white backdrop"; at most 20000 characters (the text encoder reads only its first tokens); empty = unconditional.
        seed: the random seed of the starting noise, a whole number from 0 to 2147483647.
        scale: the guidance scale w, from 0.25 to 30 (1 = conditional without guidance, above 1 = guided).
        steps: DDIM steps, a whole number from 1 to 50 (every step's maps are recorded); for the shapes model steps is also bounded by this server's per-request budget.
        resolution: which UNet layers' maps to average: "all layers", "4×4", "8×8", "16×16", "32×32" or "64×64" (a resolution the model has).
        first: the first denoising step whose maps are averaged, a whole number from 1 to 50 (cut to steps).
        last: the last denoising step whose maps are averaged, a whole number from 1 to 50 (cut to steps; not before first).
        colour_scale: "each map to its own maximum" or "one scale for every token".
    """
    prompt = _text(prompt, "text2img.prompt_name")
    seed = check_number(seed, "common.seed", 0, MAX_SEED, integer=True)
    scale = check_number(scale, "cfg.scale_name", 0, MAX_SCALE)
    steps = check_number(steps, "ddpm.steps_name", 1, MAX_MAP_STEPS, integer=True)
    res = _resolution(resolution)
    span = _step_range(first, last, steps)
    check_choice(colour_scale, "text2img.colour_scale", MAP_SCALES)
    _check_cost(model_choice, 1, steps)
    model = _model(model_choice, sd_spec)
    result = attention_maps(model, prompt, seed=seed, scale=scale, steps=steps,
                            progress=lambda k, n: progress((k, n), desc=tr("text2img.recording")))
    res = _resolution(resolution, result)
    cells, top = _overlays(result, res, span, colour_scale == SCALE_SHARED)
    have = ", ".join(f"{h}×{h}" for h in result.resolutions)
    layers = resolution if res else tr("text2img.all_layers_have", have=have)
    status = tr("text2img.attn_status", prompt=quoted(prompt), scale=scale, steps=steps, seed=seed, first=span[0] + 1,
                last=span[1] + 1, layers=layers) + warn_notes(result.notes)
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
    check_choice(colour_scale, "text2img.colour_scale", MAP_SCALES)
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
        return tr("ddpm.model_missing", error=exc if model_choice == SHAPES else echo_md(str(exc), 600))
    p = model.parameters
    kind = tr(f"text2img.kind_{model.kind}") if has(f"text2img.kind_{model.kind}") else model.kind
    name = model.name if model.kind == "shapes" else echo_md(model.name)  # a real checkpoint's name was typed
    head = tr("text2img.card", name=name, kind=kind, channels=model.latent_channels, size=model.latent_size,
              image=model.image_size, unet=p['unet'], vae=p['vae'], prediction=model.prediction_type,
              zsnr=tr("text2img.on" if model.zero_snr else "text2img.off"), spacing=spacing_text(model.spacing),
              factor=model.scaling_factor)
    r = model.record
    if model.kind == "shapes" and r:
        head += tr("text2img.card_trained", steps=r.get('steps', '?'), batch=r.get('batch_size', '?'),
                   images=r.get('train_images', 0), minutes=r.get('wall_seconds', 0) / 60,
                   hardware=r.get('hardware', '?'), command=TRAIN_COMMAND)
    return head


def metrics_md() -> str:
    from pipelines.measure.ldm import readme_section
    if not (checkpoints_root() / NAME / "metrics.json").exists():
        return tr("text2img.no_figures")
    doc = read_json(checkpoints_root() / NAME / "metrics.json", {})
    return readme_section() if doc.get("adherence") else tr("text2img.no_adherence")


def load_sd_clicked(sd_spec):
    """Load (or explain why not) the typed SD checkpoint, and select it."""
    return gr.Radio(value=SD), model_info(SD, sd_spec)


# ---------------------------------------------------------------- layout
def build():
    gr.Markdown(T("text2img.title"))
    formula(T("text2img.intro_md"))
    with gr.Row():
        with gr.Column(scale=1):
            model_choice = gr.Radio(labelled(MODEL_CHOICES, MODEL_KEYS), value=SHAPES, label=T("text2img.model"))
            with gr.Row():
                sd_spec = gr.Textbox("", label=T("text2img.sd_spec"),
                                     placeholder=next(iter(SD_EXAMPLES)), scale=3)
                check_sd = gr.Button(T("text2img.check_sd"), size="sm", scale=1)
            prompt = gr.Textbox(EXAMPLES[0][0], label=T("text2img.prompt"), lines=2)
            negative = gr.Textbox("", label=T("text2img.negative"))
            examples_table(EXAMPLES, [prompt, negative], T("text2img.examples"))
            scale = gr.Slider(0, MAX_SCALE, value=3, step=0.25,
                              label=T("cfg.scale_slider"))
            rescale = gr.Slider(0, 1, value=0, step=0.05, label=T("text2img.rescale"))
            with gr.Row():
                sampler = gr.Dropdown(labelled(SAMPLERS, SAMPLER_KEYS), value=DEFAULT_SAMPLER, label=T("ddpm.sampler"))
                steps = gr.Slider(1, MAX_STEPS, value=DEFAULT_STEPS, step=1, label=T("text2img.steps"))
            num_images = gr.Slider(1, MAX_IMAGES, value=4, step=1, label=T("ddpm.images"),
                                   info=budget_info(BUDGET))
            seed = seed_box(0)
            with gr.Row(elem_classes=["advanced"]):
                zero_snr = gr.Radio(labelled(ZERO_SNR_CHOICES, ZERO_SNR_KEYS), value=OWN,
                                    label=T("ddpm.zero_snr_name"))
                spacing = gr.Radio(labelled(SPACING_CHOICES, OWN_SPACING_KEYS), value=OWN,
                                   label=T("zero_snr.spacing"))
            run = gr.Button(T("text2img.run"), variant="primary")
            status = gr.Markdown()
            SettingsDrop("text2img", dict(model_choice=model_choice, sd_spec=sd_spec, prompt=prompt,
                                          negative_prompt=negative, scale=scale, rescale=rescale, sampler=sampler,
                                          steps=steps, num_images=num_images, seed=seed, zero_snr=zero_snr,
                                          spacing=spacing))
        with gr.Column(scale=2):
            formula(T("text2img.sample_md"))
            with gr.Row():
                live = gr.Image(label=T("text2img.live"), type="pil", interactive=False, height=320)
                final = samples_image("ddpm.samples", height=320)
            info = gr.Markdown()
    frames = FramesView("text2img.frames")
    formula(T("text2img.train_md"))

    formula(T("text2img.sweep_md"))
    with gr.Row():
        with gr.Column(scale=1):
            sweep_scales = gr.Textbox(SWEEP_SCALES, label=T("text2img.sweep_scales"))
            sweep_images = gr.Slider(1, MAX_SWEEP_IMAGES, value=4, step=1, label=T("text2img.sweep_images"))
            sweep_steps = gr.Slider(1, MAX_STEPS, value=20, step=1, label=T("text2img.sweep_steps"))
            run_sweep = gr.Button(T("text2img.run_sweep"), variant="primary")
        with gr.Column(scale=2):
            sweep_img = gr.Image(label=T("text2img.sweep_img"), type="pil", interactive=False)
            sweep_note = gr.Markdown()

    formula(T("text2img.interp_md"))
    with gr.Row():
        with gr.Column(scale=1):
            mode = gr.Radio(labelled(INTERP_MODES, INTERP_KEYS), value=INTERP_MODES[0], label=T("text2img.mode"))
            prompt_b = gr.Textbox(EXAMPLES[1][0], label=T("text2img.prompt_b"), lines=2)
            seed_b = gr.Number(value=1, label=T("text2img.seed_b"), precision=0, minimum=0,
                               maximum=MAX_SEED)
            n_frames = gr.Slider(2, MAX_STRIP, value=6, step=1, label=T("text2img.n_frames"))
            run_interp = gr.Button(T("text2img.run_interp"), variant="primary")
        with gr.Column(scale=2):
            strip = gr.Image(label=T("text2img.strip"), type="pil", interactive=False)
            strip_note = gr.Markdown()
    with gr.Accordion(T("text2img.attn_title"), open=False):
        formula(T("text2img.attn_md"))
        with gr.Row():
            with gr.Column(scale=1):
                attn_prompt = gr.Textbox(EXAMPLES[0][0], label=T("text2img.attn_prompt"), lines=2)
                attn_scale = gr.Slider(0.25, MAX_SCALE, value=3, step=0.25, label=T("text2img.attn_scale"))
                attn_steps = gr.Slider(1, MAX_MAP_STEPS, value=20, step=1, label=T("text2img.attn_steps"))
                attn_seed = seed_box(0)
                attn_res = gr.Radio(labelled(RES_CHOICES, {ALL_RES: "text2img.all_layers"}), value=ALL_RES,
                                    label=T("text2img.attn_res"), info=T("text2img.attn_res_info"))
                with gr.Row():
                    attn_first = gr.Slider(1, MAX_MAP_STEPS, value=1, step=1, label=T("text2img.attn_first"))
                    attn_last = gr.Slider(1, MAX_MAP_STEPS, value=MAX_MAP_STEPS, step=1,
                                          label=T("text2img.attn_last"))
                attn_colour = gr.Radio(labelled(MAP_SCALES, MAP_SCALE_KEYS), value=SCALE_OWN,
                                       label=T("text2img.colour_scale"))
                run_attn = gr.Button(T("text2img.run_attn"), variant="primary")
                attn_status = gr.Markdown()
            with gr.Column(scale=2):
                with gr.Row():
                    attn_image = gr.Image(label=T("text2img.attn_image"), type="pil", interactive=False, height=220)
                    attn_legend = gr.Image(label=T("text2img.attn_legend"), type="pil",
                                           interactive=False, height=80)
                attn_tokens = gr.Markdown()
                attn_gallery = gr.Gallery(label=T("text2img.attn_gallery"), columns=6, height=460,
                                          object_fit="contain", format="png")
        with gr.Row():
            with gr.Column(scale=1):
                attn_token = gr.Dropdown(choices=[], label=T("text2img.attn_token"), interactive=True)
                attn_step = gr.Slider(1, MAX_MAP_STEPS, value=1, step=1, label=T("text2img.attn_step"))
            attn_forming = gr.Image(label=T("text2img.attn_forming"), type="pil", interactive=False,
                                    height=220)
        attn_state = gr.State(None)
    formula(T_each("text2img.sd_md", sd_md))
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
    lesson = Exposed(dict(model_choice=model_choice, prompt=prompt, negative=negative, scale=scale, rescale=rescale,
                          sampler=sampler, steps=steps, num_images=num_images, seed=seed, live=live, samples=final,
                          status=status, sweep_scales=sweep_scales, sweep_images=sweep_images, sweep_steps=sweep_steps,
                          sweep=sweep_img, mode=mode, prompt_b=prompt_b, seed_b=seed_b, n_frames=n_frames, strip=strip,
                          figures=figures), dict(generate=run, sweep=run_sweep, interpolate=run_interp))
    return {"load": [(model_info, [model_choice, sd_spec], [info]), (metrics_md, [], [figures])], "lesson": lesson}

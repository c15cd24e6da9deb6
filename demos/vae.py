"""VAE latent space: interpolate between two digits, see the 2-D latent map, reconstruct and vary."""
from __future__ import annotations

import gradio as gr
import numpy as np
import torch

from pipelines.checkpoints import CheckpointMissing
from pipelines.data import CLASS_NAMES
from pipelines.images import ImageInputError, grid, to_pil
from pipelines.vae.pipeline import MAP_MODEL, MAX_STEPS, MAX_VARIATIONS, MODELS, load_vae

from .common import (MAX_SEED, MNIST_EXAMPLES, Player, check_choice, check_number, digit_input, digit_tensor, formula,
                     labelled, seed_box, use_drawing, user_errors, write_gif)
from .i18n import T, maybe, tr
from .lessons import Exposed
from .vae_plots import latent_map_plot, vae_loss_plot
from .zerogpu import gpu_task

METHODS = ("linear", "spherical")
MAP_EXTENT, MAX_GRID = 3.0, 30
OOD_MODEL = "vae-mnist-16d"  # the sharper model is the better judge of "digit-like"

# ---------------------------------------------------------------- inputs
def _model_name(choice) -> str:
    return MODELS[check_choice(choice, "vae.model_name", list(MODELS))]


def _method(method: str) -> str:
    return tr(f"vae.{method}") if method in METHODS else method


def _digit(image, label: str, check: bool = True) -> torch.Tensor:
    """Any upload / path / drawing -> (1, 1, 28, 28) in [-1, 1]; notes and out-of-distribution warnings to the user.

    "Digit-like" is judged by the 16-D VAE itself: an input it reconstructs worse than 99.9% of the
    MNIST test set (threshold measured by the evaluation command) gets a warning, and is still used.
    """
    label = maybe(label)  # a key (vae.digit_a_name, ...) or text
    try:
        x, notes = digit_tensor(image, size=28)
    except ImageInputError as exc:
        raise ImageInputError(f"{label}: {exc}") from None
    if notes:
        gr.Info(tr("vae.input_was", label=label, notes="; ".join(notes)))
    x = x.unsqueeze(0)
    try:
        judge = load_vae(OOD_MODEL) if check else None
    except CheckpointMissing:
        judge = None
    limit = judge.metric("recon_bce_p999") if judge else None
    if limit:
        bce = judge.reconstruct(x, variations=0)[4]
        if bce > limit:
            gr.Warning(tr("vae.ood", label=label, bce=bce, limit=limit))
    return x



def _lams(steps: int) -> list[float]:
    """λ from 0 (digit A) up to 1 (digit B), so the strip reads left to right A → B."""
    return torch.linspace(0, 1, steps).tolist()


# ---------------------------------------------------------------- callbacks
@gpu_task()
@user_errors
def interpolate(model, image_a, image_b, method, steps, lam, progress=gr.Progress()):
    """Interpolate between two digits in a VAE's latent space: encode A and B, decode points on the path between
    their latent means. Returns the decoded image at λ, a gallery strip of the path A → B, an animated GIF of it, an
    image of the linear path above the spherical one, and a note on the two codes (Markdown).

    Args:
        model: the VAE, "2-D latent" or "16-D latent" (sharper).
        image_a: digit A (the path's start, λ = 0), an image file (PNG or JPEG, at most 4096×4096 pixels; over MCP send it as a data:image/png;base64,… URL, since http(s) URLs are never fetched); it is turned grey, inverted if its background is light, and unless it is 28×28 already its ink is cropped, scaled to fit 20×20 and centred in 28×28 as MNIST is; a blank image is refused.
        image_b: digit B (the path's end, λ = 1), an image file (PNG or JPEG, at most 4096×4096 pixels; over MCP send it as a data:image/png;base64,… URL, since http(s) URLs are never fetched); it is turned grey, inverted if its background is light, and unless it is 28×28 already its ink is cropped, scaled to fit 20×20 and centred in 28×28 as MNIST is; a blank image is refused.
        method: how to walk the latent space from A to B: "linear" or "spherical" (slerp).
        steps: images in the strip, a whole number from 2 to 64.
        lam: the point λ on the path shown on its own, from 0 to 1 (0 = A, 1 = B).
    """
    vae = load_vae(_model_name(model))
    check_choice(method, "vae.interpolation_name", METHODS)
    steps = check_number(steps, "vae.images_name", 2, MAX_STEPS, integer=True)
    lam = check_number(lam, "λ", 0, 1)
    progress(0.1, desc=tr("vae.encoding"))
    xa, xb = _digit(image_a, "vae.digit_a_name"), _digit(image_b, "vae.digit_b_name")
    lams = _lams(steps)
    progress(0.4, desc=tr("vae.decoding_path"))
    images, _ = vae.interpolate(xa, xb, lams, method)
    other = "spherical" if method == "linear" else "linear"
    other_images, _ = vae.interpolate(xa, xb, lams, other)
    strip = [(to_pil(img, 4), f"λ = {l:.2f}") for img, l in zip(images, lams)]
    progress(0.7, desc=tr("vae.writing_gif"))
    frames = [to_pil(img, 6) for img in images]
    gif = write_gif(frames + frames[-2:0:-1], f"vae-{method}", duration_ms=120)  # A → B → A, loops smoothly
    compare = grid(torch.cat([images, other_images]), nrow=steps, scale=3)
    at_lam, _ = vae.interpolate(xa, xb, [lam], method)
    mu_a, _ = vae.encode(xa)
    mu_b, _ = vae.encode(xb)
    cos = torch.nn.functional.cosine_similarity(mu_a, mu_b).clamp(-1, 1).item()
    info = tr("vae.interp_info", name=vae.name, dim=vae.latent_dim, norm_a=mu_a.norm().item(),
              norm_b=mu_b.norm().item(), angle=float(np.degrees(np.arccos(cos))), method=_method(method),
              other=_method(other))
    return to_pil(at_lam[0], 8), strip, gif, compare, info


@gpu_task()
@user_errors
def at_lambda(model, image_a, image_b, method, lam):
    """Decode one point on the latent path between two digits (the slider's live update of the interpolation):
    returns the decoded image at λ.

    Args:
        model: the VAE, "2-D latent" or "16-D latent" (sharper).
        image_a: digit A (λ = 0), an image file (PNG or JPEG, at most 4096×4096 pixels; over MCP send it as a data:image/png;base64,… URL, since http(s) URLs are never fetched); it is turned grey, inverted if its background is light, and unless it is 28×28 already its ink is cropped, scaled to fit 20×20 and centred in 28×28 as MNIST is; a blank image is refused.
        image_b: digit B (λ = 1), an image file (PNG or JPEG, at most 4096×4096 pixels; over MCP send it as a data:image/png;base64,… URL, since http(s) URLs are never fetched); it is turned grey, inverted if its background is light, and unless it is 28×28 already its ink is cropped, scaled to fit 20×20 and centred in 28×28 as MNIST is; a blank image is refused.
        method: how to walk the latent space from A to B: "linear" or "spherical" (slerp).
        lam: the point λ on the path, from 0 to 1 (0 = A, 1 = B).
    """
    vae = load_vae(_model_name(model))
    check_choice(method, "vae.interpolation_name", METHODS)
    lam = check_number(lam, "λ", 0, 1)
    xa, _ = digit_tensor(image_a)
    xb, _ = digit_tensor(image_b)
    img, _ = vae.interpolate(xa.unsqueeze(0), xb.unsqueeze(0), [lam], method)
    return to_pil(img[0], 8)


@gpu_task()
@user_errors
def latent_map(image_a, image_b, steps, grid_size, progress=gr.Progress()):
    """Plot the 2-D VAE's latent plane: the MNIST test set's latent means coloured by class over a grid of decoded
    latents, with digits A and B and the linear and spherical interpolation paths between them (a plot).

    Args:
        image_a: digit A, an image file (PNG or JPEG, at most 4096×4096 pixels; over MCP send it as a data:image/png;base64,… URL, since http(s) URLs are never fetched); it is turned grey, inverted if its background is light, and unless it is 28×28 already its ink is cropped, scaled to fit 20×20 and centred in 28×28 as MNIST is; a blank image is refused.
        image_b: digit B, an image file (PNG or JPEG, at most 4096×4096 pixels; over MCP send it as a data:image/png;base64,… URL, since http(s) URLs are never fetched); it is turned grey, inverted if its background is light, and unless it is 28×28 already its ink is cropped, scaled to fit 20×20 and centred in 28×28 as MNIST is; a blank image is refused.
        steps: points on each interpolation path, a whole number from 2 to 64.
        grid_size: decoded images per side of the background grid, a whole number from 5 to 30.
    """
    steps = check_number(steps, "vae.images_name", 2, MAX_STEPS, integer=True)
    n = check_number(grid_size, "vae.grid_name", 5, MAX_GRID, integer=True)
    vae = load_vae(MAP_MODEL)
    progress(0.1, desc=tr("vae.loading_codes"))
    mu, labels = vae.test_latents()
    xa, xb = _digit(image_a, "vae.digit_a_name", check=False), _digit(image_b, "vae.digit_b_name", check=False)
    paths = {m: vae.interpolate(xa, xb, _lams(steps), m)[1] for m in METHODS}
    endpoints = torch.cat([vae.encode(xa)[0], vae.encode(xb)[0]])
    progress(0.4, desc=tr("vae.decoding_grid", n=n))
    tiles = grid(vae.latent_grid(n, MAP_EXTENT), nrow=n, padding=0)
    half = MAP_EXTENT * (1 + 1 / (n - 1))  # tile centres at ±MAP_EXTENT, so the image reaches half a tile further
    progress(0.7, desc=tr("vae.drawing"))
    return latent_map_plot(mu, labels, np.asarray(tiles.convert("L")), half, paths, endpoints, CLASS_NAMES["mnist"])


@gpu_task()
@user_errors
def reconstruct(model, image, variations, scale, seed):
    """Reconstruct a digit with a VAE and vary it: returns the input as the model sees it (28×28), its
    reconstruction decode(μ), a gallery of variations decode(μ + s·σ·ε) for seeded noise ε, and statistics (the
    reconstruction error, μ and σ; Markdown).

    Args:
        model: the VAE, "2-D latent" or "16-D latent" (sharper).
        image: the digit to reconstruct, an image file (PNG or JPEG, at most 4096×4096 pixels; over MCP send it as a data:image/png;base64,… URL, since http(s) URLs are never fetched); it is turned grey, inverted if its background is light, and unless it is 28×28 already its ink is cropped, scaled to fit 20×20 and centred in 28×28 as MNIST is; a blank image is refused.
        variations: how many variations to decode, a whole number from 1 to 64.
        scale: the noise scale s of the variations, from 0 to 3 (0 = the reconstruction itself, 1 = the encoder's own σ).
        seed: the random seed of ε, a whole number from 0 to 2147483647.
    """
    vae = load_vae(_model_name(model))
    k = check_number(variations, "vae.variations_name", 1, MAX_VARIATIONS, integer=True)
    scale = check_number(scale, "vae.scale_name", 0, 3)
    seed = check_number(seed, "common.seed", 0, MAX_SEED, integer=True)
    x = _digit(image, "vae.input_name")
    rec, var, mu, sigma, bce = vae.reconstruct(x, k, seed, scale)
    gallery = [(to_pil(v, 4), tr("vae.sample", i=i + 1)) for i, v in enumerate(var)]
    dims = min(vae.latent_dim, 4)
    stats = tr("vae.stats", name=vae.name, bce=bce, mean=vae.metric('recon_bce', float('nan')), dims=dims,
               mu=', '.join(f'{v:.2f}' for v in mu[:dims]), sigma=', '.join(f'{v:.2f}' for v in sigma[:dims]),
               more=' …' if vae.latent_dim > dims else '', mean_sigma=sigma.mean().item(), seed=seed)
    return to_pil(x[0], 8), to_pil(rec[0], 8), gallery, stats


def model_card(model) -> tuple[str, object]:
    try:
        vae = load_vae(_model_name(model))
    except Exception as exc:  # a missing checkpoint must not break the page
        return tr("ddpm.model_missing", error=exc), None
    r, v = vae.record, vae.metrics.get("values", {})
    mid = (tr("vae.midpoint", digit_like=v['midpoint_linear_digit_like_fraction'],
              pixel=v['midpoint_pixel_average_digit_like_fraction'], noise=v['midpoint_noise_digit_like_fraction'],
              confidence=v['midpoint_linear_confidence'], endpoint=v['midpoint_linear_endpoint_class_fraction'])
           if "midpoint_linear_digit_like_fraction" in v else "")
    text = tr("vae.card", name=vae.name, dim=vae.latent_dim, beta=r.get('beta', '?'), parameters=vae.parameters,
              epochs=r.get('epochs', '?'), steps=r.get('steps', '?'), batch=r.get('batch_size', '?'),
              minutes=r.get('wall_seconds', 0) / 60, hardware=r.get('hardware', '?'),
              elbo=v.get('test_elbo', float('nan')), bce=v.get('recon_bce', float('nan')), midpoint=mid,
              weights=vae.weights_hash, command=r.get('command', ''),
              measure=vae.metrics.get('commands', {}).get('vae', ''))
    return text, vae_loss_plot(r)


# ---------------------------------------------------------------- layout
def build():
    formula(T("vae.intro_md"))
    model = gr.Radio(labelled(MODELS, {"2-D latent": "vae.model_2d", "16-D latent": "vae.model_16d"}),
                     value="16-D latent", label=T("vae.model"), info=T("vae.model_info"))

    gr.Markdown(T("vae.interp_title"))
    ex = {c: [p for p in MNIST_EXAMPLES if p.rsplit("/", 1)[-1].startswith(f"{c}_")] for c in "0123456789"}
    with gr.Row():
        with gr.Column():
            image_a = digit_input(T("vae.digit_a"), (ex["3"] or MNIST_EXAMPLES or [None])[-1])
        with gr.Column():
            image_b = digit_input(T("vae.digit_b"), (ex["8"] or MNIST_EXAMPLES or [None])[-1])
        with gr.Column():
            formula(T("vae.interp_md"))
            method = gr.Radio(labelled(METHODS, {m: f"vae.{m}" for m in METHODS}), value="linear",
                              label=T("vae.method"))
            steps = gr.Slider(2, MAX_STEPS, value=10, step=1, label=T("vae.steps"))
            lam = gr.Slider(0, 1, value=0.5, step=0.01, label=T("vae.lam"))
            lam_player = Player(lam, 0, 1, step=0.05, fps=4)
            go = gr.Button(T("vae.go"), variant="primary")
    with gr.Accordion(T("vae.draw"), open=False):
        sketch = gr.Sketchpad(label=T("vae.sketch"), type="pil", height=280, canvas_size=(280, 280))
        with gr.Row():
            to_a, to_b = gr.Button(T("vae.to_a")), gr.Button(T("vae.to_b"))
            to_rec = gr.Button(T("vae.to_rec"))
    with gr.Row():
        at_lam = gr.Image(label=T("vae.at_lam"), type="pil", interactive=False, height=240)
        with gr.Column(scale=3):
            strip = gr.Gallery(label=T("vae.strip"), columns=10, height=170, object_fit="contain", format="png")
            compare = gr.Image(label=T("vae.compare"), type="pil", interactive=False, height=150)
    with gr.Row():
        info = gr.Markdown()
        gif = gr.File(label=T("vae.gif"), interactive=False)

    gr.Markdown(T("vae.map_title"))
    formula(T("vae.map_md"))
    with gr.Row():
        grid_size = gr.Slider(5, MAX_GRID, value=15, step=1, label=T("vae.grid_size"))
        draw_map = gr.Button(T("vae.draw_map"))
    plot = gr.Plot(label=T("vae.plot"))

    gr.Markdown(T("vae.recon_title"))
    with gr.Row():
        with gr.Column():
            rec_in = digit_input(T("vae.rec_in"), (ex["5"] or MNIST_EXAMPLES or [None])[-1])
        with gr.Column():
            formula(T("vae.recon_md"))
            variations = gr.Slider(1, MAX_VARIATIONS, value=8, step=1, label=T("vae.variations"))
            scale = gr.Slider(0, 3, value=1, step=0.1, label=T("vae.scale"))
            seed = seed_box(0)
            rec_go = gr.Button(T("vae.rec_go"), variant="primary")
    with gr.Row():
        seen = gr.Image(label=T("vae.seen"), type="pil", interactive=False, height=200)
        rec = gr.Image(label=T("vae.rec"), type="pil", interactive=False, height=200)
        var = gr.Gallery(label=T("vae.var"), columns=8, height=200, object_fit="contain", format="png")
    rec_stats = gr.Markdown()

    with gr.Accordion(T("vae.card_title"), open=False, elem_classes=["advanced"]):
        card = gr.Markdown()
        curve = gr.Plot()

    # events. preprocess=False: raw inputs reach our own checks (an upload that is not an image gets
    # this tab's clear message, not PIL's), as in the other tabs
    raw = {"preprocess": False}
    interp_in, interp_out = [model, image_a, image_b, method, steps, lam], [at_lam, strip, gif, compare, info]
    map_in = [image_a, image_b, steps, grid_size]
    rec_in_all, rec_out = [model, rec_in, variations, scale, seed], [seen, rec, var, rec_stats]
    go.click(interpolate, interp_in, interp_out, api_name="vae_interpolate", **raw).then(
        latent_map, map_in, plot, api_visibility="private", **raw)
    lam.release(at_lambda, [model, image_a, image_b, method, lam], at_lam, api_name="vae_at_lambda", **raw)
    lam_player.then_run(at_lambda, [model, image_a, image_b, method, lam], at_lam, **raw)
    method.change(interpolate, interp_in, interp_out, api_visibility="private", **raw)
    draw_map.click(latent_map, map_in, plot, api_name="vae_latent_map", **raw)
    rec_go.click(reconstruct, rec_in_all, rec_out, api_name="vae_reconstruct", **raw)
    model.change(interpolate, interp_in, interp_out, api_visibility="private", **raw).then(
        reconstruct, rec_in_all, rec_out, api_visibility="private", **raw).then(
        model_card, model, [card, curve], api_visibility="private")
    to_a.click(use_drawing, sketch, image_a, api_visibility="private")
    to_b.click(use_drawing, sketch, image_b, api_visibility="private")
    to_rec.click(use_drawing, sketch, rec_in, api_visibility="private")
    lesson = Exposed(dict(model=model, method=method, steps=steps, lam=lam, at_lam=at_lam, strip=strip, compare=compare,
                          info=info, grid_size=grid_size, plot=plot, variations=variations, scale=scale, seed=seed,
                          seen=seen, rec=rec, variations_out=var, rec_stats=rec_stats),
                     dict(interpolate=go, map=draw_map, reconstruct=rec_go))
    return {"load": [(interpolate, interp_in, interp_out, raw), (latent_map, map_in, plot, raw),
                     (reconstruct, rec_in_all, rec_out, raw), (model_card, [model], [card, curve])], "lesson": lesson}

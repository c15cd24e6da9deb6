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
                     seed_box, use_drawing, user_errors, write_gif)
from .vae_plots import latent_map_plot, vae_loss_plot

METHODS = ("linear", "spherical")
MAP_EXTENT, MAX_GRID = 3.0, 30
OOD_MODEL = "vae-mnist-16d"  # the sharper model is the better judge of "digit-like"

INTRO_MD = r"""
A **variational autoencoder** learns an encoder $q_\phi(z\mid x) = \mathcal N(\mu_\phi(x), \sigma^2_\phi(x))$ and a decoder
$p_\theta(x\mid z)$ by maximising the ELBO. Training minimises
$$\mathcal L = \underbrace{\mathrm{BCE}\big(x,\ \mathrm{dec}(z)\big)}_{-\log p_\theta(x\mid z)} + \beta\,\underbrace{\Big(-\tfrac12\sum_j \big(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\big)\Big)}_{\mathrm{KL}(\mathcal N(\mu,\sigma^2)\,\|\,\mathcal N(0, I))},\qquad z = \mu + \sigma\odot\varepsilon .$$
The KL term packs the codes of all digits around the origin, so the space *between* two digits decodes to digits too.
Code: `pipelines/vae/model.py` (two strided convs → `fc_mu`, `fc_logvar`; linear → two `ConvTranspose2d`).
"""

INTERP_MD = r"""
**Interpolation** encodes both digits, keeps their **means** (not samples) and decodes
$$x(\lambda) = \mathrm{dec}\big((1-\lambda)\,\mu_A + \lambda\,\mu_B\big) = \mathrm{dec}\big(\texttt{torch.lerp}(\mu_A, \mu_B, \lambda)\big)$$
($\lambda = 0$ gives A, $\lambda = 1$ gives B).
**Spherical** (slerp) follows the great circle instead of the chord, with $\cos\Omega = \frac{\mu_A\cdot\mu_B}{|\mu_A||\mu_B|}$:
$$z(\lambda) = \frac{\sin((1-\lambda)\Omega)}{\sin\Omega}\,\mu_A + \frac{\sin(\lambda\Omega)}{\sin\Omega}\,\mu_B .$$
In high dimension a Gaussian's mass sits on a shell of radius ≈ √d, and the straight chord dips inside it; slerp stays near the shell.
"""

MAP_MD = r"""
**Latent map (2-D model).** Left: where the encoder puts each test digit ($\mu$, coloured by its true class).
Right: what the decoder draws at each point of the same square. Stars: your digits A and B; lines: the two interpolation paths.
The map always uses the 2-D model (a 16-D space cannot be drawn without distorting it).
"""

RECON_MD = r"""
**Reconstruction and variations.** The reconstruction decodes the mean, $\hat x = \mathrm{dec}(\mu)$; the variations decode
samples from the encoder's posterior, $z = \mu + s\,\sigma\odot\varepsilon,\ \varepsilon\sim\mathcal N(0, I)$ (seeded), with $s$ the scale below
($s = 1$: the posterior itself). A digit the model is unsure about has a large $\sigma$ and varied samples.
"""


# ---------------------------------------------------------------- inputs
def _model_name(choice) -> str:
    return MODELS[check_choice(choice, "Model", list(MODELS))]


def _digit(image, label: str, check: bool = True) -> torch.Tensor:
    """Any upload / path / drawing -> (1, 1, 28, 28) in [-1, 1]; notes and out-of-distribution warnings to the user.

    "Digit-like" is judged by the 16-D VAE itself: an input it reconstructs worse than 99.9% of the
    MNIST test set (threshold measured by the evaluation command) gets a warning, and is still used.
    """
    try:
        x, notes = digit_tensor(image, size=28)
    except ImageInputError as exc:
        raise ImageInputError(f"{label}: {exc}") from None
    if notes:
        gr.Info(f"{label} was " + "; ".join(notes) + ".")
    x = x.unsqueeze(0)
    try:
        judge = load_vae(OOD_MODEL) if check else None
    except CheckpointMissing:
        judge = None
    limit = judge.metric("recon_bce_p999") if judge else None
    if limit:
        bce = judge.reconstruct(x, variations=0)[4]
        if bce > limit:
            gr.Warning(f"{label} does not look much like an MNIST digit: the 16-D VAE reconstructs it with an error of "
                       f"{bce:.0f} nats, worse than 99.9% of real test digits ({limit:.0f}). It was processed anyway; "
                       f"the VAE maps it to the nearest digit-like code it knows.")
    return x



def _lams(steps: int) -> list[float]:
    """λ from 0 (digit A) up to 1 (digit B), so the strip reads left to right A → B."""
    return torch.linspace(0, 1, steps).tolist()


# ---------------------------------------------------------------- callbacks
@user_errors
def interpolate(model, image_a, image_b, method, steps, lam, progress=gr.Progress()):
    """Strip of decoded images A → B, the image at λ, a GIF, and linear vs spherical side by side."""
    vae = load_vae(_model_name(model))
    check_choice(method, "Interpolation", METHODS)
    steps = check_number(steps, "Number of images", 2, MAX_STEPS, integer=True)
    lam = check_number(lam, "λ", 0, 1)
    progress(0.1, desc="encoding A and B")
    xa, xb = _digit(image_a, "Digit A"), _digit(image_b, "Digit B")
    lams = _lams(steps)
    progress(0.4, desc="decoding the path")
    images, _ = vae.interpolate(xa, xb, lams, method)
    other = "spherical" if method == "linear" else "linear"
    other_images, _ = vae.interpolate(xa, xb, lams, other)
    strip = [(to_pil(img, 4), f"λ = {l:.2f}") for img, l in zip(images, lams)]
    progress(0.7, desc="writing the GIF")
    frames = [to_pil(img, 6) for img in images]
    gif = write_gif(frames + frames[-2:0:-1], f"vae-{method}", duration_ms=120)  # A → B → A, loops smoothly
    compare = grid(torch.cat([images, other_images]), nrow=steps, scale=3)
    at_lam, _ = vae.interpolate(xa, xb, [lam], method)
    mu_a, _ = vae.encode(xa)
    mu_b, _ = vae.encode(xb)
    cos = torch.nn.functional.cosine_similarity(mu_a, mu_b).clamp(-1, 1).item()
    info = (f"**{vae.name}** ({vae.latent_dim}-D): |μ_A| = {mu_a.norm():.2f}, |μ_B| = {mu_b.norm():.2f}, "
            f"angle Ω = {np.degrees(np.arccos(cos)):.0f}°. Comparison: top row **{method}**, bottom row **{other}**.")
    return to_pil(at_lam[0], 8), strip, gif, compare, info


@user_errors
def at_lambda(model, image_a, image_b, method, lam):
    """Only the decoded image at one λ (the slider's live update)."""
    vae = load_vae(_model_name(model))
    check_choice(method, "Interpolation", METHODS)
    lam = check_number(lam, "λ", 0, 1)
    xa, _ = digit_tensor(image_a)
    xb, _ = digit_tensor(image_b)
    img, _ = vae.interpolate(xa.unsqueeze(0), xb.unsqueeze(0), [lam], method)
    return to_pil(img[0], 8)


@user_errors
def latent_map(image_a, image_b, steps, grid_size, progress=gr.Progress()):
    """The 2-D model's latent plane: test μ by class, decoded grid, A, B and both interpolation paths."""
    steps = check_number(steps, "Number of images", 2, MAX_STEPS, integer=True)
    n = check_number(grid_size, "Grid size", 5, MAX_GRID, integer=True)
    vae = load_vae(MAP_MODEL)
    progress(0.1, desc="loading the test-set codes")
    mu, labels = vae.test_latents()
    xa, xb = _digit(image_a, "Digit A", check=False), _digit(image_b, "Digit B", check=False)
    paths = {m: vae.interpolate(xa, xb, _lams(steps), m)[1] for m in METHODS}
    endpoints = torch.cat([vae.encode(xa)[0], vae.encode(xb)[0]])
    progress(0.4, desc=f"decoding a {n}×{n} grid")
    tiles = grid(vae.latent_grid(n, MAP_EXTENT), nrow=n, padding=0)
    half = MAP_EXTENT * (1 + 1 / (n - 1))  # tile centres at ±MAP_EXTENT, so the image reaches half a tile further
    progress(0.7, desc="drawing")
    return latent_map_plot(mu, labels, np.asarray(tiles.convert("L")), half, paths, endpoints, CLASS_NAMES["mnist"])


@user_errors
def reconstruct(model, image, variations, scale, seed):
    """Input as the model sees it, decode(μ), and decode(μ + s·σ·ε) for `variations` seeded ε."""
    vae = load_vae(_model_name(model))
    k = check_number(variations, "Variations", 1, MAX_VARIATIONS, integer=True)
    scale = check_number(scale, "Scale s", 0, 3)
    seed = check_number(seed, "Seed", 0, MAX_SEED, integer=True)
    x = _digit(image, "The input")
    rec, var, mu, sigma, bce = vae.reconstruct(x, k, seed, scale)
    gallery = [(to_pil(v, 4), f"sample {i + 1}") for i, v in enumerate(var)]
    dims = min(vae.latent_dim, 4)
    stats = (f"**{vae.name}**: BCE(x, dec(μ)) = {bce:.1f} nats (test-set mean {vae.metric('recon_bce', float('nan')):.1f}). "
             f"μ[:{dims}] = {', '.join(f'{v:.2f}' for v in mu[:dims])}; "
             f"σ[:{dims}] = {', '.join(f'{v:.2f}' for v in sigma[:dims])}"
             f"{' …' if vae.latent_dim > dims else ''}; mean σ = {sigma.mean():.3f}. Seed {seed}.")
    return to_pil(x[0], 8), to_pil(rec[0], 8), gallery, stats


def model_card(model) -> tuple[str, object]:
    try:
        vae = load_vae(_model_name(model))
    except Exception as exc:  # a missing checkpoint must not break the page
        return f"**Model not available.** {exc}", None
    r, v = vae.record, vae.metrics.get("values", {})
    mid = (f" Midpoint check (λ = ½ between digits of two different classes): "
           f"{v['midpoint_linear_digit_like_fraction']:.0%} of midpoints are digit-like in the judge classifier's feature "
           f"space (pixel average: {v['midpoint_pixel_average_digit_like_fraction']:.0%}, noise: "
           f"{v['midpoint_noise_digit_like_fraction']:.0%}); the judge is on average "
           f"{v['midpoint_linear_confidence']:.0%} sure of a class, and names one of the two endpoint classes for "
           f"{v['midpoint_linear_endpoint_class_fraction']:.0%}."
           if "midpoint_linear_digit_like_fraction" in v else "")
    text = (f"**{vae.name}**: {vae.latent_dim}-D latent, β = {r.get('beta', '?')}, {vae.parameters:,} parameters, "
            f"{r.get('epochs', '?')} epochs ({r.get('steps', '?')} steps × batch {r.get('batch_size', '?')}) in "
            f"{r.get('wall_seconds', 0) / 60:.1f} min on {r.get('hardware', '?')}. "
            f"Test ELBO {v.get('test_elbo', float('nan')):.1f} nats/image; reconstruction BCE "
            f"{v.get('recon_bce', float('nan')):.1f} nats/image.{mid} Weights `{vae.weights_hash}`. "
            f"Retrain: `{r.get('command', '')}`; measure: `{vae.metrics.get('commands', {}).get('vae', '')}`.")
    return text, vae_loss_plot(r)


# ---------------------------------------------------------------- layout
def build():
    formula(INTRO_MD)
    model = gr.Radio(list(MODELS), value="16-D latent", label="Model",
                     info="16-D: sharper reconstructions. 2-D: coarser, but its whole latent space fits on the map below.")

    gr.Markdown("## Interpolation")
    ex = {c: [p for p in MNIST_EXAMPLES if p.rsplit("/", 1)[-1].startswith(f"{c}_")] for c in "0123456789"}
    with gr.Row():
        with gr.Column():
            image_a = digit_input("Digit A (λ = 0)", (ex["3"] or MNIST_EXAMPLES or [None])[-1])
        with gr.Column():
            image_b = digit_input("Digit B (λ = 1)", (ex["8"] or MNIST_EXAMPLES or [None])[-1])
        with gr.Column():
            formula(INTERP_MD)
            method = gr.Radio(list(METHODS), value="linear", label="Interpolation path")
            steps = gr.Slider(2, MAX_STEPS, value=10, step=1, label="Number of images in the strip")
            lam = gr.Slider(0, 1, value=0.5, step=0.01, label="λ (0 = A, 1 = B)")
            lam_player = Player(lam, 0, 1, step=0.05, fps=4)
            go = gr.Button("Interpolate", variant="primary")
    with gr.Accordion("Draw a digit instead", open=False):
        sketch = gr.Sketchpad(label="Draw a digit (any colour on any background)", type="pil", height=280,
                              canvas_size=(280, 280))
        with gr.Row():
            to_a, to_b = gr.Button("Use the drawing as digit A"), gr.Button("Use the drawing as digit B")
            to_rec = gr.Button("Use the drawing for the reconstruction below")
    with gr.Row():
        at_lam = gr.Image(label="Decoded at the chosen λ", type="pil", interactive=False, height=240)
        with gr.Column(scale=3):
            strip = gr.Gallery(label="A → B (λ from 0 to 1)", columns=10, height=170, object_fit="contain",
                               format="png")
            compare = gr.Image(label="Linear vs spherical (top: the chosen path)", type="pil", interactive=False,
                               height=150)
    with gr.Row():
        info = gr.Markdown()
        gif = gr.File(label="Animated GIF (A → B → A)", interactive=False)

    gr.Markdown("## Latent map")
    formula(MAP_MD)
    with gr.Row():
        grid_size = gr.Slider(5, MAX_GRID, value=15, step=1, label="Decoded grid: tiles per side")
        draw_map = gr.Button("Draw the map")
    plot = gr.Plot(label="Latent plane of the 2-D model")

    gr.Markdown("## Reconstruction")
    with gr.Row():
        with gr.Column():
            rec_in = digit_input("Input digit", (ex["5"] or MNIST_EXAMPLES or [None])[-1])
        with gr.Column():
            formula(RECON_MD)
            variations = gr.Slider(1, MAX_VARIATIONS, value=8, step=1, label="Variations")
            scale = gr.Slider(0, 3, value=1, step=0.1, label="Scale s of σ")
            seed = seed_box(0)
            rec_go = gr.Button("Reconstruct", variant="primary")
    with gr.Row():
        seen = gr.Image(label="Input as the model sees it (28×28)", type="pil", interactive=False, height=200)
        rec = gr.Image(label="Reconstruction dec(μ)", type="pil", interactive=False, height=200)
        var = gr.Gallery(label="Variations dec(μ + s·σ·ε)", columns=8, height=200, object_fit="contain", format="png")
    rec_stats = gr.Markdown()

    with gr.Accordion("Model card: training record and measured figures", open=False,
                      elem_classes=["advanced"]):
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
    return {"load": [(interpolate, interp_in, interp_out, raw), (latent_map, map_in, plot, raw),
                     (reconstruct, rec_in_all, rec_out, raw), (model_card, [model], [card, curve])]}

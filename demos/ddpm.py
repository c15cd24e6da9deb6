"""Forward & reverse diffusion: q(x_t | x_0) in closed form, and a trained MNIST DDPM sampling."""
from __future__ import annotations


import gradio as gr

from pipelines.ddpm.pipeline import load_ddpm
from pipelines.forward import forward_scheduler, noised
from pipelines.images import grid, side_by_side, to_pil
from pipelines.infotext import attach
from pipelines.schedules import SCHEDULES

from .common import (FramesView, MNIST_EXAMPLES, Player, SettingsDrop, budget_info, check_bool, check_choice,
                     check_cost, check_number, digit_input, digit_tensor, formula, samples_image, seed_box, steps_run,
                     use_drawing, user_errors, write_gif)
from .plots import loss_plot, schedule_plot

STRIP_T = (0, 50, 100, 200, 300, 500, 700, 999)
REVERSE_SAMPLERS = ("DDIM", "DDPM (ancestral)")
MAX_IMAGES, MAX_STEPS, MAX_FRAMES = 36, 250, 25
MAX_IMAGE_STEPS = 1_200  # images × denoising steps per request: ≈ 5 s at 4.2 ms per image-step (2 CPU threads)

FORWARD_MD = r"""
**Forward process** (Ho et al. 2020, eq. 4). Noise is added in one jump, no loop needed:
$$x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\qquad \varepsilon\sim\mathcal N(0, I),\qquad \bar\alpha_t = \prod_{s\le t}(1-\beta_s)$$
It is the closed form of the Markov chain $x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\varepsilon_t$.
**Zero terminal SNR** (Lin et al. 2024) rescales the betas so that $\bar\alpha_T = 0$: at $t = T$ no trace of $x_0$ is left
(`pipelines/schedules.py: rescale_zero_terminal_snr`).
The maths here is diffusers' `DDPMScheduler.add_noise` with the schedule you pick.
"""

REVERSE_MD = r"""
**Reverse process.** The network predicts the noise $\varepsilon_\theta(x_t, t)$, which gives an estimate of the clean image
$$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta(x_t,t)}{\sqrt{\bar\alpha_t}}.$$
*DDPM ancestral* (all $T = 1000$ steps): $x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\varepsilon_\theta\Big) + \sigma_t z$.
*DDIM* (Song et al. 2021, eq. 12), any $N$ steps: $x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}-\sigma_t^2}\;\varepsilon_\theta + \sigma_t z$, with $\sigma_t = \eta\,\cdot$(DDPM's) — $\eta=0$ is deterministic.
Left of each frame: $x_t$; right: the predicted $\hat x_0$.
"""


# ---------------------------------------------------------------- forward process
def _caption_t(schedule: str, zero_snr: bool, t: int) -> str:
    abar = forward_scheduler(schedule, zero_snr).alphas_cumprod[t].item()
    snr = abar / (1 - abar) if abar < 1 else float("inf")
    return f"t={t}  ᾱ={abar:.4f}  SNR={snr:.3g}"


@user_errors
def forward_process(image, schedule, zero_snr, t, seed):
    """x_0 -> the strip of x_t at fixed timesteps, x_t at the chosen t, a GIF, the schedule plot."""
    check_choice(schedule, "Schedule", SCHEDULES)
    t = check_number(t, "t", 0, 999, integer=True)
    seed = check_number(seed, "Seed", 0, 2**31 - 1, integer=True)
    zero_snr = check_bool(zero_snr, "Zero terminal SNR")
    x0, notes = digit_tensor(image)
    if notes:
        gr.Info("Input " + "; ".join(notes) + ".")
    strip = noised(x0, STRIP_T, schedule, zero_snr, seed)
    gallery = [(to_pil(x, 4), _caption_t(schedule, zero_snr, s)) for x, s in zip(strip, STRIP_T)]
    gif_t = list(range(0, 1000, 20)) + [999]
    gif = write_gif([to_pil(x, 4) for x in noised(x0, gif_t, schedule, zero_snr, seed)], "forward")
    at_t = noised(x0, [t], schedule, zero_snr, seed)[0]
    return gallery, to_pil(at_t, 8), _caption_t(schedule, zero_snr, t), gif, schedule_plot(schedule, zero_snr, t)


@user_errors
def forward_at_t(image, schedule, zero_snr, t, seed):
    """Only x_t at one t (the slider's live update)."""
    check_choice(schedule, "Schedule", SCHEDULES)
    t = check_number(t, "t", 0, 999, integer=True)
    zero_snr = check_bool(zero_snr, "Zero terminal SNR")
    seed = check_number(seed, "Seed", 0, 2**31 - 1, integer=True)
    x0, _ = digit_tensor(image)
    at_t = noised(x0, [t], schedule, zero_snr, seed)[0]
    return to_pil(at_t, 8), _caption_t(schedule, zero_snr, t)


# ---------------------------------------------------------------- reverse process
def model_info() -> str:
    try:
        m = load_ddpm()
    except Exception as exc:  # a missing checkpoint must not break the page
        return f"**Model not available.** {exc}"
    r = m.record
    return (f"**Model:** diffusers `UNet2DModel`, {m.parameters:,} parameters, trained on the MNIST training set "
            f"({r.get('train_images', '?'):,} images) for {r.get('steps', '?')} steps × batch {r.get('batch_size', '?')} "
            f"(≈{r.get('epochs', '?')} epochs) in {r.get('wall_seconds', 0) / 60:.0f} min on {r.get('hardware', '?')}; "
            f"final loss {r.get('final_loss', float('nan')):.4f}. Weights `{m.weights_hash}`. "
            f"Retrain: `{r.get('command', '')}`")


def model_loss_plot():
    try:
        return loss_plot({"ε-MSE": load_ddpm().record.get("loss_curve", [])}, "DDPM training loss (running mean)")
    except Exception:
        return None


@user_errors
def reverse_process(sampler, steps, num_images, eta, seed, progress=gr.Progress()):
    """Stream (x_t, x̂_0) frames while denoising pure noise, then the gallery and the GIF."""
    check_choice(sampler, "Sampler", REVERSE_SAMPLERS)
    steps = check_number(steps, "Steps", 1, MAX_STEPS, integer=True)
    num_images = check_number(num_images, "Number of images", 1, MAX_IMAGES, integer=True)
    eta = check_number(eta, "η", 0, 1)
    seed = check_number(seed, "Seed", 0, 2**31 - 1, integer=True)
    check_cost(num_images, steps_run(sampler, steps), MAX_IMAGE_STEPS)
    model = load_ddpm()
    nrow = max(1, int(num_images ** 0.5 + 0.999))
    frames = []
    run = model.frames(sampler=sampler, steps=steps, num_images=num_images, seed=seed, eta=eta)
    for step in run.thinned(MAX_FRAMES):
        img = side_by_side(grid(step.x, nrow, scale=2), grid(step.denoised, nrow, scale=2))
        frames.append((img, f"step {step.i + 1}/{step.n}  (t={step.t})"))
        progress((step.i + 1, step.n), desc="denoising")
        status = f"step {step.i + 1}/{step.n}, t = {step.t}"
        yield img, grid(step.x.clamp(-1, 1), nrow, scale=3), status, *FramesView.update([], None)
    gif = write_gif([f for f, _ in frames], "reverse", duration_ms=120)
    final = attach(grid(step.x.clamp(-1, 1), nrow, scale=3), tab="ddpm", checkpoint="ddpm-mnist",
                   weights=model.weights_hash, sampler=sampler, steps=steps, num_images=num_images, eta=eta, seed=seed,
                   precision=model.precision.name)
    yield frames[-1][0], final, f"done: {step.n} steps, seed {seed}", *FramesView.update(frames, gif)


# ---------------------------------------------------------------- layout
def build():
    gr.Markdown("## Forward process $q(x_t \\mid x_0)$", latex_delimiters=[{"left": "$", "right": "$", "display": False}])
    with gr.Row():
        with gr.Column(scale=1):
            image = digit_input("x₀: pick a test digit below, upload, or draw",
                                MNIST_EXAMPLES[0] if MNIST_EXAMPLES else None)
            with gr.Accordion("Draw a digit", open=False):
                sketch = gr.Sketchpad(label="white on black, or black on white", type="pil", height=280,
                                      canvas_size=(280, 280))
                use_sketch = gr.Button("Use this drawing as x₀")
        with gr.Column(scale=2):
            formula(FORWARD_MD)
            with gr.Row():
                schedule = gr.Dropdown(list(SCHEDULES), value="linear (DDPM)", label="Noise schedule (β_t)")
                zero_snr = gr.Checkbox(False, label="Zero terminal SNR (rescale betas)")
                fwd_seed = seed_box(0)
            t = gr.Slider(0, 999, value=300, step=1, label="t (0 = clean, 999 = last step)")
            t_player = Player(t, 0, 999, step=25, fps=4)
            with gr.Row():
                x_t = gr.Image(label="x_t at the chosen t", type="pil", interactive=False, height=230)
                t_info = gr.Textbox(label="ᾱ_t and SNR at t", interactive=False)
    strip = gr.Gallery(label="x_t along the chain (same ε for every t)", columns=len(STRIP_T), height=200,
                       object_fit="contain", format="png")
    with gr.Row():
        plot = gr.Plot(label="Schedules: bold = the one chosen; dashed = with zero terminal SNR")
        fwd_gif = gr.File(label="Forward-process GIF (t = 0 … 999)")
    show = gr.Button("Show the forward process", variant="primary")

    fwd_inputs = [image, schedule, zero_snr, t, fwd_seed]
    # preprocess=False: raw inputs reach our own checks (image size before decoding, named ranges),
    # so bad input gets this tab's clear messages rather than PIL's or a component's
    fwd_outputs = [strip, x_t, t_info, fwd_gif, plot]
    show.click(forward_process, fwd_inputs, fwd_outputs, api_name="forward", preprocess=False)
    for ctl in (schedule, zero_snr, image, fwd_seed):
        ctl.change(forward_process, fwd_inputs, fwd_outputs, api_visibility="private", preprocess=False)
    t.release(forward_at_t, fwd_inputs, [x_t, t_info], api_name="forward_at_t", preprocess=False)
    t_player.then_run(forward_at_t, fwd_inputs, [x_t, t_info], preprocess=False)
    use_sketch.click(use_drawing, sketch, image, api_visibility="private")

    gr.Markdown("## Reverse process: a DDPM trained here on MNIST")
    with gr.Row():
        with gr.Column(scale=1):
            sampler = gr.Radio(list(REVERSE_SAMPLERS), value="DDIM", label="Sampler")
            steps = gr.Slider(1, MAX_STEPS, value=20, step=1, label="DDIM steps N (DDPM always runs all 1000)")
            eta = gr.Slider(0, 1, value=0, step=0.05, label="DDIM η (0 = deterministic, 1 ≈ DDPM noise)")
            num_images = gr.Slider(1, MAX_IMAGES, value=16, step=1, label="Number of images",
                                   info=budget_info(MAX_IMAGE_STEPS, ancestral=True))
            rev_seed = seed_box(0)
            run = gr.Button("Denoise from pure noise", variant="primary")
            status = gr.Textbox(label="Progress", interactive=False)
            SettingsDrop("ddpm", dict(sampler=sampler, steps=steps, num_images=num_images, eta=eta, seed=rev_seed))
        with gr.Column(scale=2):
            formula(REVERSE_MD)
            with gr.Row():
                live = gr.Image(label="Now: x_t (left) and predicted x̂₀ (right)", type="pil", interactive=False,
                                height=300)
                final = samples_image("Samples (PNG with its settings inside)")
    frames = FramesView("Reverse process")
    with gr.Accordion("Model card: parameters and training record", open=False,
                      elem_classes=["advanced"]):
        info = gr.Markdown()
        curve = gr.Plot()
    run.click(reverse_process, [sampler, steps, num_images, eta, rev_seed],
              [live, final, status, *frames.outputs], api_name="reverse", preprocess=False)
    return {"load": [(forward_process, fwd_inputs, fwd_outputs, {"preprocess": False}),
                     (model_info, [], [info]), (model_loss_plot, [], [curve])]}

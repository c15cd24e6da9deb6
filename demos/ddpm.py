"""Forward & reverse diffusion: q(x_t | x_0) in closed form, and a trained MNIST DDPM sampling."""
from __future__ import annotations


import gradio as gr

from pipelines.ddpm.pipeline import load_ddpm
from pipelines.forward import forward_scheduler, noised
from pipelines.images import grid, side_by_side, to_pil
from pipelines.infotext import attach
from pipelines.schedules import SCHEDULES

from .common import (Budget, FramesView, MNIST_EXAMPLES, Player, SAMPLER_KEYS, SettingsDrop, StreamedFrames,
                     budget_info, check_bool, check_choice, check_cost, check_number, digit_input, digit_tensor,
                     formula, labelled, samples_image, seed_box, steps_run, use_drawing, user_errors, write_gif)
from .i18n import T, tr
from .lessons import Exposed
from .plots import SCHEDULE_KEYS, loss_plot, schedule_plot
from .zerogpu import gpu_task

STRIP_T = (0, 50, 100, 200, 300, 500, 700, 999)
REVERSE_SAMPLERS = ("DDIM", "DPM-Solver++ (multistep)", "UniPC (multistep)", "DDPM (ancestral)")
# the cheapest sampler and steps that keep DDIM 20 fp32's quality (python -m pipelines.evaluate --frontier;
# tests/test_frontier.py holds these to results/frontier.json)
DEFAULT_SAMPLER, DEFAULT_STEPS = "UniPC (multistep)", 6
MAX_IMAGES, MAX_STEPS, MAX_FRAMES = 36, 250, 25
BUDGET = Budget(2_400, overhead=10)  # per request: ≈ 5 s at 2.1 ms per image-step + 21 ms per call (bf16, 2 threads)

# ---------------------------------------------------------------- forward process
def _caption_t(schedule: str, zero_snr: bool, t: int) -> str:
    abar = forward_scheduler(schedule, zero_snr).alphas_cumprod[t].item()
    snr = abar / (1 - abar) if abar < 1 else float("inf")
    return f"t={t}  ᾱ={abar:.4f}  SNR={snr:.3g}"


@user_errors
def forward_process(image, schedule, zero_snr, t, seed):
    """Noise a digit with the closed-form forward process q(x_t | x_0) of a DDPM (no network runs): returns a
    gallery of x_t at t = 0, 50, 100, 200, 300, 500, 700 and 999, x_t at the chosen t with its caption (t, ᾱ_t and the
    SNR), an animated GIF of x_t from t = 0 to 999 and a plot of the noise schedule.

    Args:
        image: the clean digit x_0, an image file (PNG or JPEG, at most 4096×4096 pixels; over MCP send it as a data:image/png;base64,… URL, since http(s) URLs are never fetched); it is turned grey, inverted if its background is light, and unless it is 28×28 already its ink is cropped, scaled to fit 20×20 and centred in 28×28 as MNIST is; a blank image is refused.
        schedule: the noise schedule: "linear (DDPM)", "scaled-linear (Stable Diffusion)" or "cosine (improved DDPM)".
        zero_snr: true to rescale the schedule to zero terminal SNR (x_999 is pure noise), false to use it as is.
        t: the timestep, a whole number from 0 to 999 (0 = the clean image).
        seed: the random seed of the noise ε, a whole number from 0 to 2147483647.
    """
    check_choice(schedule, "ddpm.schedule_name", SCHEDULES)
    t = check_number(t, "t", 0, 999, integer=True)
    seed = check_number(seed, "common.seed", 0, 2**31 - 1, integer=True)
    zero_snr = check_bool(zero_snr, "ddpm.zero_snr_name")
    x0, notes = digit_tensor(image)
    if notes:
        gr.Info(tr("common.input_notes", notes="; ".join(notes)))
    strip = noised(x0, STRIP_T, schedule, zero_snr, seed)
    gallery = [(to_pil(x, 4), _caption_t(schedule, zero_snr, s)) for x, s in zip(strip, STRIP_T)]
    gif_t = list(range(0, 1000, 20)) + [999]
    gif = write_gif([to_pil(x, 4) for x in noised(x0, gif_t, schedule, zero_snr, seed)], "forward")
    at_t = noised(x0, [t], schedule, zero_snr, seed)[0]
    return gallery, to_pil(at_t, 8), _caption_t(schedule, zero_snr, t), gif, schedule_plot(schedule, zero_snr, t)


@user_errors
def forward_at_t(image, schedule, zero_snr, t, seed):
    """Only x_t at one timestep t of the closed-form forward process q(x_t | x_0) (no network runs): returns the
    noised image and its caption (t, ᾱ_t and the SNR).

    Args:
        image: the clean digit x_0, an image file (PNG or JPEG, at most 4096×4096 pixels; over MCP send it as a data:image/png;base64,… URL, since http(s) URLs are never fetched); it is turned grey, inverted if its background is light, and unless it is 28×28 already its ink is cropped, scaled to fit 20×20 and centred in 28×28 as MNIST is; a blank image is refused.
        schedule: the noise schedule: "linear (DDPM)", "scaled-linear (Stable Diffusion)" or "cosine (improved DDPM)".
        zero_snr: true to rescale the schedule to zero terminal SNR (x_999 is pure noise), false to use it as is.
        t: the timestep, a whole number from 0 to 999 (0 = the clean image).
        seed: the random seed of the noise ε, a whole number from 0 to 2147483647.
    """
    check_choice(schedule, "ddpm.schedule_name", SCHEDULES)
    t = check_number(t, "t", 0, 999, integer=True)
    zero_snr = check_bool(zero_snr, "ddpm.zero_snr_name")
    seed = check_number(seed, "common.seed", 0, 2**31 - 1, integer=True)
    x0, _ = digit_tensor(image)
    at_t = noised(x0, [t], schedule, zero_snr, seed)[0]
    return to_pil(at_t, 8), _caption_t(schedule, zero_snr, t)


# ---------------------------------------------------------------- reverse process
def model_info() -> str:
    try:
        m = load_ddpm()
    except Exception as exc:  # a missing checkpoint must not break the page
        return tr("ddpm.model_missing", error=exc)
    r = m.record
    return tr("ddpm.model_card", parameters=m.parameters, images=f"{r.get('train_images', '?'):,}",
              steps=r.get('steps', '?'), batch=r.get('batch_size', '?'), epochs=r.get('epochs', '?'),
              minutes=r.get('wall_seconds', 0) / 60, hardware=r.get('hardware', '?'),
              loss=r.get('final_loss', float('nan')), weights=m.weights_hash, command=r.get('command', ''))


def model_loss_plot():
    try:
        return loss_plot({"ε-MSE": load_ddpm().record.get("loss_curve", [])}, tr("ddpm.loss_title"))
    except Exception:
        return None


@gpu_task()
@user_errors
def reverse_process(sampler, steps, num_images, eta, seed, progress=gr.Progress()):
    """Generate MNIST digits with the DDPM trained here, from pure noise, streaming the denoising: each update gives
    the current frame (x_t beside the predicted x̂_0), the samples so far and a status line; the last gives the final
    grid of samples (a PNG with its settings), every frame and an animated GIF.

    Args:
        sampler: "DDIM", "DPM-Solver++ (multistep)", "UniPC (multistep)" or "DDPM (ancestral)" (the ancestral sampler always runs all 1000 training steps and ignores steps).
        steps: the denoising steps, a whole number from 1 to 250.
        num_images: how many digits to generate, a whole number from 1 to 36; images × steps is also bounded by this server's per-request budget (a clear error when over it).
        eta: DDIM's η, from 0 to 1 (used by DDIM only): 0 = deterministic, 1 = as much fresh noise per step as DDPM.
        seed: the random seed of the starting noise, a whole number from 0 to 2147483647.
    """
    check_choice(sampler, "ddpm.sampler_name", REVERSE_SAMPLERS)
    steps = check_number(steps, "ddpm.steps_name", 1, MAX_STEPS, integer=True)
    num_images = check_number(num_images, "ddpm.images_name", 1, MAX_IMAGES, integer=True)
    eta = check_number(eta, "η", 0, 1)
    seed = check_number(seed, "common.seed", 0, 2**31 - 1, integer=True)
    check_cost(num_images, steps_run(sampler, steps), BUDGET)
    model = load_ddpm()
    nrow = max(1, int(num_images ** 0.5 + 0.999))
    frames = StreamedFrames()
    run = model.frames(sampler=sampler, steps=steps, num_images=num_images, seed=seed, eta=eta)
    for step in run.thinned(MAX_FRAMES):
        img = side_by_side(grid(step.x, nrow, scale=2), grid(step.denoised, nrow, scale=2))
        live = frames.add(img, tr("ddpm.frame_caption", i=step.i + 1, n=step.n, t=step.t))
        progress((step.i + 1, step.n), desc=tr("ddpm.denoising"))
        status = tr("ddpm.status_step", i=step.i + 1, n=step.n, t=step.t)
        yield live, grid(step.x.clamp(-1, 1), nrow, scale=3), status, *FramesView.update([], None)
    gif = frames.gif("reverse", duration_ms=120)
    final = attach(grid(step.x.clamp(-1, 1), nrow, scale=3), tab="ddpm", checkpoint="ddpm-mnist",
                   weights=model.weights_hash, sampler=sampler, steps=steps, num_images=num_images, eta=eta, seed=seed,
                   precision=model.precision.label)
    yield frames.last, final, tr("ddpm.status_done", n=step.n, seed=seed), *FramesView.update(frames, gif)


# ---------------------------------------------------------------- layout
def build():
    gr.Markdown(T("ddpm.forward_title"), latex_delimiters=[{"left": "$", "right": "$", "display": False}])
    with gr.Row():
        with gr.Column(scale=1):
            image = digit_input(T("ddpm.x0_input"), MNIST_EXAMPLES[0] if MNIST_EXAMPLES else None)
            with gr.Accordion(T("ddpm.draw"), open=False):
                sketch = gr.Sketchpad(label=T("ddpm.sketch"), type="pil", height=280, canvas_size=(280, 280))
                use_sketch = gr.Button(T("ddpm.use_sketch"))
        with gr.Column(scale=2):
            formula(T("ddpm.forward_md"))
            with gr.Row():
                schedule = gr.Dropdown(labelled(SCHEDULES, {k: f"schedule.{v}" for k, v in SCHEDULE_KEYS.items()}),
                                       value="linear (DDPM)", label=T("ddpm.schedule"))
                zero_snr = gr.Checkbox(False, label=T("ddpm.zero_snr"))
                fwd_seed = seed_box(0)
            t = gr.Slider(0, 999, value=300, step=1, label=T("ddpm.t"))
            t_player = Player(t, 0, 999, step=25, fps=4)
            with gr.Row():
                x_t = gr.Image(label=T("ddpm.x_t"), type="pil", interactive=False, height=230)
                t_info = gr.Textbox(label=T("ddpm.t_info"), interactive=False)
    strip = gr.Gallery(label=T("ddpm.strip"), columns=len(STRIP_T), height=200, object_fit="contain", format="png")
    with gr.Row():
        plot = gr.Plot(label=T("ddpm.plot"))
        fwd_gif = gr.File(label=T("ddpm.fwd_gif"))
    show = gr.Button(T("ddpm.show"), variant="primary")

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

    gr.Markdown(T("ddpm.reverse_title"))
    with gr.Row():
        with gr.Column(scale=1):
            sampler = gr.Radio(labelled(REVERSE_SAMPLERS, SAMPLER_KEYS), value=DEFAULT_SAMPLER, label=T("ddpm.sampler"))
            steps = gr.Slider(1, MAX_STEPS, value=DEFAULT_STEPS, step=1, label=T("ddpm.steps"))
            eta = gr.Slider(0, 1, value=0, step=0.05, label=T("ddpm.eta"))
            num_images = gr.Slider(1, MAX_IMAGES, value=16, step=1, label=T("ddpm.images"),
                                   info=budget_info(BUDGET, ancestral=True))
            rev_seed = seed_box(0)
            run = gr.Button(T("ddpm.run"), variant="primary")
            status = gr.Textbox(label=T("ddpm.progress"), interactive=False)
            SettingsDrop("ddpm", dict(sampler=sampler, steps=steps, num_images=num_images, eta=eta, seed=rev_seed))
        with gr.Column(scale=2):
            formula(T("ddpm.reverse_md"))
            with gr.Row():
                live = gr.Image(label=T("ddpm.live"), type="pil", interactive=False, height=300)
                final = samples_image("ddpm.samples")
    frames = FramesView("ddpm.frames")
    with gr.Accordion(T("ddpm.card"), open=False, elem_classes=["advanced"]):
        info = gr.Markdown()
        curve = gr.Plot()
    run.click(reverse_process, [sampler, steps, num_images, eta, rev_seed],
              [live, final, status, *frames.outputs], api_name="reverse", preprocess=False)
    lesson = Exposed(dict(schedule=schedule, zero_snr=zero_snr, t=t, x_t=x_t, t_info=t_info, strip=strip, plot=plot,
                          sampler=sampler, steps=steps, eta=eta, num_images=num_images, seed=rev_seed, live=live,
                          samples=final, status=status, frames=frames.gallery), dict(forward=show, reverse=run))
    return {"load": [(forward_process, fwd_inputs, fwd_outputs, {"preprocess": False}),
                     (model_info, [], [info]), (model_loss_plot, [], [curve])], "lesson": lesson}

"""Conditioning: the four ways to give a UNet its label (add, concat, cross-attention, AdaLN), trained here on the
same backbone and compared side by side."""
from __future__ import annotations

import inspect

import gradio as gr
import torch

from pipelines.cfg import model as unet_model
from pipelines.cfg.pipeline import CONDITIONING_MODELS, MAX_SCALE, load_cfg
from pipelines.checkpoints import CheckpointMissing
from pipelines.images import labelled_grid
from pipelines.measure.conditioning import TITLES, measured, readme_section

from .cfg import MAX_IMAGE_STEPS
from .common import budget_info, check_choice, check_cost, check_number, formula, seed_box, user_errors
from .plots import curves_plot, loss_plot

CHOICES = {TITLES[m]: m for m in CONDITIONING_MODELS}    # "cross-attention" -> "cross_attention"
CLASSES = ["all ten", *map(str, range(10))]
MAX_STEPS, PER_CLASS = 100, 8

INTRO_MD = r"""
## Conditioning: four ways to give a UNet its condition
The four models below are **the same network** (the hand-written UNet of the CFG tab: 28 → 14 → 7, self-attention at
7×7), trained on the same MNIST images for the same number of steps from the same seed, with the same 10 % label dropout
to a learned null label. They differ **only** in how the label $y$ enters. Each is a few lines of
`pipelines/cfg/model.py`, switched by `ClassConditionalUNet(conditioning=...)`.

| mechanism | where $y$ enters | formula |
|---|---|---|
| **add** | the time embedding | $e = \mathrm{MLP}(t) + E[y]$, read by every block as a scale and shift |
| **concat** | the input | $x_{\text{in}} = [\,x_t \,;\, M[y]\,]$, a learned map per class as extra channels |
| **cross-attention** | the attention layers | $h \leftarrow h + W_o\,\mathrm{softmax}(QK^\top/\sqrt d)\,V$, $K, V$ from the label's tokens $T[y]$ |
| **AdaLN** | every normalisation | $h = x + \alpha(c) \odot F\big((1+\gamma(c)) \odot \mathrm{GN}(x) + \beta(c)\big)$, $c = \mathrm{MLP}(t) + E[y]$ |
"""

MECHANISM_MD = {
    "add": r"""
**Add.** $e = \mathrm{MLP}(\text{sinusoid}(t)) + E[y]$: the label's embedding joins the timestep's, and every residual
and attention block reads that one vector (here as a scale and shift after its GroupNorm, as in ADM; the original
DDPM adds it as a bias). One table lookup; the label reaches every block at every resolution.
**Used for:** class labels in DDPM/ADM-style UNets, and the CFG tab's model.""",
    "concat": r"""
**Concat.** $x_{\text{in}} = [\,x_t \,;\, M[y]\,]$: a learned $4\times28\times28$ map per class (and one for "no
label") is stacked on the noisy image's channels, so the label enters once, at the first convolution, and must be
carried through the network by its features. The blocks see the time embedding alone.
**Used for:** spatial conditions that line up with the image: a low-resolution image (SR3 super-resolution), a mask
(inpainting), depth or edges (ControlNet-style), the VAE latent of an image (image variation).""",
    "cross_attention": r"""
**Cross-attention.** After each self-attention at 7×7, every pixel's query attends to the label's 4 learned tokens:
$h \leftarrow h + W_o\,\mathrm{softmax}(Q K^\top/\sqrt d)\,V$ with $Q = W_q\,\mathrm{GN}(h)$, $K = W_k T[y]$,
$V = W_v T[y]$. Each part of the image decides which tokens to look at. The blocks see the time embedding alone.
**Used for:** text: Stable Diffusion's UNet attends to the prompt's token embeddings this way (the text-to-image tab
shows its per-word maps).""",
    "adaln": r"""
**AdaLN (adaLN-Zero).** $c = \mathrm{MLP}(t) + E[y]$ sets every norm's scale $\gamma$ and shift $\beta$ and a gate
$\alpha$ on every residual branch: $h = x + \alpha(c) \odot F\big((1+\gamma(c)) \odot \mathrm{GN}(x) + \beta(c)\big)$.
The projection to $(\gamma, \beta, \alpha)$ starts at zero, so each block begins as its skip path. "Add" reads the same
sum $c$, but once per block and with no gate.
**Used for:** class and time in DiT (Peebles & Xie 2023), the transformer backbone of recent diffusion models.""",
}

# the code each mechanism adds: the classes and lines a reader should open
CODE = {
    "add": [unet_model.ClassConditionalUNet.embed, unet_model.ResBlock.forward],
    "concat": [unet_model.LabelMap],
    "cross_attention": [unet_model.CrossAttentionBlock],
    "adaln": [unet_model.AdaLNResBlock, unet_model.AdaLNAttentionBlock.forward],
}

GRID_MD = r"""
**The four at the same seed and the same $w$.** Each row is one mechanism; every row starts from the same noise
$x_T$ and runs the same DDIM steps with classifier-free guidance $\tilde\varepsilon = \varepsilon(\varnothing) +
w\,(\varepsilon(y) - \varepsilon(\varnothing))$. At $w = 0$ the label is ignored; raise $w$ and compare how firmly each
one writes the digit you asked for.
"""

PLOTS_MD = """
**Measured side by side** by `python -m pipelines.measure.conditioning` (the judge is the shipped MNIST classifier;
accuracy = share of samples it reads as the requested class). Right: how early each model starts obeying its label,
from the EMA weights the trainer saved along the way (`--probe-every`).
"""


def _mechanism(title) -> str:
    return CHOICES[check_choice(title, "Mechanism", CHOICES)]


def code_of(mechanism: str) -> str:
    """The source of what the mechanism adds to the backbone, as it is in pipelines/cfg/model.py."""
    return "\n\n".join(inspect.getsource(obj) for obj in CODE[mechanism])


def mechanism_view(title):
    """The chosen mechanism's formula, text and code."""
    try:
        m = _mechanism(title)
    except ValueError as exc:
        return f"**{exc}**", ""
    return MECHANISM_MD[m], code_of(m)


@user_errors
def compare(label, scale, steps, seed, progress=gr.Progress()):
    """One row per mechanism: the same classes, seed, steps and w."""
    check_choice(label, "Class", CLASSES)
    scale = check_number(scale, "CFG scale w", 0, MAX_SCALE)
    steps = check_number(steps, "Steps", 1, MAX_STEPS, integer=True)
    seed = check_number(seed, "Seed", 0, 2**31 - 1, integer=True)
    classes = list(range(10)) if label == CLASSES[0] else [int(label)] * PER_CLASS
    check_cost(len(CONDITIONING_MODELS) * len(classes), steps, MAX_IMAGE_STEPS)
    rows, names = [], []
    for k, (mechanism, name) in enumerate(CONDITIONING_MODELS.items()):
        try:
            model = load_cfg(name)
        except CheckpointMissing:
            rows.append(torch.full((len(classes), 1, 28, 28), -1.0))
            names.append(f"{TITLES[mechanism]} (missing)")
            continue
        rows.append(model.generate(classes, scale=scale, sampler="DDIM", steps=steps, seed=seed))
        names.append(TITLES[mechanism])
        progress((k + 1, len(CONDITIONING_MODELS)), desc="models done")
    cols = [f"y = {c}" for c in classes] if label == CLASSES[0] else [f"#{i + 1}" for i in range(len(classes))]
    return labelled_grid(torch.stack(rows), names, cols, scale=2, label_width=120)


def plots():
    """(accuracy against w, accuracy against training steps, loss curves, the measured table) from the records."""
    docs = measured()
    if not docs:
        return None, None, None, readme_section()
    by_w = {TITLES[m]: [[r["w"], r["accuracy"]] for r in d["accuracy_vs_w"]] for m, d in docs.items()}
    by_step = {TITLES[m]: d.get("accuracy_vs_steps", []) for m, d in docs.items()}
    losses = {TITLES[m]: d.get("loss_curve", []) for m, d in docs.items()}
    probe_w = next(iter(docs.values())).get("probe_scale", 3)
    # no titles: each gr.Plot's label names its figure, and a title would sit under that label
    return (curves_plot(by_w, "", "guidance scale w", "judge accuracy"),
            curves_plot(by_step, "", "training step", f"judge accuracy at w = {probe_w:g}"),
            loss_plot(losses, "", "training loss (running mean)"), readme_section())


def build():
    formula(INTRO_MD)
    with gr.Row():
        with gr.Column(scale=1):
            mechanism = gr.Radio(list(CHOICES), value="add", label="Mechanism")
            about = formula(MECHANISM_MD["add"])
        with gr.Column(scale=2):
            code = gr.Code(code_of("add"), language="python", label="Its code (pipelines/cfg/model.py)",
                           interactive=False, max_lines=40)
    formula(GRID_MD)
    with gr.Row():
        with gr.Column(scale=1):
            label = gr.Dropdown(CLASSES, value=CLASSES[0], label="Class y (all ten: one column each)")
            scale = gr.Slider(0, 10, value=3, step=0.5, label="CFG scale w (0 = unconditional)")
            steps = gr.Slider(1, MAX_STEPS, value=20, step=1, label="DDIM steps",
                              info=budget_info(MAX_IMAGE_STEPS) + " (the four models count together)")
            seed = seed_box(0)
            run = gr.Button("Generate with all four", variant="primary")
        with gr.Column(scale=2):
            grid_img = gr.Image(label="Rows: mechanisms; same seed, same w", type="pil", interactive=False,
                                height=300)
    formula(PLOTS_MD)
    with gr.Row():
        by_w = gr.Plot(label="Judge accuracy against the guidance scale w")
        by_step = gr.Plot(label="Judge accuracy against training steps (saved probes)")
        losses = gr.Plot(label="Training loss")
    table = gr.Markdown()

    mechanism.change(mechanism_view, mechanism, [about, code], api_visibility="private", show_progress="hidden")
    run.click(compare, [label, scale, steps, seed], grid_img, api_name="conditioning_compare", preprocess=False)
    return {"load": [(plots, [], [by_w, by_step, losses, table])]}


__all__ = ["build", "compare", "plots", "code_of"]

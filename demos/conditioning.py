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

from .cfg import BUDGET
from .common import (budget_text, check_choice, check_cost, check_number, formula, labelled, seed_box,
                     user_errors)
from .i18n import T, T_each, tr
from .lessons import Exposed
from .plots import curves_plot, loss_plot
from .zerogpu import gpu_task

CHOICES = {TITLES[m]: m for m in CONDITIONING_MODELS}    # "cross-attention" -> "cross_attention"
CLASSES = ["all ten", *map(str, range(10))]
MAX_STEPS, PER_CLASS = 100, 8
# the cheapest sampler and steps that keep DDIM 20 fp32's quality (python -m pipelines.evaluate --frontier;
# tests/test_frontier.py holds these to results/frontier.json)
DEFAULT_SAMPLER, DEFAULT_STEPS = "DPM-Solver++ (multistep)", 4

# the code each mechanism adds: the classes and lines a reader should open
CODE = {
    "add": [unet_model.ClassConditionalUNet.embed, unet_model.ResBlock.forward],
    "concat": [unet_model.LabelMap],
    "cross_attention": [unet_model.CrossAttentionBlock],
    "adaln": [unet_model.AdaLNResBlock, unet_model.AdaLNAttentionBlock.forward],
}

def _mechanism(title) -> str:
    return CHOICES[check_choice(title, "conditioning.mechanism_name", CHOICES)]


def code_of(mechanism: str) -> str:
    """The source of what the mechanism adds to the backbone, as it is in pipelines/cfg/model.py."""
    return "\n\n".join(inspect.getsource(obj) for obj in CODE[mechanism])


def mechanism_view(title):
    """The chosen mechanism's formula, text and code."""
    try:
        m = _mechanism(title)
    except ValueError as exc:
        return f"**{exc}**", ""
    return tr(f"conditioning.{m}_md"), code_of(m)


@gpu_task()
@user_errors
def compare(label, scale, steps, seed, progress=gr.Progress()):
    """Compare the four ways of conditioning a UNet on its label (add, concat, cross-attention, AdaLN): an image grid
    of MNIST digits with one row per mechanism, every row with the same classes, seed, steps and guidance scale w
    (DDIM; a mechanism whose checkpoint is missing gets a blank row).

    Args:
        label: the classes to draw: "all ten" (one image of each digit 0 … 9) or a single digit "0" … "9" (8 images of it).
        scale: the classifier-free guidance scale w, from 0 to 10 (0 = unconditional, 1 = conditional without guidance).
        steps: DDIM steps, a whole number from 1 to 100; 4 models × the images × steps is also bounded by this server's per-request budget (a clear error when over it).
        seed: the random seed of the starting noise, a whole number from 0 to 2147483647.
    """
    check_choice(label, "conditioning.class_name", CLASSES)
    scale = check_number(scale, "cfg.scale_name", 0, MAX_SCALE)
    steps = check_number(steps, "ddpm.steps_name", 1, MAX_STEPS, integer=True)
    seed = check_number(seed, "common.seed", 0, 2**31 - 1, integer=True)
    classes = list(range(10)) if label == CLASSES[0] else [int(label)] * PER_CLASS
    check_cost(len(CONDITIONING_MODELS) * len(classes), steps, BUDGET, calls=len(CONDITIONING_MODELS))
    rows, names = [], []
    for k, (mechanism, name) in enumerate(CONDITIONING_MODELS.items()):
        try:
            model = load_cfg(name)
        except CheckpointMissing:
            rows.append(torch.full((len(classes), 1, 28, 28), -1.0))
            names.append(tr("conditioning.missing", title=TITLES[mechanism]))
            continue
        rows.append(model.generate(classes, scale=scale, sampler=DEFAULT_SAMPLER, steps=steps, seed=seed))
        names.append(TITLES[mechanism])
        progress((k + 1, len(CONDITIONING_MODELS)), desc=tr("conditioning.models_done"))
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
    return (curves_plot(by_w, "", tr("conditioning.guidance_w"), tr("conditioning.judge_accuracy")),
            curves_plot(by_step, "", tr("conditioning.training_step"),
                        tr("conditioning.judge_accuracy_at", w=probe_w)),
            loss_plot(losses, "", tr("conditioning.training_loss")), readme_section())


def build():
    formula(T("conditioning.intro_md"))
    with gr.Row():
        with gr.Column(scale=1):
            mechanism = gr.Radio(list(CHOICES), value="add", label=T("conditioning.mechanism"))
            about = formula(T("conditioning.add_md"))
        with gr.Column(scale=2):
            code = gr.Code(code_of("add"), language="python", label=T("conditioning.code"),
                           interactive=False, max_lines=40)
    formula(T("conditioning.grid_md"))
    with gr.Row():
        with gr.Column(scale=1):
            label = gr.Dropdown(labelled(CLASSES, {CLASSES[0]: "conditioning.all_ten"}), value=CLASSES[0],
                                label=T("conditioning.class_y"))
            scale = gr.Slider(0, 10, value=3, step=0.5, label=T("conditioning.scale"))
            steps = gr.Slider(1, MAX_STEPS, value=DEFAULT_STEPS, step=1, label=T("cfg.sweep_steps"),
                              info=T_each("conditioning.steps_info", lambda lang: budget_text(BUDGET, lang=lang)
                                          + tr("conditioning.steps_info", lang)))
            seed = seed_box(0)
            run = gr.Button(T("conditioning.run"), variant="primary")
        with gr.Column(scale=2):
            grid_img = gr.Image(label=T("conditioning.grid"), type="pil", interactive=False,
                                height=300)
    formula(T("conditioning.plots_md"))
    with gr.Row():
        by_w = gr.Plot(label=T("conditioning.by_w"))
        by_step = gr.Plot(label=T("conditioning.by_step"))
        losses = gr.Plot(label=T("conditioning.losses"))
    table = gr.Markdown()

    mechanism.change(mechanism_view, mechanism, [about, code], api_visibility="private", show_progress="hidden")
    run.click(compare, [label, scale, steps, seed], grid_img, api_name="conditioning_compare", preprocess=False)
    lesson = Exposed(dict(mechanism=mechanism, about=about, code=code, label=label, scale=scale, steps=steps, seed=seed,
                          grid=grid_img, by_w=by_w, by_step=by_step, losses=losses, table=table), dict(compare=run))
    return {"load": [(plots, [], [by_w, by_step, losses, table])], "lesson": lesson}


__all__ = ["build", "compare", "plots", "code_of"]

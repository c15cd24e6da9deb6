"""StackGAN: a two-stage text-to-image GAN with conditioning augmentation, trained here on captioned shapes."""
from __future__ import annotations

import gradio as gr
import numpy as np
import torch
import torch.nn.functional as F

from pipelines.checkpoints import CheckpointMissing, PROJECT_ROOT, checkpoints_root, read_json
from pipelines.images import labelled_grid
from pipelines.infotext import attach
from pipelines.shapes.data import HELDOUT_TEMPLATES, ShapesDataset, caption_for
from pipelines.stackgan import COMMANDS, STAGE1, STAGE2, STAGE2_PIXELSHUFFLE
from pipelines.stackgan.pipeline import MAX_PROMPT_CHARS, load_network, load_stackgan

from .common import (MAX_SEED, SettingsDrop, check_bool, check_choice, check_number, examples_table, formula, labelled,
                     samples_image, seed_box, user_errors, warn_notes)
from .i18n import T, T_each, has, tr
from .lessons import Exposed
from .plots import loss_plot
from .text2img import quoted
from .zerogpu import gpu_task

VARIANTS = {"nearest-neighbour + conv": STAGE2, "PixelShuffle (sub-pixel conv)": STAGE2_PIXELSHUFFLE}
VARIANT_KEYS = dict(zip(VARIANTS, ("stackgan.nearest", "stackgan.pixelshuffle")))  # the choices' labels
MAX_Z, N_RANDOM = 8, 10
_SCENES = [dict(shape="circle", colour="red", size="large", position="centre", background="white"),
           dict(shape="triangle", colour="yellow", size="small", position="left", background="black"),
           dict(shape="square", colour="blue", size="large", position="right", background="beige"),
           dict(shape="cross", colour="green", size="small", position="centre", background="navy")]
EXAMPLES = [[caption_for(a, HELDOUT_TEMPLATES[k % len(HELDOUT_TEMPLATES)])] for k, a in enumerate(_SCENES)]

# ---------------------------------------------------------------- input checks
def _caption(value) -> str:
    if value is None or not isinstance(value, str):
        raise ValueError(tr("stackgan.caption_not_text"))
    if len(value) > MAX_PROMPT_CHARS:
        raise ValueError(tr("text2img.too_long", name=tr("stackgan.caption_name"), length=len(value),
                            limit=MAX_PROMPT_CHARS))
    if not value.strip():
        raise ValueError(tr("stackgan.caption_empty"))
    return value


def _model(variant):
    check_choice(variant, "stackgan.variant", list(VARIANTS))
    return load_stackgan(VARIANTS[variant])


def variant_text(variant: str) -> str:
    """A Stage II up-sampling as its choice is labelled (in English, the value itself)."""
    return tr(VARIANT_KEYS[variant]) if variant in VARIANT_KEYS else variant


def _pair(stage1: torch.Tensor, stage2: torch.Tensor) -> torch.Tensor:
    """(2, n, 3, 64, 64): Stage I up-sampled (nearest, so its pixels stay visible) above Stage II."""
    return torch.stack([F.interpolate(stage1, scale_factor=2, mode="nearest"), stage2])


# ---------------------------------------------------------------- callbacks
@gpu_task()
@user_errors
def generate(caption, variant, num_z, seed, augment):
    """Draw a caption with the two-stage StackGAN trained here on captioned shapes: returns an image with Stage I
    (32 px) above Stage II (64 px) for several noise vectors z, one with several conditioning vectors ĉ drawn for the
    first z, and a status line (Markdown, with the text encoder's warnings, e.g. a caption too long or with unknown
    characters).

    Args:
        caption: the scene to draw in English, e.g. "a picture of a small green cross sitting in the centre against a navy backdrop" (a shape, colour, size, position and background); not empty, at most 2000 characters.
        variant: Stage II's up-sampling: "nearest-neighbour + conv" or "PixelShuffle (sub-pixel conv)" (only the trained ones work).
        num_z: how many z (and ĉ) to draw, a whole number from 1 to 8.
        seed: the random seed of z and ĉ, a whole number from 0 to 2147483647.
        augment: true to sample ĉ from the conditioning augmentation's Gaussian for the z row, false to use its mean.
    """
    caption = _caption(caption)
    n = check_number(num_z, "stackgan.num_z_name", 1, MAX_Z, integer=True)
    seed = check_number(seed, "common.seed", 0, MAX_SEED, integer=True)
    augment = check_bool(augment, "stackgan.augment_name")
    gan = _model(variant)
    by_z = gan.several_z(caption, n, seed, augment=augment)
    by_c = gan.several_c(caption, n, seed)
    rows = ["Stage I (32 px)", "Stage II (64 px)"]  # drawn into the image: English (PIL's font has no Persian)
    img_z = labelled_grid(_pair(by_z.stage1, by_z.stage2), rows, [f"z {i + 1}" for i in range(n)], scale=2,
                          label_width=120)
    img_z = attach(img_z, tab="stackgan", checkpoint=gan.names[1], weights=gan.hashes[1], caption=caption,
                   variant=variant, num_z=n, seed=seed, augment=augment)
    img_c = labelled_grid(_pair(by_c.stage1, by_c.stage2), rows, [f"ĉ {i + 1}" for i in range(n)], scale=2,
                          label_width=120)
    how = tr("stackgan.how_sampled" if augment else "stackgan.how_mean")
    status = tr("stackgan.status", caption=quoted(caption, 70), n=n, how=how, seed=seed, variant=variant_text(variant))
    return img_z, img_c, status + warn_notes(by_z.notes)


def random_captions(n: int, seed: int) -> list[str]:
    """n captions drawn at random (seeded) from the held-out-phrasing test split."""
    rng = np.random.default_rng(seed)
    ds = ShapesDataset("test", 100_000, phrasings="heldout")
    return [ds.scene(int(i))[1] for i in rng.choice(len(ds), n, replace=False)]


@gpu_task()
@user_errors
def ten_random(variant, seed):
    """Draw 10 captions picked at random (seeded) from the held-out test phrasings with StackGAN: returns an image of
    Stage I above Stage II for each caption, and the numbered captions as Markdown.

    Args:
        variant: Stage II's up-sampling: "nearest-neighbour + conv" or "PixelShuffle (sub-pixel conv)" (only the trained ones work).
        seed: the random seed of the captions and of the noise, a whole number from 0 to 2147483647.
    """
    seed = check_number(seed, "common.seed", 0, MAX_SEED, integer=True)
    gan = _model(variant)
    captions = random_captions(N_RANDOM, seed)
    out = gan.for_captions(captions, seed=seed)
    img = labelled_grid(_pair(out.stage1, out.stage2), ["Stage I", "Stage II"],
                        [str(i + 1) for i in range(N_RANDOM)], scale=2, label_width=80)
    return img, "\n".join(f"{i + 1}. {c}" for i, c in enumerate(captions))


def _curves(record: dict, keys: dict[str, str]) -> dict[str, list]:
    return {label: record.get("curves", {}).get(k, []) for k, label in keys.items()}


def training_plots(variant=next(iter(VARIANTS))):
    """Loss curves of both stages, D's probabilities, and the probe figures over training (from the records)."""
    from matplotlib.figure import Figure
    records = {tr("stackgan.stage1"): read_json(checkpoints_root() / STAGE1 / "training_record.json", {}),
               tr("stackgan.stage2"): read_json(checkpoints_root() / VARIANTS.get(variant, STAGE2)
                                                / "training_record.json", {})}
    if not any(records.values()):
        return None, None, None
    losses = {}
    for stage, r in records.items():
        for label, curve in _curves(r, {"d_loss": "D", "g_adv": tr("stackgan.g_adv")}).items():
            losses[f"{stage} {label}"] = curve
    fig_loss = loss_plot(losses, title=tr("stackgan.losses_title"))
    fig_d = Figure(figsize=(5, 2.8), layout="constrained")
    axes = fig_d.subplots(1, 2, sharey=True)
    for ax, (stage, r) in zip(axes, records.items()):
        for key, label in (("d_real", "stackgan.real_matching"), ("d_wrong", "stackgan.real_mismatched"),
                           ("d_fake", "stackgan.fake")):
            curve = r.get("curves", {}).get(key, [])
            if curve:
                ax.plot(*zip(*curve), label=tr(label))
        ax.set(title=tr("stackgan.d_title", stage=stage), xlabel=tr("plots.step"), ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig_p = Figure(figsize=(5, 2.8), layout="constrained")
    ax = fig_p.subplots()
    for i, (stage, r) in enumerate(records.items()):
        probes = r.get("probes", [])
        if probes:
            steps = [p["step"] for p in probes]
            ax.plot(steps, [p["all"] for p in probes], f"C{i}-", label=tr("stackgan.probe_all", stage=stage))
            ax.plot(steps, [p["diversity"] for p in probes], f"C{i}--",
                    label=tr("stackgan.probe_diversity", stage=stage))
    ax.set(title=tr("stackgan.probes_title"), xlabel=tr("plots.step"), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig_loss, fig_d, fig_p


def architecture(variant=next(iter(VARIANTS))) -> str:
    """The four networks' printed summaries: code, so it stays English (module names, as PyTorch prints them)."""
    from pipelines.stackgan.model import architecture_summary
    parts = []
    for folder, which, title in ((STAGE1, "generator", "Stage I generator G_0"),
                                 (STAGE1, "discriminator", "Stage I discriminator D_0"),
                                 (VARIANTS.get(variant, STAGE2), "generator", "Stage II generator G"),
                                 (VARIANTS.get(variant, STAGE2), "discriminator", "Stage II discriminator D")):
        try:
            parts.append(architecture_summary(load_network(checkpoints_root() / folder, which), title))
        except (CheckpointMissing, ValueError) as exc:
            parts.append(f"{title}: not available ({exc})")
    return "\n\n".join(parts)


def failure_md(variant=next(iter(VARIANTS))) -> str:
    from pipelines.measure.stackgan_diagnose import diagnosed_runs
    lines = []
    stages = (("stackgan.stage1", STAGE1, 32), ("stackgan.stage2", VARIANTS.get(variant, STAGE2), 64))
    for stage, folder, res in stages:
        runs = diagnosed_runs(checkpoints_root() / folder, res)
        if not runs:
            lines.append(tr("stackgan.stage_untrained", stage=tr(stage), command=COMMANDS[folder]))
        for k, (run, findings) in enumerate(runs):
            title = tr(stage) if k == len(runs) - 1 else tr("stackgan.earlier_run", stage=tr(stage), steps=run["steps"])
            for f in findings:  # the evidence is the diagnosis' own English sentence
                key = "stackgan.failure_" + f.failure.replace(" ", "_").replace("-", "_")
                lines.append(tr("stackgan.finding", stage=title, failure=tr(key) if has(key) else f.failure,
                                seen=tr("stackgan.seen" if f.seen else "stackgan.not_seen"), evidence=f.evidence))
    return "\n".join(lines)


def samples_over_training(variant=next(iter(VARIANTS))):
    images = []
    for folder in (STAGE1, VARIANTS.get(variant, STAGE2)):
        path = checkpoints_root() / folder / "training_samples.png"
        if path.exists():
            images.append(str(path))
    return images


def figures_md() -> str:
    from pipelines.measure.stackgan import readme_section
    if not (PROJECT_ROOT / "results" / "stackgan-vs-ldm.json").exists():
        return tr("stackgan.no_figures")
    return readme_section()


def training_views(variant):
    check_choice(variant, "stackgan.variant", list(VARIANTS))
    return (*training_plots(variant), architecture(variant), failure_md(variant), samples_over_training(variant))


# ---------------------------------------------------------------- layout
def build():
    gr.Markdown(T("stackgan.title"))
    formula(T("stackgan.intro_md"))
    with gr.Row():
        with gr.Column(scale=1):
            caption = gr.Textbox(EXAMPLES[0][0], label=T("stackgan.caption"), lines=2)
            examples_table(EXAMPLES, [caption], T("stackgan.examples"))
            trained = [v for v, name in VARIANTS.items() if (checkpoints_root() / name / "generator.safetensors").exists()]
            shown = trained or list(VARIANTS)
            variant = gr.Radio(labelled(shown, VARIANT_KEYS), value=shown[0], label=T("stackgan.variant"))
            for v, name in VARIANTS.items():
                if v not in trained:
                    gr.Markdown(T_each("stackgan.not_trained", lambda lang, v=v, name=name: tr(
                        "stackgan.not_trained", lang, variant=tr(VARIANT_KEYS[v], lang), command=COMMANDS[name])))
            num_z = gr.Slider(1, MAX_Z, value=6, step=1, label=T("stackgan.num_z"))
            augment = gr.Checkbox(True, label=T("stackgan.augment"))
            seed = seed_box(0)
            run = gr.Button(T("stackgan.run"), variant="primary")
            status = gr.Markdown()
            SettingsDrop("stackgan", dict(caption=caption, variant=variant, num_z=num_z, seed=seed, augment=augment))
        with gr.Column(scale=2):
            by_z = samples_image("stackgan.by_z", height=260)
            by_c = gr.Image(label=T("stackgan.by_c"), type="pil",
                            interactive=False, height=260)
    formula(T("stackgan.d_md"))
    with gr.Row():
        with gr.Column(scale=1):
            run_random = gr.Button(T("stackgan.run_random"), variant="primary")
            captions_md = gr.Markdown()
        with gr.Column(scale=3):
            random_img = gr.Image(label=T("stackgan.random_img"), type="pil", interactive=False)
    gr.Markdown(T("stackgan.training_title"))
    with gr.Row():
        loss_fig = gr.Plot(label=T("stackgan.loss_fig"), show_label=False)
        d_fig = gr.Plot(label=T("stackgan.d_fig"), show_label=False)
        probe_fig = gr.Plot(label=T("stackgan.probe_fig"), show_label=False)
    formula(T("stackgan.failures_md"))
    failures = gr.Markdown()
    over_training = gr.Gallery(label=T("stackgan.over_training"), columns=2,
                               height=360)
    with gr.Accordion(T("stackgan.arch_title"), open=False):
        arch = gr.Code(language=None, label=T("stackgan.arch"))
    figures = gr.Markdown()

    run.click(generate, [caption, variant, num_z, seed, augment], [by_z, by_c, status], api_name="stackgan_generate",
              preprocess=False)
    run_random.click(ten_random, [variant, seed], [random_img, captions_md], api_name="stackgan_random",
                     preprocess=False)
    views = [loss_fig, d_fig, probe_fig, arch, failures, over_training]
    variant.change(user_errors(training_views), [variant], views, api_visibility="private")
    lesson = Exposed(dict(caption=caption, variant=variant, num_z=num_z, augment=augment, seed=seed, by_z=by_z, by_c=by_c,
                          status=status, random=random_img, captions=captions_md, losses=loss_fig, d=d_fig,
                          probes=probe_fig, failures=failures, over_training=over_training, figures=figures),
                     dict(generate=run, random=run_random))
    return {"load": [(user_errors(training_views), [variant], views), (figures_md, [], [figures])], "lesson": lesson}

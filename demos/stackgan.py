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

from .common import (MAX_SEED, SettingsDrop, check_bool, check_choice, check_number, echo_md, formula, samples_image,
                     seed_box, user_errors, warn_notes)
from .plots import loss_plot

VARIANTS = {"nearest-neighbour + conv": STAGE2, "PixelShuffle (sub-pixel conv)": STAGE2_PIXELSHUFFLE}
MAX_Z, N_RANDOM = 8, 10
_SCENES = [dict(shape="circle", colour="red", size="large", position="centre", background="white"),
           dict(shape="triangle", colour="yellow", size="small", position="left", background="black"),
           dict(shape="square", colour="blue", size="large", position="right", background="beige"),
           dict(shape="cross", colour="green", size="small", position="centre", background="navy")]
EXAMPLES = [[caption_for(a, HELDOUT_TEMPLATES[k % len(HELDOUT_TEMPLATES)])] for k, a in enumerate(_SCENES)]

INTRO_MD = r"""
**StackGAN** (Zhang et al. 2017) splits text-to-image into two GANs. The caption becomes a sentence embedding
$\varphi_t\in\mathbb R^{384}$ (the frozen MiniLM of the diffusion tab, mean-pooled). **Stage I** sketches a 32×32 image
from noise $z$ and a conditioning vector $\hat c_0$; **Stage II** reads that sketch *and the text again* and draws 64×64.
One forward pass per stage: no steps, no guidance scale.

**Conditioning augmentation.** $\hat c_0$ is not $\varphi_t$ but a *sample*
$$\hat c_0=\mu_0(\varphi_t)+\sigma_0(\varphi_t)\odot\varepsilon,\quad\varepsilon\sim\mathcal N(0,I),\qquad
\mathcal L_G \mathrel{+}= \frac{\lambda}{d}\,D_{KL}\big(\mathcal N(\mu_0,\Sigma_0)\,\|\,\mathcal N(0,I)\big)=\frac{\lambda}{2d}\textstyle\sum_{j=1}^{d}(\mu_j^2+\sigma_j^2-1-\log\sigma_j^2)$$
so one caption covers a small cloud of conditions and the manifold between captions stays smooth ($\lambda=2$ on the
KL per dimension of $\hat c$, as in the authors' code; on the summed KL it pulled $\hat c$ onto pure noise here, and
the generator ignored the caption).
"""

D_MD = r"""
**Matching-aware discriminators.** $D(x,\varphi)$ must say *real and matching*: it scores
$(x_{\text{real}},\varphi)\to1$, $(x_{\text{real}},\varphi_{\text{wrong}})\to0$ and $(G(z,\hat c),\varphi)\to0$:
$$\mathcal L_D=-\log D(x,\varphi)-\tfrac12\big[\log(1-D(x,\varphi_{\text{wrong}}))+\log(1-D(G(z,\hat c),\varphi))\big],\qquad
\mathcal L_G=-\log D(G(z,\hat c),\varphi)+\tfrac{\lambda}{d} D_{KL}$$
A good-looking image of the *wrong* thing is rejected, so the generator must obey the text.
**Stage II** = encoder (32→8×8) ⊕ $\hat c$ tiled along channels → residual blocks → up-sampling to 64×64, either
nearest-neighbour + conv or **PixelShuffle**: a conv to $C r^2$ channels, then $(B,Cr^2,H,W)\to(B,C,Hr,Wr)$.
"""

FAILURE_MD = """
**Failure modes, from this model's own training log.** *Mode collapse*: G ignores z and draws one image per caption
(within-prompt diversity → 0). *Vanishing gradients*: D wins outright (D(fake) → 0) and the minimax loss
log(1 − D(G(z))) goes flat; the non-saturating −log D(G(z)) used here keeps a gradient. *Non-convergence*: the players
chase each other; losses oscillate and adherence rises and falls between probes.
"""


# ---------------------------------------------------------------- input checks
def _caption(value) -> str:
    if value is None or not isinstance(value, str):
        raise ValueError("The caption must be text.")
    if len(value) > MAX_PROMPT_CHARS:
        raise ValueError(f"The caption is {len(value):,} characters long; the limit is {MAX_PROMPT_CHARS:,} "
                         "(and the text encoder reads only the first 30 word pieces).")
    if not value.strip():
        raise ValueError("Type a caption: StackGAN was never trained without one, so it has no unconditional mode.")
    return value


def _model(variant):
    check_choice(variant, "Stage II up-sampling", list(VARIANTS))
    return load_stackgan(VARIANTS[variant])


def _pair(stage1: torch.Tensor, stage2: torch.Tensor) -> torch.Tensor:
    """(2, n, 3, 64, 64): Stage I up-sampled (nearest, so its pixels stay visible) above Stage II."""
    return torch.stack([F.interpolate(stage1, scale_factor=2, mode="nearest"), stage2])


# ---------------------------------------------------------------- callbacks
@user_errors
def generate(caption, variant, num_z, seed, augment):
    """Stage I and Stage II for several z (top), and several ĉ for the first z (bottom)."""
    caption = _caption(caption)
    n = check_number(num_z, "Number of z", 1, MAX_Z, integer=True)
    seed = check_number(seed, "Seed", 0, MAX_SEED, integer=True)
    augment = check_bool(augment, "Conditioning augmentation")
    gan = _model(variant)
    by_z = gan.several_z(caption, n, seed, augment=augment)
    by_c = gan.several_c(caption, n, seed)
    rows = ["Stage I (32 px)", "Stage II (64 px)"]
    img_z = labelled_grid(_pair(by_z.stage1, by_z.stage2), rows, [f"z {i + 1}" for i in range(n)], scale=2,
                          label_width=120)
    img_z = attach(img_z, tab="stackgan", checkpoint=gan.names[1], weights=gan.hashes[1], caption=caption,
                   variant=variant, num_z=n, seed=seed, augment=augment)
    img_c = labelled_grid(_pair(by_c.stage1, by_c.stage2), rows, [f"ĉ {i + 1}" for i in range(n)], scale=2,
                          label_width=120)
    how = "ĉ sampled for each" if augment else "ĉ = μ(φ) (augmentation off)"
    return img_z, img_c, (f"“{echo_md(caption, 70)}”: {n} noise vectors z ({how}); below, the first z with {n} samples of "
                          f"ĉ₀ and ĉ. Seed {seed}, Stage II {variant}.{warn_notes(by_z.notes)}")


def random_captions(n: int, seed: int) -> list[str]:
    """n captions drawn at random (seeded) from the held-out-phrasing test split."""
    rng = np.random.default_rng(seed)
    ds = ShapesDataset("test", 100_000, phrasings="heldout")
    return [ds.scene(int(i))[1] for i in rng.choice(len(ds), n, replace=False)]


@user_errors
def ten_random(variant, seed):
    seed = check_number(seed, "Seed", 0, MAX_SEED, integer=True)
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
    records = {"Stage I": read_json(checkpoints_root() / STAGE1 / "training_record.json", {}),
               "Stage II": read_json(checkpoints_root() / VARIANTS.get(variant, STAGE2) / "training_record.json", {})}
    if not any(records.values()):
        return None, None, None
    losses = {}
    for stage, r in records.items():
        for label, curve in _curves(r, {"d_loss": "D", "g_adv": "G (adversarial)"}).items():
            losses[f"{stage} {label}"] = curve
    fig_loss = loss_plot(losses, title="G and D losses (running means)")
    fig_d = Figure(figsize=(5, 2.8), layout="constrained")
    axes = fig_d.subplots(1, 2, sharey=True)
    for ax, (stage, r) in zip(axes, records.items()):
        for key, label in (("d_real", "real, matching"), ("d_wrong", "real, mismatched"), ("d_fake", "fake")):
            curve = r.get("curves", {}).get(key, [])
            if curve:
                ax.plot(*zip(*curve), label=label)
        ax.set(title=f"{stage}: mean D(x, φ)", xlabel="step", ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig_p = Figure(figsize=(5, 2.8), layout="constrained")
    ax = fig_p.subplots()
    for i, (stage, r) in enumerate(records.items()):
        probes = r.get("probes", [])
        if probes:
            steps = [p["step"] for p in probes]
            ax.plot(steps, [p["all"] for p in probes], f"C{i}-", label=f"{stage}: all 5 attributes right")
            ax.plot(steps, [p["diversity"] for p in probes], f"C{i}--", label=f"{stage}: diversity")
    ax.set(title="adherence & diversity (8 prompts × 8 z)", xlabel="step", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig_loss, fig_d, fig_p


def architecture(variant=next(iter(VARIANTS))) -> str:
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
    from pipelines.shapes.diversity import real_groups, within_prompt_diversity
    from pipelines.measure.stackgan_diagnose import diagnose
    from pipelines.stackgan.train import PROBE_PROMPTS, PROBE_Z
    from pipelines.shapes.data import heldout_prompts
    _, labels = heldout_prompts(PROBE_PROMPTS, 0)
    lines = []
    for stage, folder, res in (("Stage I", STAGE1, 32), ("Stage II", VARIANTS.get(variant, STAGE2), 64)):
        record = read_json(checkpoints_root() / folder / "training_record.json", {})
        if not record:
            lines.append(f"- **{stage}**: not trained yet (`{COMMANDS[folder]}`)")
            continue
        real = within_prompt_diversity(real_groups(labels, PROBE_Z, res))
        for f in diagnose(record, real):
            lines.append(f"- **{stage}, {f.failure}: {'seen' if f.seen else 'not seen'}.** {f.evidence}.")
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
        return "_No measured figures yet: run `python -m pipelines.measure.stackgan`._"
    return readme_section()


def training_views(variant):
    check_choice(variant, "Stage II up-sampling", list(VARIANTS))
    return (*training_plots(variant), architecture(variant), failure_md(variant), samples_over_training(variant))


# ---------------------------------------------------------------- layout
def build():
    gr.Markdown("## StackGAN: text to image in two GAN stages")
    formula(INTRO_MD)
    with gr.Row():
        with gr.Column(scale=1):
            caption = gr.Textbox(EXAMPLES[0][0], label="Caption", lines=2)
            gr.Examples(EXAMPLES, inputs=[caption], label="Captions in the held-out phrasings (never trained on)")
            trained = [v for v, name in VARIANTS.items() if (checkpoints_root() / name / "generator.safetensors").exists()]
            variant = gr.Radio(trained or list(VARIANTS), value=(trained or list(VARIANTS))[0],
                               label="Stage II up-sampling")
            for v, name in VARIANTS.items():
                if v not in trained:
                    gr.Markdown(f"_{v}: not trained yet here; train it with `{COMMANDS[name]}`._")
            num_z = gr.Slider(1, MAX_Z, value=6, step=1, label="Number of noise vectors z")
            augment = gr.Checkbox(True, label="Conditioning augmentation (sample ĉ; off: ĉ = μ(φ))")
            seed = seed_box(0)
            run = gr.Button("Generate", variant="primary")
            status = gr.Markdown()
            SettingsDrop("stackgan", dict(caption=caption, variant=variant, num_z=num_z, seed=seed, augment=augment))
        with gr.Column(scale=2):
            by_z = samples_image("Several z: Stage I above, Stage II below (PNG with its settings inside)", height=260)
            by_c = gr.Image(label="One z, several ĉ: what conditioning augmentation varies", type="pil",
                            interactive=False, height=260)
    formula(D_MD)
    with gr.Row():
        with gr.Column(scale=1):
            run_random = gr.Button("Ten random captions (uses the seed above)", variant="primary")
            captions_md = gr.Markdown()
        with gr.Column(scale=3):
            random_img = gr.Image(label="Ten random captions: Stage I and Stage II", type="pil", interactive=False)
    gr.Markdown("### Training, from the shipped training records")
    with gr.Row():
        loss_fig = gr.Plot(label="Generator and discriminator losses", show_label=False)
        d_fig = gr.Plot(label="What D says about each kind of pair", show_label=False)
        probe_fig = gr.Plot(label="Adherence and diversity over training", show_label=False)
    formula(FAILURE_MD)
    failures = gr.Markdown()
    over_training = gr.Gallery(label="Probe samples over training (oldest row first): Stage I, Stage II", columns=2,
                               height=360)
    with gr.Accordion("The four networks (printed summary with parameter counts)", open=False):
        arch = gr.Code(language=None, label="architecture")
    figures = gr.Markdown()

    run.click(generate, [caption, variant, num_z, seed, augment], [by_z, by_c, status], api_name="stackgan_generate",
              preprocess=False)
    run_random.click(ten_random, [variant, seed], [random_img, captions_md], api_name="stackgan_random",
                     preprocess=False)
    views = [loss_fig, d_fig, probe_fig, arch, failures, over_training]
    variant.change(user_errors(training_views), [variant], views, api_visibility="private")
    return {"load": [(user_errors(training_views), [variant], views), (figures_md, [], [figures])]}

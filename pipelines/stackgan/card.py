"""Model cards of the StackGAN checkpoints, rendered from their records (never typed)."""
from __future__ import annotations

from pathlib import Path

from ..cards import write_card
from ..checkpoints import read_json
from . import EVALUATE_COMMAND

SUMMARY = {1: """**Stage I** of StackGAN (Zhang et al. 2017), trained here on 2 CPU cores on captioned coloured shapes at
32 x 32. The generator G_0 ({g:,} parameters) maps a noise vector z ({z_dim}-d) and a conditioning vector
ĉ_0 ~ N(μ_0(φ), Σ_0(φ)) ({c_dim}-d; conditioning augmentation, KL weight λ = {kl:g}) to a 32 x 32 sketch; φ is the
caption's mean-pooled embedding from the frozen all-MiniLM-L6-v2 (384-d, not copied here). The matching-aware
discriminator D_0 ({d:,} parameters) learns real+matching -> 1, real+mismatched and fake+matching -> 0.""",
           2: """**Stage II** of StackGAN (Zhang et al. 2017), trained here on 2 CPU cores on captioned coloured shapes: it refines
the frozen Stage I's 32 x 32 sketch (`{stage1}`) into a 64 x 64 image. Generator G ({g:,} parameters): an encoder
(32 -> 8 x 8), the sketch's features joined along channels with a fresh ĉ ~ N(μ(φ), Σ(φ)) ({c_dim}-d, KL weight
λ = {kl:g}), {res} residual blocks, and three x2 up-sampling blocks ({upsample}). Matching-aware discriminator D
({d:,} parameters) at 64 x 64."""}

UPSAMPLE = {"nearest": "nearest-neighbour x2 + 3x3 conv", "pixelshuffle": "sub-pixel convolution: 3x3 conv to 4C "
            "channels, then PixelShuffle(2), (B, 4C, H, W) -> (B, C, 2H, 2W)"}

DEVIATIONS = """Where this differs from the paper, and why (each found while training here): the KL of conditioning
augmentation is taken per dimension of ĉ (as in the authors' code; on the summed KL the generator ignored the
caption); φ is standardised with the training captions' per-dimension mean and std inside both networks (MiniLM's
sentence embeddings of these captions differ little); the discriminator is spectrally normalised instead of using
BatchNorm{sn} (with BatchNorm, D rejected every fake within 500 steps), its text branch excepted.{hard}{extras}"""

HARD_NEGATIVES = """ A share {share:g} of the discriminator's wrong captions are **hard negatives**, the right caption with one
attribute changed (`negatives.py`): with the paper's random wrong captions alone, D could reject nearly all of them
by colour and never checked the shape, and the generator drew shapes at chance (below)."""

PROJECTION = """ D's matching logit adds the projection term ⟨W φ, Σ_xy h⟩ (Miyato & Koyama 2018) to the paper's head on
the concatenation [h, φ], a bilinear image-text score (`model.MatchingLogit`)."""

SKETCH_SKIP = """ Stage II's decoder draws a **correction to the sketch**, s = tanh(r + atanh(0.99 · bilinear_x2(s_0))), instead
of redrawing the image through the 8 x 8 bottleneck: without it, the Stage II trained here drew the requested
shape less often than the Stage I sketch it was given."""

EXTRA = """`generator.safetensors` and `discriminator.safetensors` are float32 weights; `config.json` rebuilds both
(`pipelines.stackgan.pipeline.load_network`). `training_record.json` holds the discriminator and generator loss
curves, D's mean probabilities on the three kinds of pair, the generator's gradient norm, and the probe figures over
training (adherence and within-prompt diversity of 8 held-out prompts x 8 fixed z). `training_samples.png` shows the
probe samples over training, oldest row first.

Prompt adherence (shapes judge, held-out phrasings) and diversity (mean pairwise RMS pixel distance between images
of one prompt; real images of the same attributes give the reference) are measured, against the latent diffusion
model, by `{evaluate}`."""


def write_stackgan_card(folder: str | Path) -> Path:
    folder = Path(folder)
    r, config = read_json(folder / "training_record.json", {}), read_json(folder / "config.json", {})
    g = config.get("generator_config", {})
    stage = int(config.get("stage", r.get("stage", 1)))
    summary = SUMMARY[stage].format(
        g=r.get("parameters", 0), d=r.get("parameters_discriminator", 0), z_dim=g.get("z_dim", "?"),
        c_dim=g.get("c_dim", "?"), kl=r.get("kl_weight", 2.0), res=g.get("res_blocks", "?"),
        upsample=UPSAMPLE.get(g.get("upsample", "nearest"), "?"), stage1=config.get("stage1", {}).get("name", "?"))
    title = f"{folder.name}: StackGAN Stage {'I' if stage == 1 else 'II'}" + \
        (" (PixelShuffle up-sampling)" if g.get("upsample") == "pixelshuffle" else "")
    sn = "" if r.get("spectral_norm", True) else " — **not in this checkpoint: it was trained with --no-spectral-norm**"
    hard = HARD_NEGATIVES.format(share=r["hard_negatives"]) if r.get("hard_negatives") else ""
    extras = (PROJECTION if config.get("discriminator_config", {}).get("projection") else "") + \
        (SKETCH_SKIP if g.get("sketch_skip") else "")
    return write_card(folder, title, summary + "\n\n" + DEVIATIONS.format(sn=sn, hard=hard, extras=extras),
                      attribute_findings(folder, 32 if stage == 1 else 64) + EXTRA.format(evaluate=EVALUATE_COMMAND))


def attribute_findings(folder: Path, resolution: int) -> str:
    """The card's section on what each run of this checkpoint drew at chance and what its D checked, from the
    diagnosis of the training records (`pipelines.measure.stackgan_diagnose`), earlier runs first."""
    from ..measure.stackgan_diagnose import diagnosed_runs
    runs = diagnosed_runs(folder, resolution)
    lines = []
    for k, (run, findings) in enumerate(runs):
        who = "This checkpoint" if k == len(runs) - 1 else f"The earlier run (`{run['command']}`)"
        lines += [f"- {who}: {f.evidence}." for f in findings if f.failure == "attribute ignored"]
    if not lines:
        return ""
    return ("## Does it draw every attribute of the caption? (from the training logs)\n\n" + "\n".join(lines)
            + "\n\nThe other failure modes (collapse, vanishing gradients, non-convergence) are in the StackGAN "
              "tab's failure-modes panel.\n\n")

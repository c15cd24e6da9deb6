"""Model cards of the latent diffusion checkpoint and its VAE, rendered from their records (never typed)."""
from __future__ import annotations

from pathlib import Path

from ..cards import update_metrics, write_card
from ..checkpoints import PROJECT_ROOT, read_json
from . import EVALUATE_COMMAND

# written by `python -m pipelines.measure.attention_maps` alone; the card quotes it (as it quotes results/metrics.json)
ATTENTION_RESULTS = PROJECT_ROOT / "results" / "attention-maps.json"

VAE_SUMMARY = """The VAE of the latent diffusion model `ldm-shapes` (Stable Diffusion's first network), trained here on
{images:,} captioned coloured shapes (64 x 64 RGB). A diffusers `AutoencoderKL` ({params:,} parameters) with
downsampling factor {factor}: an image becomes a {latent} latent. Loss per image: Σ|x̂ − x| + β·KL with β = {beta:g}
(Stable Diffusion's recipe without its perceptual and adversarial terms).

**Latent scaling factor** (measured, as Stable Diffusion did): s = 1 / std of latents sampled from the posterior of
{scale_images:,} training images = **{scale:.4f}** (stored as `scaling_factor` in `config.json`). The UNet works on
s·z, which has unit variance like the noise it is mixed with; sampling decodes D(ẑ / s)."""

VAE_EXTRA = """Reconstructions are D(μ(x)) (the posterior mean) of held-out test-split images. The shapes judge
(`checkpoints/shapes-judge`) reading the reconstructions bounds what any image decoded by this VAE can score.
Weights stored in fp16; the scaling factor was measured on the fp16 weights."""

LDM_SUMMARY = """Stable Diffusion in miniature, trained here on 2 CPU cores on captioned coloured shapes
(`pipelines.shapes.data`, training phrasings only). Three networks, each in its diffusers / transformers layout:

| network | what | parameters |
|---|---|---|
| `vae/` | AutoencoderKL, 64 x 64 x 3 image <-> {latent} latent, scaling factor {scale:.4f} (measured on the data) | {vae_params} |
| text encoder | `{encoder}`, frozen, token states ({max_length} tokens x {hidden}); loaded from the PyPI package `{package}`, **not copied here** (`text_encoder.json`) | 22.7 M |
| `unet/` | UNet2DConditionModel, widths {channels}; self- and cross-attention to the token states (padding masked) at {levels} | {unet_params:,} |

Training: captions replaced by "" with probability {p} (per image), so the one UNet is also the unconditional
model for classifier-free guidance; noise schedule: {schedule}{zsnr}; the UNet predicts {target}; sampling
defaults to "{spacing}" timestep spacing (`scheduler/`). Weights are the EMA weights, stored in fp16."""

LDM_EXTRA = """Prompt adherence is judged by the shipped shapes attribute judge (`checkpoints/shapes-judge`) on prompts
written with the **held-out** caption phrasings (never seen in training): per-attribute accuracy of the generated
images against the attributes the prompt asked for, at each CFG scale w. The VAE's reconstructions of real
images, judged the same way, are the ceiling. Target: at the best w, shape and colour each ≥ 0.9.

Sample with `pipelines.ldm.pipeline.load_ldm()` (or the app's text-to-image tab); measure with
`{evaluate}`."""

TARGETS = {"epsilon": "the noise ε", "v_prediction": "the velocity v = sqrt(ᾱ_t)·ε − sqrt(1 − ᾱ_t)·z_0"}


def _params(n) -> str:
    return f"{n:,}" if isinstance(n, int) else "?"


def _attention_levels(config: dict) -> str:
    size, where = config.get("sample_size", 16), []
    for i, block in enumerate(config.get("down_block_types", [])):
        if block.startswith("CrossAttn"):
            where.append(f"{size // 2 ** i}x{size // 2 ** i}")
    return (", ".join(where) + " latent pixels and in the middle block") if where else "the middle block"


def write_vae_metrics(folder: str | Path, figures: dict, stats: dict, command: str) -> dict:
    """The VAE's reconstruction figures into folder/metrics.json (rows for the card)."""
    n = figures["test_images"]
    rows = [{"figure": "latent scaling factor s = 1 / std(z)", "value": stats["scaling_factor"],
             "protocol": f"z ~ q(z∣x) of {stats['images']:,} training images (latent mean {stats['mean']:.3f})"},
            {"figure": "reconstruction L1 (per pixel, [-1, 1] range)", "value": figures["l1"],
             "protocol": f"D(μ(x)) of {n} test-split images"},
            {"figure": "reconstruction PSNR (dB)", "value": figures["psnr_db"],
             "protocol": f"D(μ(x)) of {n} test-split images, peak-to-peak 2"}]
    for key, label, judge in (("judge_real", "real test images", "shapes-judge"),
                              ("judge_reconstructed", "their reconstructions", "shapes-judge"),
                              ("geometry_reconstructed", "their reconstructions", "the geometric judge")):
        if key in figures:
            acc = figures[key]
            who = "judge" if judge == "shapes-judge" else "geometric judge"
            rows.append({"figure": f"{who} accuracy on {label} (shape / colour / size / position / background; all)",
                         "value": " / ".join(f"{acc[a]:.3f}" for a in ("shape", "colour", "size", "position",
                                                                       "background")) + f"; {acc['all']:.3f}",
                         "protocol": f"{n} test-split images, {judge}"})
    return update_metrics(folder, "pipelines.ldm.vae", command, rows, reconstruction=figures, latent_statistics=stats)


def write_vae_card(folder: str | Path) -> Path:
    folder = Path(folder)
    r = read_json(folder / "training_record.json", {})
    latent = "x".join(map(str, r.get("latent_shape", [4, 16, 16])))
    summary = VAE_SUMMARY.format(images=r.get("train_images", 0), params=r.get("parameters", 0),
                                 factor=r.get("downsampling_factor", 4), latent=latent, beta=r.get("kl_weight", 0),
                                 scale_images=r.get("latent_statistics", {}).get("images", 0),
                                 scale=r.get("scaling_factor", float("nan")))
    stages = r.get("decoder_stages") or ([r["decoder_finetune"]] if r.get("decoder_finetune") else [])
    if stages:
        first = stages[0]
        summary += (f"\n\n**Decoder fine-tune** (`{first['command']}`, {first['steps']:,} steps, "
                    f"{first['wall_seconds']:,} s): "
                    "trained with the L1 loss alone, the VAE drew red and green shapes orange and purple ones blue "
                    "(the judge read the right colour in 54% of its reconstructions). The decoder alone was then "
                    "trained further on mean |x̂ − x| + mean (x̂ − x)², the encoder frozen, so the latents (and the "
                    "scaling factor, and everything the UNet learned) stay the same; the figures below are after "
                    + ("it." if len(stages) == 1 else "every stage."))
        for st in stages[1:]:
            summary += (f"\n\n**Decoder stage** (`{st['command']}`, {st['steps']:,} steps, {st['wall_seconds']:,} s): "
                        f"{st['loss']}. The geometric judge had found the decoder drawing small triangles as rings "
                        "and squares with rounded corners; this stage weighs the shape's pixels as much as the "
                        "background's, and the outline's error.")
    return write_card(folder, "ldm-shapes / vae: the autoencoder of the shapes latent diffusion model", summary,
                      VAE_EXTRA)


def write_ldm_card(folder: str | Path) -> Path:
    folder = Path(folder)
    r = read_json(folder / "training_record.json", {})
    vae = read_json(folder / "vae" / "training_record.json", {})
    te = r.get("text_encoder", {})
    summary = LDM_SUMMARY.format(
        latent="x".join(map(str, vae.get("latent_shape", [4, 16, 16]))),
        scale=r.get("vae", {}).get("scaling_factor", float("nan")), vae_params=_params(vae.get("parameters")),
        encoder=te.get("model", "?"), max_length=te.get("max_length", "?"), hidden=te.get("hidden_size", "?"),
        package=te.get("package", "?"), channels=tuple(r.get("model_config", {}).get("block_out_channels", ())),
        unet_params=r.get("parameters", 0), levels=_attention_levels(r.get("model_config", {})), p=r.get("p_uncond", 0.1), schedule=r.get("schedule", "?"),
        zsnr=", rescaled to zero terminal SNR (ᾱ_T = 0)" if r.get("zero_terminal_snr") else "",
        target=TARGETS.get(r.get("prediction_type"), "?"), spacing=r.get("timestep_spacing", "?"))
    extra = LDM_EXTRA.format(evaluate=EVALUATE_COMMAND)
    if vae.get("command"):
        extra += f"\n\nThe VAE was trained first with `{vae['command']}` ({vae.get('steps', '?')} steps, " \
                 f"{vae.get('wall_seconds', 0)} s; its own card is `vae/README.md`)."
    maps = read_json(ATTENTION_RESULTS, {}).get("summary_md") if Path(folder).name == "ldm-shapes" else None
    if maps:
        extra += f"\n\n## Cross-attention maps\n\n{maps}"
    return write_card(folder, "ldm-shapes: latent diffusion (Stable Diffusion in miniature) on captioned shapes",
                      summary, extra)

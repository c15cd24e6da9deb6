"""Measure a shipped VAE on the MNIST test set, write metrics.json and render its model card.

    python -m pipelines.measure.vae --name vae-mnist-2d
    python -m pipelines.measure.vae --name vae-mnist-16d --write-readme   # also the README's VAE table

Figures (all per test image, in nats unless said otherwise):
- test ELBO = E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)), one seeded sample z = μ + σ·ε per image;
- reconstruction error of decode(μ): BCE summed over the 784 pixels, and the squared error;
- midpoint check: for random pairs of test digits of *different* classes, decode the latent
  midpoint λ = ½ (linear and spherical) and ask the judge classifier (`checkpoints/classifier-mnist`)
  how confident it is; compared with the pixel-space average of the same two images and with
  the judge on real test digits.
For the 2-D model it also writes `test_latents.safetensors` (μ of every test image + label, fp16),
the points of the tab's latent map, so the app draws the map without the dataset.
"""
from __future__ import annotations

import argparse

import torch
from safetensors.torch import save_file

from ..cards import update_metrics, write_card
from ..checkpoints import checkpoints_root, read_json
from ..readme import replace_section
from ..data import dataset_tensors
from ..runtime import cpu_generator
from ..training import command_line
from ..vae.model import kl_divergence, lerp, reconstruction_bce, slerp, to_unit
from ..vae.pipeline import VAE, load_vae
from .context import Context
from .samplers import vae_dim, vae_sample

CONFIDENT = 0.9
TARGET_NEG_ELBO = {2: 140.0, 16: 95.0}   # the lesson's bars on test −ELBO (nats / image): a VAE good enough to teach


@torch.no_grad()
def elbo_and_reconstruction(vae: VAE, x: torch.Tensor, seed: int = 0, batch_size: int = 1000) -> dict[str, torch.Tensor]:
    """Per-image ELBO (one z sample per image from `seed`), KL, BCE and squared error of decode(μ); x in [-1, 1]."""
    gen, out = cpu_generator(seed), {"elbo": [], "kl": [], "rec_bce": [], "rec_sse": []}
    m = vae.model
    for i in range(0, len(x), batch_size):
        xu = to_unit(x[i:i + batch_size]).to(vae.device)
        mu, logvar = m.encode(xu)
        z = m.reparameterize(mu, logvar, gen)
        kl = kl_divergence(mu, logvar)
        out["elbo"].append(-(reconstruction_bce(m.decode_logits(z), xu) + kl).cpu())
        out["kl"].append(kl.cpu())
        logits_mu = m.decode_logits(mu)
        out["rec_bce"].append(reconstruction_bce(logits_mu, xu).cpu())
        out["rec_sse"].append((torch.sigmoid(logits_mu) - xu).pow(2).flatten(1).sum(1).cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def different_class_pairs(y: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """n index pairs (i, j) with y[i] != y[j], drawn with `seed`."""
    gen = cpu_generator(seed)
    pairs = torch.randint(0, len(y), (4 * n, 2), generator=gen)
    pairs = pairs[y[pairs[:, 0]] != y[pairs[:, 1]]]
    return pairs[:n]


@torch.no_grad()
def midpoint_check(vae: VAE, judge, x: torch.Tensor, y: torch.Tensor, pairs: int = 500, seed: int = 0) -> dict:
    """Decoded latent midpoints of different-class pairs, judged two ways, against baselines.

    1. the judge's confidence (mean max-probability) and whether it names one of the two classes;
    2. "digit-like": the judge-feature distance to the nearest of 2,000 real test digits is within the
       99th percentile of that distance for 500 other real digits. (1) alone is no evidence — the judge
       is ~100% confident on pure noise — (2) is what tells a digit from noise.
    Test images 0..1999 are the feature reference, 2000..2499 calibrate the threshold, pairs come from the rest.
    """
    ref, cal, pool = x[:2000], x[2000:2500], 2500
    ref_feats = judge.embed(ref)

    def nn_distance(images):
        return torch.cdist(judge.embed(images), ref_feats).min(1).values

    threshold = nn_distance(cal).quantile(0.99)
    idx = different_class_pairs(y[pool:], pairs, seed) + pool
    a, b = x[idx[:, 0]], x[idx[:, 1]]
    mu_a, _ = vae.encode(a)
    mu_b, _ = vae.encode(b)
    candidates = {
        "linear": vae.decode(lerp(mu_a, mu_b, 0.5)),
        "spherical": vae.decode(torch.cat([slerp(mu_a[k:k + 1], mu_b[k:k + 1], 0.5) for k in range(len(idx))])),
        "reconstruction": vae.decode(mu_a),
        "pixel_average": (a + b) / 2,
        "noise": torch.rand(a.shape, generator=cpu_generator(seed)) * 2 - 1,
        "real": a,
    }
    out = {"pairs": len(idx), "feature_threshold": threshold.item()}
    for key, images in candidates.items():
        p = judge.predict_proba(images)
        conf, cls = p.max(-1)
        out[f"{key}_confidence"] = conf.mean().item()
        out[f"{key}_confident_fraction"] = (conf > CONFIDENT).float().mean().item()
        out[f"{key}_digit_like_fraction"] = (nn_distance(images) <= threshold).float().mean().item()
        out[f"{key}_endpoint_class_fraction"] = ((cls == y[idx[:, 0]]) | (cls == y[idx[:, 1]])).float().mean().item()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="vae-mnist-2d", choices=["vae-mnist-2d", "vae-mnist-16d"])
    p.add_argument("--pairs", type=int, default=1000, help="different-class pairs for the midpoint check")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data-root", default=None)
    p.add_argument("--write-readme", action="store_true", help="refresh the README's VAE table (both models)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    vae = load_vae(args.name, "cpu")
    x, y = dataset_tensors("mnist", train=False, root=args.data_root)
    f = elbo_and_reconstruction(vae, x, args.seed)
    values = {
        "test_images": len(x), "test_elbo": f["elbo"].mean().item(), "test_kl": f["kl"].mean().item(),
        "recon_bce": f["rec_bce"].mean().item(), "recon_sse": f["rec_sse"].mean().item(),
        "recon_bce_p999": f["rec_bce"].quantile(0.999).item(),
    }
    rows = [
        dict(figure="test ELBO (nats / image, higher is better)", value=values["test_elbo"],
             protocol=f"all {len(x):,} MNIST test images, pixels in [0,1], one z sample (seed {args.seed})"),
        dict(figure="KL(q(z|x) ‖ N(0,I)) (nats / image)", value=values["test_kl"], protocol="same images"),
        dict(figure="reconstruction error: BCE of decode(μ) (nats / image)", value=values["recon_bce"],
             protocol="summed over 784 pixels, mean over the test set"),
        dict(figure="reconstruction error: squared error of decode(μ) (per image)", value=values["recon_sse"],
             protocol=f"Σ over 784 pixels of (x̂ − x)², x in [0,1]; per pixel {values['recon_sse'] / 784:.4f}"),
        dict(figure="99.9th percentile of the BCE (the app's \"not digit-like\" threshold)",
             value=values["recon_bce_p999"], protocol="test set"),
    ]
    try:
        from ..classifier import load_classifier
        judge = load_classifier("mnist", "cpu")
    except FileNotFoundError as exc:
        print(f"midpoint check skipped: {exc}")
        judge = None
    if judge is not None:
        mid = midpoint_check(vae, judge, x, y, args.pairs, args.seed)
        values.update({f"midpoint_{k}": v for k, v in mid.items()})
        proto = (f"{mid['pairs']} random test pairs of different classes (seed {args.seed}); "
                 f"judge = classifier-mnist (test accuracy {judge.record.get('test_accuracy', float('nan')):.4f})")
        same = "same pairs"
        rows += [
            dict(figure="midpoint λ=½ (linear): judge's mean max-probability", value=mid["linear_confidence"], protocol=proto),
            dict(figure=f"midpoint λ=½ (linear): fraction judged with p > {CONFIDENT}",
                 value=mid["linear_confident_fraction"], protocol=same),
            dict(figure="midpoint λ=½ (linear): judged as one of the two endpoint classes",
                 value=mid["linear_endpoint_class_fraction"], protocol=same),
            dict(figure="midpoint λ=½ (linear): digit-like in judge-feature space", value=mid["linear_digit_like_fraction"],
                 protocol="nearest-real-digit feature distance within the 99th percentile of real digits' (2,000 reference images)"),
            dict(figure="midpoint λ=½ (spherical): judge's mean max-probability", value=mid["spherical_confidence"],
                 protocol=same),
            dict(figure="midpoint λ=½ (spherical): digit-like in judge-feature space",
                 value=mid["spherical_digit_like_fraction"], protocol=same),
            dict(figure="reference: this VAE's reconstructions: digit-like fraction",
                 value=mid["reconstruction_digit_like_fraction"], protocol="decode(μ) of the first image of each pair"),
            dict(figure="baseline: pixel average ½(x1 + x2): judge's mean max-probability",
                 value=mid["pixel_average_confidence"], protocol="same pairs, no VAE"),
            dict(figure="baseline: pixel average: digit-like fraction", value=mid["pixel_average_digit_like_fraction"],
                 protocol="same pairs, no VAE"),
            dict(figure="baseline: uniform noise: judge's mean max-probability", value=mid["noise_confidence"],
                 protocol="the judge is over-confident on noise: confidence alone is no evidence"),
            dict(figure="baseline: uniform noise: digit-like fraction", value=mid["noise_digit_like_fraction"],
                 protocol="same number of images"),
            dict(figure="reference: real test digits: judge's mean max-probability", value=mid["real_confidence"],
                 protocol="the first image of each pair (label smoothing caps it near 0.95)"),
        ]
    if vae.latent_dim == 2:
        mu, _ = vae.encode(x)
        save_file({"mu": mu.half().contiguous(), "labels": y.to(torch.uint8).contiguous()},
                  vae.path / "test_latents.safetensors")
    values["weights_hash"] = vae.weights_hash  # over every *.safetensors in the folder, the latents included
    update_metrics(vae.path, "vae", command_line(), rows, values=values)
    render_card(vae)
    for r in rows:
        print(f"{r['figure']}: {r['value']:.4f}")
    if args.write_readme:
        replace_section("vae", readme_section())


def readme_section() -> str:
    """The README's VAE table: test −ELBO against the lesson's bar, reconstruction and training, per shipped model."""
    lines = ["| model | test −ELBO (nats / image) | bar | KL | BCE of decode(μ) | width | epochs | wall time (s): "
             "this run / every run |",
             "|---|---|---|---|---|---|---|---|"]
    commands = []
    for name, dim in (("vae-mnist-2d", 2), ("vae-mnist-16d", 16)):
        folder = checkpoints_root() / name
        m, rec = read_json(folder / "metrics.json", {}), read_json(folder / "training_record.json", {})
        v = m.get("values")
        if not v:
            continue
        neg, bar = -v["test_elbo"], TARGET_NEG_ELBO[dim]
        lines.append(f"| {name} | {neg:.1f} | ≤ {bar:g} ({'met' if neg <= bar else 'missed'}) | {v['test_kl']:.1f} | "
                     f"{v['recon_bce']:.1f} | {rec.get('width', '?')} | {rec.get('epochs', '?')} | "
                     f"{rec.get('wall_seconds', 0):,} / {rec.get('total_wall_seconds', rec.get('wall_seconds', 0)):,} |")
        commands.append(f"`{m['commands']['vae']}`")
    return ("The MNIST VAEs on all 10,000 test images (one seeded z per image), measured by " + " and ".join(commands)
            + "; trained by the commands in their cards:\n\n" + "\n".join(lines))


def precision_note() -> list[str]:
    """The card's line on bf16, from `python -m pipelines.measure.vae_precision` (nothing before it has run)."""
    from .vae_precision import RESULT
    doc = read_json(RESULT, {})
    if not doc:
        return []
    f, b = doc["runs"]["fp32"]["test_neg_elbo"][-1][1], doc["runs"]["bf16"]["test_neg_elbo"][-1][1]
    return [f"- bf16 against fp32 (`{doc['command']}`: {doc['settings']}, {doc['epochs']} epochs each, the same seed, "
            f"back to back): test −ELBO {f:.2f} and {b:.2f} nats, wall time ×{doc['speedup']:.2f} for bf16."]


def render_card(vae: VAE) -> None:
    record = read_json(vae.path / "training_record.json", {})
    d, beta, w = vae.latent_dim, record.get("beta", 1.0), vae.model.config["width"]
    use = ("the **latent map** of the tab: every test digit's μ is a point in the plane, and the decoder "
           "turns a grid over the plane into digits" if d == 2 else
           "**sharp reconstructions** and interpolations; its latent is too big to draw directly")
    summary = f"""A convolutional VAE (Kingma & Welling 2014) with a **{d}-dimensional latent**, trained here on the
MNIST training set with loss BCE + β·KL, β = {beta:g}. Used by the *VAE latent space* tab for {use}.

Architecture (`pipelines/vae/model.py`, the assignment's conv VAE at width w = {w}): encoder = two stride-2 4×4
convolutions (1→{w}→{2 * w} channels, ReLU) → `fc_mu`, `fc_logvar`; decoder = linear → {2 * w}×7×7 →
ConvTranspose2d({2 * w}→{w}) → ReLU → ConvTranspose2d({w}→1) → sigmoid. {vae.parameters:,} parameters, weights stored
in fp16 (`{vae.weights_hash}`)."""
    elbo = record.get("test_elbo_curve", [])
    target = TARGET_NEG_ELBO.get(d)
    values = read_json(vae.path / "metrics.json", {}).get("values", {})   # as just written (vae.metrics is the load's)
    measured = -values["test_elbo"] if "test_elbo" in values else None
    elbo_table = ([f"## Test −ELBO after each epoch (the bar: ≤ {target:g} nats)", "",
                   "Measured by the trainer on all 10,000 test images in fp32 after every epoch (one seeded z per "
                   "image), so the curve shows where training stood:", "",
                   "| epoch | step | test −ELBO (nats / image) |", "|---|---|---|"]
                  + [f"| {k + 1} | {s:,} | {-v:.2f} |" for k, (s, v) in enumerate(elbo)
                     if k % max(1, len(elbo) // 12) == 0 or k == len(elbo) - 1] + [""]) if elbo else []
    if measured is not None and target is not None:
        elbo_table += [f"The shipped weights (fp16): test −ELBO {measured:.1f} nats, "
                       f"{'within' if measured <= target else 'short of'} the bar of {target:g}.", ""]
    curve = record.get("loss_curve", [])
    every = max(1, len(curve) // 10)
    table = ["| step | BCE + β·KL (running mean, nats / image) |", "|---|---|"]
    table += [f"| {s:,} | {v:.2f} |" for s, v in curve[::every] + ([curve[-1]] if (len(curve) - 1) % every else [])]
    extra = "\n".join([
        *elbo_table,
        "## Training loss curve", "", *table, "",
        "Full curves (total, BCE and KL, every few steps) are in `training_record.json`.", "",
        "## Notes", "",
        "- MNIST grey levels are used as Bernoulli targets, as in the assignment; the ELBO is therefore a bound "
        "on that (not strictly normalised) likelihood, the usual convention for this model.",
        "- **β** (`--beta`): β < 1 buys sharper reconstructions with a latent space that has holes between "
        "classes; β > 1 pushes q(z|x) towards N(0, I), which makes interpolations and samples smoother and "
        "blurrier and switches off unneeded latent dimensions. β = 1 optimises the true ELBO.",
        "- Interpolation decodes (1−λ)·μ1 + λ·μ2 (the means, not samples); `slerp` in model.py gives the "
        "spherical path.",
        f"- Training: Adam at {record.get('lr', '?')} with a cosine decay, batch {record.get('batch_size', '?')}, "
        f"autocast {record.get('mixed_precision', 'no')} for the convolutions and linear layers, the loss in fp32. "
        "At width 64 a rate of 2e-3 collapsed the posterior onto the prior (KL ≈ 0 within 150 steps); 1e-3 does not.",
        *precision_note(),
        "- Card rendered by `python -m pipelines.measure.vae`; figures come from `metrics.json`.",
    ])
    write_card(vae.path, f"{vae.name}: convolutional VAE, {d}-D latent (MNIST)", summary, extra)


# ----------------------------------------------------------------------------- in the evaluation command
def suite_rows(name: str, ctx: Context) -> list[dict]:
    """FID and IS of the VAE's samples, decoder means of z ~ N(0, I) (`python -m pipelines.evaluate`)."""
    dim = vae_dim(name)
    load_vae(name)  # CheckpointMissing -> skipped
    p = ctx.protocol
    return ctx.score(vae_sample(name, p.n, p.seed), "mnist", f"MNIST VAE, {dim}-D latent",
                     "decoder mean of z ~ N(0, I)",
                     protocol=f"{p.n:,} samples, z ~ N(0, I) with seeds {p.seed}·1000 + batch, decoder means",
                     plot=dict(name="MNIST VAE: sample quality vs latent size", x=dim, x_label="latent dimensions",
                               series="decoder mean of z ~ N(0, I)"))


if __name__ == "__main__":
    main()

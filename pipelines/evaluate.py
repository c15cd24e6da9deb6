"""One evaluation command: every shipped model, scored under one stated protocol.

    python -m pipelines.evaluate                 # the default protocol (< 30 min on 2 CPU cores)
    python -m pipelines.evaluate --quick         # smoke test, ~1-2 min: tiny n, not a measurement
    python -m pipelines.evaluate --only ddpm-mnist --n 1000 --features classifier,inception-v3
    python -m pipelines.evaluate --list

Writes `results/metrics.json` + `results/metrics.md`, regenerates the README section between
`<!-- metrics:start -->` and `<!-- metrics:end -->`, and gives each evaluated checkpoint its rows in
`checkpoints/<name>/metrics.json` (the model card's "Measured quality"). `--quick` writes to
`results/quick/` and leaves README and checkpoints alone.

Protocol (the same for every model, so figures are comparable within it):
  - features: each dataset's judge classifier trained here (its 128-d penultimate layer and its
    softmax); Inception-v3 pool3 in addition with `--features classifier,inception-v3` when its
    weights are in the local torch hub cache (use a GPU: at 299×299 it costs ~6 GFLOPs an image);
  - FID reference: the whole real test split; IS splits: 10, at least 100 images per split;
  - n generated images per point (default 500: beware FID's small-n bias), drawn in batches of
    64 with seeds seed·1000 + batch index (the same noise for every setting of one model);
  - class-conditional models (CFG, zero-SNR lesson) ask for every class in turn (n/K of each), DDIM
    with `guided_steps` steps; the judge's accuracy is scored where the judge knows the classes;
  - brightness-varied MNIST has no judge of its own: its FID / IS use the MNIST judge's features
    against its own test split (said in each row's protocol);
  - floors at the same protocol: n real training images against the reference, and two
    disjoint random halves of the test split (5,000 each).

Adding a model (owners of the other models): write a function `fn(ctx) -> rows` and decorate it
with `@evaluation("name", checkpoint="...")`; use `ctx.score(images, dataset, model=..., setting=...)`
to get labelled rows. A missing checkpoint (CheckpointMissing) is reported as skipped. For the
Metrics tab's on-demand scoring, register a sampler with `@generator(...)`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from .cards import refresh_card, update_metrics
from .checkpoints import PROJECT_ROOT, CheckpointMissing, checkpoints_root, read_json, write_json
from .metrics.features import (DATASET_TITLES, DEFAULT_FEATURES, JUDGES, FeatureNetworkMissing,
                               get_feature_network)
from .metrics.scoring import (Score, real_floor, real_subset, real_vs_real,
                              reference_description, score_images)
from .training import hardware_summary

START, END = "<!-- metrics:start -->", "<!-- metrics:end -->"
BATCH = 64          # images per sampling call (the DDPM's MAX_IMAGES)
SKIP = (CheckpointMissing, FeatureNetworkMissing)


# ----------------------------------------------------------------------------- protocol
@dataclass(frozen=True)
class Protocol:
    name: str
    n: int                   # generated images per FID / IS point
    n_half: int              # real-vs-real: images in each half of the test split
    steps: tuple[int, ...]   # sampling steps for "quality vs steps"
    guided_steps: int = 15   # DDIM steps of the class-conditional models (CFG sweep, zero-SNR lesson)
    features: tuple[str, ...] = ("classifier",)  # "classifier" = the dataset's judge, or a key in FEATURE_NETWORKS
    seed: int = 0

    def describe(self) -> str:
        return (f"{self.name} protocol: n={self.n:,} generated images per point, steps {list(self.steps)}, "
                f"class-conditional models DDIM {self.guided_steps} steps, features {', '.join(self.features)}, "
                f"real-vs-real halves of {self.n_half:,}, seed {self.seed}")


PROTOCOLS = {
    # default, in images × sampling steps: MNIST DDPM 500 × (5 + 10 + 25) × 2 samplers = 40,000 (~8 ms each on 2
    # cores); CFG UNet 500 × 15 × (4 w × 2 models + 4 zero-SNR models) = 90,000, of which the 30,000 at w = 3, 7 run
    # two passes (~7 ms each; ~3.5 ms unguided). About 13 min on 2 free cores, 15-22 min at 1 thread beside a
    # 2-thread training job. The guided models run 15 steps, not 25, to stay well inside the 30-min budget.
    "default": Protocol("default", n=500, n_half=5000, steps=(5, 10, 25), guided_steps=15),
    "quick": Protocol("quick", n=64, n_half=500, steps=(5, 10), guided_steps=5),
}


# ----------------------------------------------------------------------------- registries
@dataclass
class Evaluation:
    name: str
    title: str
    fn: Callable[["Context"], list[dict]]
    checkpoint: str | None = None


EVALUATIONS: dict[str, Evaluation] = {}


def evaluation(name: str, title: str = "", checkpoint: str | None = None):
    """Register `fn(ctx) -> rows` as an evaluation the command runs."""
    def deco(fn):
        EVALUATIONS[name] = Evaluation(name, title or name, fn, checkpoint)
        return fn
    return deco


@dataclass
class Generator:
    """A model (or setting) the Metrics tab can score on demand: sample(n, seed, steps, progress) -> images
    in [-1, 1], or (images, requested labels) for a class-conditional model (then the judge's accuracy too)."""
    name: str
    dataset: str
    sample: Callable[..., torch.Tensor]
    steps: int | None = None          # default sampling steps; None = the model has no steps knob
    description: str = ""


GENERATORS: dict[str, Generator] = {}


def generator(name: str, dataset: str, steps: int | None = None, description: str = ""):
    """Register `sample(n, seed, steps, progress)` (images in [-1, 1]) for on-demand scoring."""
    def deco(fn):
        GENERATORS[name] = Generator(name, dataset, fn, steps, description)
        return fn
    return deco


def in_batches(sample_batch: Callable[[int, int], torch.Tensor], n: int, seed: int, batch: int = BATCH) -> torch.Tensor:
    """n images from `sample_batch(size, seed)` called on batches with seeds seed·1000 + k."""
    sizes = [min(batch, n - i) for i in range(0, n, batch)]
    return torch.cat([sample_batch(size, seed * 1000 + k) for k, size in enumerate(sizes)])


# ----------------------------------------------------------------------------- context
@dataclass
class Context:
    protocol: Protocol
    log: Callable[[str], None] = print
    notes: list[str] = field(default_factory=list)

    def networks(self, dataset: str) -> list[str]:
        """Feature networks of the protocol for `dataset`; absent optional ones are noted, not fatal."""
        keys = []
        for f in self.protocol.features:
            key = DEFAULT_FEATURES[dataset] if f == "classifier" else f
            if key != DEFAULT_FEATURES[dataset]:
                try:
                    get_feature_network(key)
                except SKIP as exc:
                    note = f"{key} features skipped: {exc}"
                    if note not in self.notes:
                        self.notes.append(note)
                        self.log(note)
                    continue
            keys.append(key)
        return keys

    def score(self, images: torch.Tensor, dataset: str, model: str, setting: str, protocol: str = "",
              plot: dict | None = None, labels: torch.Tensor | None = None) -> list[dict]:
        """FID and IS rows of `images` under every feature network of the protocol (and the judge's
        accuracy when `labels`, the requested classes of a conditional model, are given)."""
        rows = []
        for key in self.networks(dataset):
            judge = key == JUDGES.get(dataset)   # only a judge trained on `dataset` knows its classes
            s = score_images(images, dataset, key, labels=labels if judge else None)
            rows += score_rows(s, dataset, model, setting, protocol, plot)
        return rows


def score_rows(s: Score, dataset: str, model: str, setting: str, protocol: str = "", plot: dict | None = None):
    base = reference_description(dataset, s.network.key)  # the network is in the figure label, described in the header
    protocol = f"{protocol}; {base}" if protocol else base
    extra = {"plot": plot} if plot else {}
    common = dict(model=model, setting=setting, dataset=dataset, n=s.n, features=s.network.key)
    rows = [
        dict(common, metric="FID", figure=s.fid_label, value=round(s.fid, 4), protocol=protocol, **extra),
        dict(common, metric="IS", figure=s.is_label, value=round(s.is_mean, 4), std=round(s.is_std, 4),
             protocol=protocol, **extra),
    ]
    if s.accuracy is not None:
        rows.append(dict(common, metric="accuracy", figure=s.accuracy_label, value=round(s.accuracy, 4),
                         protocol=protocol, **extra))
    return rows


# ----------------------------------------------------------------------------- built-in evaluations
def _floor(dataset: str):
    title = DATASET_TITLES[dataset]

    def run(ctx: Context) -> list[dict]:
        p, rows = ctx.protocol, []
        for key in ctx.networks(dataset):
            net = get_feature_network(key)
            fid = real_vs_real(dataset, key, p.n_half, p.seed)
            rows.append(dict(model=f"real {title}", setting="two disjoint random halves of the test split",
                             dataset=dataset, metric="FID", figure=net.fid_label(p.n_half), value=round(fid, 4), n=p.n_half,
                             features=key, protocol=f"{p.n_half:,} vs {p.n_half:,} test images, permutation seed "
                                                    f"{p.seed}"))
            # the floor at exactly the n used for every model: n real images the reference has not seen
            floor = score_rows(real_floor(dataset, key, p.n, p.seed), dataset, f"real {title}",
                               f"{p.n:,} real training images (the floor at this n)")
            rows += [dict(r, floor=True) for r in floor]
        return rows

    evaluation(f"floor-{dataset}", f"Real-vs-real floor ({title})")(run)


for _dataset in ("mnist", "fashion-mnist", "brightness-mnist", "shapes"):
    _floor(_dataset)

DDPM_SAMPLERS = {"DDIM": "DDIM (η=0)", "DDPM (ancestral)": "DDPM ancestral, strided"}


def ddpm_sample(sampler: str, n: int, seed: int, steps: int, progress=None) -> torch.Tensor:
    """n MNIST DDPM samples; DDPM ancestral runs `steps` strided steps (not its full 1000)."""
    from .ddpm.pipeline import load_ddpm

    model, done, total = load_ddpm(), 0, n * steps

    def batch(size, batch_seed):
        nonlocal done
        step = None
        for step in model.frames(sampler, steps, size, batch_seed, strided=True):
            done += size
            if progress:
                progress(done, total)
        return step.x.clamp(-1, 1).cpu()

    return in_batches(batch, n, seed)


for _sampler, _label in DDPM_SAMPLERS.items():
    generator(f"MNIST DDPM · {_label}", "mnist", steps=25,
              description=f"the unconditional MNIST DDPM, {_label} sampler")(
        lambda n, seed, steps, progress=None, _s=_sampler: ddpm_sample(_s, n, seed, steps, progress))


@generator("Real MNIST training images (the floor)", "mnist",
           description="n real training images: the best FID any model can reach at this n")
def real_mnist(n, seed, steps=None, progress=None):
    return real_subset("mnist", n, train=True, seed=seed)


@evaluation("ddpm-mnist", "MNIST DDPM: FID and IS vs sampling steps, DDIM vs DDPM", checkpoint="ddpm-mnist")
def ddpm_mnist(ctx: Context) -> list[dict]:
    from .ddpm.pipeline import load_ddpm

    load_ddpm()  # CheckpointMissing -> skipped
    p, rows = ctx.protocol, []
    for sampler, label in DDPM_SAMPLERS.items():
        for steps in p.steps:
            t0 = time.time()
            images = ddpm_sample(sampler, p.n, p.seed, steps)
            ctx.log(f"  {label}, {steps} steps: {p.n} images in {time.time() - t0:.0f}s")
            rows += ctx.score(images, "mnist", "MNIST DDPM", f"{label}, {steps} steps",
                              protocol=f"{p.n:,} samples, {steps} {label} steps, seeds {p.seed}·1000 + batch",
                              plot=dict(name="MNIST DDPM: quality vs sampling steps", x=steps,
                                        x_label="sampling steps", series=label))
    return rows


# ----------------------------------------------------------------------------- class-conditional (CFG) models
CFG_MODELS = {"cfg-mnist": "mnist", "cfg-fashion-mnist": "fashion-mnist"}   # checkpoint -> dataset (its judge)
CFG_SCALES = (0, 1, 3, 7)   # w = 0: the unconditional model, 1: the conditional one, > 1: guided
TAB_SCALE = 3.0             # the guidance scale of the Metrics tab's on-demand CFG samplers


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """Requested classes 0, 1, …, K−1, 0, 1, …: n/K of each; every class weighs the same in FID and accuracy."""
    return torch.arange(n) % num_classes


def finite_samples(images: torch.Tensor) -> torch.Tensor:
    """Per image: are all its pixels finite? (An ε-model started at t = T of a zero-terminal-SNR schedule
    computes x̂_0 = (x_T − sqrt(1 − ᾱ_T)·ε̂) / sqrt(ᾱ_T) with ᾱ_T = 0: NaN or inf.)"""
    return torch.isfinite(images).flatten(1).all(1)


def guided_sample(name: str, scale: float, n: int, seed: int, steps: int, progress=None):
    """n DDIM samples of the class-conditional checkpoint `name` at CFG scale w, with its stored timestep spacing.

    Returns (images in [-1, 1], NaN where the sampler diverged; the requested labels, balanced)."""
    from .cfg.pipeline import load_cfg

    model = load_cfg(name)
    labels, start, done, total = balanced_labels(n, len(model.class_names)), 0, 0, n * steps

    def batch(size, batch_seed):
        nonlocal start, done
        step = None
        for step in model.frames(labels[start:start + size].tolist(), scale, "DDIM", steps, size, batch_seed):
            done += size
            if progress:
                progress(done, total)
        start += size
        x = step.x.cpu()
        return torch.where(torch.isfinite(x), x.clamp(-1, 1), torch.nan)   # clamp would turn inf into ±1

    return in_batches(batch, n, seed), labels


def _cfg(name: str, dataset: str):
    title = DATASET_TITLES[dataset]
    generator(f"{title} CFG · w = {TAB_SCALE:g}", dataset, steps=25,
              description=f"the class-conditional {title} model ({name}), DDIM, guidance scale w = {TAB_SCALE:g}, "
                          "every class equally often; the judge's accuracy is scored too")(
        lambda n, seed, steps, progress=None: guided_sample(name, TAB_SCALE, n, seed, steps, progress))

    def run(ctx: Context) -> list[dict]:
        from .cfg.pipeline import load_cfg

        k = len(load_cfg(name).class_names)  # CheckpointMissing -> skipped
        p, rows = ctx.protocol, []
        steps = p.guided_steps
        for w in CFG_SCALES:
            t0 = time.time()
            images, labels = guided_sample(name, w, p.n, p.seed, steps)
            ctx.log(f"  w = {w:g}: {p.n} images in {time.time() - t0:.0f}s")
            rows += ctx.score(images, dataset, f"{title} CFG", f"w = {w:g}, DDIM {steps} steps",
                              protocol=f"{p.n:,} samples, the {k} classes requested in turn, DDIM {steps} steps, "
                                       f"w = {w:g}, seeds {p.seed}·1000 + batch (the same noise at every w)",
                              plot=dict(name=f"{title} classifier-free guidance: quality vs guidance scale w", x=w,
                                        x_label="guidance scale w", series=f"DDIM {steps} steps"),
                              labels=labels)
        return rows

    evaluation(name, f"{title} CFG: FID, IS and judge accuracy vs CFG scale w", checkpoint=name)(run)


for _name, _dataset in CFG_MODELS.items():
    _cfg(_name, _dataset)


# ----------------------------------------------------------------------------- VAE samples
VAE_MODELS = ("vae-mnist-2d", "vae-mnist-16d")


def vae_sample(name: str, n: int, seed: int) -> torch.Tensor:
    """n samples of the VAE's generative model: z ~ N(0, I), shown as the decoder's Bernoulli mean E[x | z]."""
    from .runtime import cpu_generator
    from .vae.pipeline import load_vae

    vae = load_vae(name)

    def batch(size, batch_seed):
        z = torch.randn((size, vae.latent_dim), generator=cpu_generator(batch_seed))
        return vae.decode(z).clamp(-1, 1)   # decode maps the decoder's [0, 1] means to [-1, 1]

    return in_batches(batch, n, seed)


def _vae(name: str):
    dim = int(name.rsplit("-", 1)[-1].rstrip("d"))
    generator(f"MNIST VAE · {dim}-D latent", "mnist",
              description=f"the {dim}-D latent VAE ({name}): decoder means of z ~ N(0, I)")(
        lambda n, seed, steps=None, progress=None: vae_sample(name, n, seed))

    def run(ctx: Context) -> list[dict]:
        from .vae.pipeline import load_vae

        load_vae(name)  # CheckpointMissing -> skipped
        p = ctx.protocol
        return ctx.score(vae_sample(name, p.n, p.seed), "mnist", f"MNIST VAE, {dim}-D latent",
                         "decoder mean of z ~ N(0, I)",
                         protocol=f"{p.n:,} samples, z ~ N(0, I) with seeds {p.seed}·1000 + batch, decoder means",
                         plot=dict(name="MNIST VAE: sample quality vs latent size", x=dim, x_label="latent dimensions",
                                   series="decoder mean of z ~ N(0, I)"))

    evaluation(name, f"MNIST VAE ({dim}-D latent): FID and IS of its samples", checkpoint=name)(run)


for _name in VAE_MODELS:
    _vae(_name)


# ----------------------------------------------------------------------------- zero terminal SNR × v-prediction
ZERO_SNR_SCALE = 1.0   # the plain conditional model; 12 balanced classes are the data's shares (1/12 black, 1/12 white)


def _zero_snr(name: str, v_prediction: bool, zero_snr: bool):
    from .zero_snr import variant_label

    label = variant_label(v_prediction=v_prediction, zero_snr=zero_snr)
    generator(f"Brightness MNIST · {label}", "brightness-mnist", steps=25,
              description=f"the zero-terminal-SNR lesson's model {name} ({label}), DDIM with its own timestep "
                          f"spacing, w = {ZERO_SNR_SCALE:g}, the 12 classes equally often; FID/IS on MNIST-judge "
                          "features against the brightness-varied MNIST test split")(
        lambda n, seed, steps, progress=None: guided_sample(name, ZERO_SNR_SCALE, n, seed, steps, progress))

    def run(ctx: Context) -> list[dict]:
        from .cfg.pipeline import load_cfg

        model = load_cfg(name)  # CheckpointMissing -> skipped
        spacing, k = model.scheduler_config.get("timestep_spacing", "leading"), len(model.class_names)
        p = ctx.protocol
        steps = p.guided_steps
        images, _ = guided_sample(name, ZERO_SNR_SCALE, p.n, p.seed, steps)
        ok = finite_samples(images)
        protocol = (f"{p.n:,} samples, the {k} classes requested in turn, DDIM {steps} steps with the model's own "
                    f"{spacing} spacing, w = {ZERO_SNR_SCALE:g}, seeds {p.seed}·1000 + batch")
        plot = dict(name="Zero terminal SNR × v-prediction on brightness-varied MNIST (MNIST-judge features)",
                    x="v" if v_prediction else "ε", x_label="prediction target",
                    series=f"{'zero-terminal-SNR' if zero_snr else 'default'} schedule, {spacing} spacing")
        title, setting = f"{label} ({name})", f"w = {ZERO_SNR_SCALE:g}, DDIM {steps} steps, {spacing} spacing"
        non_finite = dict(model=title, setting=setting, dataset="brightness-mnist", n=p.n, features=None,
                          metric="non-finite", figure=f"share of non-finite samples (NaN/inf), n={p.n:,}",
                          value=round(1 - ok.float().mean().item(), 4), protocol=protocol, plot=plot)
        if ok.sum() < max(2, p.n // 2):   # FID of a handful of images would say nothing
            ctx.log(f"  {int((~ok).sum())} of {p.n} samples are non-finite: FID and IS not computed")
            return [non_finite]
        left_out = f"; the {int((~ok).sum())} non-finite samples left out" if not ok.all() else ""
        return ctx.score(images[ok], "brightness-mnist", title, setting, protocol=protocol + left_out,
                         plot=plot) + [non_finite]

    evaluation(name, f"Zero-SNR lesson, {label}: FID and IS on brightness-varied MNIST", checkpoint=name)(run)


def _zero_snr_variants():
    from .zero_snr import VARIANTS

    for (v_prediction, zero_snr), name in VARIANTS.items():
        _zero_snr(name, v_prediction, zero_snr)


_zero_snr_variants()


# ----------------------------------------------------------------------------- text to image: LDM vs StackGAN
T2I_PLOT = "Text to image on captioned shapes, held-out prompts: latent diffusion vs StackGAN"


def _shapes_prompts(n: int, seed: int) -> tuple[list[str], torch.Tensor]:
    """n held-out-phrasing prompts (test split) and the joint shape x colour class each asks for."""
    from .ldm.evaluate import heldout_prompts
    captions, labels = heldout_prompts(n, seed)
    return captions, torch.tensor([lab["shape"] * 6 + lab["colour"] for lab in labels])


def _t2i_protocol(p: Protocol, what: str) -> str:
    return (f"{p.n:,} held-out-phrasing test prompts, 1 image each, {what}, seeds {p.seed}·1000 + batch; accuracy = "
            "the shapes judge reads both the requested shape and colour")


def _ldm_images(n: int, seed: int, steps: int, progress=None) -> tuple[torch.Tensor, float]:
    from .ldm.evaluate import generate_for
    from .ldm.pipeline import load_ldm
    from .stackgan.evaluate import ldm_best_scale
    model, w = load_ldm("ldm-shapes"), ldm_best_scale()      # CheckpointMissing -> skipped
    captions, _ = _shapes_prompts(n, seed)
    return generate_for(model, captions, w, steps, seed, progress), w


@evaluation("ldm-shapes", "Latent diffusion on captioned shapes (versus StackGAN)", checkpoint="ldm-shapes")
def ldm_shapes(ctx: Context) -> list[dict]:
    p = ctx.protocol
    images, w = _ldm_images(p.n, p.seed, p.guided_steps)
    _, labels = _shapes_prompts(p.n, p.seed)
    setting = f"w = {w:g} (its measured best), DDIM {p.guided_steps} steps"
    return ctx.score(images, "shapes", "latent diffusion (ldm-shapes)", setting,
                     protocol=_t2i_protocol(p, setting), labels=labels,
                     plot=dict(name=T2I_PLOT, x="latent diffusion", x_label="model", series="held-out prompts"))


def _stackgan_images(stage2: str | None, n: int, seed: int, progress=None) -> torch.Tensor:
    from .stackgan.evaluate import stackgan_images
    from .stackgan.pipeline import load_stackgan
    gan = load_stackgan(stage2)                                # CheckpointMissing -> skipped
    captions, _ = _shapes_prompts(n, seed)
    s1, s2 = stackgan_images(gan, captions, seed)
    if progress:
        progress(n, n)
    return s1 if stage2 is None else s2


def _stackgan(name: str, stage2: str | None, label: str):
    def run(ctx: Context) -> list[dict]:
        p = ctx.protocol
        images = _stackgan_images(stage2, p.n, p.seed)
        _, labels = _shapes_prompts(p.n, p.seed)
        setting = "one forward pass per stage" + (" (32 px, up-sampled bilinearly to 64 for the judge)"
                                                  if stage2 is None else "")
        return ctx.score(images, "shapes", f"{label} ({name})", setting, protocol=_t2i_protocol(p, setting),
                         labels=labels, plot=dict(name=T2I_PLOT, x=label, x_label="model", series="held-out prompts"))

    evaluation(name, f"{label} on captioned shapes (versus latent diffusion)", checkpoint=name)(run)


def _stackgans():
    from .stackgan import STAGE1, STAGE2, STAGE2_PIXELSHUFFLE
    for name, stage2, label in ((STAGE1, None, "StackGAN Stage I"), (STAGE2, STAGE2, "StackGAN Stage II"),
                                (STAGE2_PIXELSHUFFLE, STAGE2_PIXELSHUFFLE, "StackGAN Stage II, PixelShuffle")):
        _stackgan(name, stage2, label)
        generator(f"{label} · held-out prompts", "shapes", description="one image per held-out-phrasing prompt")(
            lambda n, seed, steps=None, progress=None, _s=stage2: _stackgan_images(_s, n, seed, progress))


_stackgans()


@generator("Latent diffusion (shapes) · held-out prompts", "shapes", steps=15,
           description="one image per held-out-phrasing prompt, DDIM at its measured best w")
def ldm_shapes_generator(n, seed, steps=15, progress=None):
    return _ldm_images(n, seed, steps, progress)[0]


# ----------------------------------------------------------------------------- running and writing
def run(protocol: Protocol, only: list[str] | None = None, log=print) -> dict:
    ctx = Context(protocol, log)
    names = only or list(EVALUATIONS)
    unknown = [n for n in names if n not in EVALUATIONS]
    if unknown:
        raise ValueError(f"unknown evaluation(s) {unknown}; choose from {list(EVALUATIONS)}")
    t_start, evaluations, rows = time.time(), {}, []
    for name in names:
        ev = EVALUATIONS[name]
        log(f"[{name}] {ev.title}")
        t0 = time.time()
        try:
            with warnings.catch_warnings():
                if protocol.name.startswith("quick"):  # n < feature dims is expected in a smoke test
                    warnings.simplefilter("ignore", UserWarning)
                ev_rows = ev.fn(ctx)
        except SKIP as exc:
            reason = str(exc).replace(f"{PROJECT_ROOT}/", "").replace(str(PROJECT_ROOT), ".")  # no machine paths
            evaluations[name] = dict(title=ev.title, status="skipped", reason=reason, checkpoint=ev.checkpoint)
            log(f"  skipped: {exc}")
            continue
        except Exception as exc:  # one broken model must not hide the others' figures
            evaluations[name] = dict(title=ev.title, status="error", reason=f"{type(exc).__name__}: {exc}",
                                     checkpoint=ev.checkpoint)
            log(f"  ERROR: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            continue
        secs = time.time() - t0
        for r in ev_rows:
            r["evaluation"] = name
        rows += ev_rows
        evaluations[name] = dict(title=ev.title, status="ok", seconds=round(secs, 1), rows=len(ev_rows),
                                 checkpoint=ev.checkpoint)
        log(f"  {len(ev_rows)} figures in {secs:.0f}s")
    features = {key: describe_features(key) for key in dict.fromkeys(r["features"] for r in rows if r.get("features"))}
    return dict(command=command(), protocol=asdict(protocol), protocol_text=protocol.describe(), features=features,
                created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), hardware=hardware_summary(),
                seconds=round(time.time() - t_start, 1), notes=ctx.notes, evaluations=evaluations, rows=rows)


def describe_features(key: str) -> str:
    try:
        return get_feature_network(key).describe()
    except (*SKIP, ValueError):
        return key


def command() -> str:
    return "python -m pipelines.evaluate " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("evaluate.py") \
        else "python -m pipelines.evaluate"


def format_value(r: dict) -> str:
    v = f"{r['value']:.4g}" if isinstance(r["value"], float) else str(r["value"])
    return f"{v} ± {r['std']:.2g}" if "std" in r else v


def markdown(doc: dict, heading: str = "##") -> str:
    lines = [f"{heading} Measured results (FID and IS)", "",
             f"_Generated by `{doc['command']}` on {doc['created']} ({doc['hardware']}), {doc['seconds']:.0f} s. "
             f"Do not edit by hand: rerun the command._", "",
             f"**Protocol.** {doc['protocol_text']}. FID is against the real test split; IS uses each "
             "network's softmax. Figures compare only within one protocol (same features, n and preprocessing); "
             "FID is biased upwards at small n, so read a model's FID against the real floor at the same n. "
             "Feature networks:", ""]
    lines += [f"- *{key}*: {text}" for key, text in doc.get("features", {}).items()]
    lines.append("")
    if doc["protocol"]["name"] == "quick":
        lines += ["> **Quick mode**: a smoke test with tiny n. These numbers are not measurements.", ""]
    if doc["rows"]:
        lines += ["| model | setting | figure | value | protocol |", "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['setting']} | {r['figure']} | {format_value(r)} | {r['protocol']} |"
                  for r in doc["rows"]]
        lines.append("")
    other = {k: v for k, v in doc["evaluations"].items() if v["status"] != "ok"}
    if other:
        lines += ["Not evaluated in this run:", ""]
        lines += [f"- **{k}** ({v['status']}): {v['reason']}" for k, v in other.items()]
        lines.append("")
    lines += [f"- {n}" for n in doc.get("notes", [])]
    return "\n".join(lines).rstrip() + "\n"


def update_readme(path: Path, section: str) -> bool:
    """Replace the text between the markers (append the markers at the end if absent). False if no README."""
    path = Path(path)
    if not path.exists():
        return False
    text = path.read_text()
    block = f"{START}\n{section.rstrip()}\n{END}"
    if START in text and END in text and text.index(START) < text.index(END):
        text = text[:text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
    return True


def write_checkpoint_metrics(doc: dict) -> list[Path]:
    """Each evaluated checkpoint's rows into checkpoints/<name>/metrics.json (rows of other commands kept)."""
    written = []
    for name, ev in doc["evaluations"].items():
        folder = checkpoints_root() / ev["checkpoint"] if ev.get("checkpoint") else None
        if ev["status"] != "ok" or folder is None or not folder.is_dir():
            continue
        mine = [dict(r, figure=f"{r['figure']}, {r['setting']}") for r in doc["rows"] if r["evaluation"] == name]
        update_metrics(folder, name, doc["command"], mine, protocol=doc["protocol_text"], created=doc["created"])
        written.append(folder / "metrics.json")
        if refresh_card(folder):  # the model card quotes the new figures too
            written.append(folder / "README.md")
    return written


def merge(old: dict | None, doc: dict) -> dict:
    """`--only` re-runs: keep the other evaluations' rows of an earlier run under the same protocol."""
    if not old or old.get("protocol") != json.loads(json.dumps(doc["protocol"])):   # as stored: tuples are lists
        return doc
    redone = set(doc["evaluations"])
    stale = redone | {k for k in old["evaluations"] if k not in EVALUATIONS}   # re-run, or no longer registered
    evaluations = {k: v for k, v in old["evaluations"].items() if k not in stale} | doc["evaluations"]
    order = {k: i for i, k in enumerate(EVALUATIONS)}
    rows = [r for r in old["rows"] if r["evaluation"] not in stale] + doc["rows"]
    rows.sort(key=lambda r: order.get(r["evaluation"], len(order)))
    seconds = sum(v.get("seconds", 0) for v in evaluations.values())
    return dict(doc, command="python -m pipelines.evaluate", features=old.get("features", {}) | doc["features"],
                evaluations=dict(sorted(
        evaluations.items(), key=lambda kv: order.get(kv[0], len(order)))), rows=rows, seconds=round(seconds, 1),
        notes=sorted(set(old.get("notes", [])) | set(doc["notes"])))


def write_results(doc: dict, out_dir: Path, readme: Path | None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "metrics.json", doc)
    (out_dir / "metrics.md").write_text(markdown(doc, "#"))
    written = [out_dir / "metrics.json", out_dir / "metrics.md"]
    if readme is not None:
        if update_readme(readme, markdown(doc, "##")):
            written.append(readme)
        else:
            print(f"note: {readme} does not exist; the README section was not written")
    return written


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke test: tiny n, few steps (~1-2 min)")
    p.add_argument("--n", type=int, default=None, help="generated images per point (overrides the protocol)")
    p.add_argument("--steps", default=None, help="comma-separated sampling steps, e.g. 10,25,50")
    p.add_argument("--guided-steps", type=int, default=None, help="DDIM steps of the class-conditional models")
    p.add_argument("--features", default=None, help="comma-separated: classifier, inception-v3")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--only", default=None, help="comma-separated evaluation names (see --list)")
    p.add_argument("--list", action="store_true", help="list the registered evaluations and exit")
    p.add_argument("--out", default=None, help="output folder (default results/, or results/quick/ with --quick)")
    p.add_argument("--readme", default=None, help="README to update (default README.md; not with --quick)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    if args.list:
        for name, ev in EVALUATIONS.items():
            print(f"{name:24s} {ev.title}" + (f"  [checkpoints/{ev.checkpoint}]" if ev.checkpoint else ""))
        return None
    if args.threads:
        torch.set_num_threads(args.threads)
    proto = PROTOCOLS["quick" if args.quick else "default"]
    changes = {}
    if args.n is not None:
        if args.n < 2:
            p.error("--n must be at least 2")
        changes["n"] = args.n
    if args.steps:
        changes["steps"] = tuple(int(s) for s in args.steps.split(","))
    if args.guided_steps is not None:
        changes["guided_steps"] = args.guided_steps
    if args.features:
        changes["features"] = tuple(s.strip() for s in args.features.split(","))
    if args.seed is not None:
        changes["seed"] = args.seed
    if changes:
        proto = Protocol(**dict(asdict(proto), **changes, name=f"{proto.name} (modified)"))
    print(proto.describe())
    doc = fresh = run(proto, args.only.split(",") if args.only else None)
    official = not args.quick and not changes
    out = Path(args.out) if args.out else PROJECT_ROOT / ("results" if not args.quick else "results/quick")
    if args.only:
        doc = merge(read_json(out / "metrics.json"), doc)
    readme = Path(args.readme) if args.readme else (PROJECT_ROOT / "README.md" if official else None)
    written = write_results(doc, out, readme)
    if official:  # only the checkpoints this run measured: the others keep the command that measured them
        written += write_checkpoint_metrics(fresh)
    print(markdown(doc))
    print(f"total {doc['seconds']:.0f} s" + ("  (over the 30-min budget of the default protocol!)"
                                              if not args.quick and doc["seconds"] > 1800 else ""))
    for path in written:
        print(f"wrote {path}")
    return doc


if __name__ == "__main__":
    main()

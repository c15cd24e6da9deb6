"""THE table of models that can be sampled for measurement: name -> sample(n, seed, steps, progress).

Shared by the Metrics tab (on-demand FID / IS) and the evaluation command (suite.py), so both score the very
same images. `sample` returns images in [-1, 1], or (images, requested labels) for a class-conditional model,
which makes the judge's accuracy a figure too. Seeds: batch k of a request draws with seed·1000 + k
(protocol.in_batches), so one seed gives the same noise at every setting of a model.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch

from ..metrics.scoring import real_subset
from ..checkpoints import checkpoints_root, read_json
from ..runtime import cpu_generator
from .protocol import balanced_labels, in_batches

DDPM_SAMPLERS = {"DDIM": "DDIM (η=0)", "DDPM (ancestral)": "DDPM ancestral, strided"}
CFG_MODELS = {"cfg-mnist": "mnist", "cfg-fashion-mnist": "fashion-mnist"}   # checkpoint -> dataset (its judge)
TAB_SCALE = 3.0          # the guidance scale of the Metrics tab's on-demand CFG samplers
ZERO_SNR_SCALE = 1.0     # the plain conditional model; 12 balanced classes are the data's shares (1/12 black, 1/12 white)
VAE_MODELS = ("vae-mnist-2d", "vae-mnist-16d")
LDM_BATCH = 16           # latent-diffusion images per call (64 px, 3 channels: a quarter of BATCH)


def vae_dim(name: str) -> int:
    """vae-mnist-16d -> 16."""
    return int(name.rsplit("-", 1)[-1].rstrip("d"))


@dataclass(frozen=True)
class Sampler:
    name: str
    dataset: str
    sample: Callable[..., torch.Tensor]   # sample(n, seed, steps, progress=None)
    steps: int | None = None              # default sampling steps; None = the model has no steps knob
    description: str = ""


def _stream(frames, size: int, steps_done: list[int], total: int, progress) -> torch.Tensor:
    """Run a sampler's frames to the end, reporting progress in image-steps; the last frame's x."""
    step = None
    for step in frames:
        steps_done[0] += size
        if progress:
            progress(steps_done[0], total)
    return step.x.cpu()


# ----------------------------------------------------------------------------- the models
def ddpm_sample(sampler: str, n: int, seed: int, steps: int, progress=None) -> torch.Tensor:
    """n MNIST DDPM samples; DDPM ancestral runs `steps` strided steps (not its full 1000)."""
    from ..ddpm.pipeline import load_ddpm

    model, done = load_ddpm(), [0]

    def batch(size, batch_seed):
        run = model.frames(sampler=sampler, steps=steps, num_images=size, seed=batch_seed, strided=True)
        return _stream(run, size, done, n * steps, progress).clamp(-1, 1)

    return in_batches(batch, n, seed)


def load_conditional(name: str):
    """A class-conditional checkpoint: the CFG lesson's, or one of the zero-SNR lesson's four."""
    from .. import zero_snr
    from ..cfg import pipeline as cfg_pipeline
    return zero_snr.load_variant(name) if name in zero_snr.VARIANTS.values() else cfg_pipeline.load_cfg(name)


def guided_sample(name: str, scale: float, n: int, seed: int, steps: int, progress=None, sampler: str = "DDIM"):
    """n samples (DDIM unless `sampler` says) of the class-conditional checkpoint `name` at CFG scale w, with its
    stored timestep spacing.

    Returns (images in [-1, 1], NaN where the sampler diverged; the requested labels, balanced)."""
    model = load_conditional(name)
    labels, start, done = balanced_labels(n, len(model.class_names)), [0], [0]

    def batch(size, batch_seed):
        classes = labels[start[0]:start[0] + size].tolist()
        start[0] += size
        x = _stream(model.frames(classes, scale=scale, sampler=sampler, steps=steps, num_images=size, seed=batch_seed),
                    size, done, n * steps, progress)
        return torch.where(torch.isfinite(x), x.clamp(-1, 1), torch.nan)   # clamp would turn inf into ±1

    return in_batches(batch, n, seed), labels


def vae_sample(name: str, n: int, seed: int, steps=None, progress=None) -> torch.Tensor:
    """n samples of the VAE's generative model: z ~ N(0, I), shown as the decoder's Bernoulli mean E[x | z]."""
    from ..vae.pipeline import load_vae

    vae = load_vae(name)

    def batch(size, batch_seed):
        z = torch.randn((size, vae.latent_dim), generator=cpu_generator(batch_seed))
        return vae.decode(z).clamp(-1, 1)   # decode maps the decoder's [0, 1] means to [-1, 1]

    return in_batches(batch, n, seed)


# ----------------------------------------------------------------------------- text to image: held-out prompts
def best_scale(name: str = "ldm-shapes") -> float:
    """The CFG scale this command measured best (max of min(shape, colour)); 3 before it has run."""
    return float(read_json(checkpoints_root() / name / "metrics.json", {}).get("adherence", {}).get("best_scale", 3))


@torch.no_grad()
def generate_for(model, captions: list[str], scale: float, steps: int, seed: int, progress=None,
                 sampler: str = "DDIM") -> torch.Tensor:
    """One image per caption (DDIM unless `sampler` says), batches of LDM_BATCH with seeds seed·1000 + batch index; progress(done, total)."""
    out = []
    for k in range(0, len(captions), LDM_BATCH):
        out.append(model.generate(captions[k:k + LDM_BATCH], scale=scale, sampler=sampler, steps=steps,
                                  seed=seed * 1000 + k // LDM_BATCH))
        if progress:
            progress(min(k + LDM_BATCH, len(captions)), len(captions))
    return torch.cat(out)


def stackgan_images(gan, captions: list[str], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Stage I, Stage II) images for the captions, batches of MAX_IMAGES, seed·1000 + batch index."""
    from ..stackgan.pipeline import MAX_IMAGES
    s1, s2 = [], []
    for k in range(0, len(captions), MAX_IMAGES):
        out = gan.for_captions(captions[k:k + MAX_IMAGES], seed=seed * 1000 + k // MAX_IMAGES)
        s1.append(out.stage1), s2.append(out.stage2)
    return torch.cat(s1), torch.cat(s2) if s2[0] is not None else None


def shapes_prompts(n: int, seed: int) -> tuple[list[str], torch.Tensor]:
    """n held-out-phrasing prompts (test split) and the joint shape x colour class each asks for."""
    from ..shapes.data import heldout_prompts
    captions, labels = heldout_prompts(n, seed)
    return captions, torch.tensor([lab["shape"] * 6 + lab["colour"] for lab in labels])


def ldm_sample(n: int, seed: int, steps: int, progress=None) -> tuple[torch.Tensor, float]:
    """One latent-diffusion image per held-out prompt, DDIM at the model's measured best w; (images, w)."""
    from ..ldm.pipeline import load_ldm
    model, w = load_ldm("ldm-shapes"), best_scale()      # CheckpointMissing -> skipped
    captions, _ = shapes_prompts(n, seed)
    return generate_for(model, captions, w, steps, seed, progress), w


def stackgan_sample(stage2: str | None, n: int, seed: int, steps=None, progress=None) -> torch.Tensor:
    """One StackGAN image per held-out prompt: Stage I (stage2=None) or the named Stage II."""
    from ..stackgan.pipeline import load_stackgan
    gan = load_stackgan(stage2)                                # CheckpointMissing -> skipped
    captions, _ = shapes_prompts(n, seed)
    s1, s2 = stackgan_images(gan, captions, seed)
    if progress:
        progress(n, n)
    return s1 if stage2 is None else s2


def real_mnist(n, seed, steps=None, progress=None):
    return real_subset("mnist", n, train=True, seed=seed)


# ----------------------------------------------------------------------------- the table
def stackgan_models() -> dict[str, tuple[str | None, str]]:
    """checkpoint -> (the Stage II to load, or None for Stage I alone; its label)."""
    from ..stackgan import STAGE1, STAGE2, STAGE2_PIXELSHUFFLE
    return {STAGE1: (None, "StackGAN Stage I"), STAGE2: (STAGE2, "StackGAN Stage II"),
            STAGE2_PIXELSHUFFLE: (STAGE2_PIXELSHUFFLE, "StackGAN Stage II, PixelShuffle")}


def _table() -> dict[str, Sampler]:
    from ..metrics.features import DATASET_TITLES
    from ..zero_snr import VARIANTS, variant_label

    rows = [Sampler(f"MNIST DDPM · {label}", "mnist", partial(ddpm_sample, sampler), steps=25,
                    description=f"the unconditional MNIST DDPM, {label} sampler")
            for sampler, label in DDPM_SAMPLERS.items()]
    rows.append(Sampler("Real MNIST training images (the floor)", "mnist", real_mnist,
                        description="n real training images: the best FID any model can reach at this n"))
    for name, dataset in CFG_MODELS.items():
        title = DATASET_TITLES[dataset]
        rows.append(Sampler(f"{title} CFG · w = {TAB_SCALE:g}", dataset, partial(guided_sample, name, TAB_SCALE),
                            steps=25, description=f"the class-conditional {title} model ({name}), DDIM, guidance "
                            f"scale w = {TAB_SCALE:g}, every class equally often; the judge's accuracy is scored too"))
    for name in VAE_MODELS:
        dim = vae_dim(name)
        rows.append(Sampler(f"MNIST VAE · {dim}-D latent", "mnist", partial(vae_sample, name),
                            description=f"the {dim}-D latent VAE ({name}): decoder means of z ~ N(0, I)"))
    for (v_prediction, zero_snr), name in VARIANTS.items():
        label = variant_label(v_prediction=v_prediction, zero_snr=zero_snr)
        rows.append(Sampler(f"Brightness MNIST · {label}", "brightness-mnist",
                            partial(guided_sample, name, ZERO_SNR_SCALE), steps=25,
                            description=f"the zero-terminal-SNR lesson's model {name} ({label}), DDIM with its own "
                            f"timestep spacing, w = {ZERO_SNR_SCALE:g}, the 12 classes equally often; FID/IS on "
                            "MNIST-judge features against the brightness-varied MNIST test split"))
    for stage2, label in stackgan_models().values():
        rows.append(Sampler(f"{label} · held-out prompts", "shapes", partial(stackgan_sample, stage2),
                            description="one image per held-out-phrasing prompt"))
    rows.append(Sampler("Latent diffusion (shapes) · held-out prompts", "shapes",
                        lambda n, seed, steps=15, progress=None: ldm_sample(n, seed, steps, progress)[0], steps=15,
                        description="one image per held-out-phrasing prompt, DDIM at its measured best w"))
    return {s.name: s for s in rows}


SAMPLERS: dict[str, Sampler] = _table()

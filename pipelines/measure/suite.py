"""The evaluations `python -m pipelines.evaluate` runs, as one explicit list, in the order of the results table.

Adding a model: write `suite_rows(ctx) -> rows` in its measure/<model>.py (use `ctx.score(images, dataset, model=...,
setting=...)` for labelled rows; raise CheckpointMissing when the model is absent, and it is reported as skipped),
put a line below, and put its sampler in samplers.SAMPLERS so the Metrics tab can score it on demand.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from ..metrics.features import DATASET_TITLES, get_feature_network
from ..metrics.scoring import real_floor, real_vs_real
from ..zero_snr import VARIANTS, variant_label
from . import cfg, ddpm, ldm, stackgan, vae, zero_snr
from .context import Context, score_rows
from .samplers import CFG_MODELS, VAE_MODELS, stackgan_models, vae_dim


@dataclass(frozen=True)
class Evaluation:
    name: str
    title: str
    fn: Callable[[Context], list[dict]]
    checkpoint: str | None = None


def floor_rows(dataset: str, ctx: Context) -> list[dict]:
    """The real-vs-real floors: two disjoint halves of the test split, and n real training images (this n's floor)."""
    title, p, rows = DATASET_TITLES[dataset], ctx.protocol, []
    for key in ctx.networks(dataset):
        net = get_feature_network(key)
        fid = real_vs_real(dataset, key, p.n_half, p.seed)
        rows.append(dict(model=f"real {title}", setting="two disjoint random halves of the test split",
                         dataset=dataset, metric="FID", figure=net.fid_label(p.n_half), value=round(fid, 4), n=p.n_half,
                         features=key, protocol=f"{p.n_half:,} vs {p.n_half:,} test images, permutation seed "
                                                f"{p.seed}"))
        floor = score_rows(real_floor(dataset, key, p.n, p.seed), dataset, f"real {title}",
                           f"{p.n:,} real training images (the floor at this n)")
        rows += [dict(r, floor=True) for r in floor]
    return rows


def _evaluations() -> list[Evaluation]:
    out = [Evaluation(f"floor-{d}", f"Real-vs-real floor ({DATASET_TITLES[d]})", partial(floor_rows, d))
           for d in ("mnist", "fashion-mnist", "brightness-mnist", "shapes")]
    out.append(Evaluation("ddpm-mnist", "MNIST DDPM: FID and IS vs sampling steps, DDIM vs DDPM", ddpm.suite_rows,
                          "ddpm-mnist"))
    out += [Evaluation(name, f"{DATASET_TITLES[d]} CFG: FID, IS and judge accuracy vs CFG scale w",
                       partial(cfg.suite_rows, name), name) for name, d in CFG_MODELS.items()]
    out += [Evaluation(name, f"MNIST VAE ({vae_dim(name)}-D latent): FID and IS of its samples",
                       partial(vae.suite_rows, name), name) for name in VAE_MODELS]
    out += [Evaluation(name, f"Zero-SNR lesson, {variant_label(v_prediction=v, zero_snr=z)}: FID and IS on "
                       "brightness-varied MNIST", partial(zero_snr.suite_rows, name), name)
            for (v, z), name in VARIANTS.items()]
    out.append(Evaluation("ldm-shapes", "Latent diffusion on captioned shapes (versus StackGAN)", ldm.suite_rows,
                          "ldm-shapes"))
    out += [Evaluation(name, f"{label} on captioned shapes (versus latent diffusion)",
                       partial(stackgan.suite_rows, name), name) for name, (_, label) in stackgan_models().items()]
    return out


EVALUATIONS: dict[str, Evaluation] = {e.name: e for e in _evaluations()}

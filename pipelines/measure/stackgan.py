"""StackGAN against latent diffusion: prompt adherence, diversity and cost, on the same held-out prompts.

    python -m pipelines.measure.stackgan --threads 2        # -> checkpoints/stackgan-*/metrics.json, README, results/
    python -m pipelines.measure.stackgan --quick            # smoke test (tiny n) -> results/quick/

Protocol:
  - adherence: `--n` prompts written with the HELD-OUT phrasings (test split; never seen in training), one image
    each (seed-derived z, ĉ sampled as in normal use); the shapes judge reads each image; figure = share of images
    whose shape / colour / size / position / background is the requested one. Stage I's 32 px sketches are
    up-sampled (bilinear) to the judge's 64 px. The LDM draws the same prompts, DDIM `--ldm-steps` steps at its
    measured best CFG scale (`checkpoints/ldm-shapes/metrics.json`; w = 3 if it has none).
  - diversity: `--groups` of those prompts x `--k` images each; mean pairwise RMS pixel distance within a prompt
    (`pipelines.shapes.diversity`), against the same figure for k real renders of each prompt's attributes.
  - cost: training wall time and parameters from each training record; sampling time per image measured here in
    one run with the same thread count (a ratio, which is what survives this machine's noisy timings).
"""
from __future__ import annotations

import argparse
import time

import torch

from ..cards import update_metrics
from ..checkpoints import PROJECT_ROOT, checkpoints_root, read_json, write_json
from ..shapes.data import ATTRIBUTE_NAMES, shapes_tensors, to_float
from ..shapes.diversity import real_groups, within_prompt_diversity
from ..training import command_line, hardware_summary
from ..shapes.data import heldout_prompts
from ..stackgan import STAGE1, STAGE2, STAGE2_PIXELSHUFFLE
from ..stackgan.card import write_stackgan_card
from ..stackgan.pipeline import MAX_IMAGES, load_stackgan
from .context import Context
from .ldm import T2I_PLOT, t2i_protocol
from .samplers import best_scale, generate_for, shapes_prompts, stackgan_images, stackgan_models, stackgan_sample

EVALUATION = "pipelines.measure.stackgan"
LDM = "ldm-shapes"


def stackgan_groups(gan, captions: list[str], k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """k samples (different z and ĉ) of each caption: (prompts, k, ...) for Stage I and Stage II."""
    s1, s2 = [], []
    for p, caption in enumerate(captions):
        out = gan.several_z(caption, n=k, seed=seed * 1000 + p)
        s1.append(out.stage1), s2.append(out.stage2)
    return torch.stack(s1), torch.stack(s2) if s2[0] is not None else None


def ldm_groups(model, captions: list[str], k: int, scale: float, steps: int, seed: int) -> torch.Tensor:
    return torch.stack([model.generate(c, scale=scale, sampler="DDIM", steps=steps, num_images=k, seed=seed * 1000 + p)
                        for p, c in enumerate(captions)])


def seconds_per_image(fn, n: int, repeats: int = 3) -> float:
    """Best of `repeats` timings of fn() (which draws n images), per image."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best / n


def evaluate(n: int = 240, groups: int = 24, k: int = 8, ldm_steps: int = 20, seed: int = 0, log=print) -> dict:
    from ..ldm.pipeline import load_ldm
    from ..shapes.judge import load_judge

    judge = load_judge("cpu")
    captions, labels = heldout_prompts(n, seed)
    real8, _, _ = shapes_tensors("test", n, seed=seed)
    models, doc = {}, {"command": command_line(), "n": n, "groups": groups, "k": k, "seed": seed,
                       "hardware": hardware_summary(), "models": {}}
    real_div = within_prompt_diversity(real_groups(labels[:groups], k, 64, seed))
    doc["real"] = {**judge.score(to_float(real8), labels), "diversity": real_div}
    log(f"real: {doc['real']}")

    # 1. StackGAN: Stage I alone, Stage II (nearest), Stage II (PixelShuffle)
    for stage2 in (STAGE2, STAGE2_PIXELSHUFFLE):
        if not (checkpoints_root() / stage2 / "generator.safetensors").is_file():
            log(f"{stage2}: no checkpoint, skipped")
            continue
        gan = load_stackgan(stage2, "cpu")
        t0 = time.time()
        s1, s2 = stackgan_images(gan, captions, seed)
        g1, g2 = stackgan_groups(gan, captions[:groups], k, seed)
        if STAGE1 not in doc["models"]:
            doc["models"][STAGE1] = {**judge.score(s1, labels), "diversity": within_prompt_diversity(g1)}
            models[STAGE1] = gan
        doc["models"][stage2] = {**judge.score(s2, labels), "diversity": within_prompt_diversity(g2),
                                 "seconds": round(time.time() - t0, 1)}
        models[stage2] = gan
        log(f"{stage2}: {doc['models'][stage2]}")

    # 2. the latent diffusion model on the same prompts, at its best measured w
    if (checkpoints_root() / LDM / "unet").is_dir():
        ldm, w = load_ldm(LDM, "cpu"), best_scale()
        t0 = time.time()
        images = generate_for(ldm, captions, w, ldm_steps, seed)
        grouped = ldm_groups(ldm, captions[:groups], k, w, ldm_steps, seed)
        doc["models"][LDM] = {**judge.score(images, labels), "diversity": within_prompt_diversity(grouped),
                              "scale": w, "steps": ldm_steps, "seconds": round(time.time() - t0, 1)}
        models[LDM] = ldm
        log(f"{LDM} (w = {w:g}, DDIM {ldm_steps}): {doc['models'][LDM]}")

    # 3. cost: training time and parameters (records), sampling time per image (measured now, same threads)
    doc["cost"] = cost_rows(models, captions[:MAX_IMAGES], ldm_steps)
    doc["protocol"] = (f"{n} held-out-phrasing test prompts, 1 image each, judged by shapes-judge; diversity over "
                       f"{groups} of them x {k} images (mean pairwise RMS pixel distance; real reference: {k} renders "
                       f"of each prompt's attributes); LDM: DDIM {ldm_steps} steps at its best w; seed {seed}")
    return doc


def training_cost(*names: str) -> tuple[float, int]:
    """(wall seconds, generator/denoiser parameters) summed over the training records of `names` (+ LDM's VAE and its
    decoder fine-tune). The frozen text encoder, shared by both models, is not counted."""
    seconds, params = 0.0, 0
    for name in names:
        folder = checkpoints_root() / name
        for rec in (read_json(folder / "training_record.json", {}), read_json(folder / "vae" / "training_record.json", {})):
            seconds += rec.get("wall_seconds", 0) + rec.get("decoder_finetune", {}).get("wall_seconds", 0)
            params += rec.get("parameters", 0) if isinstance(rec.get("parameters"), int) else 0
    return seconds, params


def cost_rows(models: dict, captions: list[str], ldm_steps: int) -> dict:
    out = {}
    for name, model in models.items():
        if name == STAGE1:
            continue
        train_names = (STAGE1, name) if name != LDM else (LDM,)
        seconds, params = training_cost(*train_names)
        if name == LDM:
            per_image = seconds_per_image(lambda: model.generate(captions, scale=best_scale(), sampler="DDIM", steps=ldm_steps,
                                                                 seed=0), len(captions))
        else:
            per_image = seconds_per_image(lambda: model.for_captions(captions, seed=0), len(captions))
        out[name] = {"training_seconds": round(seconds), "parameters": params, "seconds_per_image": per_image}
    fastest = min((c["seconds_per_image"] for c in out.values()), default=1.0)
    for c in out.values():
        c["sampling_cost_ratio"] = round(c["seconds_per_image"] / fastest, 1)
    return out


def _cells(acc: dict) -> str:
    return " / ".join(f"{acc[a]:.3f}" for a in ATTRIBUTE_NAMES) + f"; {acc['all']:.3f}"


def rows_for(doc: dict, name: str) -> list[dict]:
    m, real = doc["models"][name], doc["real"]
    head = "judge accuracy (shape / colour / size / position / background; all five)"
    rows = [{"figure": f"{head}, generated", "value": _cells(m), "protocol": doc["protocol"]},
            {"figure": f"{head}, real test images of the same prompts", "value": _cells(real),
             "protocol": doc["protocol"]},
            {"figure": "diversity within a prompt (mean pairwise RMS, pixels in [-1, 1]), generated / real",
             "value": f"{m['diversity']:.3f} / {real['diversity']:.3f}", "protocol": doc["protocol"]}]
    if LDM in doc["models"] and name != LDM:
        ldm = doc["models"][LDM]
        rows.append({"figure": f"the latent diffusion model on the same prompts (w = {ldm['scale']:g}): shape / colour "
                               "/ all five; diversity", "value": f"{ldm['shape']:.3f} / {ldm['colour']:.3f} / "
                                                                 f"{ldm['all']:.3f}; {ldm['diversity']:.3f}",
                     "protocol": doc["protocol"]})
    if name in doc.get("cost", {}):
        c = doc["cost"][name]
        rows.append({"figure": "training wall time (s, both stages) / parameters / sampling s per image",
                     "value": f"{c['training_seconds']:,} / {c['parameters']:,} / {c['seconds_per_image']:.4f}",
                     "protocol": "training records; sampling: best of 3, 16 images, same threads as the LDM"})
    return rows


def comparison_table(doc: dict) -> str:
    lines = ["| model | shape | colour | size | position | background | all five | diversity | training s | "
             "parameters | sampling s / image |", "|---|---|---|---|---|---|---|---|---|---|---|"]

    def row(label, acc, cost=None):
        c = cost or {}
        tail = (f" {c['training_seconds']:,} | {c['parameters']:,} | {c['seconds_per_image']:.4f} "
                f"({c['sampling_cost_ratio']:g}x) |") if c else " | | |"
        return f"| {label} | " + " | ".join(f"{acc[a]:.3f}" for a in (*ATTRIBUTE_NAMES, "all")) + \
            f" | {acc['diversity']:.3f} |" + tail

    lines.append(row("real test images", doc["real"]))
    labels = {STAGE1: "StackGAN Stage I (32 px)", STAGE2: "StackGAN Stage II", STAGE2_PIXELSHUFFLE:
              "StackGAN Stage II, PixelShuffle", LDM: "latent diffusion (ldm-shapes, w = {w:g}, DDIM {s})"}
    for name, m in doc["models"].items():
        lines.append(row(labels[name].format(w=m.get("scale", 0), s=m.get("steps", 0)), m, doc["cost"].get(name)))
    return "\n".join(lines)


def readme_section(doc: dict | None = None) -> str:
    doc = doc or read_json(PROJECT_ROOT / "results" / "stackgan-vs-ldm.json", {})
    if not doc:
        return "_No measured figures yet: run `python -m pipelines.measure.stackgan --write-readme`._"
    return (f"Measured by `{doc['command']}` ({doc['protocol']}; {doc['hardware']}). Accuracy = share of images the "
            f"shapes judge reads as the requested attribute; diversity: 0 = every image of a prompt identical.\n\n"
            + comparison_table(doc))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=240)
    p.add_argument("--groups", type=int, default=24)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--ldm-steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="n 16, 4 groups of 4, 10 LDM steps -> results/quick/")
    p.add_argument("--write-readme", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n, groups, k, steps = (16, 4, 4, 10) if args.quick else (args.n, args.groups, args.k, args.ldm_steps)
    t0 = time.time()
    doc = evaluate(n, groups, k, steps, args.seed)
    doc["wall_seconds"] = round(time.time() - t0)
    out = PROJECT_ROOT / "results" / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "stackgan-vs-ldm.json", doc)
    print(comparison_table(doc))
    if args.quick:
        return
    for name in doc["models"]:
        if name == LDM:
            continue
        folder = checkpoints_root() / name
        update_metrics(folder, EVALUATION, doc["command"], rows_for(doc, name))
        write_stackgan_card(folder)
    if args.write_readme:
        from ..readme import replace_section
        replace_section("stackgan", readme_section(doc))
    print(f"wrote results/stackgan-vs-ldm.json and the StackGAN cards ({doc['wall_seconds']} s)")


# ----------------------------------------------------------------------------- in the evaluation command
def suite_rows(name: str, ctx: Context) -> list[dict]:
    """FID, IS and judge accuracy of one StackGAN stage on held-out prompts (`python -m pipelines.evaluate`)."""
    stage2, label = stackgan_models()[name]
    p = ctx.protocol
    images = stackgan_sample(stage2, p.n, p.seed)
    _, labels = shapes_prompts(p.n, p.seed)
    setting = "one forward pass per stage" + (" (32 px, up-sampled bilinearly to 64 for the judge)"
                                              if stage2 is None else "")
    return ctx.score(images, "shapes", f"{label} ({name})", setting, protocol=t2i_protocol(p, setting),
                     labels=labels, plot=dict(name=T2I_PLOT, x=label, x_label="model", series="held-out prompts"))


if __name__ == "__main__":
    main()

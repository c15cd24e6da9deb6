"""The three classic GAN failures, looked for in a StackGAN training record (not asserted in general: measured).

- mode collapse: the generator ignores z and draws (almost) one image per caption. Seen in the probe's
  within-prompt diversity (`pipelines.shapes.diversity`) falling far below that of real images.
- vanishing gradients: D separates real from fake so well that log(1 − D(G(z))) is flat; the original minimax
  generator loss then gives G almost no gradient. Seen as D(fake) near 0; the non-saturating loss used here,
  −log D(G(z)), keeps a gradient there, which the logged gradient norm shows.
- non-convergence: the two players chase each other instead of settling; losses oscillate and the samples'
  adherence rises and falls between probes.
- an attribute ignored: the samples draw one attribute of the caption at chance although D rejects mismatched
  captions. A random wrong caption differs in colour 5/6 of the time, so the matching-aware D can reject almost
  all of them by colour alone and never check the shape; the generator is then never asked for one. Seen in the
  probe's accuracy on that attribute near chance while D(wrong) is low, and in D's own logit: how often it prefers
  the right caption to one with only that attribute changed (`pipelines.measure.stackgan_negatives`; 0.5 = it
  does not check), or, in a run trained with hard negatives, D(wrong) on each attribute's hard negatives.
"""
from __future__ import annotations

from dataclasses import dataclass

COLLAPSE_RATIO = 0.5      # generated diversity below this share of real diversity = collapsed
D_WINS = 0.1              # mean D(fake) below this: D rejects nearly every fake
SWING = 0.15              # an accuracy drop of this much between two probes = instability
ATTRIBUTES = ("shape", "colour", "all")
CHANCE = {"shape": 1 / 4, "colour": 1 / 6}   # the probe's attributes: four shapes, six colours
IGNORED = 2.0             # probe accuracy below this multiple of chance at the end = the attribute is ignored


@dataclass
class Finding:
    failure: str
    seen: bool
    evidence: str


def _steps(rows, pred) -> list[int]:
    return [r["step"] for r in rows if pred(r)]


def _span(steps: list[int]) -> str:
    return f"steps {steps[0]:,}–{steps[-1]:,}" if len(steps) > 1 else f"step {steps[0]:,}"


def diagnose(record: dict, real_diversity: float, ranks: dict | None = None) -> list[Finding]:
    """Findings for one stage's training_record.json (its `probes` and `curves`); `ranks`: the
    `stackgan_negatives` figures of the same weights, if measured."""
    probes, curves = record.get("probes", []), record.get("curves", {})
    out = []
    # 1. mode collapse: probe diversity against real diversity (skip the untrained first probe)
    trained = [p for p in probes if p["step"] > 1]
    if trained:
        low = _steps(trained, lambda p: p["diversity"] < COLLAPSE_RATIO * real_diversity)
        lo = min(trained, key=lambda p: p["diversity"])
        above = trained[-1]["diversity"] > 1.5 * real_diversity
        out.append(Finding("mode collapse", bool(low),
                           f"within-prompt diversity {lo['diversity']:.3f} at its lowest (step {lo['step']:,}), "
                           f"{trained[-1]['diversity']:.3f} at the end; real images of the same prompts: "
                           f"{real_diversity:.3f}" + (f"; below {COLLAPSE_RATIO:.0%} of real at {_span(low)}"
                                                       if low else "")
                           + ("; far ABOVE real: one prompt's samples differ in what the prompt fixes (shape, "
                              "size, position), which is poor adherence, the opposite of collapse" if above else "")))
    # 2. vanishing gradients: D(fake) → 0, and what the generator's gradient did then
    d_fake, grad = curves.get("d_fake", []), curves.get("g_grad_norm", [])
    if d_fake and grad:
        wins = [s for s, v in d_fake if v < D_WINS]
        g = [v for _, v in grad]
        out.append(Finding("vanishing gradients", bool(wins) and min(g) < 0.01 * max(g),
                           f"D(fake) (running mean) fell below {D_WINS} at {len(wins)} of {len(d_fake)} logged points"
                           + (f" ({_span(wins)})" if wins else "") + f"; generator gradient norm ranged "
                           f"{min(g):.3g}–{max(g):.3g} (non-saturating loss: it does not vanish when D wins)"))
    # 3. non-convergence: loss oscillation late in training, adherence swings between probes
    d_loss = [v for _, v in curves.get("d_loss", [])]
    if d_loss and len(trained) > 2:
        tail = d_loss[-max(2, len(d_loss) // 4):]
        mean = sum(tail) / len(tail)
        std = (sum((v - mean) ** 2 for v in tail) / len(tail)) ** 0.5
        drops = [(b["step"], key, a[key] - b[key]) for a, b in zip(trained, trained[1:]) for key in ATTRIBUTES
                 if a[key] - b[key] > SWING]
        out.append(Finding("non-convergence", bool(drops),
                           f"D loss over the last quarter {mean:.3f} ± {std:.3f} (running means); shape / colour "
                           f"accuracy at the probes: " + ", ".join(f"{p['shape']:.2f}/{p['colour']:.2f}"
                                                                    for p in trained[-8:])
                           + (f"; an accuracy fell by more than {SWING:.2f} between probes at "
                              + ", ".join(f"step {s:,} ({k} −{d:.2f})" for s, k, d in drops[:4])
                              if drops else f"; no accuracy fell by more than {SWING:.2f} between probes")))
    # 4. an attribute ignored: the probe at chance on it while D rejects wrong captions, and what D checks
    if trained and curves.get("d_wrong"):
        end = trained[-1]
        ignored = [a for a in CHANCE if end[a] < IGNORED * CHANCE[a]]
        evidence = (f"at the last probe (step {end['step']:,}) shape {end['shape']:.2f} (chance {CHANCE['shape']:.2f}) "
                    f"and colour {end['colour']:.2f} (chance {CHANCE['colour']:.2f}), while D(wrong) fell to "
                    f"{curves['d_wrong'][-1][1]:.2f} against D(real) {curves['d_real'][-1][1]:.2f}")
        hard = {k[len("d_wrong_"):]: v[-1][1] for k, v in curves.items() if k.startswith("d_wrong_")}
        if hard:
            evidence += ("; D(wrong) on hard negatives (one attribute changed), by attribute: "
                         + ", ".join(f"{a} {v:.2f}" for a, v in hard.items()))
        else:
            evidence += ("; its wrong captions were random ones, which differ in colour 5/6 of the time and in "
                         "colour or background 97% of the time, so D could reject them without reading the shape")
        if ranks:
            evidence += ("; D prefers the right caption to one with only that attribute changed in: "
                         + ", ".join(f"{a} {r['rank']:.0%}" for a, r in ranks.items() if a != "random")
                         + " of real images (50% = it does not check it)")
        out.append(Finding("attribute ignored", bool(ignored),
                           (f"{' and '.join(ignored)} drawn near chance: " if ignored else "") + evidence))
    return out


def diagnosed_runs(folder, resolution: int) -> list[tuple[dict, list[Finding]]]:
    """Every run of one StackGAN checkpoint, oldest first: (its record, its findings). The earlier runs its record
    quotes (`--earlier`, each with its probes and curves), then the shipped one, each with the D-check figures of
    its own weights (`stackgan_negatives`) where they were measured; diversity against real renders of the
    probe's prompts at the stage's `resolution`."""
    from pathlib import Path

    from ..checkpoints import read_json, weights_hash
    from ..shapes.data import heldout_prompts
    from ..shapes.diversity import real_groups, within_prompt_diversity
    from ..stackgan.train import PROBE_PROMPTS, PROBE_Z
    from .stackgan_negatives import entries_for
    folder = Path(folder)
    record = read_json(folder / "training_record.json", {})
    if not record:
        return []
    real_diversity = within_prompt_diversity(real_groups(heldout_prompts(PROBE_PROMPTS, 0)[1], PROBE_Z, resolution))
    ranks = {e["weights"]: e["ranks"] for e in entries_for(folder.name)}
    runs = [r for r in record.get("earlier_runs", []) if r.get("probes")]
    runs.append(dict(record, weights=weights_hash(folder)))
    return [(r, diagnose(r, real_diversity, ranks.get(r.get("weights")))) for r in runs]

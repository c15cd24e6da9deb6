"""The three classic GAN failures, looked for in a StackGAN training record (not asserted in general: measured).

- mode collapse: the generator ignores z and draws (almost) one image per caption. Seen in the probe's
  within-prompt diversity (`pipelines.shapes.diversity`) falling far below that of real images.
- vanishing gradients: D separates real from fake so well that log(1 − D(G(z))) is flat; the original minimax
  generator loss then gives G almost no gradient. Seen as D(fake) near 0; the non-saturating loss used here,
  −log D(G(z)), keeps a gradient there, which the logged gradient norm shows.
- non-convergence: the two players chase each other instead of settling; losses oscillate and the samples'
  adherence rises and falls between probes.
"""
from __future__ import annotations

from dataclasses import dataclass

COLLAPSE_RATIO = 0.5      # generated diversity below this share of real diversity = collapsed
D_WINS = 0.1              # mean D(fake) below this: D rejects nearly every fake
SWING = 0.15              # an accuracy drop of this much between two probes = instability
ATTRIBUTES = ("shape", "colour", "all")


@dataclass
class Finding:
    failure: str
    seen: bool
    evidence: str


def _steps(rows, pred) -> list[int]:
    return [r["step"] for r in rows if pred(r)]


def _span(steps: list[int]) -> str:
    return f"steps {steps[0]:,}–{steps[-1]:,}" if len(steps) > 1 else f"step {steps[0]:,}"


def diagnose(record: dict, real_diversity: float) -> list[Finding]:
    """Findings for one stage's training_record.json (its `probes` and `curves`)."""
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
    return out

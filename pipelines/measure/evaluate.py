"""One evaluation command: every shipped model, scored under one stated protocol.

    python -m pipelines.evaluate                 # the default protocol (< 30 min on 2 CPU cores)
    python -m pipelines.evaluate --quick         # smoke test, ~1-2 min: tiny n, not a measurement
    python -m pipelines.evaluate --only ddpm-mnist --n 1000 --features classifier,inception-v3
    python -m pipelines.evaluate --list
    python -m pipelines.evaluate --frontier      # fewest steps at equal quality, per sampler (measure/frontier.py)

Writes `results/metrics.json` + `results/metrics.md`, regenerates the README section between
`<!-- metrics:start -->` and `<!-- metrics:end -->`, and re-renders the "Measured quality" of each evaluated
checkpoint's card with its rows (the checkpoint's metrics.json stays its own command's). `--quick` writes to
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

Adding a model: see suite.py (its evaluation) and samplers.py (its sampler, for the Metrics tab too).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from ..checkpoints import PROJECT_ROOT, read_json
from .protocol import PROTOCOLS, Protocol
from .records import merge, refresh_cards, write_results
from .report import markdown
from .runner import run
from .suite import EVALUATIONS


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--frontier" in argv:   # its own protocol (a reference point, bounds): measure/frontier.py
        from . import frontier
        return frontier.main([a for a in argv if a != "--frontier"])
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
        doc = merge(read_json(out / "metrics.json"), doc, {k: i for i, k in enumerate(EVALUATIONS)})
    readme = Path(args.readme) if args.readme else (PROJECT_ROOT / "README.md" if official else None)
    written = write_results(doc, out, readme)
    if official:  # the cards quote the figures of the official protocol only
        written += refresh_cards(doc, list(fresh["evaluations"]))
    print(markdown(doc))
    print(f"total {doc['seconds']:.0f} s" + ("  (over the 30-min budget of the default protocol!)"
                                              if not args.quick and doc["seconds"] > 1800 else ""))
    for path in written:
        print(f"wrote {path}")
    return doc


if __name__ == "__main__":
    main()

"""Train the four models of the zero-terminal-SNR lesson one after another (each resumable).

    python -m pipelines.zero_snr.train                 # all four, TRAIN_STEPS each
    python -m pipelines.zero_snr.train --threads 2 --steps 1200 --only brightness-v-zerosnr

Each run is `python -m pipelines.cfg.train` with the variant's arguments (see `train_command`), so a
run stopped half-way is picked up from `runs/<name>/state` by re-running this command.
"""
from __future__ import annotations

import argparse

from ..cfg import train as cfg_train
from . import TRAIN_STEPS, VARIANTS, train_args


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=TRAIN_STEPS)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--only", choices=list(VARIANTS.values()), action="append", help="train just these variants")
    args, rest = p.parse_known_args(argv)
    for key, name in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        extra = ["--threads", str(args.threads)] if args.threads else []
        cfg_train.main(train_args(*key, steps=args.steps) + extra + rest)


if __name__ == "__main__":
    main()

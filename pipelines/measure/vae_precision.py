"""Does bf16 autocast cost the VAE any quality? Two short runs of the same seed, fp32 and bf16, in one process.

    python -m pipelines.measure.vae_precision          # 2 epochs each of the 16-D VAE -> results/vae-precision.json

Both runs use the shipped model's settings (width 64, Adam 1e-3, batch 128) and 2 torch threads; the figure is
each run's test −ELBO after every epoch (fp32, all 10,000 test images) and its wall time, measured back to back.
The VAE cards quote the result.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ..checkpoints import PROJECT_ROOT, read_json, write_json
from ..training import hardware_summary
from ..vae import train

RESULT = PROJECT_ROOT / "results" / "vae-precision.json"
SETTINGS = ["--latent-dim", "16", "--width", "64", "--lr", "1e-3", "--batch-size", "128", "--seed", "0"]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="training images (smoke tests only)")
    p.add_argument("--out", default=str(RESULT))
    args = p.parse_args(argv)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("no", "bf16"):
            out = Path(tmp) / precision
            train.main([*SETTINGS, "--epochs", str(args.epochs), "--threads", str(args.threads), "--mixed-precision",
                        precision, "--name", f"vae-{precision}", "--runs", tmp, "--output", str(out),
                        *(["--limit", str(args.limit)] if args.limit else [])])
            rec = read_json(out / "training_record.json")
            runs["fp32" if precision == "no" else "bf16"] = {
                "test_neg_elbo": [[s, -v] for s, v in rec["test_elbo_curve"]], "wall_seconds": rec["wall_seconds"]}
    doc = {"command": "python -m pipelines.measure.vae_precision" + (f" --epochs {args.epochs}" if args.epochs != 2
                                                                     else ""),
           "settings": " ".join(SETTINGS), "epochs": args.epochs, "threads": args.threads,
           "hardware": hardware_summary(), "runs": runs,
           "difference_nats": runs["bf16"]["test_neg_elbo"][-1][1] - runs["fp32"]["test_neg_elbo"][-1][1],
           "speedup": runs["fp32"]["wall_seconds"] / max(1, runs["bf16"]["wall_seconds"])}
    write_json(args.out, doc)
    print(f"test −ELBO after {args.epochs} epochs: fp32 {runs['fp32']['test_neg_elbo'][-1][1]:.2f}, bf16 "
          f"{runs['bf16']['test_neg_elbo'][-1][1]:.2f} nats; wall time {runs['fp32']['wall_seconds']} s vs "
          f"{runs['bf16']['wall_seconds']} s (×{doc['speedup']:.2f}); wrote {args.out}")
    return doc


if __name__ == "__main__":
    main()

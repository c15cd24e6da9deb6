"""The measurement wing: every figure the app, the README and the model cards quote is made here.

    protocol.py   the stated protocol (n, steps, features, seeds) and the batching every sampler shares
    samplers.py   THE table: model name -> sample(n, seed, steps, progress), for the Metrics tab and the command
    context.py    scoring a batch of images into labelled FID / IS / accuracy rows
    suite.py      the explicit list of evaluations `python -m pipelines.evaluate` runs
    runner.py     running the suite: skipped and failed models are reported, never hidden
    report.py     the markdown table of a run
    records.py    what the command writes: results/metrics.json, the README section, the cards' figures
    evaluate.py   the command: python -m pipelines.evaluate
    benchmark.py  the speed table: python -m pipelines.benchmark

Each model's own figures (its card's "Measured quality") live in one file per model: ddpm.py, cfg.py, vae.py,
zero_snr.py, ldm.py, stackgan.py (+ stackgan_diagnose.py), each a command `python -m pipelines.measure.<model>`.
One writer per file: a checkpoint's metrics.json is written by its model's command only (through
cards.update_metrics), results/metrics.json by the evaluation command only; a card quotes both.
The model packages (pipelines/<model>/) hold only the model, its pipeline and its trainer; nothing there
imports this wing.
"""

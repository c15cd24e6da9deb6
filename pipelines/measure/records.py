"""The evaluation command's writers: results/metrics.json and .md, the README's metrics section, and the figures it
measured in each card (checkpoints/<name>/README.md). One writer per file: a checkpoint's metrics.json is written
only by that model's own command (`python -m pipelines.measure.<model>`, through `cards.update_metrics`),
results/metrics.json only by this one; a card quotes both (`cards.measured_block`).

One rule merges a partial re-run into what an earlier run wrote (`cards.replace_groups`): the rows of the groups
that were re-measured are replaced, every other row is kept. The evaluation command's `--only`, the benchmark's
`--only` and each checkpoint's metrics.json (`cards.update_metrics`, one group per command) all use it.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..cards import refresh_card, replace_groups
from ..checkpoints import checkpoints_root, write_json
from ..readme import replace_section
from .report import markdown

README_SECTION = "metrics"   # README.md: <!-- metrics:start --> … <!-- metrics:end -->


def merge(old: dict | None, doc: dict, order: dict[str, int]) -> dict:
    """`--only` re-runs: keep the other evaluations' rows of an earlier run under the same protocol; `order` is the
    suite's (name -> position), and evaluations no longer in it are dropped."""
    if not old or old.get("protocol") != json.loads(json.dumps(doc["protocol"])):   # as stored: tuples are lists
        return doc
    stale = set(doc["evaluations"]) | {k for k in old["evaluations"] if k not in order}
    evaluations = {k: v for k, v in old["evaluations"].items() if k not in stale} | doc["evaluations"]
    rows = replace_groups(old["rows"], doc["rows"], "evaluation", redone=stale, order=order)
    seconds = sum(v.get("seconds", 0) for v in evaluations.values())
    return dict(doc, command="python -m pipelines.evaluate", features=old.get("features", {}) | doc["features"],
                evaluations=dict(sorted(evaluations.items(), key=lambda kv: order.get(kv[0], len(order)))),
                rows=rows, seconds=round(seconds, 1), notes=sorted(set(old.get("notes", [])) | set(doc["notes"])))


def write_results(doc: dict, out_dir: Path, readme: Path | None) -> list[Path]:
    """results/metrics.json + metrics.md, and the README's metrics section when `readme` is given and exists."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "metrics.json", doc)
    (out_dir / "metrics.md").write_text(markdown(doc, "#"))
    written = [out_dir / "metrics.json", out_dir / "metrics.md"]
    if readme is not None:
        if Path(readme).exists():
            replace_section(README_SECTION, markdown(doc, "##"), readme)
            written.append(readme)
        else:
            print(f"note: {readme} does not exist; the README section was not written")
    return written


def refresh_cards(doc: dict, measured: list[str]) -> list[Path]:
    """Re-render the measured figures of the cards of the evaluations `measured` in this run, with the rows of `doc`
    (README.md only: the checkpoint's metrics.json belongs to its own commands)."""
    written = []
    for ev in (doc["evaluations"][name] for name in measured):
        folder = checkpoints_root() / ev["checkpoint"] if ev.get("checkpoint") else None
        if ev["status"] == "ok" and folder is not None and folder.is_dir() and refresh_card(folder, doc):
            written.append(folder / "README.md")
    return written

"""Model cards rendered from the records that commands write — never typed by hand.

`training_record.json` (written by a training command) and `metrics.json` (written by an
evaluation command) are the sources; `write_card` turns them into the folder's README.md.
"""
from __future__ import annotations

from pathlib import Path

from .checkpoints import read_json, write_json

RECORD_FIELDS = [("command", "Training command"), ("dataset", "Data"), ("train_images", "Training images"),
                 ("steps", "Optimiser steps"), ("batch_size", "Batch size"), ("epochs", "Epochs"),
                 ("parameters", "Parameters"), ("wall_seconds", "Wall time (s)"), ("hardware", "Hardware"),
                 ("final_loss", "Final training loss")]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return f"`{v}`" if isinstance(v, str) and v.startswith("python") else str(v)


def metrics_table(metrics: dict) -> str:
    """metrics.json: {"command": ..., "rows": [{"figure": ..., "value": ..., "protocol": ...}, ...]}"""
    rows = metrics.get("rows", [])
    if not rows:
        return "_No measured figures yet: run the evaluation command below._\n"
    out = ["| figure | value | protocol |", "|---|---|---|"]
    out += [f"| {r['figure']} | {_fmt(r['value'])} | {r.get('protocol', '')} |" for r in rows]
    return "\n".join(out) + "\n"


def replace_groups(old_rows: list[dict], new_rows: list[dict], key: str, redone=None, order: dict | None = None):
    """The one rule for merging a partial re-run into an earlier one: the old rows of the groups not `redone`
    (default: the groups of new_rows), then the new rows; sorted by `order` (group -> position) when given."""
    redone = {r.get(key) for r in new_rows} if redone is None else set(redone)
    rows = [r for r in old_rows if r.get(key) not in redone] + list(new_rows)
    if order is not None:
        rows.sort(key=lambda r: order.get(r.get(key), len(order)))
    return rows


def update_metrics(folder: str | Path, evaluation: str, command: str, rows: list[dict], **extra) -> dict:
    """Replace `evaluation`'s rows in folder/metrics.json, keeping the rows other commands wrote there."""
    path = Path(folder) / "metrics.json"
    old = read_json(path, {})
    rows = replace_groups(old.get("rows", []), [dict(r, evaluation=evaluation) for r in rows], "evaluation")
    doc = dict(old, **extra, commands=dict(old.get("commands", {}), **{evaluation: command}), rows=rows)
    write_json(path, doc)
    return doc


MEASURED_START, MEASURED_END = "<!-- measured:start -->", "<!-- measured:end -->"


def measured_block(metrics: dict) -> str:
    """The card's figures and the commands that measured them, between markers `refresh_card` can find."""
    commands = metrics.get("commands") or ({"": metrics["command"]} if metrics.get("command") else {})
    lines = [MEASURED_START, metrics_table(metrics)]
    lines += [f"Reproduce: `{c}`" + ("" if not name else f" ({name})") for name, c in commands.items()]
    return "\n".join(lines + [MEASURED_END])


def refresh_card(folder: str | Path) -> bool:
    """Re-render only the measured figures of an existing card from its metrics.json (False if it has no markers)."""
    path = Path(folder) / "README.md"
    text = path.read_text() if path.exists() else ""
    if MEASURED_START not in text or MEASURED_END not in text:
        return False
    head, rest = text.split(MEASURED_START, 1)
    path.write_text(head + measured_block(read_json(Path(folder) / "metrics.json", {})) + rest.split(MEASURED_END, 1)[1])
    return True


def write_card(folder: str | Path, title: str, summary: str, extra: str = "") -> Path:
    folder = Path(folder)
    record = read_json(folder / "training_record.json", {})
    metrics = read_json(folder / "metrics.json", {})
    lines = [f"# {title}", "", summary.strip(), "", "## Training record", "", "| | |", "|---|---|"]
    lines += [f"| {label} | {_fmt(record[key])} |" for key, label in RECORD_FIELDS if key in record]
    if len(record.get("history", [])) > 1:
        lines += ["", "Trained in stages (each resumed from the saved state of the one before):", ""]
        lines += [f"- from step {h['from_step']:,}: `{h['command']}`" for h in record["history"]]
    lines += ["", "The loss curve is `loss_curve` in `training_record.json` (step, running mean).", "",
              "## Measured quality", "", measured_block(metrics), ""]
    if extra:
        lines += [extra.strip(), ""]
    path = folder / "README.md"
    path.write_text("\n".join(lines))
    return path

"""Model cards rendered from the records that commands write — never typed by hand.

`training_record.json` (written by a training command) and `metrics.json` (written by an
evaluation command) are the sources; `write_card` turns them into the folder's README.md.
"""
from __future__ import annotations

from pathlib import Path

from .checkpoints import PROJECT_ROOT, read_json, write_json

RECORD_FIELDS = [("command", "Training command"), ("dataset", "Data"), ("train_images", "Training images"),
                 ("steps", "Optimiser steps"), ("batch_size", "Batch size"), ("epochs", "Epochs"),
                 ("parameters", "Parameters"), ("wall_seconds", "Wall time (s)"),
                 ("total_wall_seconds", "Wall time of every run of this model, the earlier ones included (s)"),
                 ("hardware", "Hardware"),
                 ("final_loss", "Final training loss")]


EARLIER_FIELDS = [("steps", "steps", "{:,}".format), ("width", "width", str), ("epochs", "epochs", str),
                  ("test_elbo_curve", "final test ELBO (nats)", lambda c: f"{c[-1][1]:.2f}"),
                  ("hard_negatives", "hard-negative share", "{:g}".format),
                  ("weights", "weights", "`{}`".format)]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return f"`{v}`" if isinstance(v, str) and v.startswith("python") else str(v)


def metrics_table(metrics: dict) -> str:
    """metrics.json: {"commands": {...}, "rows": [{"figure": ..., "value": ..., "protocol": ...}, ...]}"""
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
RESULTS = PROJECT_ROOT / "results" / "metrics.json"   # the evaluation command's file; that command alone writes it


def suite_rows(name: str, results: dict | None = None) -> tuple[list[dict], dict]:
    """(rows, the run) of the evaluation command (`python -m pipelines.evaluate`) for checkpoint `name`, read from
    `results` or results/metrics.json. Each file has one writer: a checkpoint's metrics.json is its own commands',
    results/metrics.json the evaluation command's; a card quotes both."""
    doc = read_json(RESULTS, {}) if results is None else results
    mine = {k for k, ev in doc.get("evaluations", {}).items() if ev.get("checkpoint") == name and ev["status"] == "ok"}
    return [r for r in doc.get("rows", []) if r.get("evaluation") in mine], doc


def format_value(r: dict) -> str:
    """A measured row's value as the tables print it: 4 significant digits, and ± its std when it has one."""
    v = f"{r['value']:.4g}" if isinstance(r["value"], float) else str(r["value"])
    return f"{v} ± {r['std']:.2g}" if "std" in r else v


def _suite_table(rows: list[dict], doc: dict) -> list[str]:
    if not rows:
        return []
    out = ["", f"Under the protocol every model shares (`{doc['command']}`, {doc['created']}; {doc['protocol_text']}):",
           "", "| figure | value | protocol |", "|---|---|---|"]
    out += [f"| {r['figure']}, {r['setting']} | {format_value(r)} | {r.get('protocol', '')} |" for r in rows]
    return out + [""]


def measured_block(metrics: dict, name: str = "", results: dict | None = None) -> str:
    """The card's figures and the commands that measured them, between markers `refresh_card` can find: the rows of
    the checkpoint's own metrics.json, then those the evaluation command measured for checkpoint `name`."""
    lines = [MEASURED_START, metrics_table(metrics)]
    lines += [f"Reproduce: `{c}`" + ("" if not key else f" ({key})") for key, c in metrics.get("commands", {}).items()]
    lines += _suite_table(*suite_rows(name, results)) if name else []
    return "\n".join(lines + [MEASURED_END])


def refresh_card(folder: str | Path, results: dict | None = None) -> bool:
    """Re-render only the measured figures of an existing card (False if it has no markers)."""
    folder = Path(folder)
    path = folder / "README.md"
    text = path.read_text() if path.exists() else ""
    if MEASURED_START not in text or MEASURED_END not in text:
        return False
    head, rest = text.split(MEASURED_START, 1)
    block = measured_block(read_json(folder / "metrics.json", {}), folder.name, results)
    path.write_text(head + block + rest.split(MEASURED_END, 1)[1])
    return True


def write_card(folder: str | Path, title: str, summary: str, extra: str = "") -> Path:
    folder = Path(folder)
    record = read_json(folder / "training_record.json", {})
    metrics = read_json(folder / "metrics.json", {})
    lines = [f"# {title}", "", summary.strip(), "", "## Training record", "", "| | |", "|---|---|"]
    lines += [f"| {label} | {_fmt(record[key])} |" for key, label in RECORD_FIELDS if key in record]
    if len(record.get("history", [])) > 1:
        lines += ["", "Trained in stages (each resumed from the saved state of the one before, unless it says otherwise):",
                  ""]
        lines += [f"- from step {h['from_step']:,}: `{h['command']}`" + (f" ({h['start']})" if h.get("start") else "")
                  for h in record["history"]]
    if record.get("earlier_runs"):
        lines += ["", "Earlier runs of this model, each started afresh and superseded by the one after:", ""]
        lines += [f"- `{r['command']}`: {r['wall_seconds']:,} s" + "".join(
            f", {label} {fmt(r[key])}" for key, label, fmt in EARLIER_FIELDS if r.get(key) is not None)
            for r in record["earlier_runs"]]
    lines += ["", "The loss curve is `loss_curve` in `training_record.json` (step, running mean).", "",
              "## Measured quality", "", measured_block(metrics, folder.name), ""]
    if extra:
        lines += [extra.strip(), ""]
    path = folder / "README.md"
    path.write_text("\n".join(lines))
    return path

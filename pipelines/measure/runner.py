"""Running the suite under one protocol: a skipped or broken model is reported, and never hides the others."""
from __future__ import annotations

import sys
import time
import traceback
import warnings
from dataclasses import asdict
from datetime import datetime, timezone

from ..checkpoints import PROJECT_ROOT
from ..metrics.features import get_feature_network
from ..training import hardware_summary
from .context import SKIP, Context
from .protocol import Protocol
from .suite import EVALUATIONS


def run(protocol: Protocol, only: list[str] | None = None, log=print) -> dict:
    ctx = Context(protocol, log)
    names = only or list(EVALUATIONS)
    unknown = [n for n in names if n not in EVALUATIONS]
    if unknown:
        raise ValueError(f"unknown evaluation(s) {unknown}; choose from {list(EVALUATIONS)}")
    t_start, evaluations, rows = time.time(), {}, []
    for name in names:
        ev = EVALUATIONS[name]
        log(f"[{name}] {ev.title}")
        t0 = time.time()
        try:
            with warnings.catch_warnings():
                if protocol.name.startswith("quick"):  # n < feature dims is expected in a smoke test
                    warnings.simplefilter("ignore", UserWarning)
                ev_rows = ev.fn(ctx)
        except SKIP as exc:
            reason = str(exc).replace(f"{PROJECT_ROOT}/", "").replace(str(PROJECT_ROOT), ".")  # no machine paths
            evaluations[name] = dict(title=ev.title, status="skipped", reason=reason, checkpoint=ev.checkpoint)
            log(f"  skipped: {exc}")
            continue
        except Exception as exc:  # one broken model must not hide the others' figures
            evaluations[name] = dict(title=ev.title, status="error", reason=f"{type(exc).__name__}: {exc}",
                                     checkpoint=ev.checkpoint)
            log(f"  ERROR: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            continue
        secs = time.time() - t0
        for r in ev_rows:
            r["evaluation"] = name
        rows += ev_rows
        evaluations[name] = dict(title=ev.title, status="ok", seconds=round(secs, 1), rows=len(ev_rows),
                                 checkpoint=ev.checkpoint)
        log(f"  {len(ev_rows)} figures in {secs:.0f}s")
    features = {key: describe_features(key) for key in dict.fromkeys(r["features"] for r in rows if r.get("features"))}
    return dict(command=command(), protocol=asdict(protocol), protocol_text=protocol.describe(), features=features,
                created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), hardware=hardware_summary(),
                seconds=round(time.time() - t_start, 1), notes=ctx.notes, evaluations=evaluations, rows=rows)


def describe_features(key: str) -> str:
    try:
        return get_feature_network(key).describe()
    except (*SKIP, ValueError):
        return key


def command() -> str:
    return "python -m pipelines.evaluate " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("evaluate.py") \
        else "python -m pipelines.evaluate"

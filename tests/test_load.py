"""The load command, small: it launches the app, times every request type alone and two at once, then runs
users in their own processes. Every request type must answer, with no failure under load."""
from __future__ import annotations

import importlib
import sys

from pipelines.checkpoints import PROJECT_ROOT


def load_test_module():
    # importable by name, so the spawned user processes (which inherit sys.path) can find `load_test.user`
    if str(PROJECT_ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
    return importlib.import_module("load_test")


def test_load_command_covers_every_generating_tab():
    import app
    named = {d["api_name"] for d in app.build_app().config["dependencies"] if d.get("api_name")}
    requested = {api.lstrip("/") for _, api, _ in load_test_module().REQUESTS}
    assert requested <= named
    tabs = {name.split("_")[0] for name in requested}
    assert {"forward", "reverse", "cfg", "zero", "vae", "text2img", "stackgan"} <= tabs


def test_small_load_run_has_no_failures():
    load_test = load_test_module()
    r = load_test.run(users=3, requests=2, rounds=1, timeout=300, concurrency=2, greedy=True)
    assert r["requests"] == 6 and r["failures"] == 0, r["failure_examples"]
    g = r["with_greedy_client"]
    assert g["failures"] == g["alone_again_failures"] == 0
    assert g["greedy_refused"] >= g["greedy_burst"] - 2  # the per-session cap admits 2 of each burst
    assert set(r["service_seconds"]) == {name for name, _, _ in load_test.REQUESTS}
    assert 0 < r["first_round"]["p50_seconds"] <= r["first_round"]["p95_seconds"]
    assert r["rss_peak_mb"] >= r["rss_end_mb"] > 0 and abs(r["memory_growth"]) < 0.5
    assert load_test.markdown(r).count("|") > 20

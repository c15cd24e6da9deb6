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


# ----------------------------------------------------------------------------- the end-to-end latency benchmark
def test_file_urls_finds_every_file_in_a_streamed_update():
    from pipelines.measure.latency import file_urls
    frame = {"path": "/tmp/a.png", "url": "http://h/a.png", "meta": {"_type": "gradio.FileData"}}
    gallery = [{"image": {"url": "http://h/b.png"}, "caption": None}, {"image": {"url": "http://h/c.png"}}]
    update = (frame, gallery, "a caption", 3, None, {"url": None})
    assert file_urls(update) == ["http://h/a.png", "http://h/b.png", "http://h/c.png"]
    assert file_urls("text") == file_urls(None) == []


def test_the_latency_benchmark_sends_the_page_defaults_and_fetches_every_streamed_file(app_demo):
    from gradio_client import Client

    from pipelines.measure.latency import page_defaults, time_fetching
    demo, url = app_demo
    client = Client(url, verbose=False, download_files=False)  # as the benchmark's: the files are fetched by hand
    fn = next(f for f in demo.fns.values() if f.api_name == "cfg_generate")
    kw = page_defaults(client, "cfg_generate")
    assert list(kw) == [p["parameter_name"] for p in client.view_api(return_format="dict", print_info=False)
                        ["named_endpoints"]["/cfg_generate"]["parameters"]]
    assert [kw[k] for k in kw] == [c.value for c in fn.inputs]  # what the page first shows
    seconds, updates, size = time_fetching(client, "cfg_generate", dict(kw, steps=3, num_images=2))
    assert seconds > 0 and updates >= 3 and size > 1000  # the streamed frames and the final gallery, fetched


def test_wait_idle_waits_for_a_quiet_process_and_gives_up_on_a_busy_one():
    import subprocess

    import pytest

    from pipelines.measure.launch import wait_idle
    quiet = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        assert wait_idle(quiet.pid, timeout=20) < 10
        with pytest.raises(TimeoutError, match="still busy"):
            wait_idle(busy.pid, timeout=3)
    finally:
        quiet.kill(), busy.kill()

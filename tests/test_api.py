"""The README's gradio_client examples, run as written against a launched app: every named endpoint answers."""
from __future__ import annotations

import os
import re
from pathlib import Path

from pipelines import infotext
from pipelines.checkpoints import PROJECT_ROOT


def readme_api_block() -> str:
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text.split("## Scripting the app (named API)", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_covers_every_named_endpoint():
    import app
    named = {d["api_name"] for d in app.build_app().config["dependencies"]
             if d.get("api_name") and d.get("api_visibility", "public") == "public"}
    shown = set(re.findall(r'api_name="/(\w+)"', readme_api_block()))
    assert named and shown == named, f"missing from the README: {named - shown}; stale: {shown - named}"


def test_readme_api_examples_run_against_the_app(app_url, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)  # the examples use repository-relative paths
    code = readme_api_block().replace("http://127.0.0.1:7860/", app_url)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - the README is ours
    assert ns["status"].startswith("done") and Path(ns["gif"]).suffix == ".gif"
    assert infotext.read(ns["samples"])["tab"] in {"cfg", "zero-snr", "ddpm", "text2img"}
    assert "noise vectors z" in ns["about"] and len(ns["captions"].splitlines()) == 10          # StackGAN
    assert infotext.read(ns["by_z"])["tab"] == "stackgan" and "slerp" in ns["note"]            # and text to image
    assert "mean brightness" in ns["readout"] or "non-finite" in ns["readout"]
    assert infotext.read(ns["toy_cfg"])["tab"] == "playground2d" and ns["toy_status"].startswith("done")   # 2-D
    assert "DDPM's Gaussian has the same mean" in ns["toy_step_note"] and "cosine" in ns["toy_agreement"]
    assert "FID" in ns["result"] and os.path.exists(ns["sweep"]) and os.path.exists(ns["grid"])

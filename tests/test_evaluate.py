"""The evaluation command: registry, skipped models, results files, the README section, and
the Metrics tab's on-demand scoring (with the judge classifier, when it is trained)."""
import json

import pytest
import torch

from pipelines import evaluate as ev
from pipelines.checkpoints import CheckpointMissing

TINY = ev.Protocol("quick", n=16, n_half=100, steps=(2,))



def test_missing_checkpoint_is_skipped_and_errors_do_not_hide_others(monkeypatch):
    def missing(ctx):
        raise CheckpointMissing("vae-mnist", "python -m pipelines.vae.train")

    def broken(ctx):
        raise RuntimeError("boom")

    def fine(ctx):
        return [dict(model="m", setting="s", metric="FID", figure="FID (x, n=16)", value=1.5, protocol="p",
                     features="mnist-classifier")]

    for name, fn in [("t-missing", missing), ("t-broken", broken), ("t-fine", fine)]:
        monkeypatch.setitem(ev.EVALUATIONS, name, ev.Evaluation(name, name, fn))
    doc = ev.run(TINY, ["t-missing", "t-broken", "t-fine"], log=lambda *_: None)
    assert doc["evaluations"]["t-missing"]["status"] == "skipped"
    assert "python -m pipelines.vae.train" in doc["evaluations"]["t-missing"]["reason"]
    assert doc["evaluations"]["t-broken"]["status"] == "error"
    assert [r["evaluation"] for r in doc["rows"]] == ["t-fine"]
    md = ev.markdown(doc)
    assert "FID (x, n=16)" in md and "t-missing** (skipped)" in md and "Quick mode" in md
    with pytest.raises(ValueError, match="unknown evaluation"):
        ev.run(TINY, ["no-such-evaluation"])


def test_readme_section_between_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    assert not ev.update_readme(readme, "x") and not readme.exists()   # never creates a README
    readme.write_text("# Project\n\nHand-written text.\n")
    assert ev.update_readme(readme, "## Results\nfirst\n")
    text = readme.read_text()
    assert text.startswith("# Project\n\nHand-written text.\n") and text.rstrip().endswith(ev.END)
    readme.write_text(text + "\n## Licence\nMIT\n")
    ev.update_readme(readme, "## Results\nsecond\n")
    text = readme.read_text()
    assert "second" in text and "first" not in text
    assert text.count(ev.START) == 1 and text.endswith("## Licence\nMIT\n")


def test_only_rerun_merges_into_earlier_results():
    old = dict(protocol={"n": 1}, evaluations={"a": {"status": "ok", "seconds": 3}, "b": {"status": "ok", "seconds": 4}},
               rows=[{"evaluation": "a", "value": 1}, {"evaluation": "b", "value": 2}], notes=[])
    new = dict(protocol={"n": 1}, evaluations={"b": {"status": "ok", "seconds": 5}},
               rows=[{"evaluation": "b", "value": 9}], notes=[], command="x", features={})
    merged = ev.merge(old, new)
    assert sorted(r["value"] for r in merged["rows"]) == [1, 9] and merged["seconds"] == 8
    assert ev.merge(dict(old, protocol={"n": 2}), new) is new   # another protocol: nothing merged


def test_ddpm_strided_ancestral_sampling_runs_the_asked_steps():
    from pipelines.ddpm.model import build_unet
    from pipelines.ddpm.pipeline import DDPM
    from pipelines.schedules import schedule_config

    torch.manual_seed(0)
    m = DDPM(build_unet().eval(), schedule_config(), {}, None, torch.device("cpu"))
    steps = list(m.frames("DDPM (ancestral)", 4, 2, seed=0, strided=True))
    assert len(steps) == 4 and steps[0].t > steps[-1].t == 0 and steps[-1].x.shape == (2, 1, 28, 28)
    assert next(iter(m.frames("DDPM (ancestral)", 4, 1, seed=0))).n == 1000   # default: the full chain


def test_quick_floor_writes_results_and_readme(mnist_judge, tmp_path):
    (tmp_path / "README.md").write_text("# Diffusion Lab\n")
    doc = ev.main(["--quick", "--only", "floor-mnist", "--out", str(tmp_path), "--readme",
                   str(tmp_path / "README.md"), "--threads", "1"])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["rows"] == doc["rows"] and doc["evaluations"]["floor-mnist"]["status"] == "ok"
    figures = {r["figure"] for r in doc["rows"]}
    assert "FID (MNIST classifier features, n=500)" in figures          # the two test halves
    assert "FID (MNIST classifier features, n=64)" in figures           # real images at the protocol's n
    halves = next(r for r in doc["rows"] if r["n"] == 500)
    at_64 = next(r for r in doc["rows"] if r["n"] == 64 and r["metric"] == "FID")
    assert 0 <= halves["value"] < at_64["value"]   # real vs real, yet FID grows as n shrinks: small-n bias
    assert "FID (MNIST classifier features, n=500)" in (tmp_path / "README.md").read_text()
    assert (tmp_path / "metrics.md").read_text().startswith("# Measured results")


def test_ddpm_evaluation_rows_when_trained(mnist_judge):
    from pipelines.ddpm.pipeline import load_ddpm
    try:
        load_ddpm()
    except CheckpointMissing:
        pytest.skip("ddpm-mnist not trained yet")
    torch.set_num_threads(1)
    doc = ev.run(TINY, ["ddpm-mnist"], log=lambda *_: None)
    rows = doc["rows"]
    assert {r["plot"]["series"] for r in rows} == set(ev.DDPM_SAMPLERS.values())
    assert all(r["figure"].endswith("n=16)") or "n=16," in r["figure"] for r in rows)


def test_metrics_tab_builds_and_scores_real_images(mnist_judge):
    import gradio as gr
    from demos import metrics

    with gr.Blocks():
        hooks = metrics.build()
    assert hooks["load"]
    status, table, plot = metrics.results_view()
    assert isinstance(status, str) and (table or "No results yet" in status)
    md, image, history, _ = metrics.compute("Real MNIST training images (the floor)", "classifier", 150, 25, 0, [])
    assert "FID (MNIST classifier features, n=150)" in md and image.size[0] > 0
    assert len(history) == 1 and float(history[0][4]) < 20
    with pytest.raises(gr.Error, match="n must be between"):
        metrics.compute("Real MNIST training images (the floor)", "classifier", 5, 25, 0, [])


def test_optional_inception_features_are_noted_when_absent(monkeypatch, tmp_path):
    from pipelines.metrics.features import get_feature_network

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    get_feature_network.cache_clear()
    ctx = ev.Context(ev.Protocol("quick", 16, 100, (2,), features=("classifier", "inception-v3")), log=lambda *_: None)
    assert ctx.networks("mnist") == ["mnist-classifier"]
    assert "inception_v3_google-0cc3c7bd.pth" in ctx.notes[0]
    get_feature_network.cache_clear()


def test_judge_accuracy_of_real_labelled_images(mnist_judge, mnist_test):
    from pipelines.metrics.scoring import score_images

    x, y = mnist_test
    s = score_images(x[:300], "mnist", "mnist-classifier", labels=y[:300])
    assert s.accuracy > 0.95 and s.accuracy_label == "accuracy (MNIST classifier, n=300)"
    rows = ev.score_rows(s, "mnist", "real", "labelled")
    assert [r["metric"] for r in rows] == ["FID", "IS", "accuracy"]
    with pytest.raises(ValueError, match="judge"):
        score_images(x[:300], "fashion-mnist", "mnist-classifier", labels=y[:300])

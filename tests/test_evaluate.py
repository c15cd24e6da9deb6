"""The evaluation command: registry, skipped models, results files, the README section, and
the Metrics tab's on-demand scoring (with the judge classifier, when it is trained)."""
import json

import pytest
import torch

from pipelines.checkpoints import CheckpointMissing
from pipelines.measure import evaluate as cli
from pipelines.measure import records, report, runner, samplers, suite
from pipelines.measure.cfg import SUITE_SCALES
from pipelines.measure.context import Context, score_rows
from pipelines.measure.protocol import Protocol

TINY = Protocol("quick", n=16, n_half=100, steps=(2,), guided_steps=2)



def test_missing_checkpoint_is_skipped_and_errors_do_not_hide_others(monkeypatch):
    def missing(ctx):
        raise CheckpointMissing("vae-mnist", "python -m pipelines.vae.train")

    def broken(ctx):
        raise RuntimeError("boom")

    def fine(ctx):
        return [dict(model="m", setting="s", metric="FID", figure="FID (x, n=16)", value=1.5, protocol="p",
                     features="mnist-classifier")]

    for name, fn in [("t-missing", missing), ("t-broken", broken), ("t-fine", fine)]:
        monkeypatch.setitem(suite.EVALUATIONS, name, suite.Evaluation(name, name, fn))
    doc = runner.run(TINY, ["t-missing", "t-broken", "t-fine"], log=lambda *_: None)
    assert doc["evaluations"]["t-missing"]["status"] == "skipped"
    assert "python -m pipelines.vae.train" in doc["evaluations"]["t-missing"]["reason"]
    assert doc["evaluations"]["t-broken"]["status"] == "error"
    assert [r["evaluation"] for r in doc["rows"]] == ["t-fine"]
    md = report.markdown(doc)
    assert "FID (x, n=16)" in md and "t-missing** (skipped)" in md and "Quick mode" in md
    with pytest.raises(ValueError, match="unknown evaluation"):
        runner.run(TINY, ["no-such-evaluation"])


def test_readme_section_between_markers_only(tmp_path):
    start, end = "<!-- metrics:start -->", "<!-- metrics:end -->"

    def doc(command):
        return dict(command=command, created="now", hardware="h", seconds=1, protocol_text="p",
                    protocol={"name": "default"}, rows=[], evaluations={})

    readme = tmp_path / "README.md"
    written = records.write_results(doc("first-run"), tmp_path / "out", readme)
    assert readme not in written and not readme.exists()   # never creates a README
    readme.write_text("# Project\n\nHand-written text.\n")
    assert readme in records.write_results(doc("first-run"), tmp_path / "out", readme)
    text = readme.read_text()
    assert text.startswith("# Project\n\nHand-written text.\n") and text.rstrip().endswith(end)
    assert "first-run" in text
    readme.write_text(text + "\n## Licence\nMIT\n")
    records.write_results(doc("second-run"), tmp_path / "out", readme)
    text = readme.read_text()
    assert "second-run" in text and "first-run" not in text
    assert text.count(start) == 1 and text.endswith("## Licence\nMIT\n")


def test_only_rerun_merges_into_earlier_results(monkeypatch):
    order = {"a": 0, "b": 1}
    old = dict(protocol={"n": 1}, evaluations={"a": {"status": "ok", "seconds": 3}, "b": {"status": "ok", "seconds": 4}},
               rows=[{"evaluation": "a", "value": 1}, {"evaluation": "b", "value": 2}], notes=[])
    new = dict(protocol={"n": 1}, evaluations={"b": {"status": "ok", "seconds": 5}},
               rows=[{"evaluation": "b", "value": 9}], notes=[], command="x", features={})
    merged = records.merge(old, new, order)
    assert sorted(r["value"] for r in merged["rows"]) == [1, 9] and merged["seconds"] == 8
    assert records.merge(dict(old, protocol={"n": 2}), new, order) is new   # another protocol: nothing merged
    # the protocol as the command holds it (tuples) against the one read back from JSON (lists): the same protocol
    stored = dict(old, protocol={"steps": [5, 10]})
    assert len(records.merge(stored, dict(new, protocol={"steps": (5, 10)}), order)["rows"]) == 2
    gone = dict(old, evaluations={**old["evaluations"], "retired": {"status": "skipped"}})   # no longer registered
    assert "retired" not in records.merge(gone, new, order)["evaluations"]


def test_ddpm_strided_ancestral_sampling_runs_the_asked_steps():
    from pipelines.ddpm.model import build_unet
    from pipelines.ddpm.pipeline import DDPM
    from pipelines.schedules import schedule_config

    torch.manual_seed(0)
    m = DDPM(build_unet().eval(), schedule_config(), {}, None, torch.device("cpu"))
    steps = list(m.frames(sampler="DDPM (ancestral)", steps=4, num_images=2, seed=0, strided=True))
    assert len(steps) == 4 and steps[0].t > steps[-1].t == 0 and steps[-1].x.shape == (2, 1, 28, 28)
    assert next(m.frames(sampler="DDPM (ancestral)", steps=4, num_images=1, seed=0)).n == 1000   # default: the full chain


def test_quick_floor_writes_results_and_readme(mnist_judge, tmp_path):
    (tmp_path / "README.md").write_text("# Diffusion Lab\n")
    doc = cli.main(["--quick", "--only", "floor-mnist", "--out", str(tmp_path), "--readme",
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
    doc = runner.run(TINY, ["ddpm-mnist"], log=lambda *_: None)
    rows = doc["rows"]
    assert {r["plot"]["series"] for r in rows} == set(samplers.DDPM_SAMPLERS.values())
    assert all(r["figure"].endswith("n=16)") or "n=16," in r["figure"] for r in rows)


def test_metrics_tab_builds_and_scores_real_images(mnist_judge, monkeypatch, tmp_path):
    import gradio as gr
    from demos import metrics

    with gr.Blocks():
        hooks = metrics.build()
    assert hooks["load"]
    # the three states of the results panel, each made here: no results, only a quick run, a full run
    full, quick = tmp_path / "metrics.json", tmp_path / "quick.json"
    monkeypatch.setattr(metrics, "RESULTS", full)
    monkeypatch.setattr(metrics, "QUICK_RESULTS", quick)
    status, table, choice, plot = metrics.results_view()
    assert "No results yet" in status and table == [] and not choice.visible and not plot.visible
    row = dict(model="m", setting="s", figure="FID (x, n=16)", value=2.5, protocol="p", metric="FID")
    doc = dict(command="python -m pipelines.evaluate --quick", created="today", hardware="h", protocol_text="p",
               rows=[row], evaluations={"gone": {"status": "skipped", "reason": "not trained"}})
    quick.write_text(json.dumps(doc))
    status, table, *_ = metrics.results_view()
    assert "No full evaluation yet" in status and "No results yet" not in status and len(table) == 1
    full.write_text(json.dumps(dict(doc, command="python -m pipelines.evaluate", rows=[row, dict(row, value=3.5)])))
    status, table, *_ = metrics.results_view()
    assert status.startswith("Results of `python -m pipelines.evaluate`") and "**gone** — skipped: not trained" in status
    assert [r[:3] for r in table] == [["m", "s", "FID (x, n=16)"]] * 2 and table[0][3] != table[1][3]
    md, image, history, _ = metrics.compute("Real MNIST training images (the floor)", "classifier", 150, 25, 0, [])
    assert "FID (MNIST classifier features, n=150)" in md and image.size[0] > 0
    assert len(history) == 1 and float(history[0][4]) < 20
    with pytest.raises(gr.Error, match="n must be between"):
        metrics.compute("Real MNIST training images (the floor)", "classifier", 5, 25, 0, [])


def test_optional_inception_features_are_noted_when_absent(monkeypatch, tmp_path):
    from pipelines.metrics.features import get_feature_network

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    get_feature_network.cache_clear()
    ctx = Context(Protocol("quick", 16, 100, (2,), features=("classifier", "inception-v3")), log=lambda *_: None)
    assert ctx.networks("mnist") == ["mnist-classifier"]
    assert "inception_v3_google-0cc3c7bd.pth" in ctx.notes[0]
    get_feature_network.cache_clear()


def test_judge_accuracy_of_real_labelled_images(mnist_judge, mnist_test):
    from pipelines.metrics.scoring import score_images

    x, y = mnist_test
    s = score_images(x[:300], "mnist", "mnist-classifier", labels=y[:300])
    assert s.accuracy > 0.95 and s.accuracy_label == "accuracy (MNIST classifier, n=300)"
    rows = score_rows(s, "mnist", "real", "labelled")
    assert [r["metric"] for r in rows] == ["FID", "IS", "accuracy"]
    with pytest.raises(ValueError, match="judge"):
        score_images(x[:300], "fashion-mnist", "mnist-classifier", labels=y[:300])


# ---------------------------------------------------------------- the other shipped models
def tiny_cfg_model(num_classes: int = 10, **schedule):
    """A random class-conditional UNet of the CFG lesson, small enough to sample in a blink."""
    from pathlib import Path

    from pipelines.cfg.model import ClassConditionalUNet
    from pipelines.cfg.pipeline import CFGModel
    from pipelines.schedules import schedule_config

    torch.manual_seed(0)
    net = ClassConditionalUNet(num_classes=num_classes, channels=(8, 16, 16), emb_dim=32).eval()
    for p in net.parameters():   # zero-initialised output layers would predict 0 everywhere
        if p.abs().sum() == 0 and p.ndim > 1:
            torch.nn.init.normal_(p, std=0.05)
    cfg = dict(net.config, class_names=[str(i) for i in range(num_classes)])
    return CFGModel(net, schedule_config(**schedule), cfg, {}, Path("."), torch.device("cpu"))


def patch_cfg_models(monkeypatch, models: dict):
    """load_cfg(name) -> the given tiny models; records each sampling call's classes and seed."""
    import pipelines.cfg.pipeline as cfg_pipeline
    import pipelines.measure.cfg as measure_cfg

    calls = []
    for model in models.values():
        frames = model.frames

        def recording(label, *, _frames=frames, **kwargs):
            calls.append(dict(classes=list(label), scale=kwargs["scale"], steps=kwargs["steps"], seed=kwargs["seed"]))
            return _frames(label, **kwargs)

        monkeypatch.setattr(model, "frames", recording)
    for module in (cfg_pipeline, measure_cfg):   # wherever the measurement looks it up (zero_snr.load_variant too)
        monkeypatch.setattr(module, "load_cfg", lambda name, device=None, retrain=None: models[name])
    return calls


def test_cfg_evaluation_scores_fid_is_and_accuracy_per_guidance_scale(mnist_judge, monkeypatch):
    torch.set_num_threads(1)
    calls = patch_cfg_models(monkeypatch, {"cfg-mnist": tiny_cfg_model()})
    protocol = Protocol("quick", n=70, n_half=100, steps=(2,), guided_steps=2)   # 70: two batches (64 + 6)
    doc = runner.run(protocol, ["cfg-mnist"], log=lambda *_: None)
    assert doc["evaluations"]["cfg-mnist"]["status"] == "ok"
    rows = doc["rows"]
    assert [(r["plot"]["x"], r["metric"]) for r in rows] == [(w, m) for w in SUITE_SCALES
                                                            for m in ("FID", "IS", "accuracy")]
    assert all(r["n"] == 70 and r["dataset"] == "mnist" and r["features"] == "mnist-classifier" for r in rows)
    assert {r["figure"] for r in rows if r["metric"] == "accuracy"} == {"accuracy (MNIST classifier, n=70)"}
    assert all(0 <= r["value"] <= 1 for r in rows if r["metric"] == "accuracy")
    assert len({r["plot"]["name"] for r in rows}) == 1 and rows[0]["plot"]["x_label"] == "guidance scale w"
    # every w: the classes requested in turn (7 of each), the same seeds, the protocol's steps
    assert [c["scale"] for c in calls] == [w for w in SUITE_SCALES for _ in range(2)]
    for w in range(len(SUITE_SCALES)):
        batches = calls[2 * w:2 * w + 2]
        assert sum((c["classes"] for c in batches), []) == [i % 10 for i in range(70)]
        assert [c["seed"] for c in batches] == [0, 1] and {c["steps"] for c in batches} == {2}


def test_zero_snr_evaluation_reports_non_finite_samples_instead_of_crashing(mnist_judge, monkeypatch):
    torch.set_num_threads(1)
    zero_snr = dict(schedule="scaled-linear (Stable Diffusion)", zero_snr=True, timestep_spacing="trailing")
    patch_cfg_models(monkeypatch, {
        # an ε-model started at t = T with ᾱ_T = 0 divides by sqrt(ᾱ_T) = 0: every sample is NaN/inf
        "brightness-eps-zerosnr": tiny_cfg_model(12, **zero_snr),
        "brightness-v-zerosnr": tiny_cfg_model(12, prediction_type="v_prediction", **zero_snr)})
    doc = runner.run(TINY, ["brightness-eps-zerosnr", "brightness-v-zerosnr"], log=lambda *_: None)
    assert {v["status"] for v in doc["evaluations"].values()} == {"ok"}
    eps = [r for r in doc["rows"] if r["evaluation"] == "brightness-eps-zerosnr"]
    assert [(r["metric"], r["value"]) for r in eps] == [("non-finite", 1.0)]
    v = [r for r in doc["rows"] if r["evaluation"] == "brightness-v-zerosnr"]
    assert [(r["metric"], r["n"]) for r in v] == [("FID", 16), ("IS", 16), ("non-finite", 16)]   # no accuracy
    assert v[2]["value"] == 0 and v[0]["features"] == "mnist-classifier" and v[0]["dataset"] == "brightness-mnist"
    assert "brightness-varied MNIST test split" in v[0]["protocol"] and "mnist-classifier judge" in v[0]["protocol"]
    assert "trailing spacing" in v[0]["setting"] and {r["plot"]["x"] for r in eps + v} == {"ε", "v"}
    assert list(doc["features"]) == ["mnist-classifier"]   # the non-finite rows name no feature network


def test_borrowed_judge_features_give_fid_but_no_accuracy(mnist_judge):
    from pipelines.metrics.features import DEFAULT_FEATURES, JUDGES
    from pipelines.metrics.scoring import reference_description, score_images

    assert DEFAULT_FEATURES["brightness-mnist"] == "mnist-classifier" and "brightness-mnist" not in JUDGES
    assert "embedded by" not in reference_description("mnist", "mnist-classifier")
    with pytest.raises(ValueError, match="judge trained on brightness-mnist"):
        score_images(torch.zeros(4, 1, 28, 28), "brightness-mnist", "mnist-classifier", labels=torch.zeros(4))


def test_text_to_image_models_are_skipped_with_their_train_command_when_absent(monkeypatch, tmp_path):
    from pipelines.ldm.pipeline import load_ldm
    from pipelines.stackgan import pipeline as sg

    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tmp_path))
    load_ldm.cache_clear(), sg._load.cache_clear()
    try:
        doc = runner.run(TINY, ["ldm-shapes", "stackgan-stage2"], log=lambda *_: None)
    finally:
        load_ldm.cache_clear(), sg._load.cache_clear()
    for name, command in (("ldm-shapes", "python -m pipelines.ldm.vae"),
                          ("stackgan-stage2", "python -m pipelines.stackgan.train --stage 1")):
        assert doc["evaluations"][name]["status"] == "skipped" and command in doc["evaluations"][name]["reason"]
    assert "ldm-shapes** (skipped)" in report.markdown(doc) and not doc["rows"]


def test_stackgan_is_scored_on_shapes_judge_features_with_its_accuracy():
    """The shipped Stage II on 16 held-out prompts: FID / IS under the shapes judge, and the shape-and-colour
    accuracy the judge reads (recomputed here from its two heads); the joint-class IS of real shapes is far above
    that of a constant image."""
    from pipelines.metrics.features import get_feature_network
    from pipelines.metrics.inception_score import inception_score

    doc = runner.run(TINY, ["stackgan-stage2"], log=lambda *_: None)
    rows = {r["metric"]: r for r in doc["rows"]}
    assert doc["evaluations"]["stackgan-stage2"]["status"] == "ok", doc["evaluations"]
    assert set(rows) == {"FID", "IS", "accuracy"} and all(r["features"] == "shapes-judge" for r in rows.values())
    assert rows["FID"]["value"] > 0 and rows["IS"]["value"] >= 1
    # the accuracy row is the share of images whose judged shape AND colour are the requested ones
    from pipelines.shapes.judge import load_judge
    images = samplers.stackgan_sample("stackgan-stage2", TINY.n, TINY.seed)
    _, labels = samplers.shapes_prompts(TINY.n, TINY.seed)
    pred = load_judge("cpu").predict(images)
    both = ((pred[:, 0] * 6 + pred[:, 1]) == labels).float().mean().item()
    assert rows["accuracy"]["value"] == pytest.approx(both, abs=1e-4)
    net = get_feature_network("shapes-judge")
    from pipelines.data import dataset_tensors
    real, y = dataset_tensors("shapes", train=False, limit=240)
    feats, probs = net.outputs(real)
    assert probs.shape == (240, 24) and (probs.argmax(1) == y.numpy()).mean() > 0.95
    assert inception_score(probs, 1)[0] > 10 > inception_score(net.outputs(real[:1].repeat(240, 1, 1, 1))[1], 1)[0]


@pytest.mark.parametrize("name", ["MNIST VAE · 2-D latent", "MNIST VAE · 16-D latent"])
def test_vae_generator_gives_n_seeded_images_in_range(name):
    gen = samplers.SAMPLERS[name]
    try:
        x = gen.sample(70, 3, None)
    except CheckpointMissing as exc:
        pytest.skip(str(exc))
    assert x.shape == (70, 1, 28, 28) and x.min() >= -1 and x.max() <= 1 and gen.steps is None
    assert x.std() > 0.1 and not torch.equal(x[:6], x[64:])   # not blank; batch 2 has its own seed
    assert torch.equal(x, gen.sample(70, 3, None)) and not torch.equal(x, gen.sample(70, 4, None))


def test_class_conditional_generators_return_images_and_balanced_labels(monkeypatch):
    torch.set_num_threads(1)
    patch_cfg_models(monkeypatch, {"cfg-fashion-mnist": tiny_cfg_model()})
    done = []
    images, labels = samplers.SAMPLERS["Fashion-MNIST CFG · w = 3"].sample(
        20, 0, 2, lambda d, t: done.append((d, t)))
    assert images.shape == (20, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    assert labels.tolist() == [i % 10 for i in range(20)] and done[-1] == (40, 40)
    assert {g.dataset for n, g in samplers.SAMPLERS.items() if n.startswith("Brightness")} == {"brightness-mnist"}


def test_one_writer_per_file_the_card_quotes_both(monkeypatch, tmp_path):
    """The evaluation command re-renders a card's figures with its rows but leaves the checkpoint's metrics.json
    (its own command's file) byte for byte as it was."""
    from pipelines.cards import update_metrics, write_card
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tmp_path))
    folder = tmp_path / "cfg-mnist"
    folder.mkdir()
    command = "python -m pipelines.measure.cfg --dataset mnist"
    update_metrics(folder, "cfg", command, [{"figure": "guided accuracy at w = 3", "value": 0.7}], guided_accuracy=0.7)
    write_card(folder, "cfg-mnist", "A model.", extra="## Notes\n\nkept")
    before = (folder / "metrics.json").read_bytes()
    doc = dict(command="python -m pipelines.evaluate", protocol_text="the default protocol", created="now",
               evaluations={"cfg-mnist": dict(status="ok", checkpoint="cfg-mnist"),
                            "cfg-fashion-mnist": dict(status="ok", checkpoint="cfg-fashion-mnist")},
               rows=[dict(evaluation="cfg-mnist", figure="FID (x, n=500)", setting="w = 3", value=9.0, protocol="p"),
                     dict(evaluation="cfg-fashion-mnist", figure="FID (y, n=500)", setting="w = 3", value=5.0)])
    assert records.refresh_cards(doc, ["cfg-mnist", "cfg-fashion-mnist"]) == [folder / "README.md"]   # no other folder
    assert records.refresh_cards(doc, ["cfg-fashion-mnist"]) == []   # only the cards of what this run measured
    assert (folder / "metrics.json").read_bytes() == before
    card = (folder / "README.md").read_text()
    assert "| guided accuracy at w = 3 | 0.7 |" in card and f"`{command}`" in card
    assert "| FID (x, n=500), w = 3 | 9 | p |" in card and "FID (y" not in card
    assert "`python -m pipelines.evaluate`" in card and "the default protocol" in card
    assert card.rstrip().endswith("kept")


def test_metrics_tab_shows_every_plot_and_scores_conditional_samples(mnist_judge, mnist_test, monkeypatch, tmp_path):
    import gradio as gr
    from demos import metrics
    from demos.plots import metrics_plot

    rows = [dict(model="a", setting="s", dataset="mnist", metric=m, figure=f"{m} (n=16)", value=v, n=16,
                 features=f, protocol="p", plot=dict(name=name, x=x, x_label="x", series="s"))
            for name, x in (("plot one", 1), ("plot two", "ε"), ("plot two", "v"))
            for m, v, f in (("FID", 5.0, "mnist-classifier"), ("non-finite", 0.5, None))]
    (tmp_path / "metrics.json").write_text(json.dumps(dict(
        command="c", created="now", hardware="h", protocol_text="p", rows=rows, evaluations={})))
    monkeypatch.setattr(metrics, "RESULTS", tmp_path / "metrics.json")
    status, table, choice, plot = metrics.results_view()
    assert [c[0] for c in choice.choices] == ["plot one", "plot two"] and len(table) == 6
    assert metrics.plot_view("plot two").visible
    fig = metrics_plot(rows, "plot two")   # categorical x ("ε", "v") and a panel of a featureless figure
    assert [ax.get_ylabel() for ax in fig.axes] == ["FID", "non-finite"]

    x, y = mnist_test
    images = x[:40].clone()
    images[:3] = float("nan")   # a diverged sampler: left out with a warning, the rest scored
    monkeypatch.setitem(samplers.SAMPLERS, "test conditional", samplers.Sampler(
        "test conditional", "mnist", lambda n, seed, steps, progress=None: (images[:n], y[:n])))
    md, *_ = metrics.compute("test conditional", "classifier", 40, 25, 0, [])
    assert "accuracy (MNIST classifier, n=37)" in md and "FID (MNIST classifier features, n=37)" in md
    images[:30] = float("nan")
    with pytest.raises(gr.Error, match="non-finite"):
        metrics.compute("test conditional", "classifier", 40, 25, 0, [])


def test_one_merge_rule_for_every_partial_rerun():
    """cards.replace_groups: the rows of the re-measured groups are replaced, the others kept (in `order`)."""
    from pipelines.cards import replace_groups
    old = [{"g": "a", "v": 1}, {"g": "b", "v": 2}, {"g": "c", "v": 3}]
    assert replace_groups(old, [{"g": "b", "v": 9}], "g") == [{"g": "a", "v": 1}, {"g": "c", "v": 3}, {"g": "b", "v": 9}]
    # a group re-run that produced nothing (skipped) loses its old rows only when it is named as redone
    assert replace_groups(old, [], "g") == old and replace_groups(old, [], "g", redone=["c"]) == old[:2]
    assert [r["g"] for r in replace_groups(old, [{"g": "b", "v": 9}], "g", order={"b": 0, "a": 1, "c": 2})] == \
        ["b", "a", "c"]


def test_refresh_card_rewrites_only_the_measured_figures(tmp_path):
    from pipelines.cards import refresh_card, update_metrics, write_card
    update_metrics(tmp_path, "a", "python -m a", [{"figure": "FID", "value": 12.5}])
    write_card(tmp_path, "Model", "What it is.", extra="## Notes\n\nkept as written")
    update_metrics(tmp_path, "b", "python -m b", [{"figure": "IS", "value": 3.25}])
    assert refresh_card(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "| IS | 3.25 |" in card and "| FID | 12.5 |" in card and "`python -m b`" in card
    assert card.startswith("# Model") and card.rstrip().endswith("kept as written")
    (tmp_path / "README.md").write_text("# hand-written, no markers")
    assert not refresh_card(tmp_path)

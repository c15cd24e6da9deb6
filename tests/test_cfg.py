"""Classifier-free guidance: the combination, the batched passes, the null label, label dropout,
seeded sampling, the shipped checkpoints judged by the shipped classifiers, and the tab's input checks."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
import torch

from pipelines.cfg.model import ClassConditionalUNet, drop_labels, timestep_embedding
from pipelines.cfg.pipeline import CFGModel, load_cfg
from pipelines.guidance import cfg_combine, guided_predictor, two_pass_predictor
from pipelines.schedules import schedule_config


def tiny_net(seed: int = 0) -> ClassConditionalUNet:
    torch.manual_seed(seed)
    net = ClassConditionalUNet(channels=(8, 16, 16), emb_dim=32).eval()
    # zero-initialised output layers would make every prediction 0: give them weights for the tests
    for p in net.parameters():
        if p.abs().sum() == 0 and p.ndim > 1:
            torch.nn.init.normal_(p, std=0.05)
    return net


def tiny_model() -> CFGModel:
    cfg = dict(tiny_net().config, class_names=[str(i) for i in range(10)])
    return CFGModel(tiny_net(), schedule_config(), cfg, {}, Path("."), torch.device("cpu"))


# ---------------------------------------------------------------- the maths
@pytest.mark.parametrize("w", [0.0, 1.0, 3.0, 7.5, 30.0])
def test_lerp_combination_is_the_cfg_formula(w):
    g = torch.Generator().manual_seed(1)
    cond, uncond = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    torch.testing.assert_close(cfg_combine(cond, uncond, w), uncond + w * (cond - uncond), rtol=1e-5, atol=1e-5)
    if w == 0:
        assert torch.equal(cfg_combine(cond, uncond, w), uncond)
    if w == 1:
        assert torch.equal(cfg_combine(cond, uncond, w), cond)


def test_guidance_rescale_matches_the_conditional_std():
    g = torch.Generator().manual_seed(2)
    cond, uncond = torch.randn(2, 1, 8, 8, generator=g), 3 * torch.randn(2, 1, 8, 8, generator=g)
    plain, full = cfg_combine(cond, uncond, 5.0), cfg_combine(cond, uncond, 5.0, rescale=1.0)
    std = lambda x: x.std(dim=list(range(1, x.ndim)))  # noqa: E731
    torch.testing.assert_close(std(full), std(cond), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(std(plain), std(cond), rtol=0.1)
    torch.testing.assert_close(cfg_combine(cond, uncond, 5.0, rescale=0.0), plain)


def test_batched_cond_and_uncond_equal_two_separate_passes():
    net, calls = tiny_net(), []

    def forward(x, t, y):
        calls.append(len(x))
        return net(x, t, y)

    x = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    cond = torch.tensor([0, 1, 2, 3, 4, 5])
    uncond = torch.full_like(cond, net.null_label)
    t = torch.tensor(400)
    batched = guided_predictor(forward, cond, uncond, 3.0)(x, t)
    assert calls == [12], "conditional and unconditional must run as ONE forward over a doubled batch"
    separate = two_pass_predictor(forward, cond, uncond, 3.0)(x, t)
    assert calls[1:] == [6, 6]
    torch.testing.assert_close(batched, separate, rtol=1e-4, atol=1e-5)
    # and it really is guidance: different from both the conditional and the unconditional prediction
    assert not torch.allclose(batched, net(x, t, cond), atol=1e-4)
    assert not torch.allclose(batched, net(x, t, uncond), atol=1e-4)


def test_null_embedding_is_a_separate_row_not_label_zero():
    net = tiny_net()
    assert net.null_label == net.num_classes == 10
    assert net.label_emb.num_embeddings == net.num_classes + 1
    t = torch.tensor([500, 500])
    e0, enull = net.embed(t, torch.tensor([0, 0])), net.embed(t, torch.tensor([net.null_label] * 2))
    assert not torch.allclose(e0, enull)
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    assert not torch.allclose(net(x, t, torch.tensor([0, 0])), net(x, t, torch.tensor([10, 10])), atol=1e-5)


def test_label_embedding_is_added_to_the_timestep_embedding():
    net = tiny_net()
    t, y = torch.tensor([10, 900]), torch.tensor([3, 7])
    time_only = net.time_mlp(timestep_embedding(t, net.conv_in.out_channels))
    torch.testing.assert_close(net.embed(t, y), time_only + net.label_emb(y))


def test_label_dropout_is_per_sample_at_rate_p():
    g = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 10, (64, 128), generator=g)  # 64 batches of 128
    dropped = drop_labels(labels, 0.1, 10, generator=g)
    is_null = dropped == 10
    assert abs(is_null.float().mean().item() - 0.1) < 0.01
    torch.testing.assert_close(dropped[~is_null], labels[~is_null])
    per_batch = is_null.float().mean(dim=1)
    # whole-batch dropout (the reference's flaw) would give only 0 % or 100 % batches
    assert ((per_batch > 0) & (per_batch < 1)).all()
    assert per_batch.std() < 0.05
    assert not drop_labels(labels, 0.0, 10).eq(10).any()


# ---------------------------------------------------------------- sampling
def test_seeded_sampling_is_reproducible_and_seed_dependent():
    model = tiny_model()
    a = model.generate(3, scale=3.0, sampler="DDIM", steps=4, num_images=3, seed=7)
    b = model.generate(3, scale=3.0, sampler="DDIM", steps=4, num_images=3, seed=7)
    c = model.generate(3, scale=3.0, sampler="DDIM", steps=4, num_images=3, seed=8)
    assert a.shape == (3, 1, 28, 28)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sweep_uses_the_same_noise_for_every_scale_and_w0_is_class_blind():
    model = tiny_model()
    x = model.sweep((0, 1, 4), classes=[2, 5], steps=1, seed=3)
    assert x.shape == (3, 2, 1, 28, 28)
    # w = 0 is ε(x_t, ∅) alone: same seed, other labels -> the very same images; at w = 4 the label matters
    assert torch.equal(x[0], model.generate([7, 0], scale=0.0, sampler="DDIM", steps=1, seed=3))
    assert (x[2] - model.generate([7, 0], scale=4.0, sampler="DDIM", steps=1, seed=3)).abs().max() > 1e-3
    # one DDIM step is affine in ε̃ = ε_∅ + w·(ε_y − ε_∅), so from one shared x_T the output is affine in w:
    # x(4) = x(0) + 4·(x(1) − x(0)) wherever no pixel was clamped; rows from different noise would not line up
    inside = (x.abs() < 1).all(0)
    assert inside.float().mean() > 0.5
    torch.testing.assert_close(x[2][inside], (x[0] + 4 * (x[1] - x[0]))[inside], atol=1e-5, rtol=0)


def test_model_rejects_bad_input():
    model = tiny_model()
    for bad in ("11", 10, -1, "cat", 2.5):
        with pytest.raises(ValueError, match="Unknown class"):
            model.generate(bad, scale=3.0, sampler="DDIM", steps=2, num_images=2)
    with pytest.raises(ValueError, match="CFG scale"):
        model.generate(1, scale=31, sampler="DDIM", steps=2, num_images=2)
    with pytest.raises(ValueError, match="Number of images"):
        model.generate(1, scale=3, sampler="DDIM", steps=2, num_images=0)
    assert model.class_index("7") == 7 and model.class_index(7) == 7


# ---------------------------------------------------------------- shipped checkpoints, judged
# the targets (95 % MNIST, 85 % Fashion-MNIST at w = 3), checked on 40 fresh samples (seed 123, 15 steps):
# the shipped models measure 100 % and 97.5 % here, so the bound fails if the checkpoint or the guided sampler breaks
@pytest.mark.parametrize("dataset,bound", [("mnist", 0.95), ("fashion-mnist", 0.85)])
def test_shipped_checkpoint_guided_samples_show_the_requested_class(dataset, bound):
    from pipelines.classifier import load_classifier
    model, judge = load_cfg(f"cfg-{dataset}", "cpu"), load_classifier(dataset, "cpu")
    assert model.config["dataset"] == dataset and model.record["steps"] > 0
    classes = [c for c in range(10) for _ in range(4)]
    x = model.generate(classes, scale=3.0, sampler="DDIM", steps=15, seed=123)
    assert x.shape == (40, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    acc = (judge.predict_proba(x).argmax(-1) == torch.tensor(classes)).float().mean().item()
    assert acc >= bound, f"{dataset}: only {acc:.0%} of guided samples (w=3) judged as the requested class"


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_shipped_checkpoint_at_w0_ignores_the_requested_class(dataset):
    """64 fresh samples, all asking for class 3 at w = 0 (the unconditional pass alone): the judge finds every
    class about equally often, as the card's w = 0 histogram says; a sampler that let the label in at w = 0
    would give mostly 3s."""
    import math

    from pipelines.checkpoints import checkpoints_root, read_json
    from pipelines.classifier import load_classifier
    model, judge = load_cfg(f"cfg-{dataset}", "cpu"), load_classifier(dataset, "cpu")
    x = model.generate([3] * 64, scale=0.0, sampler="DDIM", steps=15, seed=321)
    counts = torch.bincount(judge.predict_proba(x).argmax(-1), minlength=10).float()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item() / math.log(10)   # 1 = uniform
    assert entropy > 0.85 and p.max() < 0.3, (dataset, counts.tolist())
    m = read_json(checkpoints_root() / f"cfg-{dataset}" / "metrics.json")
    assert m, f"run python -m pipelines.measure.cfg --dataset {dataset}"
    # the card's figure (160 samples) and this fresh sample agree (n = 64 biases the entropy down by ≈ 0.03)
    assert abs(m["histogram_w0"]["normalised_entropy"] - entropy) < 0.1, (m["histogram_w0"], entropy)
    card = (checkpoints_root() / f"cfg-{dataset}" / "README.md").read_text()
    assert f"{m['guided_accuracy']:.4g}" in card, "the model card must quote the measured figure"


# ---------------------------------------------------------------- the tab
def _run(fn, *args):
    out = fn(*args)
    if hasattr(out, "__next__"):
        return list(out)
    return out


@pytest.mark.parametrize("args,message", [
    (("MNIST", "11", 3, 0, "DDIM", 5, 4, 0), "Unknown class"),
    (("MNIST", "3", 31, 0, "DDIM", 5, 4, 0), "CFG scale w must be between 0 and 30"),
    (("MNIST", "3", -0.5, 0, "DDIM", 5, 4, 0), "CFG scale w must be between 0 and 30"),
    (("MNIST", "3", 3, 0, "DDIM", 5, 0, 0), "Number of images must be between 1"),
    (("CIFAR-10", "3", 3, 0, "DDIM", 5, 4, 0), "Model must be one of"),
    (("MNIST", "3", 3, 0, "Euler", 5, 4, 0), "Sampler must be one of"),
])
def test_generate_rejects_bad_input_with_a_clear_message(args, message):
    from demos.cfg import generate
    with pytest.raises(gr.Error, match=message):
        _run(generate, *args)


@pytest.mark.parametrize("scales,message", [("", "at least one"), ("0, 1, 40", "between 0 and 30"),
                                            ("0,1,2,3,4,5,6", "At most 6"), ("a, b", "must be a number")])
def test_sweep_rejects_bad_scales(scales, message):
    from demos.cfg import sweep
    with pytest.raises(gr.Error, match=message):
        sweep("MNIST", scales, 5, 0)


def test_missing_checkpoint_says_how_to_train_it(tmp_path, monkeypatch):
    from demos.cfg import generate, model_info
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tmp_path))
    load_cfg.cache_clear()
    try:
        with pytest.raises(gr.Error, match=r"python -m pipelines\.cfg\.train --dataset fashion-mnist"):
            _run(generate, "Fashion-MNIST", "Bag", 3, 0, "DDIM", 5, 4, 0)
        assert "python -m pipelines.cfg.train --dataset mnist" in model_info("MNIST")
    finally:
        load_cfg.cache_clear()


def test_tab_callbacks_produce_images(monkeypatch):
    import demos.cfg as tab
    model = tiny_model()
    monkeypatch.setattr(tab, "load_cfg", lambda name: model)
    outs = _run(tab.generate, "MNIST", "3", 4.5, 0.5, "DDIM", 3, 4, 0)
    live, final, status, *_ = outs[-1]
    assert final.size[0] > 28 and "w = 4.5" in status
    img = tab.sweep("MNIST", "0, 1, 3, 7", 2, 0)
    assert img.width > 4 * 28 * 2 and img.height > 10 * 28 * 2

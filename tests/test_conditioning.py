"""The conditioning lesson: four ways for the label to enter one backbone (pipelines/cfg/model.py), the probes the
trainer saves, the measurement command's pieces, and the tab (demos/conditioning.py)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pipelines.cfg.model import (CONDITIONINGS, AdaLNAttentionBlock, AdaLNResBlock, AttentionBlock,
                                 ClassConditionalUNet, CrossAttentionBlock, LabelMap)

TINY = dict(channels=(8, 8, 8), emb_dim=16, groups=4)


def _randomise(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter random: the zero-initialised output layers would otherwise hide the label."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return net


@pytest.mark.parametrize("mechanism", CONDITIONINGS)
def test_each_mechanism_reads_the_label_and_only_the_label_differs(mechanism):
    torch.manual_seed(0)
    net = _randomise(ClassConditionalUNet(conditioning=mechanism, **TINY)).eval()
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([500, 500])
    with torch.no_grad():
        a = net(x, t, torch.tensor([3, 3]))
        b = net(x, t, torch.tensor([7, 7]))
        null = net(x, t, torch.tensor([10, 10]))
    assert a.shape == x.shape
    assert (a - b).abs().mean() > 1e-3, f"{mechanism}: the output ignores the label"
    assert (a - null).abs().mean() > 1e-3, f"{mechanism}: the null label is the same as a class"
    # the backbone is shared: every mechanism has the CFG model's blocks, by the same names
    names = {n.split(".")[0] for n, _ in net.named_parameters()}
    assert {"time_mlp", "conv_in", "down0", "pool0", "down1", "pool1", "down2", "down2_attn", "mid1", "mid_attn",
            "mid2", "up2", "up2_attn", "up1", "up0", "conv_out"} <= names


def test_add_keeps_the_cfg_lessons_config_and_weights():
    net = ClassConditionalUNet()
    assert "conditioning" not in net.config         # the shipped CFG checkpoints' config.json stay as they are
    other = ClassConditionalUNet(conditioning="adaln")
    assert other.config["conditioning"] == "adaln"
    with pytest.raises(ValueError, match="conditioning must be one of"):
        ClassConditionalUNet(conditioning="film")


def test_only_add_and_adaln_put_the_label_in_the_time_embedding():
    t, y = torch.tensor([10, 10]), torch.tensor([1, 2])
    for mechanism in CONDITIONINGS:
        net = _randomise(ClassConditionalUNet(conditioning=mechanism, **TINY))
        e = net.embed(t, y)
        differs = (e[0] - e[1]).abs().max() > 1e-6
        assert differs == (mechanism in ("add", "adaln")), mechanism


def test_concat_stacks_the_label_map_on_the_image():
    m = LabelMap(11, 4, 28)
    x, y = torch.randn(2, 1, 28, 28), torch.tensor([0, 5])
    out = m(x, y)
    assert out.shape == (2, 5, 28, 28)
    assert torch.equal(out[:, :1], x)
    assert torch.equal(out[1, 1:], m.maps.weight[5].view(4, 28, 28))


def test_cross_attention_is_softmax_of_q_k_over_the_label_tokens():
    torch.manual_seed(1)
    blk = _randomise(CrossAttentionBlock(8, emb_dim=16, groups=4, heads=2, context_dim=16)).eval()
    x, emb, ctx = torch.randn(2, 8, 7, 7), torch.randn(2, 16), torch.randn(2, 4, 16)
    with torch.no_grad():
        out = blk(x, emb, ctx)
        h = AttentionBlock.forward(blk, x, emb)                      # the self-attention it starts with
        q = blk.to_q(blk.cross_norm(h).flatten(2).transpose(1, 2))   # (b, 49, 8)
        k, v = blk.to_kv(ctx).chunk(2, dim=-1)                       # (b, 4, 8) each
        y = []
        for head in range(2):
            sl = slice(4 * head, 4 * head + 4)
            w = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(4), dim=-1)   # (b, 49, 4)
            assert torch.allclose(w.sum(-1), torch.ones(2, 49))
            y.append(w @ v[..., sl])
        hand = h + blk.cross_out(torch.cat(y, -1)).transpose(1, 2).view(2, 8, 7, 7)
    assert torch.allclose(out, hand, atol=1e-5)


def test_adaln_zero_blocks_start_as_their_skip_path_and_can_learn():
    torch.manual_seed(2)
    res, attn = AdaLNResBlock(8, 16, emb_dim=16, groups=4), AdaLNAttentionBlock(16, emb_dim=16, groups=4)
    x, emb = torch.randn(2, 8, 7, 7), torch.randn(2, 16)
    out = res(x, emb)
    assert torch.allclose(out, res.skip(x))
    y = torch.randn(2, 16, 7, 7)
    assert torch.allclose(attn(y, emb), y)
    # the gate and the modulation start at zero, but their gradients do not (else the block could never open)
    (out.pow(2).sum() + attn(y, emb).pow(2).sum() + res(x, emb).mul(y[:, :16]).sum()).backward()
    assert res.modulation.weight.grad.abs().sum() > 0
    assert attn.emb.weight.grad.abs().sum() > 0


def test_trainer_saves_probes_exports_the_mechanism_and_the_probe_curve_restores_the_weights(tmp_path, monkeypatch):
    from pipelines.cfg import train
    from pipelines.cfg.pipeline import load_cfg
    from pipelines.measure.conditioning import probe_curve

    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tmp_path / "ckpt"))
    train.main(["--dataset", "mnist", "--conditioning", "cross_attention", "--name", "cond-tiny", "--steps", "2",
                "--probe-every", "1", "--save-every", "2", "--batch-size", "8", "--warmup", "1", "--channels",
                "8,8,8", "--emb-dim", "16", "--threads", "1", "--runs", str(tmp_path / "runs")])
    probes = sorted((tmp_path / "runs" / "cond-tiny" / "probes").glob("*.safetensors"))
    assert [p.name for p in probes] == ["step-000001.safetensors", "step-000002.safetensors"]
    model = load_cfg("cond-tiny", "cpu")
    assert model.net.conditioning == "cross_attention" and model.record["conditioning"] == "cross_attention"
    assert "cross-attention" in (tmp_path / "ckpt" / "cond-tiny" / "README.md").read_text()
    before = {k: v.clone() for k, v in model.net.state_dict().items()}

    class Judge:   # reads every image as class 0: the curve's accuracy is then the share of class-0 requests
        def predict_proba(self, x):
            return F.one_hot(torch.zeros(len(x), dtype=torch.long), 10).float()

    curve = probe_curve(model, Judge(), tmp_path / "runs" / "cond-tiny" / "probes", per_class=1, steps=2, seed=0,
                        log=lambda *_: None)
    assert curve == [[1, pytest.approx(0.1)], [2, pytest.approx(0.1)]]
    assert all(torch.equal(before[k], v) for k, v in model.net.state_dict().items())
    load_cfg.cache_clear()


def test_training_speed_is_timed_for_each_mechanism():
    from pipelines.measure.conditioning import training_seconds_per_step
    speed = training_seconds_per_step(["concat", "adaln"], steps=1, rounds=1, batch=2)
    assert set(speed) == {"concat", "adaln"} and all(0 < s < 60 for s in speed.values())


def test_tab_shows_each_mechanisms_own_code_and_refuses_bad_input():
    import gradio as gr

    from demos import conditioning as tab
    expected = {"add": "label_emb", "concat": "torch.cat", "cross_attention": "scaled_dot_product_attention",
                "adaln": "gate"}
    for title, mechanism in tab.CHOICES.items():
        md, code = tab.mechanism_view(title)
        assert expected[mechanism] in code and "Used for" in md
    md, code = tab.mechanism_view("<b>film</b>")
    assert "must be one of" in md and "<b>" not in md and code == ""
    for args in (("11", 3, 20, 0), ("all ten", 99, 20, 0), ("all ten", 3, 0, 0), ("all ten", 3, 100, 0)):
        with pytest.raises(gr.Error):
            tab.compare(*args)

"""Inference precision (pipelines/precision.py): what "auto" picks, the override, the models' autocast, the
infotext, byte-identical images at one precision, and the measured list of models that must stay fp32."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from pipelines import infotext, precision
from pipelines.precision import FP32, PRECISION_ENV, Precision, choose

BF16 = Precision("bf16", "cpu", "test")
CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f {extra}\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    assert precision.cpu_has_native_bf16(CPUINFO.format(extra="avx512_bf16"))
    assert precision.cpu_has_native_bf16(CPUINFO.format(extra="amx_bf16 amx_tile"))
    assert not precision.cpu_has_native_bf16(CPUINFO.format(extra="avx512vl"))
    assert not precision.cpu_has_native_bf16("")


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_picks_bf16_only_on_a_cpu_that_has_it(monkeypatch, native, expected):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo=None: native)
    monkeypatch.setenv(PRECISION_ENV, "auto")
    p = choose("cpu")
    assert p.name == expected and ("automatically" in p.reason) == native
    assert p.describe().startswith(f"running {expected} on CPU")


def test_the_override_and_the_default(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    assert choose("cpu").name == "fp32"                  # scripts and measurements: fp32 unless asked
    monkeypatch.setenv(PRECISION_ENV, "FP32")
    assert choose("cpu").name == "fp32" and "set by" in choose("cpu").reason
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    assert choose("cpu").dtype == torch.bfloat16
    monkeypatch.setenv(PRECISION_ENV, "int4")
    with pytest.raises(ValueError, match="must be one of"):
        choose("cpu")
    monkeypatch.setattr(precision, "FP32_ONLY", {"some-model": "bf16 broke it"})
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    assert choose("cpu", model="some-model").name == "fp32"


def test_app_header_states_the_precision(monkeypatch):
    import app
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    monkeypatch.setenv(PRECISION_ENV, "auto")
    assert "at **bf16**" in app.runtime_note() and "--precision fp32" in app.runtime_note()
    assert all(f"`{m}`" in app.runtime_note() for m in precision.FP32_ONLY)   # the exceptions are named
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert "at **fp32**" in app.runtime_note()
    monkeypatch.setenv(PRECISION_ENV, "nonsense")
    assert "must be one of" in app.runtime_note()


def _tiny_cfg():
    from pipelines.cfg.model import ClassConditionalUNet
    from pipelines.cfg.pipeline import CFGModel
    from pipelines.schedules import schedule_config
    torch.manual_seed(0)
    net = ClassConditionalUNet(channels=(8, 8, 8), emb_dim=16, groups=4).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    cfg = {"class_names": [str(i) for i in range(10)]}
    return CFGModel(net, schedule_config(), cfg, {}, None, torch.device("cpu"))


def test_models_run_under_autocast_and_hand_the_sampler_fp32():
    model = _tiny_cfg()
    fast = dataclasses.replace(model, precision=BF16)
    x, t, y = torch.randn(4, 1, 28, 28), torch.tensor(500), torch.tensor([1, 2, 3, 10])
    a, b = model.forward(x, t, y), fast.forward(x, t, y)
    assert a.dtype == b.dtype == torch.float32
    assert not torch.equal(a, b)                           # bf16 really ran
    assert torch.allclose(a, b, atol=0.05 * a.abs().max().item() + 1e-3)
    # the same seed and settings at one precision: byte-identical samples
    s1 = fast.generate([3, 3], scale=3, steps=3, seed=1)
    s2 = fast.generate([3, 3], scale=3, steps=3, seed=1)
    assert torch.equal(s1, s2)


def test_ddpm_infotext_records_the_precision(monkeypatch):
    from demos.ddpm import reverse_process
    final = list(reverse_process("DDIM", 2, 2, 0.0, 3))[-1][1]
    assert infotext.read(final)["precision"] == "fp32"     # no DIFFUSION_LAB_PRECISION in the tests


def test_fp32_only_agrees_with_the_measurement():
    """precision.FP32_ONLY holds every model bf16 put outside the bounds in results/precision.json, and otherwise only
    models that file has not measured; every diffusion model shipped is either measured within bounds or listed."""
    from pipelines.measure.precision import RESULTS, models
    if not RESULTS.exists():
        pytest.fail("results/precision.json is missing: run python -m pipelines.measure.precision --write-readme")
    doc = json.loads(RESULTS.read_text())
    outside = {name for name, r in doc["models"].items() if not r["within_bounds"]}
    within = set(doc["models"]) - outside
    assert outside <= set(precision.FP32_ONLY) and not within & set(precision.FP32_ONLY)
    for name in set(precision.FP32_ONLY) - outside:
        assert name not in doc["models"] and precision.FP32_ONLY[name] == precision.NOT_MEASURED
    shipped = {name for name, *_ in models()}
    assert shipped <= within | set(precision.FP32_ONLY), shipped - within - set(precision.FP32_ONLY)
    assert len(within) >= 8
    for r in doc["models"].values():
        assert set(r["fp32"]) == set(r["bf16"]) and r["seconds_fp32"] > 0 and r["seconds_bf16"] > 0
        assert "fid" not in r["fp32"] or r["fp32"]["images"] > 128     # FID needs n above the 128 feature dimensions


def test_compare_applies_the_bounds():
    from pipelines.measure.precision import compare
    assert compare({"accuracy": 0.95, "fid": 10.0}, {"accuracy": 0.945, "fid": 10.9}) == (True, [])
    ok, why = compare({"accuracy": 0.95, "fid": 10.0}, {"accuracy": 0.93, "fid": 11.5})
    assert not ok and len(why) == 2
    assert not compare({"black": 0.02}, {"black": 0.035})[0]


def test_fp32_precision_is_a_no_op_context():
    with FP32.autocast():
        assert not torch.is_autocast_enabled("cpu")
    with BF16.autocast():
        assert torch.is_autocast_enabled("cpu")

"""The trainers' speed switches: channels-last memory changes where numbers sit, not what they are; a bf16 +
channels-last run trains, logs its time per step, saves and resumes like any other."""
from __future__ import annotations

import json

import pytest
import torch

from pipelines.training import use_channels_last


def test_channels_last_keeps_the_values_and_changes_the_memory():
    from pipelines.cfg.model import ClassConditionalUNet
    torch.manual_seed(0)
    plain = ClassConditionalUNet(in_channels=1, image_size=28, num_classes=10, channels=[8, 16, 16], emb_dim=16).eval()
    nhwc = ClassConditionalUNet(in_channels=1, image_size=28, num_classes=10, channels=[8, 16, 16], emb_dim=16).eval()
    nhwc.load_state_dict(plain.state_dict())
    use_channels_last(nhwc)
    convs = [m.weight for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    seen = []
    nhwc.register_forward_pre_hook(lambda m, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last)))
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([1, 500, 999]), torch.tensor([0, 3, 10])
    with torch.no_grad():
        torch.testing.assert_close(nhwc(x, t, y), plain(x, t, y), rtol=1e-4, atol=1e-5)
    assert seen == [True]  # the input arrived in NHWC, converted by the hook


def test_bf16_channels_last_run_logs_time_saves_and_resumes(tmp_path):
    from pipelines.cfg import train
    args = ["--dataset", "brightness-mnist", "--name", "t", "--batch-size", "4", "--warmup", "1", "--channels",
            "8,16,16", "--emb-dim", "16", "--runs", str(tmp_path / "runs"), "--output", str(tmp_path / "ck"),
            "--threads", "1", "--mixed-precision", "bf16", "--channels-last", "--save-every", "2"]
    train.main([*args, "--steps", "2"])
    train.main([*args, "--steps", "4"])  # resumes from the saved state at step 2
    rows = [json.loads(line) for line in (tmp_path / "runs" / "t" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["seconds"] >= 0 for r in rows) and rows[1]["seconds"] >= rows[0]["seconds"]
    assert (tmp_path / "runs" / "t" / "state" / "step.txt").read_text() == "4"
    record = json.loads((tmp_path / "ck" / "training_record.json").read_text())
    assert record["steps"] == 4 and record["mixed_precision"] == "bf16"


def test_train_speed_reads_steps_per_second_after_the_warmup():
    from pipelines.train_speed import steps_per_second
    rows = [{"step": s, "seconds": 10.0 + (s - 1) * 0.5} for s in range(1, 11)]
    rows[0]["seconds"] = 0.0  # a slow first step is left out
    assert abs(steps_per_second(rows, warmup=3) - 2.0) < 1e-9


def test_command_line_leaves_out_the_machine_folders(monkeypatch):
    """A record quotes how a model was made, not where one machine kept its files."""
    import sys

    from pipelines import training
    monkeypatch.setattr(sys, "argv", ["/srv/x/pipelines/vae/train.py", "--latent-dim", "2", "--runs", "/home/u/runs",
                                      "--output=/tmp/o", "--data-root", "data", "--epochs", "3", "--earlier", "a/r.json",
                                      "b", "--width", "-1"])
    assert training.command_line() == "python -m pipelines.vae.train --latent-dim 2 --epochs 3 --width -1"


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "no")])
def test_the_trainers_take_bf16_only_where_the_cpu_has_it(monkeypatch, native, expected):
    """Emulated bf16 is ~100× slower than fp32 (a CPU without AVX-512 BF16): auto must fall back to fp32 there."""
    import argparse

    from pipelines import precision
    from pipelines.training import add_diffusion_args
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo=None: native)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    p = argparse.ArgumentParser()
    add_diffusion_args(p)
    assert p.parse_args([]).mixed_precision == expected
    assert p.parse_args(["--mixed-precision", "auto"]).mixed_precision == expected
    assert p.parse_args(["--mixed-precision", "bf16"]).mixed_precision == "bf16"  # asked for, taken as asked

"""scripts/gpu_check.py (pipelines/measure/devices.py): without CUDA it says so and exits 0; its comparisons flag a
device that computes something else; on the CPU against itself every check agrees exactly."""
import subprocess
import sys

import pytest
import torch

from pipelines.checkpoints import PROJECT_ROOT
from pipelines.measure import devices


def test_without_cuda_it_says_so_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.main([]) == 0
    assert "No CUDA device" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would run its checks")
def test_the_script_runs_as_a_command():
    done = subprocess.run([sys.executable, "scripts/gpu_check.py"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "No CUDA device" in done.stdout, done.stderr[-2000:]


def test_image_difference_flags_other_images():
    a = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert devices.image_difference(a, a.clone())["within"]
    assert devices.image_difference(a, a + 0.005)["within"]                       # float rounding
    assert not devices.image_difference(a, a + 0.05)["within"]                    # a systematic shift
    flipped = a.clone()
    flipped[0, 0, 0, 0] = 1.0 if a[0, 0, 0, 0] < 0 else -1.0                      # one pixel off by at least 1
    assert not devices.image_difference(a, flipped)["within"]
    assert not devices.image_difference(a, a[:2])["within"]                       # other images altogether
    assert not devices.image_difference(a, torch.zeros(4, 1, 8, 8))["within"]


def test_the_training_check_compares_final_losses(monkeypatch):
    losses = iter([[0.50] * 12, [0.52] * 12, [0.50] * 12, [0.60] * 12])
    monkeypatch.setattr("pipelines.train_speed.run_one",
                        lambda *a, **k: [{"step": i, "loss": v} for i, v in enumerate(next(losses))])
    assert devices.check_training("cuda", "cpu", steps=12, log=lambda *_: None)["within"]        # 4 % apart
    assert not devices.check_training("cuda", "cpu", steps=12, log=lambda *_: None)["within"]    # 20 % apart
    assert devices.check_training("cuda", "cpu", steps=0) is None


def test_on_the_cpu_against_itself_every_checked_action_agrees_exactly():
    results = devices.check_actions("cpu", "cpu", only=["vae", "stackgan", "ddpm"], log=lambda *_: None)
    assert set(results) == {"vae", "stackgan", "ddpm"}
    for tab, r in results.items():
        assert r["within"] and r["mean"] == 0 and r["max"] == 0, tab
        assert r["cpu_fp32_s"] > 0, tab

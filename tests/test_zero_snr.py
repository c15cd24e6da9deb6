"""Zero terminal SNR, v-prediction, timestep spacing and CFG rescale: the project's use of diffusers'
own pieces, the brightness data, the trainer's v target, the shipped models' measured brightness, and the tab."""
from __future__ import annotations

import gradio as gr
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from pipelines.data import brightness_mnist
from pipelines.schedules import alphas_cumprod, log_snr, make_scheduler, rescale_zero_terminal_snr, schedule_config
from pipelines.zero_snr import SCHEDULE, VARIANTS, train_command

SD = SCHEDULE


# ---------------------------------------------------------------- the maths, via diffusers
def test_zero_snr_rescale_reaches_zero_and_keeps_the_first_step():
    plain, rescaled = alphas_cumprod(SD, False), alphas_cumprod(SD, True)
    assert plain[-1].item() == pytest.approx(0.00466, abs=2e-4)        # SD leaves 6.8 % of the signal at t = T
    assert rescaled[-1].item() == 0.0 and torch.isinf(log_snr(rescaled)[-1])
    assert rescaled[0].item() == pytest.approx(plain[0].item(), rel=1e-5)
    # Algorithm 1 (pipelines/schedules.py: rescale_zero_terminal_snr) on SD's betas gives the schedule trained on
    betas = DDPMScheduler(**schedule_config(SD, False)).betas
    torch.testing.assert_close(rescaled, torch.cumprod(1 - rescale_zero_terminal_snr(betas), dim=0))
    assert DDPMScheduler(**schedule_config(SD, True)).config.rescale_betas_zero_snr


def test_v_eps_x0_conversions_are_consistent():
    sched = DDPMScheduler(**schedule_config(SD, True, prediction_type="v_prediction"))
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1, torch.randn(4, 1, 8, 8, generator=g)
    t = torch.tensor([0, 300, 700, 999])
    x_t, v = sched.add_noise(x0, eps, t), sched.get_velocity(x0, eps, t)
    a = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(v, a.sqrt() * eps - (1 - a).sqrt() * x0)        # v = sqrt(ᾱ)ε − sqrt(1−ᾱ)x_0
    torch.testing.assert_close(a.sqrt() * x_t - (1 - a).sqrt() * v, x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close((1 - a).sqrt() * x_t + a.sqrt() * v, eps, atol=1e-5, rtol=1e-5)
    # the sampler recovers x_0 from the true v, even at t = T where ᾱ_T = 0 (an ε model cannot)
    ddim = make_scheduler("DDIM", dict(sched.config))
    ddim.set_timesteps(10)
    out = ddim.step(v[3:], 999, x_t[3:])
    torch.testing.assert_close(out.pred_original_sample, x0[3:], atol=1e-5, rtol=1e-5)
    eps_ddim = make_scheduler("DDIM", dict(sched.config, prediction_type="epsilon"))
    eps_ddim.set_timesteps(10)
    assert not torch.isfinite(eps_ddim.step(eps[3:], 999, x_t[3:]).pred_original_sample).all()


@pytest.mark.parametrize("spacing,first", [("leading", 960), ("trailing", 999), ("linspace", 999)])
def test_timestep_spacing_decides_where_sampling_starts(spacing, first):
    sched = make_scheduler("DDIM", schedule_config(SD, True, timestep_spacing=spacing))
    sched.set_timesteps(25)
    assert int(sched.timesteps[0]) == first and isinstance(sched, DDIMScheduler)


# ---------------------------------------------------------------- the data and the trainer
def test_brightness_mnist_has_flat_extremes_and_varied_digits():
    x, y = brightness_mnist(train=False, limit=600)
    assert x.shape == (600, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    b = (x.mean((1, 2, 3)) + 1) / 2
    assert (x[y == 10] == -1).all() and (x[y == 11] == 1).all() and (y == 10).any() and (y == 11).any()
    digits = b[y < 10]
    assert digits.min() < 0.2 and digits.max() > 0.8 and digits.std() > 0.2
    x2, y2 = brightness_mnist(train=False, limit=600)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_trainer_regresses_v_and_records_the_schedule(tmp_path):
    from pipelines.cfg import train
    from pipelines.checkpoints import read_json
    out = tmp_path / "ck"
    train.main(["--dataset", "brightness-mnist", "--name", "t", "--schedule", SD, "--zero-snr", "--prediction-type",
                "v_prediction", "--steps", "2", "--batch-size", "4", "--warmup", "1", "--channels", "8,16,16",
                "--emb-dim", "32", "--runs", str(tmp_path / "runs"), "--output", str(out), "--threads", "1"])
    sched, record = read_json(out / "scheduler" / "scheduler_config.json"), read_json(out / "training_record.json")
    assert sched["prediction_type"] == "v_prediction" and sched["rescale_betas_zero_snr"]
    assert sched["timestep_spacing"] == "trailing" and record["zero_terminal_snr"] and record["steps"] == 2
    assert read_json(out / "config.json")["num_classes"] == 12
    assert "--prediction-type v_prediction" in record["command"] and "--zero-snr" in record["command"]


def test_the_four_variants_differ_only_in_the_two_choices():
    commands = {name: train_command(name) for name in VARIANTS.values()}
    assert len(set(commands.values())) == 4
    for (v, z), name in VARIANTS.items():
        assert ("v_prediction" in commands[name]) == v and ("--zero-snr" in commands[name]) == z
    stripped = {c.replace(" --zero-snr", "").replace("v_prediction", "epsilon").split("--name")[1].split(None, 1)[1]
                for c in commands.values()}
    assert len(stripped) == 1


# ---------------------------------------------------------------- the shipped models
@pytest.fixture(scope="module")
def quick_results():
    """A small rerun of the evaluation command on the shipped checkpoints (n = 4 per target, 10 steps)."""
    from pipelines.measure.zero_snr import evaluate
    return evaluate(n=4, uncond_n=24, steps=10, seed=0, log=lambda *a: None)


def test_zero_snr_v_model_reaches_black_and_white(quick_results):
    e = quick_results["models"][VARIANTS[True, True]]["extremes"]["trailing"]
    assert e["non_finite"] == 0
    assert e["black"] <= 0.05 and e["white"] >= 0.95, e


def test_epsilon_model_on_zero_snr_breaks_when_sampled_from_t_T(quick_results):
    e = quick_results["models"][VARIANTS[False, True]]["extremes"]["trailing"]
    assert e["non_finite"] == 1.0 and e["black"] is None


def test_default_epsilon_model_stays_further_from_the_extremes(quick_results):
    """The paper's claim, measured: the SD-style ε model (leading spacing) misses black/white by more."""
    best = quick_results["models"][VARIANTS[True, True]]["extremes"]["trailing"]
    sd = quick_results["models"][VARIANTS[False, False]]["extremes"]["leading"]
    miss = lambda e: max(e["black"], 1 - e["white"])  # noqa: E731
    assert miss(sd) > miss(best) + 0.02, (sd, best)


def test_shipped_cards_quote_the_measured_figures():
    from pipelines.checkpoints import checkpoints_root, read_json
    from pipelines.readme import read_section
    for name in VARIANTS.values():
        m = read_json(checkpoints_root() / name / "metrics.json")
        assert m.get("zero_snr"), f"run python -m pipelines.measure.zero_snr --write-readme ({name})"
        card = (checkpoints_root() / name / "README.md").read_text()
        row = next(r for r in m["rows"] if "(this model's spacing)" in r["figure"])
        assert row["value"] in card and "zero-snr" in m["commands"]
    assert "brightness-v-zerosnr" in read_section("zero-snr")


# ---------------------------------------------------------------- the tab
@pytest.mark.parametrize("args,message", [
    (("nope", 3, 0, "the model's own (leading / trailing)", 5, 4, 0), "Unknown class"),
    (("3", 31, 0, "the model's own (leading / trailing)", 5, 4, 0), "CFG scale w must be between 0 and 30"),
    (("3", 3, 1.5, "the model's own (leading / trailing)", 5, 4, 0), "Guidance rescale φ must be between 0 and 1"),
    (("3", 3, 0, "backwards", 5, 4, 0), "Timestep spacing must be one of"),
    (("3", 3, 0, "the model's own (leading / trailing)", 5, 0, 0), "Number of images must be between 1"),
])
def test_generate_rejects_bad_input_with_a_clear_message(args, message):
    from demos.zero_snr import generate
    with pytest.raises(gr.Error, match=message):
        list(generate(True, True, *args))


def test_tab_warns_about_broken_combinations_but_still_runs():
    from demos import zero_snr as tab
    assert "Known to break" in tab.warning(True, False, "trailing")
    assert "Known to break" in tab.warning(True, False, tab.OWN)
    assert "Known to break" not in tab.warning(True, False, "leading")
    assert "paper's recipe" in tab.warning(True, True, tab.OWN)
    outs = list(tab.generate(True, False, "all black", 3, 0, "trailing", 4, 4, 0))
    img, text, current, slider, gallery, gif, _ = outs[-1]
    assert img.size[0] > 28 and "non-finite" in text and "starts at t = 999" in text
    assert len(gallery) == 4 and gif.endswith(".gif") and len(outs) == 5  # streamed: one yield per step + the end


def test_compare_grid_shows_the_four_models_from_one_seed():
    from demos import zero_snr as tab
    img, text = tab.compare("all white", 3, 0.7, tab.OWN, 5, 7)
    assert img.width > 2 * 56 * 2 and img.height > 2 * 56 * 2
    for (v, z) in VARIANTS:
        assert tab.variant_label(v_prediction=v, zero_snr=z) in text

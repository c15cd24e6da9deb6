"""The 2-D playground: the exact scores and posteriors, DD-GAN's step, reproducible live training, drawn data."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from pipelines.toy2d import data, metrics, score
from pipelines.toy2d.models import posterior_sample
from pipelines.toy2d.schedule import ddgan_alphas_cumprod, ddgan_config, ddpm_alphas_cumprod, ddpm_config, \
    posterior_mean_var
from pipelines.toy2d.train import train_ddpm, train_gan


@pytest.mark.parametrize("mix, abar", [(data.eight_gaussians(), 0.3), (data.eight_gaussians(), 0.999),
                                       (data.class_mixture(), 0.7)])
def test_true_score_is_the_gradient_of_the_noised_log_density(mix, abar):
    x = torch.tensor([[0.3, -1.2], [1.9, 0.1], [-0.4, 0.5], [1.0, 1.0]], dtype=torch.float64)
    q_t = score.noised(mix, abar)
    h = 1e-5
    fd = torch.stack([(q_t.log_prob(x + h * e) - q_t.log_prob(x - h * e)) / (2 * h)
                      for e in torch.eye(2, dtype=torch.float64)], 1)
    s = score.true_score(mix, x, abar)
    assert torch.allclose(s, fd, rtol=1e-5, atol=1e-6)
    # and it is not trivially so: the score of a wrongly noised density differs
    assert not torch.allclose(score.true_score(mix, x, abar * 0.9), fd, rtol=1e-3, atol=1e-3)


def test_true_posterior_matches_the_1d_closed_form():
    """A 1-D two-component mixture (embedded as the first coordinate, the second an identical N(0, 1) for both
    components): q(x_s | x_t) by the precision form, against score.true_posterior's gain form."""
    mu, var, pi = np.array([-1.5, 2.0]), np.array([0.2 ** 2, 0.5 ** 2]), np.array([0.3, 0.7])
    mix = data.GaussianMixture(torch.tensor([[mu[0], 0.0], [mu[1], 0.0]]),
                               torch.tensor(np.array([np.diag([var[0], 1.0]), np.diag([var[1], 1.0])])), torch.tensor(pi))
    abar_t, abar_s, x_t = 0.25, 0.8, 0.4
    # prior at s: N(√ᾱ_s μ, ᾱ_s v + 1 − ᾱ_s); likelihood x_t = a x_s + √b ε
    m_s, v_s = math.sqrt(abar_s) * mu, abar_s * var + 1 - abar_s
    a, b = math.sqrt(abar_t / abar_s), 1 - abar_t / abar_s
    w = pi * np.exp(-(x_t - a * m_s) ** 2 / (2 * (a * a * v_s + b))) / np.sqrt(a * a * v_s + b)
    w /= w.sum()
    v_post = 1 / (1 / v_s + a * a / b)
    m_post = v_post * (m_s / v_s + a * x_t / b)
    post = score.true_posterior(mix, torch.tensor([x_t, 0.0]), abar_t, abar_s)
    assert np.allclose(post.weights.numpy(), w, atol=1e-10)
    assert np.allclose(post.means[:, 0].numpy(), m_post, atol=1e-10)
    assert np.allclose(post.covs[:, 0, 0].numpy(), v_post, atol=1e-10)
    # the posterior mean is what DDPM's Gaussian step uses with a perfect x̂_0 = E[x_0 | x_t] (Tweedie)
    x_t2 = torch.tensor([[x_t, 0.0]], dtype=torch.float64)
    mean, _ = posterior_mean_var(score.true_x0(mix, x_t2, abar_t), x_t2, abar_t, abar_s)
    assert math.isclose(float(mean[0, 0]), float((post.weights * post.means[:, 0]).sum()), abs_tol=1e-7)
    # bimodal here: both components keep weight, so a single Gaussian cannot be exact
    assert w.min() > 0.05


def test_ddgan_posterior_step_is_diffusers_ddpm_posterior():
    """posterior_sample (what DD-GAN's generator learns through) against DDPMScheduler.step with prediction "sample",
    the same noise: identical mean and variance, at every step of the T = 4 chain."""
    scheduler = DDPMScheduler.from_config(ddgan_config(4))
    scheduler.set_timesteps(4)
    abar = ddgan_alphas_cumprod(4).float()
    g = torch.Generator().manual_seed(0)
    x_t, x0 = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g)
    for t in scheduler.timesteps:
        ours = posterior_sample(x0, x_t, torch.full((64,), int(t)), abar, torch.randn(64, 2, generator=torch.Generator().manual_seed(7)))
        theirs = scheduler.step(x0, t, x_t, generator=torch.Generator().manual_seed(7)).prev_sample
        assert torch.allclose(ours, theirs, atol=1e-5), int(t)
    # and the strided DDPM step the samplers take (10 of 1000 steps): the same formula, ᾱ_s of the previous step
    config = ddpm_config()
    sched = DDPMScheduler.from_config(dict(config, prediction_type="sample"))
    sched.set_timesteps(10)
    abar = ddpm_alphas_cumprod(config)
    t, s = int(sched.timesteps[3]), int(sched.timesteps[4])
    mean, var = posterior_mean_var(x0.double(), x_t.double(), abar[t], abar[s])
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(3))
    theirs = sched.step(x0, t, x_t, generator=torch.Generator().manual_seed(3)).prev_sample
    assert torch.allclose((mean + var.sqrt() * noise).float(), theirs, atol=1e-5)
    assert abs(float(var) - float(sched._get_variance(t))) < 1e-6


def test_seeded_live_training_is_reproducible():
    pts = data.sample("moons", 2000)
    a = list(train_ddpm(pts, steps=40, every=20, seed=3, preview_steps=5))
    b = list(train_ddpm(pts, steps=40, every=20, seed=3, preview_steps=5))
    c = list(train_ddpm(pts, steps=40, every=20, seed=4, preview_steps=5))
    assert [p.step for p in a] == [0, 20, 40] and a[-1].done
    assert a[-1].curve == b[-1].curve and torch.equal(a[-1].samples, b[-1].samples)
    assert a[-1].curve != c[-1].curve
    g1, g2 = (list(train_gan(pts, steps=20, every=20, seed=1))[-1] for _ in range(2))
    assert torch.equal(g1.samples, g2.samples)
    with pytest.raises(ValueError, match="between 1 and"):
        next(train_ddpm(pts, steps=10 ** 6))


def _canvas():
    return np.zeros((100, 100), dtype=bool)


def test_drawn_distribution_errors_and_points():
    with pytest.raises(ValueError, match="too few points"):
        c = _canvas()
        c[50, 50:60] = True
        data.points_from_strokes(c, 100)
    with pytest.raises(ValueError, match="one spot"):
        c = _canvas()
        c[48:54, 48:54] = True  # 36 pixels, all within 6 % of the side
        data.points_from_strokes(c, 100)
    with pytest.raises(ValueError, match="straight line"):
        c = _canvas()
        c[50, 5:95] = True
        data.points_from_strokes(c, 100)
    c = _canvas()
    c[20:25, 10:90] = True   # an "L": two strokes
    c[20:90, 10:15] = True
    pts = data.points_from_strokes(c, 500, seed=1)
    assert pts.shape == (500, 2) and pts.abs().max() <= data.EXTENT
    assert pts[:, 1].max() > 1.0 and pts[:, 0].min() < -1.5     # top-left corner of the canvas -> (−, +)
    held = data.points_from_strokes(c, 500, seed=1, split="heldout")
    assert not torch.equal(pts, held)


def test_metrics_floor_coverage_and_a_collapsed_sample():
    held, other = data.sample("8gaussians", 1000, split="heldout"), data.sample("8gaussians", 1000, seed=1)
    floor = metrics.mmd(held, other)
    one_mode = held[torch.cdist(held, data.eight_gaussians().means.float()).argmin(1) == 0]
    assert metrics.mode_coverage(other)["modes"] == 8 and metrics.mode_coverage(other)["in_modes"] > 0.98
    assert metrics.mode_coverage(one_mode)["modes"] == 1
    assert metrics.mmd(one_mode.repeat(8, 1)[:1000], held) > 3 * floor


def test_mmd_is_the_biased_statistic_of_the_summed_rbf_kernel():
    """Two points against one, by hand: MMD² = mean k(X,X) + mean k(Y,Y) − 2 mean k(X,Y), k summed over bandwidths."""
    x, y = torch.tensor([[0.0, 0.0], [0.3, 0.4]], dtype=torch.float64), torch.tensor([[0.0, 0.5]], dtype=torch.float64)
    k = lambda d2: sum(math.exp(-d2 / (2 * h * h)) for h in metrics.BANDWIDTHS)   # noqa: E731
    xx = (2 * k(0.0) + 2 * k(0.25)) / 4                     # ‖x₁ − x₂‖² = 0.09 + 0.16
    xy = (k(0.25) + k(0.09 + 0.01)) / 2                     # ‖x₁ − y‖² = 0.25, ‖x₂ − y‖² = 0.09 + 0.01
    assert metrics.mmd(x, y) == pytest.approx(math.sqrt(xx + k(0.0) - 2 * xy), rel=1e-12)
    assert metrics.mmd(x, x) == pytest.approx(0.0, abs=1e-7)


def test_in_threads_sets_the_count_only_while_the_generator_runs():
    """A live run trains at 1 thread; between its frames (and after it) the server's count is back."""
    from pipelines.runtime import in_threads
    before, seen = torch.get_num_threads(), []

    def run():
        for i in range(3):
            seen.append(torch.get_num_threads())
            yield i
    target = 1 if before > 1 else 2
    outside = []
    for item in in_threads(run(), target):
        outside.append(torch.get_num_threads())
    assert seen == [target] * 3 and outside == [before] * 3 and torch.get_num_threads() == before


def test_live_training_runs_on_the_trainers_thread_count(monkeypatch):
    from demos import playground2d as tab
    from pipelines.toy2d.train import THREADS
    counts = []
    real_train = tab.train

    def counting(kind, points, **kwargs):
        for p in real_train(kind, points, **kwargs):
            counts.append(torch.get_num_threads())
            yield p
    monkeypatch.setattr(tab, "train", counting)
    list(tab._train_live("gan", tab.DATASETS[0], None, 100, 0))
    assert THREADS == 1 and counts and set(counts) == {THREADS}


def test_playground_tab_checks_its_inputs_and_says_what_is_wrong():
    """The tab's callbacks, called as the API calls them (raw values): clear messages, never a stack trace."""
    import gradio as gr
    from PIL import Image, ImageDraw
    from demos import playground2d as tab
    with pytest.raises(gr.Error, match="canvas is empty"):
        tab.show_data(tab.DRAWN, None, 0)
    line = Image.new("RGBA", (300, 300), (255, 255, 255, 255))
    ImageDraw.Draw(line).line([(20, 150), (280, 150)], fill=(0, 0, 0, 255), width=2)
    with pytest.raises(gr.Error, match="straight line"):
        tab.show_data(tab.DRAWN, {"composite": line}, 0)
    with pytest.raises(gr.Error, match="was not uploaded to this app"):
        tab.show_data(tab.DRAWN, {"composite": {"path": "/etc/passwd"}}, 0)
    with pytest.raises(gr.Error, match="Dataset must be one of"):
        tab.show_data("MNIST", None, 0)
    with pytest.raises(gr.Error, match="Training steps must be between"):
        next(tab.train_ddpm_live("two moons", None, "ε (epsilon)", 10 ** 6, 0))
    with pytest.raises(gr.Error, match="N must be one of"):
        tab.gaussian_step("two moons", None, 0.0, 0.0, 500, 7, 0)
    with pytest.raises(gr.Error, match="no trained model yet"):
        ring = Image.new("RGBA", (300, 300), (255, 255, 255, 255))
        ImageDraw.Draw(ring).ellipse([50, 50, 250, 250], outline=(0, 0, 0, 255), width=6)
        tab.score_field(tab.DRAWN, {"composite": ring}, 100, tab.FIELD_SHOWN[0], 0, 0)
    # a drawn ring is a distribution: its points come back, and the forward process draws them
    img = tab.forward(tab.DRAWN, {"composite": ring}, "linear (DDPM)", False, 100, 0)
    from pipelines import infotext
    assert infotext.read(img)["tab"] == "playground2d" and infotext.read(img)["t"] == 100


def test_live_training_stops_at_its_time_limit(monkeypatch):
    from demos import playground2d as tab
    monkeypatch.setattr(tab, "LIVE_SECONDS", 0.0)
    frames = list(tab.train_ddpm_live("two moons", None, "ε (epsilon)", 6000, 0))
    # the first frame is already past a 0 s limit: the run ends there, says why, and hands back what it has
    assert len(frames) == 1 and "limit per live run" in frames[-1][1] and frames[-1][2]["steps"] == 0


def test_page_load_figures_are_computed_once_even_when_asked_at_once():
    import threading
    import time
    from demos import playground2d as tab
    calls, out = [], []

    def make():
        calls.append(1)
        time.sleep(0.2)
        return len(calls)

    threads = [threading.Thread(target=lambda: out.append(tab._memo(("test", 1), make))) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert out == [1, 1, 1, 1] and len(calls) == 1

    def fails():
        raise ValueError("no")
    with pytest.raises(ValueError):
        tab._memo(("test", 2), fails)
    assert ("en", "test", 2) not in tab._memo_store   # errors are not kept (the key holds the page's language)


def test_live_status_tells_a_ring_from_the_eight_modes(monkeypatch):
    """A ring of samples through the 8 modes holds ≥ 2 % at each (8/8 'modes') but few lie within 3σ of one: the live
    status says both, so it never reads as a success next to a ring."""
    import math
    from types import SimpleNamespace
    from demos import playground2d as tab
    angles = torch.linspace(0, 2 * math.pi, 1000)
    ring = 2 * torch.stack([angles.cos(), angles.sin()], 1)

    def fake_train(kind, points, **kwargs):
        yield SimpleNamespace(step=100, seconds=0.1, samples=ring, done=True, model=None, curves={})
    monkeypatch.setattr(tab, "train", fake_train)
    (_, status, _), = tab._train_live("gan", tab.DATASETS[0], None, 100, 0)
    share = int(status.split("8 modes, ")[1].split("%")[0])
    assert "8/8 modes" in status and share < 50

"""Schedule invariants and the forward process, through diffusers' schedulers."""
import pytest
import torch

from pipelines.forward import forward_scheduler, markov_chain, noised
from pipelines.runtime import cpu_generator
from pipelines.schedules import (SCHEDULES, alphas_cumprod, log_snr, make_scheduler, rescale_zero_terminal_snr,
                                 schedule_config)


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("zero_snr", [False, True])
def test_alpha_bar_strictly_decreasing(schedule, zero_snr):
    abar = alphas_cumprod(schedule, zero_snr)
    assert abar.shape == (1000,)
    assert (abar[1:] < abar[:-1]).all()
    assert 0 <= abar.min() and abar.max() < 1


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_zero_snr_ends_at_zero_and_keeps_first_step(schedule):
    plain, rescaled = alphas_cumprod(schedule, False), alphas_cumprod(schedule, True)
    assert plain[-1] > 0                         # common schedules leave signal at t = T ...
    assert rescaled[-1] == 0                     # ... the rescale removes it exactly
    assert rescaled[0] == pytest.approx(plain[0].item(), rel=1e-5)  # ᾱ_1 is kept
    assert log_snr(rescaled)[-1] == float("-inf")


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_reference_zero_snr_rescale_matches_diffusers(schedule):
    """`rescale_zero_terminal_snr` (Algorithm 1 written out) gives diffusers' betas, and the schedulers' ᾱ."""
    from diffusers import DDPMScheduler
    from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr as diffusers_rescale
    betas = DDPMScheduler(**schedule_config(schedule, False)).betas
    ours = rescale_zero_terminal_snr(betas.clone())
    torch.testing.assert_close(ours, diffusers_rescale(betas.clone()))
    abar = torch.cumprod(1 - ours, dim=0)
    assert abar[-1].item() == 0.0 and ours[-1].item() == 1.0           # exactly zero terminal SNR
    assert abar[0].item() == pytest.approx(1 - betas[0].item(), rel=1e-6)   # the first step is unchanged
    torch.testing.assert_close(abar, alphas_cumprod(schedule, True))  # what the project's schedulers use
    assert not torch.allclose(ours, betas)                              # it did change the schedule
    # float64 in, float64 out, same maths
    torch.testing.assert_close(rescale_zero_terminal_snr(betas.double()), diffusers_rescale(betas.double()))


def test_linear_schedule_terminal_value_is_the_known_one():
    # DDPM's linear betas 1e-4..0.02 leave ᾱ_T ≈ 4.0e-5 (Lin et al. 2024, Table 1)
    assert alphas_cumprod("linear (DDPM)")[-1].item() == pytest.approx(4.04e-5, rel=0.02)


def test_closed_form_matches_markov_chain():
    """Mean and variance of x_t from the iterated chain equal sqrt(ᾱ_t)·x_0 and 1 − ᾱ_t."""
    scheduler = forward_scheduler("linear (DDPM)")
    n, x0 = 20000, torch.tensor([-1.0, -0.3, 0.5, 1.0])
    ts = (0, 10, 100, 400, 999)
    chain = markov_chain(x0.expand(n, 4), scheduler.betas, cpu_generator(0), keep=ts)  # {t: (n, 4)}
    for t in ts:
        abar = scheduler.alphas_cumprod[t]
        mean, var = chain[t].mean(0), chain[t].var(0)
        se_mean = ((1 - abar) / n) ** 0.5
        assert torch.allclose(mean, abar.sqrt() * x0, atol=5 * se_mean + 1e-4), t
        assert torch.allclose(var, (1 - abar).expand(4), rtol=0.05, atol=1e-5), t


def test_noised_uses_add_noise_with_one_shared_eps():
    x0 = torch.linspace(-1, 1, 28 * 28).reshape(1, 28, 28)
    xs = noised(x0, [0, 500, 999], "cosine (improved DDPM)", seed=3)
    abar = forward_scheduler("cosine (improved DDPM)").alphas_cumprod
    eps = (xs[1] - abar[500].sqrt() * x0) / (1 - abar[500]).sqrt()
    expected = abar[999].sqrt() * x0 + (1 - abar[999]).sqrt() * eps
    assert torch.allclose(xs[2], expected, atol=1e-4)
    assert torch.equal(noised(x0, [500], "cosine (improved DDPM)", seed=3)[0], xs[1])


@pytest.mark.parametrize("spacing,first", [("leading", 980), ("trailing", 999), ("linspace", 999)])
def test_timestep_spacing_is_diffusers(spacing, first):
    s = make_scheduler("DDIM", schedule_config(timestep_spacing=spacing))
    s.set_timesteps(50)
    assert int(s.timesteps[0]) == first and len(s.timesteps) == 50

"""Fewest steps at equal quality (issue 16, point 3): the multistep solvers, the frontier's rules on made-up
measurements, the tabs' defaults against results/frontier.json, and its plot in the Metrics tab."""
import copy

import pytest
import torch

from pipelines.checkpoints import read_json
from pipelines.measure import frontier
from pipelines.measure.precision import compare
from pipelines.runtime import cpu_generator
from pipelines.sampling import denoise, predicted_x0
from pipelines.schedules import make_scheduler, schedule_config


# ----------------------------------------------------------------------------- the solvers
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_predicted_x0_is_ddims_pred_original_sample(prediction_type):
    """The x̂_0 shown for the multistep solvers is the formula DDIM itself reports (DDIM eq. 12 / its v form)."""
    scheduler = make_scheduler("DDIM", schedule_config(prediction_type=prediction_type))
    scheduler.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    x_t, output = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
    for t in scheduler.timesteps[[0, 4, 9]]:
        expected = scheduler.step(output, t, x_t).pred_original_sample
        torch.testing.assert_close(predicted_x0(scheduler, output, x_t, t), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sampler", ["DDIM", "DPM-Solver++ (multistep)", "UniPC (multistep)"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_every_sampler_lands_on_the_data_with_an_exact_denoiser(sampler, prediction_type):
    """With a network that knows the answer (the data is one point x_0), every solver's path ends at x_0 in 8 steps,
    and its reported x̂_0 is x_0 at every step: the sampler and predicted_x0 both read the prediction type right."""
    scheduler = make_scheduler(sampler, schedule_config(prediction_type=prediction_type))
    x0 = torch.linspace(-0.9, 0.9, 16).reshape(1, 1, 4, 4)
    abar = scheduler.alphas_cumprod

    def exact(x_t, t):
        a = abar[int(t)]
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return eps if prediction_type == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0

    steps = list(denoise(exact, scheduler, (1, 1, 4, 4), 8, cpu_generator(0)))
    assert len(steps) == 8 and [s.i for s in steps] == list(range(8))
    for s in steps:
        torch.testing.assert_close(s.denoised, x0, rtol=0, atol=1e-3)
    torch.testing.assert_close(steps[-1].x, x0, rtol=0, atol=2e-2)


# ----------------------------------------------------------------------------- the rules, on made-up measurements
def test_a_point_keeps_quality_unless_it_is_worse_by_more_than_the_bound():
    ref = {"accuracy": 0.95, "fid": 20.0, "images": 300}
    assert compare(ref, {"accuracy": 0.99, "fid": 10.0, "images": 300}, worse_only=True)[0]    # better: kept
    assert not compare(ref, {"accuracy": 0.99, "fid": 10.0, "images": 300})[0]                 # but not "the same"
    assert compare(ref, {"accuracy": 0.941, "fid": 21.9, "images": 300}, worse_only=True)[0]   # inside the bounds
    keeps, outside = compare(ref, {"accuracy": 0.939, "fid": 22.1, "images": 300}, worse_only=True)
    assert not keeps and len(outside) == 2
    bright = {"black": 0.05, "white": 0.90, "non_finite": 0.0}
    assert compare(bright, {"black": 0.01, "white": 0.99, "non_finite": 0.0}, worse_only=True)[0]
    assert not compare(bright, {"black": 0.07, "white": 0.90, "non_finite": 0.0}, worse_only=True)[0]
    assert not compare(bright, {"black": 0.05, "white": 0.88, "non_finite": 0.0}, worse_only=True)[0]
    diverged = {"black": None, "white": None, "non_finite": 1.0}
    assert not compare(diverged, {"black": 0.1, "white": 0.9, "non_finite": 0.0}, worse_only=True)[0]


def points(sampler, verdicts):
    return [{"sampler": sampler, "steps": s, "keeps_quality": k} for s, k in verdicts.items()]


def test_the_cheapest_stable_point_needs_every_point_above_it():
    assert frontier.cheapest_stable(points("DDIM", {4: False, 5: True, 6: False, 8: True, 10: True}), "DDIM") == 8
    assert frontier.cheapest_stable(points("DDIM", {4: True, 8: True}), "DDIM") == 4
    assert frontier.cheapest_stable(points("DDIM", {4: True, 8: False}), "DDIM") is None   # the top fails
    assert frontier.cheapest_stable(points("DDIM", {4: True}), "UniPC (multistep)") is None  # not measured


def doc_of(cheapest_by_model: dict) -> dict:
    return {"models": {m: {"cheapest": c} for m, c in cheapest_by_model.items()}}


def test_a_tabs_default_holds_for_all_its_models_and_ties_go_to_the_sampler_listed_first():
    ddim, dpm, unipc = frontier.SAMPLERS
    doc = doc_of({"cfg-mnist": {ddim: 6, dpm: 5, unipc: 5}, "cfg-fashion-mnist": {ddim: 15, dpm: 5, unipc: 4}})
    assert frontier.tab_default(doc, "cfg") == {"sampler": dpm, "steps": 5, "measured": True}
    doc["models"]["cfg-mnist"]["cheapest"][dpm] = None           # one model has no stable DPM++ point
    assert frontier.tab_default(doc, "cfg") == {"sampler": unipc, "steps": 5, "measured": True}
    assert frontier.tab_default(doc, "conditioning") == {"sampler": "DDIM", "steps": 20, "measured": False}
    zero = doc_of({"brightness-eps-default": {ddim: 20, dpm: 4, unipc: 4}})
    assert frontier.tab_default(zero, "zero_snr")["sampler"] == ddim   # the tab offers DDIM only


# ----------------------------------------------------------------------------- the shipped measurement
@pytest.fixture(scope="module")
def shipped():
    doc = read_json(frontier.RESULTS)
    assert doc and doc["models"], f"no measurement: run {frontier.__doc__.split()[0]}"
    return doc


def test_the_stored_verdicts_follow_from_the_stored_figures(shipped):
    """keeps_quality, cheapest and the defaults are derived from the measured figures, never edited by hand."""
    for name, row in shipped["models"].items():
        assert frontier.judged(copy.deepcopy(row), shipped["samplers"]) == row, name
    assert shipped["defaults"] == {tab: frontier.tab_default(shipped, tab) for tab in frontier.TABS}
    assert set(shipped["models"]) == {m for models in frontier.TABS.values() for m in models}   # every model measured


def test_each_tabs_default_is_the_measured_cheapest_point(shipped):
    from demos import cfg, conditioning, ddpm, text2img, zero_snr
    for tab, module in {"ddpm": ddpm, "cfg": cfg, "conditioning": conditioning, "text2img": text2img,
                        "zero_snr": zero_snr}.items():
        chosen = shipped["defaults"][tab]
        assert chosen["measured"], tab
        assert (getattr(module, "DEFAULT_SAMPLER", "DDIM"), module.DEFAULT_STEPS) == (chosen["sampler"], chosen["steps"]), tab
        # the default keeps quality on every model of the tab, and so does every measured point above it
        for name in frontier.TABS[tab]:
            above = [p for p in shipped["models"][name]["points"]
                     if p["sampler"] == chosen["sampler"] and p["steps"] >= chosen["steps"]]
            assert above and all(p["keeps_quality"] for p in above), (tab, name)


def test_the_metrics_tab_plots_every_measured_model(shipped):
    from demos import metrics
    for name, row in shipped["models"].items():
        fig = metrics.frontier_figure(shipped, name)
        assert len(fig.axes) == len([k for k in row["reference"] if k not in ("images", "non_finite")]), name
        chosen = shipped["defaults"][metrics.tab_of(name)]
        point = next(p for p in row["points"] if (p["sampler"], p["steps"]) == (chosen["sampler"], chosen["steps"]))
        stars = [ln for ax in fig.axes for ln in ax.lines if ln.get_marker() == "*"]
        # the tab's default is marked on every panel where it has a value (the diverging model has none)
        assert len(stars) == sum(point["figures"][k] is not None for k in row["reference"]
                                 if k not in ("images", "non_finite")), name
        assert all(ln.get_xdata()[0] == chosen["steps"] for ln in stars)
    status, table, choice, plot = metrics.frontier_page()
    assert [row[0] for row in table["data"]] == [metrics.tr(f"app.tab.{t}") for t in frontier.TABS]
    assert choice.choices and plot.visible


def test_the_frontier_model_choice_refuses_what_the_file_does_not_hold():
    import gradio as gr

    from demos import metrics
    for bad in ("../../etc/passwd", "<script>alert(1)</script>", None, 3, ["ddpm-mnist"]):
        with pytest.raises(gr.Error):
            metrics.frontier_view(bad)

"""Metrics: FID and Inception Score — the latest results of the evaluation command, and a small-n
FID / IS computed on demand for any model registered in pipelines.measure.samplers.SAMPLERS."""
from __future__ import annotations

import gradio as gr

from pipelines.checkpoints import PROJECT_ROOT, read_json
from pipelines.measure.protocol import PROTOCOLS
from pipelines.measure.report import format_value
from pipelines.measure.samplers import SAMPLERS
from pipelines.images import finite_samples, grid
from pipelines.metrics.features import DEFAULT_FEATURES, JUDGES, get_feature_network, inception_cache_file
from pipelines.metrics.fid import FIDNumericalError
from pipelines.metrics.scoring import real_floor, reference_description, score_images

from .common import Budget, check_choice, check_cost, check_number, formula, seed_box, user_errors
from .i18n import T
from .plots import metrics_plot

RESULTS = PROJECT_ROOT / "results" / "metrics.json"
QUICK_RESULTS = PROJECT_ROOT / "results" / "quick" / "metrics.json"
COMMAND = "python -m pipelines.evaluate"
MIN_N, MAX_N, MAX_STEPS = 16, 1000, 100
MAX_WORK = Budget(5_000)  # images × sampling steps per request: ≈ 20 s for the MNIST DDPM, the one request sized beyond 5 s
# (FID needs n: the default n = 200 at 25 steps fits; its batches are large, so a call's fixed cost is left out)
FEATURE_CHOICES = [("Judge classifier of the model's dataset (trained here; MNIST's for brightness-varied MNIST)",
                    "classifier"),
                   ("Inception-v3 pool3 (torchvision; needs cached weights)", "inception-v3")]
TABLE_HEADERS = ["model", "setting", "figure", "value", "protocol"]
HISTORY_HEADERS = ["model", "setting", "features", "n", "FID", "IS (mean ± std)", "FID of real images, same n"]

# ----------------------------------------------------------------------------- latest results
def load_results() -> tuple[dict | None, str]:
    """The latest results document and a status line saying where it came from."""
    doc = read_json(RESULTS)
    if doc:
        return doc, (f"Results of `{doc['command']}` from {doc['created']} ({doc['hardware']}). "
                     f"{doc['protocol_text']}.")
    doc = read_json(QUICK_RESULTS)
    if doc:
        return doc, (f"**No full evaluation yet** — showing a *quick* smoke-test run from {doc['created']} "
                     f"(tiny n: not a measurement). Run `{COMMAND}` for the real figures.")
    return None, f"**No results yet.** Run `{COMMAND}` (or `{COMMAND} --quick` for a smoke test) and reload."


def plot_names(rows: list[dict]) -> list[str]:
    """One plot per distinct `plot.name` of the results rows, in the order the evaluations ran."""
    return list(dict.fromkeys(r["plot"]["name"] for r in rows if r.get("plot")))


def results_view():
    doc, status = load_results()
    if not doc:
        return status, [], gr.Dropdown(choices=[], value=None, visible=False), gr.Plot(value=None, visible=False)
    rows = doc["rows"]
    skipped = [f"- **{k}** — {v['status']}: {v['reason']}" for k, v in doc["evaluations"].items()
               if v["status"] != "ok"]
    if skipped:
        status += "\n\nNot evaluated:\n" + "\n".join(skipped)
    table = [[r["model"], r["setting"], r["figure"], format_value(r), r["protocol"]] for r in rows]
    names = plot_names(rows)
    fig = metrics_plot(rows, names[0]) if names else None
    return (status, table, gr.Dropdown(choices=names, value=names[0] if names else None, visible=bool(names)),
            gr.Plot(value=fig, visible=fig is not None))


def plot_view(name):
    """The chosen plot of the latest results."""
    doc, _ = load_results()
    fig = metrics_plot(doc["rows"], name) if doc and name else None
    return gr.Plot(value=fig, visible=fig is not None)


# ----------------------------------------------------------------------------- on demand
def generator_changed(name):
    gen = SAMPLERS.get(name)
    if gen is None:
        return gr.Slider(), ""
    info = gen.description + ("" if gen.steps else " (no sampling steps to choose)")
    return gr.Slider(value=gen.steps or 25, interactive=gen.steps is not None), info


@user_errors
def compute(model, features, n, steps, seed, history, progress=gr.Progress()):
    """Sample n images from `model`, score FID and IS, and score n real images as the floor."""
    check_choice(model, "Model", list(SAMPLERS))
    check_choice(features, "Feature network", [v for _, v in FEATURE_CHOICES])
    n = check_number(n, "n", MIN_N, MAX_N, integer=True)
    seed = check_number(seed, "Seed", 0, 2**31 - 1, integer=True)
    gen = SAMPLERS[model]
    steps = check_number(steps, "Steps", 1, MAX_STEPS, integer=True) if gen.steps else None
    if steps:
        check_cost(n, steps, MAX_WORK, seconds=20)
    key = DEFAULT_FEATURES[gen.dataset] if features == "classifier" else features
    net = get_feature_network(key)   # CheckpointMissing / FeatureNetworkMissing -> a clear gr.Error
    if n <= net.dim:
        gr.Warning(f"n = {n} ≤ {net.dim} feature dimensions: the covariance is singular, FID is strongly biased.")
    progress(0, desc="sampling")
    out = gen.sample(n, seed, steps, lambda done, total: progress((done, total), desc="sampling"))
    images, labels = out if isinstance(out, tuple) else (out, None)   # conditional models give labels too
    images, labels = drop_non_finite(images, labels)
    try:
        progress(0.9, desc="features of the generated images")
        s = score_images(images, gen.dataset, key, labels=labels if key == JUDGES.get(gen.dataset) else None)
        progress(0.95, desc="the floor: features of n real images")
        floor = real_floor(gen.dataset, key, len(images), seed=seed + 1)
    except FIDNumericalError as exc:
        raise ValueError(f"FID could not be computed reliably ({exc}).") from None
    setting = f"{steps} steps" if steps else "—"
    md = (f"### {model}{', ' + setting if steps else ''}, seed {seed}\n"
          f"- **{s.fid_label}: {s.fid:.4g}** — real training images at the same n: {floor.fid:.4g}\n"
          f"- **{s.is_label}: {s.is_mean:.3f} ± {s.is_std:.2g}** — real images: {floor.is_mean:.3f} "
          f"± {floor.is_std:.2g} (max {net.num_classes})\n"
          + (f"- **{s.accuracy_label}: {s.accuracy:.1%}** of the samples show the requested class\n"
             if s.accuracy is not None else "") + "\n"
          f"Features: {net.describe()}; {reference_description(gen.dataset, key)}.")
    history = (history or []) + [[model, setting, net.name, s.n, f"{s.fid:.4g}",
                                  f"{s.is_mean:.3f} ± {s.is_std:.2g}", f"{floor.fid:.4g}"]]
    return md, grid(images[:64], nrow=8, scale=2), history, history


def drop_non_finite(images, labels=None):
    """Leave out samples with NaN/inf pixels (e.g. an ε-model on a zero-terminal-SNR schedule), with a warning;
    a clear error when too few are left to score."""
    ok = finite_samples(images)
    if ok.all():
        return images, labels
    bad = int((~ok).sum())
    if ok.sum() < MIN_N:
        raise ValueError(f"{bad} of {len(images)} samples are non-finite (NaN/inf): this model diverges with these "
                         "settings, so there is nothing to score.")
    gr.Warning(f"{bad} of {len(images)} samples are non-finite (NaN/inf) and were left out of the scores.")
    return images[ok], labels[ok] if labels is not None else None


# ----------------------------------------------------------------------------- layout
def build():
    gr.Markdown("## Measuring generative models: FID and Inception Score")
    formula(T("metrics.formulas_md"))

    gr.Markdown(f"### Latest results of the evaluation command (`{COMMAND}`)")
    status = gr.Markdown()
    plot_choice = gr.Dropdown([], label="Plot", info="one plot per evaluation: value vs its setting, one panel per "
                              "metric")
    plot = gr.Plot(label="Dashed: real images at the same n and features")
    table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, wrap=True, label="Results table")
    reload = gr.Button("Reload results", size="sm")
    reload.click(results_view, [], [status, table, plot_choice, plot], api_visibility="private")
    plot_choice.change(plot_view, plot_choice, plot, api_visibility="private")

    gr.Markdown("### Compute a small-n FID / IS now")
    formula(T("metrics.caveat_md"))
    with gr.Row():
        with gr.Column(scale=1):
            names = list(SAMPLERS)
            model = gr.Dropdown(names, value=names[0] if names else None, label="Model")
            model_info = gr.Markdown(SAMPLERS[names[0]].description if names else "")
            features = gr.Dropdown(FEATURE_CHOICES, value="classifier", label="Feature network",
                                   info=f"Inception-v3 weights are looked for at {inception_cache_file().name} "
                                        "in the torch hub cache; never downloaded.")
            n = gr.Slider(MIN_N, MAX_N, value=200, step=1, label="n: images to generate and score",
                          info=f"n × steps ≤ {MAX_WORK.image_steps:,} per request")
            steps = gr.Slider(1, MAX_STEPS, value=SAMPLERS[names[0]].steps or 25 if names else 25, step=1,
                              label="Sampling steps")
            seed = seed_box(0)
            run = gr.Button("Compute FID & IS", variant="primary")
        with gr.Column(scale=2):
            result = gr.Markdown("_Choose a model and press **Compute**. The default protocol of the evaluation "
                                 f"command uses n = {PROTOCOLS['default'].n}; expect a minute or two on a CPU._")
            samples = gr.Image(label="The scored samples (first 64)", type="pil", interactive=False, height=330)
    history_table = gr.Dataframe(headers=HISTORY_HEADERS, interactive=False, label="Computed in this session "
                                 "(compare rows only at the same n and features)")
    history = gr.State([])
    model.change(generator_changed, model, [steps, model_info], api_visibility="private")
    run.click(compute, [model, features, n, steps, seed, history], [result, samples, history_table, history],
              api_name="metrics_compute")
    return {"load": [(results_view, [], [status, table, plot_choice, plot])]}

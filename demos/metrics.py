"""Metrics: FID and Inception Score — the latest results of the evaluation command, and a small-n
FID / IS computed on demand for any model registered in pipelines.measure.samplers.SAMPLERS."""
from __future__ import annotations

import gradio as gr

from pipelines.checkpoints import PROJECT_ROOT, read_json
from pipelines.measure import frontier
from pipelines.measure.protocol import PROTOCOLS
from pipelines.measure.report import format_value
from pipelines.measure.samplers import SAMPLERS
from pipelines.images import finite_samples, grid
from pipelines.metrics.features import DEFAULT_FEATURES, JUDGES, get_feature_network, inception_cache_file
from pipelines.metrics.fid import FIDNumericalError
from pipelines.metrics.scoring import real_floor, reference_description, score_images

from .common import SAMPLER_KEYS, Budget, check_choice, check_cost, check_number, formula, labelled, seed_box, user_errors
from .i18n import T, T_each, has, tr
from .lessons import Exposed
from .plots import frontier_plot, metrics_plot
from .zerogpu import gpu_task

RESULTS = PROJECT_ROOT / "results" / "metrics.json"
QUICK_RESULTS = PROJECT_ROOT / "results" / "quick" / "metrics.json"
COMMAND = "python -m pipelines.evaluate"
MIN_N, MAX_N, MAX_STEPS = 16, 1000, 100
MAX_WORK = Budget(5_000)  # images × sampling steps per request: ≈ 20 s for the MNIST DDPM, the one request sized beyond 5 s
# (FID needs n: the default n = 200 at 25 steps fits; its batches are large, so a call's fixed cost is left out)
FEATURE_CHOICES = [("Judge classifier of the model's dataset (trained here; MNIST's for brightness-varied MNIST)",
                    "classifier"),
                   ("Inception-v3 pool3 (torchvision; needs cached weights)", "inception-v3")]
FEATURE_KEYS = {"classifier": "metrics.features_classifier", "inception-v3": "metrics.features_inception"}
TABLE_HEADERS = ["model", "setting", "figure", "value", "protocol"]
HISTORY_HEADERS = ["model", "setting", "features", "n", "FID", "IS (mean ± std)", "FID of real images, same n"]
# the headers' keys, in the same order (a Dataframe's headers are part of its value, which gradio's frontend does not
# translate: they are sent in the request's language with each table)
TABLE_HEADER_KEYS = [f"metrics.col_{h}" for h in TABLE_HEADERS]
HISTORY_HEADER_KEYS = ["metrics.col_model", "metrics.col_setting", "metrics.col_features", "metrics.col_n",
                       "metrics.col_fid", "metrics.col_is", "metrics.col_floor"]


# ----------------------------------------------------------------------------- the models' names, translated
def sampler_texts(lang: str | None = None) -> dict[str, tuple[str, str]]:
    """{name in SAMPLERS: (its label, its description)} in `lang`, composed from the same parts as
    pipelines.measure.samplers' table (in English, exactly its names and descriptions; a model this list does not
    know keeps its English name and description)."""
    from pipelines.measure.samplers import (CFG_MODELS, DDPM_SAMPLERS, TAB_SCALE, VAE_MODELS, ZERO_SNR_SCALE,
                                            stackgan_models, vae_dim)
    from pipelines.metrics.features import DATASET_TITLES
    from pipelines.zero_snr import VARIANTS

    from .zero_snr import variant_text

    def t(key, **values):
        return tr(f"metrics.{key}", lang, **values)

    ddpm_keys = {"DDIM": "sampler_ddim", "DDPM (ancestral)": "sampler_ancestral"}
    out = {}
    for sampler, label in DDPM_SAMPLERS.items():
        named = t(ddpm_keys[sampler]) if sampler in ddpm_keys else label
        out[f"MNIST DDPM · {label}"] = (t("ddpm_name", sampler=named), t("ddpm_about", sampler=named))
    out["Real MNIST training images (the floor)"] = (t("real_name"), t("real_about"))
    for name, dataset in CFG_MODELS.items():
        title = DATASET_TITLES[dataset]
        out[f"{title} CFG · w = {TAB_SCALE:g}"] = (t("cfg_name", title=title, w=TAB_SCALE),
                                                  t("cfg_about", title=title, name=name, w=TAB_SCALE))
    for name in VAE_MODELS:
        dim = vae_dim(name)
        out[f"MNIST VAE · {dim}-D latent"] = (t("vae_name", dim=dim), t("vae_about", dim=dim, name=name))
    for (v, z), name in VARIANTS.items():
        variant = variant_text(v_prediction=v, zero_snr=z, lang=lang)
        out[f"Brightness MNIST · {variant_text(v_prediction=v, zero_snr=z, lang='en')}"] = (
            t("zero_name", variant=variant), t("zero_about", name=name, variant=variant, w=ZERO_SNR_SCALE))
    stage_keys = {"stackgan-stage1": "stage1", "stackgan-stage2": "stage2",
                  "stackgan-stage2-pixelshuffle": "stage2_pixelshuffle"}
    for checkpoint, (_, label) in stackgan_models().items():
        named = t(stage_keys[checkpoint]) if checkpoint in stage_keys else label
        out[f"{label} · held-out prompts"] = (t("stackgan_name", label=named), t("stackgan_about"))
    out["Latent diffusion (shapes) · held-out prompts"] = (t("ldm_name"), t("ldm_about"))
    return {name: out.get(name, (name, gen.description)) for name, gen in SAMPLERS.items()}


def model_label(name: str, lang: str | None = None) -> str:
    return sampler_texts(lang).get(name, (name, ""))[0]


def model_description(name: str, lang: str | None = None) -> str:
    return sampler_texts(lang).get(name, ("", SAMPLERS[name].description if name in SAMPLERS else ""))[1]


def model_choices() -> list:
    """The Model dropdown's choices: each name (what the API takes) with its label in each language."""
    return [(T_each("metrics.model", lambda lang, n=n: model_label(n, lang)), n) for n in SAMPLERS]


def headed(rows: list, keys: list[str]) -> dict:
    """A Dataframe value with its headers in the request's language."""
    return {"headers": [tr(k) for k in keys], "data": rows}

# ----------------------------------------------------------------------------- latest results
def load_results() -> tuple[dict | None, str]:
    """The latest results document and a status line saying where it came from."""
    doc = read_json(RESULTS)
    if doc:
        return doc, tr("metrics.results_of", command=doc['command'], created=doc['created'], hardware=doc['hardware'],
                       protocol=doc['protocol_text'])
    doc = read_json(QUICK_RESULTS)
    if doc:
        return doc, tr("metrics.results_quick", created=doc['created'], command=COMMAND)
    return None, tr("metrics.results_none", command=COMMAND)


def plot_names(rows: list[dict]) -> list[str]:
    """One plot per distinct `plot.name` of the results rows, in the order the evaluations ran."""
    return list(dict.fromkeys(r["plot"]["name"] for r in rows if r.get("plot")))


def results_view():
    doc, status = load_results()
    if not doc:
        return status, [], gr.Dropdown(choices=[], value=None, visible=False), gr.Plot(value=None, visible=False)
    rows = doc["rows"]
    skipped = [f"- **{k}** — {status_word(v['status'])}: {v['reason']}" for k, v in doc["evaluations"].items()
               if v["status"] != "ok"]
    if skipped:
        status += "\n\n" + tr("metrics.not_evaluated") + "\n" + "\n".join(skipped)
    table = [[r["model"], r["setting"], r["figure"], format_value(r), r["protocol"]] for r in rows]
    names = plot_names(rows)
    fig = metrics_plot(rows, names[0]) if names else None
    return (status, table, gr.Dropdown(choices=names, value=names[0] if names else None, visible=bool(names)),
            gr.Plot(value=fig, visible=fig is not None))


def status_word(status: str) -> str:
    """An evaluation's status (skipped, error) in the request's language."""
    return tr(f"metrics.status_{status}") if has(f"metrics.status_{status}") else status


def results_page():
    """`results_view` for the page: the table's headers in the page's language."""
    status, table, choice, plot = results_view()
    return status, headed(table, TABLE_HEADER_KEYS), choice, plot


def history_page(history):
    """The session's table of computed scores, its headers in the page's language."""
    return headed(history or [], HISTORY_HEADER_KEYS)


def plot_view(name):
    """The chosen plot of the latest results."""
    doc, _ = load_results()
    fig = metrics_plot(doc["rows"], name) if doc and name else None
    return gr.Plot(value=fig, visible=fig is not None)


# ----------------------------------------------------------------------------- fewest steps at equal quality
FRONTIER_COMMAND = "python -m pipelines.evaluate --frontier"
FRONTIER_HEADER_KEYS = ["metrics.col_tab", "metrics.col_sampler", "metrics.col_steps", "metrics.col_models"]


def frontier_tabs(doc: dict) -> list[list]:
    """One row per tab: its title, the default sampler and steps results/frontier.json chose, the models it holds."""
    rows = []
    for tab, models in frontier.TABS.items():
        d = doc["defaults"].get(tab)
        sampler = tr(SAMPLER_KEYS[d["sampler"]]) if d and d["measured"] else tr("metrics.frontier_unmeasured")
        rows.append([tr(f"app.tab.{tab}"), sampler, d["steps"] if d and d["measured"] else "",
                     ", ".join(m for m in models if m in doc["models"]) or "—"])
    return rows


def tab_of(model: str) -> str | None:
    return next((tab for tab, models in frontier.TABS.items() if model in models), None)


def frontier_figure(doc: dict, name: str):
    return frontier_plot(doc["models"][name], name, doc["bounds"], doc["defaults"].get(tab_of(name)))


def frontier_page():
    """The frontier section as the page loads: status, the tabs' defaults, the model choice and its curves."""
    doc = read_json(frontier.RESULTS)
    if not doc or not doc.get("models"):
        return (tr("metrics.frontier_none", command=FRONTIER_COMMAND), headed([], FRONTIER_HEADER_KEYS),
                gr.Dropdown(choices=[], value=None, visible=False), gr.Plot(value=None, visible=False))
    commands = ", ".join(f"`{c}`" for c in doc.get("commands", [doc["command"]]))
    names = list(doc["models"])
    return (tr("metrics.frontier_of", commands=commands, n=doc["n"], hardware=doc["hardware"]),
            headed(frontier_tabs(doc), FRONTIER_HEADER_KEYS), gr.Dropdown(choices=names, value=names[0], visible=True),
            gr.Plot(value=frontier_figure(doc, names[0]), visible=True))


@user_errors
def frontier_view(name):
    """The chosen model's curves (a name the file does not hold gets a clear message)."""
    doc = read_json(frontier.RESULTS) or {"models": {}}
    check_choice(name, "metrics.frontier_model", list(doc["models"]))
    return frontier_figure(doc, name)


# ----------------------------------------------------------------------------- on demand
def generator_changed(name):
    gen = SAMPLERS.get(name)
    if gen is None:
        return gr.Slider(), ""
    info = model_description(name) + ("" if gen.steps else tr("metrics.no_steps"))
    return gr.Slider(value=gen.steps or 25, interactive=gen.steps is not None), info


@gpu_task(120)
@user_errors
def compute(model, features, n, steps, seed, history, progress=gr.Progress()):
    """Score a model of this app: sample n images, compute their FID and Inception Score (and the judge classifier's
    accuracy for a conditional model), and score n real images the same way as the floor. Returns the result as
    Markdown, a grid of the first 64 samples, and the session's table of every score computed so far.

    Args:
        model: the model to score, one of the names the schema lists (e.g. "MNIST DDPM · DDIM (η=0)", "MNIST CFG · w = 3", "Real MNIST training images (the floor)").
        features: the feature network of FID and IS: "classifier" (the judge classifier of the model's dataset, trained here) or "inception-v3" (needs its cached weights).
        n: how many images to sample and score, a whole number from 16 to 1000; n × steps is also bounded by this server's per-request budget (a clear error when over it).
        steps: the sampling steps, a whole number from 1 to 100 (ignored by a model that has no steps: the VAEs, the GANs, real images).
        seed: the random seed of the samples, a whole number from 0 to 2147483647.
        history: the table of earlier scores (kept by the page; leave empty).
    """
    check_choice(model, "metrics.model", list(SAMPLERS))
    check_choice(features, "metrics.features", [v for _, v in FEATURE_CHOICES])
    n = check_number(n, "n", MIN_N, MAX_N, integer=True)
    seed = check_number(seed, "common.seed", 0, 2**31 - 1, integer=True)
    gen = SAMPLERS[model]
    steps = check_number(steps, "ddpm.steps_name", 1, MAX_STEPS, integer=True) if gen.steps else None
    if steps:
        check_cost(n, steps, MAX_WORK, seconds=20)
    key = DEFAULT_FEATURES[gen.dataset] if features == "classifier" else features
    net = get_feature_network(key)   # CheckpointMissing / FeatureNetworkMissing -> a clear gr.Error
    if n <= net.dim:
        gr.Warning(tr("metrics.singular", n=n, dim=net.dim))
    sampling = tr("metrics.sampling")
    progress(0, desc=sampling)
    out = gen.sample(n, seed, steps, lambda done, total: progress((done, total), desc=sampling))
    images, labels = out if isinstance(out, tuple) else (out, None)   # conditional models give labels too
    images, labels = drop_non_finite(images, labels)
    try:
        progress(0.9, desc=tr("metrics.features_generated"))
        s = score_images(images, gen.dataset, key, labels=labels if key == JUDGES.get(gen.dataset) else None)
        progress(0.95, desc=tr("metrics.features_floor"))
        floor = real_floor(gen.dataset, key, len(images), seed=seed + 1)
    except FIDNumericalError as exc:
        raise ValueError(tr("metrics.fid_failed", error=exc)) from None
    setting = tr("metrics.setting_steps", steps=steps) if steps else "—"
    label = model_label(model)
    md = ((tr("metrics.result_head_steps", model=label, steps=steps, seed=seed) if steps
           else tr("metrics.result_head", model=label, seed=seed)) + "\n"
          + tr("metrics.result_fid", label=s.fid_label, fid=s.fid, floor=floor.fid) + "\n"
          + tr("metrics.result_is", label=s.is_label, mean=s.is_mean, std=s.is_std, floor_mean=floor.is_mean,
               floor_std=floor.is_std, most=net.num_classes) + "\n"
          + (tr("metrics.result_accuracy", label=s.accuracy_label, accuracy=s.accuracy) + "\n"
             if s.accuracy is not None else "") + "\n"
          + tr("metrics.result_features", features=net.describe(), reference=reference_description(gen.dataset, key)))
    history = (history or []) + [[label, setting, net.name, s.n, f"{s.fid:.4g}",
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
        raise ValueError(tr("metrics.all_non_finite", bad=bad, n=len(images)))
    gr.Warning(tr("metrics.some_non_finite", bad=bad, n=len(images)))
    return images[ok], labels[ok] if labels is not None else None


# ----------------------------------------------------------------------------- layout
def build():
    gr.Markdown(T("metrics.title"))
    formula(T("metrics.formulas_md"))

    gr.Markdown(T("metrics.latest_title", command=COMMAND))
    status = gr.Markdown()
    plot_choice = gr.Dropdown([], label=T("metrics.plot_choice"), info=T("metrics.plot_choice_info"))
    plot = gr.Plot(label=T("metrics.plot"))
    table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, wrap=True, label=T("metrics.table"))
    reload = gr.Button(T("metrics.reload"), size="sm")
    reload.click(results_page, [], [status, table, plot_choice, plot], api_visibility="private")
    plot_choice.change(plot_view, plot_choice, plot, api_visibility="private")

    gr.Markdown(T("metrics.frontier_title", command=FRONTIER_COMMAND))
    formula(T("metrics.frontier_md"))
    frontier_status = gr.Markdown()
    frontier_table = gr.Dataframe(headers=FRONTIER_HEADER_KEYS, interactive=False, wrap=True,
                                  label=T("metrics.frontier_table"))
    frontier_choice = gr.Dropdown([], label=T("metrics.frontier_model"), info=T("metrics.frontier_model_info"))
    frontier_curves = gr.Plot(label=T("metrics.frontier_model"))
    frontier_choice.change(frontier_view, frontier_choice, frontier_curves, api_visibility="private")

    gr.Markdown(T("metrics.compute_title"))
    formula(T("metrics.caveat_md"))
    with gr.Row():
        with gr.Column(scale=1):
            names = list(SAMPLERS)
            model = gr.Dropdown(model_choices(), value=names[0] if names else None, label=T("metrics.model"))
            model_info = gr.Markdown(T_each("metrics.model", lambda lang: model_description(names[0], lang))
                                     if names else "")
            features = gr.Dropdown(labelled([v for _, v in FEATURE_CHOICES], FEATURE_KEYS), value="classifier",
                                   label=T("metrics.features"),
                                   info=T("metrics.features_info", file=inception_cache_file().name))
            n = gr.Slider(MIN_N, MAX_N, value=200, step=1, label=T("metrics.n"),
                          info=T("metrics.n_info", budget=MAX_WORK.image_steps))
            steps = gr.Slider(1, MAX_STEPS, value=SAMPLERS[names[0]].steps or 25 if names else 25, step=1,
                              label=T("metrics.steps"))
            seed = seed_box(0)
            run = gr.Button(T("metrics.run"), variant="primary")
        with gr.Column(scale=2):
            result = gr.Markdown(T("metrics.result_hint", n=PROTOCOLS['default'].n))
            samples = gr.Image(label=T("metrics.samples"), type="pil", interactive=False, height=330)
    history_table = gr.Dataframe(headers=HISTORY_HEADERS, interactive=False, label=T("metrics.history"))
    history = gr.State([])
    model.change(generator_changed, model, [steps, model_info], api_visibility="private")
    run.click(compute, [model, features, n, steps, seed, history], [result, samples, history_table, history],
              api_name="metrics_compute").then(history_page, history, history_table, api_visibility="private",
                                               show_progress="hidden")
    lesson = Exposed(dict(status=status, plot_choice=plot_choice, plot=plot, table=table, model=model, features=features,
                          n=n, steps=steps, seed=seed, result=result, samples=samples, history=history_table),
                     dict(compute=run), checks={"plot_choice": lambda v: check_choice(
                         v, "metrics.plot_choice", plot_names((load_results()[0] or {}).get("rows", [])))})
    return {"load": [(results_page, [], [status, table, plot_choice, plot]),
                     (frontier_page, [], [frontier_status, frontier_table, frontier_choice, frontier_curves]),
                     (history_page, [history], [history_table])], "lesson": lesson}

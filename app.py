"""Diffusion Lab: one gr.Blocks from the tabs in demos/, queued and launched.

    python app.py                       # http://127.0.0.1:7860, CPU (CUDA/MPS when present)
    python app.py --port 8000 --share --device cuda
    python app.py --mcp                 # also an MCP server: every named endpoint is a tool (/gradio_api/mcp/)
"""
from __future__ import annotations

import argparse
import ctypes
import importlib
import importlib.util
import os
from pathlib import Path

# two queued jobs share 2 vCPUs: idle OpenMP threads should sleep, not spin (read once, before torch loads)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives threads their own heaps ("arenas", up to 8 per core), and gradio runs jobs on a pool of up to 40
    threads: memory freed by one job stays reserved in its thread's arena, so the server's RSS crept up with
    every request (+16.5 % over 400 requests in the load test; 2 arenas: +11 %, flat after the first 200).
    Set before any thread starts; MALLOC_ARENA_MAX, when given, wins; a no-op off glibc."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # -8 = M_ARENA_MAX
    except (OSError, AttributeError):
        pass


_limit_malloc_arenas()

import demos.zerogpu  # noqa: E402,F401 - imports `spaces` before torch touches CUDA (needed on ZeroGPU)
import gradio as gr  # noqa: E402
import gradio.processing_utils as gr_processing  # noqa: E402

# (tab title's key in locales/*.toml, module in demos/) — each module's build() fills its tab
TABS = [
    ("app.tab.ddpm", "demos.ddpm"),
    ("app.tab.cfg", "demos.cfg"),
    ("app.tab.conditioning", "demos.conditioning"),
    ("app.tab.zero_snr", "demos.zero_snr"),
    ("app.tab.text2img", "demos.text2img"),
    ("app.tab.stackgan", "demos.stackgan"),
    ("app.tab.vae", "demos.vae"),
    ("app.tab.playground2d", "demos.playground2d"),
    ("app.tab.metrics", "demos.metrics"),
]
MAX_UPLOAD = "20mb"  # uploads are digits and photos; larger files are refused before they reach a tab
CONCURRENCY = int(os.environ.get("DIFFUSION_LAB_CONCURRENCY", "2"))  # 2 vCPUs: two jobs at a time
MCP_ENV = "DIFFUSION_LAB_MCP"  # "1": serve the MCP tools, as --mcp does
COMPUTE_QUEUE = "compute"  # the one queue every tab's main action waits in (see share_one_queue)
# MNIST-sized images are shown enlarged: keep their pixels crisp instead of blurred. gr.Image and gr.Gallery float their
# label (top left) and toolbar (top right) over the top of the pictures, which hid the top row of every sample grid:
# keep that strip free (one label line + its padding), so the pictures start below both (tests/test_browser.py checks)
CSS = """img { image-rendering: pixelated; }
.block:has(> label.float) > .image-container:not(:fullscreen),
.block > .image-container:not(:fullscreen):has(> .icon-button-wrapper),
.block:has(> label.float) > .gallery-container > .grid-wrap {
  box-sizing: border-box; padding-top: calc(var(--block-label-text-size) * var(--line-sm) + 10px); }
.digit-input img { width: 100% !important; height: 100% !important; object-fit: contain; }
body.presenting .gradio-container { zoom: 1.3; }
body.presenting .gradio-container .prose { font-size: 1.15em; }
body.presenting .advanced { display: none !important; }
#language-switch { flex-grow: 0; }"""
# presentation mode: a class on <body>, set by the checkbox or by ?present=1 in the URL (no server round trip)
PRESENT_JS = "(on) => { document.body.classList.toggle('presenting', !!on); }"
PRESENT_FROM_URL_JS = "() => new URLSearchParams(window.location.search).has('present')"
# precision reasons (pipelines/precision.py words them in English) -> their keys in the translation tables
REASON_KEYS = {"native bf16 on this CPU, chosen automatically": "app.reason.cpu_bf16",
               "no native bf16 on this CPU": "app.reason.cpu_fp32", "full precision": "app.reason.full",
               "this GPU supports bf16, chosen automatically": "app.reason.cuda_bf16",
               "this GPU has no bf16, chosen automatically": "app.reason.cuda_fp16",
               "DIFFUSION_LAB_PRECISION unset; python app.py chooses automatically": "app.reason.unset",
               "set by DIFFUSION_LAB_PRECISION / --precision": "app.reason.set"}


def runtime_note(lang: str | None = None) -> str:
    """Where the models run and at what precision, e.g. "Models run on CPU at bf16 (native bf16 on this CPU, ...)"."""
    from demos.i18n import tr
    from pipelines import backends
    from pipelines.precision import FP32_ONLY, choose
    from pipelines.runtime import pick_device
    device = pick_device()
    try:
        p = choose(device)
        backends.requested()
    except ValueError as exc:  # a bad DIFFUSION_LAB_PRECISION / _BACKEND: the models refuse to load with it too
        return f"**{exc}**"
    force = "" if p.name == "fp32" else tr("app.runtime_force", lang)
    kept = ("" if p.name == "fp32" or not FP32_ONLY else
            tr("app.runtime_kept", lang, models=", ".join(f"`{m}`" for m in FP32_ONLY)))
    reason = tr(REASON_KEYS[p.reason], lang) if p.reason in REASON_KEYS else p.reason
    note = tr("app.runtime", lang, device=device.type.upper(), precision=p.name, reason=reason, force=force, kept=kept)
    if backends.requested() == "onnxruntime" and device.type == "cpu":
        note += tr("app.runtime_backend", lang, engine="ONNX Runtime")
    return note


def header_note():
    """The header's Markdown in both languages (a key gradio's frontend translates)."""
    from demos.i18n import T_each, tr
    return T_each("app.header", lambda lang: tr("app.header", lang) + "\n\n" + runtime_note(lang))


def _cache_images_atomically() -> None:
    """Gradio caches a returned PIL image under the hash of its bytes, rewriting the file every time. Two students
    who ask for the same seed and settings get byte-identical images, so one request could read the file while the
    other truncates it ("peer closed connection", seen in the load test). Write once, by rename, instead."""
    original = gr_processing.save_pil_to_cache
    if getattr(original, "atomic", False):
        return

    def save_pil_to_cache(img, cache_dir, name="image", format="webp"):
        data = gr_processing.encode_pil_to_bytes(img, format)
        path = Path(cache_dir) / gr_processing.hash_bytes(data) / f"{name}.{format}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{os.getpid()}-{id(data)}-{path.name}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return str(path.resolve())

    save_pil_to_cache.atomic = True
    gr_processing.save_pil_to_cache = save_pil_to_cache


def build_app() -> gr.Blocks:
    from demos.common import OUTPUT_MAX_AGE, PRUNE_EVERY
    from demos.playground2d import LIVE_TRAINING
    from demos.queue_policy import FairQueue
    _cache_images_atomically()
    # gradio's copies of the results are swept like ours (demos.common.prune_outputs)
    from demos.i18n import T, language_switch, tr
    from demos.lessons import LessonPanel
    with gr.Blocks(title=tr("app.title", "en"), delete_cache=(PRUNE_EVERY, OUTPUT_MAX_AGE)) as demo:
        with gr.Row():
            gr.Markdown(header_note())
            with gr.Column(scale=0, min_width=240):
                language_switch(demo)
                present = gr.Checkbox(False, label=T("app.present"), min_width=240)
        present.change(None, present, None, js=PRESENT_JS, api_visibility="private")
        demo.load(None, None, present, js=PRESENT_FROM_URL_JS, api_visibility="private")
        on_load, tabs = [], []
        with gr.Tabs(overflow_behavior="wrap"):  # every lesson's tab in view (a second row), none behind a "…" menu
            for title, module in TABS:
                with gr.Tab(T(title)) as tab:
                    lesson = LessonPanel.maybe(module.rsplit(".", 1)[-1])  # lessons/<tab>.toml, at the tab's top
                    hooks = importlib.import_module(module).build() or {}
                    on_load += hooks.get("load", [])
                    if lesson:  # checked against the tab's components now: a bad lesson fails the build
                        lesson.bind(hooks.get("lesson"))
                tabs.append(tab)
        # gradio's frontend names the tabs once, in the locale it started with; the page's language (?lang=, which the
        # head script may set a moment later) names them again on load, from the server
        demo.load(lambda: [gr.Tab(label=tr(title)) for title, _ in TABS], None, tabs, api_visibility="private",
                  show_progress="hidden", queue=False)
        for fn, inputs, outputs, *kwargs in on_load:  # optional 4th item: extra event kwargs
            demo.load(fn, inputs, outputs, api_visibility="private", **(kwargs[0] if kwargs else {}))
    share_one_queue(demo)
    clear_payload_errors(demo)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    # a cap per session, least-used sessions first, live training one at a time (demos/queue_policy.py)
    FairQueue(demo, COMPUTE_QUEUE, long=LIVE_TRAINING)
    return demo


def clear_payload_errors(demo: gr.Blocks) -> None:
    """Gradio checks every input payload against its component's data model (a file must be one it received, a
    FileData must be a dict) before any callback runs, even with preprocess=False, and a payload that fails leaves
    the caller a bare "Error" and the log a traceback. Say what is wrong instead, without repeating the payload."""
    original = demo.preprocess_data
    if getattr(original, "clear_errors", False):
        return

    async def preprocess_data(block_fn, inputs, state, explicit_call=False):
        try:
            return await original(block_fn, inputs, state, explicit_call)
        except gr.Error:
            raise
        except Exception:  # pydantic's ValidationError, gradio's InvalidPathError and kin
            from demos.i18n import tr
            raise gr.Error(tr("app.payload_error"), print_exception=False) from None

    preprocess_data.clear_errors = True
    demo.preprocess_data = preprocess_data


def share_one_queue(demo: gr.Blocks) -> None:
    """Gradio gives every event listener a queue of its own, each running up to CONCURRENCY jobs: seven tabs'
    main actions could then run 14 jobs at once on 2 cores, each slowing all the others. Every named endpoint
    (a tab's main action) joins one queue instead; light UI events (frame pickers, players, page-load panels)
    keep theirs."""
    for fn in demo.fns.values():
        if fn.api_visibility == "public" and fn.concurrency_limit == "default":
            fn.concurrency_id = COMPUTE_QUEUE


def private_server(host: str, share: bool) -> bool:
    """Only this machine can reach it: a loopback host, no --share link, not a Hugging Face Space."""
    loopback = host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
    return loopback and not share and not os.environ.get("SPACE_ID")


def allow_sd(flag: bool | None, host: str, share: bool) -> bool:
    """Loading Stable Diffusion checkpoints by name opens folders and downloads models a visitor names: opt-in.
    --allow-sd / --no-allow-sd decide; else DIFFUSION_LAB_ALLOW_SD; else on only for a private server. The answer
    goes into DIFFUSION_LAB_ALLOW_SD, which the tab reads."""
    if flag is not None:
        return flag
    from demos.text2img import ALLOW_SD_ENV
    if os.environ.get(ALLOW_SD_ENV) in ("0", "1"):
        return os.environ[ALLOW_SD_ENV] == "1"
    return private_server(host, share)


def launch(demo: gr.Blocks, **kwargs):
    """Launch with the app's look; used by main() and by the tests."""
    from demos.i18n import RTL_CSS, gradio_i18n, head_js
    from demos.lessons import CSS as LESSON_CSS
    if kwargs.get("mcp_server"):
        from demos.mcp_tools import fix_gradio_mcp
        fix_gradio_mcp()
    return demo.launch(css=CSS + RTL_CSS + LESSON_CSS, head=head_js(), i18n=gradio_i18n(), max_file_size=MAX_UPLOAD, **kwargs)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument("--share", action="store_true", help="create a public gradio.live link")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16", "fp16"],
                   help="inference precision (default: $DIFFUSION_LAB_PRECISION, else auto: bf16 autocast on CPUs with "
                        "native bf16 and on GPUs that have it, fp16 on other GPUs, fp32 elsewhere)")
    p.add_argument("--backend", default=None, choices=["torch", "onnxruntime"],
                   help="the engine of the class-conditional and DDPM networks (default: $DIFFUSION_LAB_BACKEND, else "
                        "torch); onnxruntime runs them exported at fp32, faster on CPUs without native bf16 "
                        "(pip install onnxruntime; python -m pipelines.benchmark --only peers measures it)")
    p.add_argument("--allow-sd", action=argparse.BooleanOptionalAction, default=None,
                   help="let visitors load any Stable Diffusion folder or hub id (default: on for a loopback --host "
                        "that is not a Hugging Face Space, off otherwise; DIFFUSION_LAB_SD_ALLOWLIST lists ids that "
                        "always load)")
    p.add_argument("--mcp", action=argparse.BooleanOptionalAction, default=os.environ.get(MCP_ENV) == "1",
                   help="also serve every named endpoint as an MCP tool, at /gradio_api/mcp/ (default: "
                        f"${MCP_ENV}=1)")
    args = p.parse_args(argv)
    if args.device:
        os.environ["DIFFUSION_LAB_DEVICE"] = args.device
    from pipelines.precision import PRECISION_ENV
    if args.precision:
        os.environ[PRECISION_ENV] = args.precision
    os.environ.setdefault(PRECISION_ENV, "auto")  # the app picks bf16 where the hardware has it (pipelines/precision.py)
    from pipelines import backends
    if args.backend:
        os.environ[backends.BACKEND_ENV] = args.backend
    try:
        backend = backends.requested()
    except ValueError as exc:
        p.error(str(exc))
    if backend == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
        p.error("--backend onnxruntime needs the onnxruntime package: pip install onnxruntime")
    from demos.text2img import ALLOW_SD_ENV
    os.environ[ALLOW_SD_ENV] = "1" if allow_sd(args.allow_sd, args.host, args.share) else "0"
    from demos.common import COST_SCALE_ENV, PRIVATE_COST_SCALE
    if private_server(args.host, args.share):  # one user's own machine: requests may cost more (a DDPM grid)
        os.environ.setdefault(COST_SCALE_ENV, str(PRIVATE_COST_SCALE))
    launch(build_app(), server_name=args.host, server_port=args.port, share=args.share, mcp_server=args.mcp)


if __name__ == "__main__":
    main()

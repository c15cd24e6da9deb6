"""The public server, probed as a hostile client would: raw payloads to every event that takes a file (private change,
load and restore events too), settings read back from PNGs, echoed text, one session flooding the queue, requests
of absurd cost, and the Stable Diffusion box. Everything goes through the launched app, over HTTP."""
from __future__ import annotations

import http.server
import json
import threading

import gradio as gr
import pytest
from PIL import Image, PngImagePlugin

from gradio_raw import FILE_META, call, error_text, join, new_session, results, upload

REFUSED = ("not uploaded to this app", "uploads only", "not in the form this app accepts")
FILE_INPUTS = (gr.Image, gr.File, gr.ImageEditor)


# ---------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def secret(tmp_path_factory):
    """An image outside every folder the app may read, and a URL that serves it (counting every fetch)."""
    d = tmp_path_factory.mktemp("outside")
    path = d / "secret.png"
    Image.new("L", (28, 28), 255).save(path)
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(path.read_bytes())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"path": str(path), "url": f"http://127.0.0.1:{server.server_port}/secret.png", "hits": hits}
    server.shutdown()


def file_events(demo):
    """(fn index, fn, positions of its file inputs) for every event with a file input."""
    out = []
    for i, fn in demo.fns.items():
        where = [k for k, c in enumerate(fn.inputs) if isinstance(c, FILE_INPUTS)]
        if where:
            out.append((i, fn, where))
    return out


def defaults(fn) -> list:
    return [c.value if not isinstance(c, gr.State) else None for c in fn.inputs]


def attacks(secret, component) -> list:
    named = [{"path": secret["path"]}, {"path": secret["path"], "meta": FILE_META},
             {"url": secret["url"]}, {"url": secret["url"], "meta": FILE_META}, secret["path"], secret["url"],
             {"path": secret["url"], "meta": FILE_META}]
    if isinstance(component, gr.ImageEditor):  # the sketch pad's payload holds its images inside
        return [{"background": p, "layers": [], "composite": p} for p in named]
    return named


def png_with_settings(path, text: str):
    info = PngImagePlugin.PngInfo()
    info.add_text("diffusion-lab", text)
    Image.new("L", (8, 8)).save(path, pnginfo=info)
    return path


def restore_fns(demo) -> dict:
    """tab -> fn index of its 'restore settings' upload event."""
    return {fn.fn.__self__.tab: i for i, fn in demo.fns.items() if getattr(fn.fn, "__name__", "") == "restore"}


def restore(url, index, path):
    out = call(url, index, [upload(url, path)])
    assert out["success"], error_text(out)
    *updates, note = out["output"]["data"]
    return updates, note


# ---------------------------------------------------------------- 1. no file or URL a request names is opened
def test_no_event_opens_a_path_or_url_the_request_names(app_demo, secret):
    demo, url = app_demo
    events = file_events(demo)
    names = {fn.name for _, fn, _ in events} | {fn.api_name for _, fn, _ in events}
    assert {"forward", "forward_process", "forward_at_t", "vae_reconstruct", "restore", "use_drawing"} <= names
    for index, fn, where in events:
        for k in where:
            for payload in attacks(secret, fn.inputs[k]):
                data = defaults(fn)
                data[k] = payload
                out = call(url, index, data)
                text = error_text(out) if not out["success"] else str(out["output"]["data"][-1])
                assert any(r in text for r in REFUSED), f"{fn.name}[{k}] {payload}: {out}"
    assert secret["hits"] == [], "the server fetched a URL a request named"


def test_a_symlink_in_the_upload_folder_does_not_lead_out(app_demo, secret):
    from gradio.utils import get_upload_folder
    from pathlib import Path
    demo, url = app_demo
    link = Path(get_upload_folder()) / "hardening-test" / "link.png"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(secret["path"])
    index = next(i for i, fn in demo.fns.items() if fn.api_name == "vae_reconstruct")
    out = call(url, index, ["16-D latent", {"path": str(link), "meta": FILE_META}, 1, 1.0, 0])
    assert not out["success"] and any(r in error_text(out) for r in REFUSED), out


def test_real_uploads_and_the_shipped_examples_still_work(app_demo):
    from demos.common import MNIST_EXAMPLES
    demo, url = app_demo
    index = next(i for i, fn in demo.fns.items() if fn.api_name == "forward_at_t")
    for payload in (upload(url, MNIST_EXAMPLES[0]), demo.fns[index].inputs[0].value):
        out = call(url, index, [payload, "linear (DDPM)", False, 10, 0])
        assert out["success"] and "t=10" in out["output"]["data"][1], out


# ---------------------------------------------------------------- 2. restored settings are validated
BAD_SETTINGS = {  # tab -> (settings, fields that must be refused)
    "ddpm": ({"steps": 10**9, "sampler": "bogus", "eta": [1, 2], "seed": "abc", "num_images": {"a": 1}},
             ["steps", "sampler", "eta", "seed", "num_images"]),
    "cfg": ({"seed": 2**70, "steps": True, "sampler": "DDIM", "scale": "1e1"}, ["seed", "steps", "scale"]),
    "zero-snr": ({"zero_snr": "false", "v_prediction": 1, "spacing": "nope", "steps": 25}, ["zero_snr", "v_prediction",
                                                                                             "spacing"]),
    "stackgan": ({"augment": "true", "num_z": 99, "caption": ["a", "b"], "seed": 3}, ["augment", "num_z", "caption"]),
    "text2img": ({"prompt": "x" * 30_000, "model_choice": "Skynet", "steps": 25.5, "seed": 1}, ["prompt",
                                                                                                "model_choice", "steps"]),
}


@pytest.mark.parametrize("tab", list(BAD_SETTINGS))
def test_restored_values_pass_the_checks_typed_ones_do(app_demo, tmp_path, tab):
    demo, url = app_demo
    settings, refused = BAD_SETTINGS[tab]
    index = restore_fns(demo)[tab]
    drop = demo.fns[index].fn.__self__
    path = png_with_settings(tmp_path / "bad.png", json.dumps({"tab": tab, **settings}))
    updates, note = restore(url, index, path)
    by_name = dict(zip(drop.names, updates))
    for name in refused:
        assert f"**{name}**" in note, (name, note)
        assert "value" not in (by_name[name] or {}), f"{name} was restored: {by_name[name]}"
    for name in set(settings) - set(refused):  # the valid ones still come back
        assert by_name[name]["value"] == settings[name], (name, by_name[name])
    assert len(note) < 3000


@pytest.mark.parametrize("text", ['{"tab": "ddpm", "seed": NaN}', "[" * 5000 + "]" * 5000, '{"tab": "ddpm", "seed":',
                                  '"just a string"', '{"tab": "ddpm", "x": "' + "y" * 70_000 + '"}'])
def test_damaged_or_oversized_settings_get_one_clear_message(app_demo, tmp_path, text):
    demo, url = app_demo
    updates, note = restore(url, restore_fns(demo)["ddpm"], png_with_settings(tmp_path / "damaged.png", text))
    assert "damaged" in note or "must be" in note, note
    assert all("value" not in (u or {}) for u in updates[:1] + updates[2:3]) and len(note) < 3000


def test_restored_and_echoed_text_is_escaped(app_demo, tmp_path):
    demo, url = app_demo
    evil = "<img src=x onerror=alert(1)> **bold** [link](http://x) $$\\int$$ \x00\x1b[31m\u202egnp.exe"
    path = png_with_settings(tmp_path / "evil.png", json.dumps({"tab": "text2img", "prompt": evil, "seed": evil}))
    updates, note = restore(url, restore_fns(demo)["text2img"], path)
    assert "<img" not in note and "**bold**" not in note and "[link](" not in note and "$$" not in note
    assert not any(ch in note for ch in "\x00\x1b\u202e"), repr(note)
    path = png_with_settings(tmp_path / "tab.png", json.dumps({"tab": "<script>" + "t" * 5_000_000}))
    _, note = restore(url, restore_fns(demo)["ddpm"], path)
    assert "<script>" not in note and len(note) < 500, note[:200]


def test_status_lines_and_errors_do_not_echo_raw_text(client):
    from demos.text2img import SHAPES, OWN
    evil = "<b>bold</b> **x** \x00\x1b[31m\u202e" + "z" * 5000
    _, _, status, *_ = client.predict(SHAPES, "", evil, "", 3.0, 0.0, "DDIM", 1, 1, 0, OWN, OWN,
                                      api_name="/text2img_generate")
    assert "<b>" not in status and "**x**" not in status and len(status) < 2500
    assert not any(ch in status for ch in "\x00\x1b\u202e")
    with pytest.raises(Exception) as err:
        client.predict("MNIST", "<i>" + "7" * 100_000, 3.0, 0.0, "DDIM", 2, 1, 0, api_name="/cfg_generate")
    assert "<i>" not in str(err.value) and len(str(err.value)) < 1000


def test_markdown_panels_escape_the_values_they_quote(monkeypatch):
    """The zero-SNR warning (an unknown spacing sent to its change event) and the text-to-image model card (a typed
    Stable Diffusion name that does not load) are Markdown: what they quote can neither format nor link."""
    from demos import text2img, zero_snr
    evil = "**bold** [link](http://x) <i>"
    for md in (zero_snr.warning(True, True, evil), text2img.model_info(text2img.SD, evil)):
        assert "**bold**" not in md and "[link](" not in md and "<i>" not in md and "&amp;lt;" not in md, md
    monkeypatch.setenv(text2img.ALLOW_SD_ENV, "1")
    md = text2img.model_info(text2img.SD, evil)
    assert "**bold**" not in md and "[link](" not in md and "<i>" not in md and "&amp;lt;" not in md, md


# ---------------------------------------------------------------- 4. one session cannot fill the queue
def test_one_session_may_queue_two_main_actions(app_demo):
    from demos.queue_policy import MAX_COMPUTE_JOBS
    demo, url = app_demo
    index = next(i for i, fn in demo.fns.items() if fn.api_name == "reverse")
    greedy = new_session()
    # jobs of ~3 s each (100 × (8 + 10) = 1,800 image-steps), so none finishes while the ten joins arrive, even on a busy machine
    joins = [join(url, index, ["DDIM", 100, 8, 0.0, k], greedy) for k in range(10)]
    accepted = [r for r in joins if r.status_code == 200]
    assert len(accepted) == MAX_COMPUTE_JOBS
    assert all("already have" in r.json()["detail"] for r in joins if r.status_code != 200)
    other = new_session()  # someone else is not held up by the cap
    assert join(url, index, ["DDIM", 5, 2, 0.0, 0], other).status_code == 200
    assert all(m["success"] for m in results(url, greedy, MAX_COMPUTE_JOBS))
    assert results(url, other)[0]["success"]
    assert join(url, index, ["DDIM", 5, 2, 0.0, 0], greedy).status_code == 200  # a finished job frees its place
    assert results(url, greedy)[0]["success"]


def test_light_events_of_one_session_are_capped_too(app_demo):
    from demos.queue_policy import MAX_EVENTS
    demo, url = app_demo
    # the forward process redrawn on a control's change: a private event, ~0.5 s each, two at a time
    index, fn = next((i, fn) for i, fn in demo.fns.items() if fn.name == "forward_process" and fn.trigger_mode)
    session = new_session()
    codes = [join(url, index, defaults(fn), session).status_code for _ in range(MAX_EVENTS + 20)]
    assert codes.count(200) <= MAX_EVENTS + 2 and 400 in codes  # a few may finish while the others join
    results(url, session, codes.count(200))


# ---------------------------------------------------------------- 4. each request's work is bounded by its cost
@pytest.mark.parametrize("api,args", [
    ("/reverse", ("DDPM (ancestral)", 20, 36, 0.0, 0)),
    ("/cfg_generate", ("MNIST", "3", 3.0, 0.0, "DDPM (ancestral)", 25, 16, 0)),
    ("/cfg_sweep", ("MNIST", "0, 1, 3, 5, 7, 9", 250, 0)),
    ("/zero_snr_generate", (True, True, "all black", 3.0, 0.0, "trailing", 200, 36, 0)),
    ("/text2img_generate", ("Shapes LDM (trained here)", "", "a red circle", "", 3.0, 0.0, "DDIM", 100, 16, 0,
                            "the model's own", "the model's own")),
])
def test_requests_over_their_cost_budget_are_refused_at_once(client, api, args):
    import time
    t0 = time.time()
    with pytest.raises(Exception, match="one request may cost at most"):
        client.predict(*args, api_name=api)
    assert time.time() - t0 < 10


def test_a_request_pays_for_each_network_call_not_only_its_images(monkeypatch):
    """One image for the ancestral sampler's 1000 steps is 1000 network calls: 22 s of this server's CPU, though it
    is only 1000 image-steps. It is refused on a Space (and its slider note says so), while 16 images × 50 DDIM
    steps, 2.7 s, are allowed; a sweep pays for one call per guidance scale."""
    from demos import cfg, ddpm
    from demos.common import COST_SCALE_ENV, PRIVATE_COST_SCALE, Budget, budget_text, check_cost
    monkeypatch.setenv(COST_SCALE_ENV, "1")
    assert Budget(2_400, overhead=10).cost(1, 1000) == 11_000
    assert Budget(2_100, overhead=6).cost(4 * 10, 20, calls=4) == 20 * (40 + 24)
    with pytest.raises(ValueError, match=r"1,000 × \(1 \+ 10\) = 11,000 image-steps"):
        check_cost(1, 1000, ddpm.BUDGET)
    check_cost(16, 50, ddpm.BUDGET)
    with pytest.raises(ValueError, match="one request may cost at most"):
        check_cost(8 * 10, 20, cfg.BUDGET, calls=8)  # eight guidance scales: 20 × (80 + 48)
    check_cost(8 * 10, 20, cfg.BUDGET)  # the same images as one batch would fit: 20 × (80 + 6)
    assert "runs on your own machine" in budget_text(ddpm.BUDGET, ancestral=True)
    monkeypatch.setenv(COST_SCALE_ENV, str(PRIVATE_COST_SCALE))  # a private server: ancestral, 16 images
    check_cost(16, 1000, ddpm.BUDGET)
    assert "runs on your own machine" not in budget_text(ddpm.BUDGET, ancestral=True)


def test_every_tabs_default_request_fits_its_budget_on_a_space(monkeypatch):
    """What a student gets by pressing each main button without touching a slider is never refused (the defaults of
    the tabs' sliders, as built)."""
    from demos import cfg, conditioning, ddpm, text2img, zero_snr
    from demos.common import COST_SCALE_ENV, check_cost
    monkeypatch.setenv(COST_SCALE_ENV, "1")
    sweep_ws = len(text2img.SWEEP_SCALES.split(","))
    cfg_ws = len(cfg.SWEEP_SCALES.split(","))
    for images, steps, budget, calls in [
            (16, ddpm.DEFAULT_STEPS, ddpm.BUDGET, 1), (16, cfg.DEFAULT_STEPS, cfg.BUDGET, 1),
            (10 * cfg_ws, 20, cfg.BUDGET, cfg_ws),
            (16, zero_snr.DEFAULT_STEPS, zero_snr.BUDGET, 1),
            (4 * zero_snr.COMPARE_IMAGES, zero_snr.DEFAULT_STEPS, zero_snr.BUDGET, 4),
            (4 * 10, conditioning.DEFAULT_STEPS, conditioning.BUDGET, 4), (4, text2img.DEFAULT_STEPS, text2img.BUDGET, 1),
            (text2img.MAX_SWEEP_IMAGES * sweep_ws, 20, text2img.BUDGET, sweep_ws)]:
        check_cost(images, steps, budget, calls=calls)


# ---------------------------------------------------------------- 5. the Stable Diffusion box
def test_stable_diffusion_loading_is_opt_in(client, monkeypatch):
    from demos.text2img import ALLOW_SD_ENV, SD, OWN
    monkeypatch.delenv(ALLOW_SD_ENV, raising=False)
    messages = []
    for spec in ("/etc", "/no/such/folder", "~", "stabilityai/stable-diffusion-2-1"):
        with pytest.raises(Exception) as err:
            client.predict(SD, spec, "a cat", "", 3.0, 0.0, "DDIM", 1, 1, 0, OWN, OWN, api_name="/text2img_generate")
        messages.append(str(err.value))
    assert all("does not load Stable Diffusion checkpoints" in m for m in messages), messages
    assert len(set(messages)) == 1  # nothing tells one folder from another


def test_allow_sd_defaults_by_where_the_server_listens(monkeypatch):
    import app
    from demos.text2img import ALLOW_SD_ENV
    monkeypatch.delenv(ALLOW_SD_ENV, raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert app.allow_sd(None, "127.0.0.1", False) and app.allow_sd(None, "localhost", False)
    assert not app.allow_sd(None, "0.0.0.0", False) and not app.allow_sd(None, "127.0.0.1", True)
    assert app.allow_sd(True, "0.0.0.0", False) and not app.allow_sd(False, "127.0.0.1", False)
    monkeypatch.setenv("SPACE_ID", "someone/diffusion-lab")
    assert not app.allow_sd(None, "127.0.0.1", False)
    monkeypatch.setenv(ALLOW_SD_ENV, "1")
    assert app.allow_sd(None, "0.0.0.0", False)


def test_an_allowed_missing_checkpoint_names_no_server_path(client, monkeypatch):
    from pathlib import Path
    from demos.text2img import SD_ALLOWLIST_ENV, SD, OWN
    monkeypatch.setenv(SD_ALLOWLIST_ENV, "owner/not-cached-here")
    with pytest.raises(Exception) as err:
        client.predict(SD, "owner/not-cached-here", "a cat", "", 3.0, 0.0, "DDIM", 1, 1, 0, OWN, OWN,
                       api_name="/text2img_generate")
    assert "not on this machine" in str(err.value) and str(Path.home()) not in str(err.value)


# ---------------------------------------------------------------- 7. numbers are numbers
@pytest.mark.parametrize("steps", [True, "1e1", "nan", [3], {"v": 3}])
def test_booleans_and_odd_strings_are_not_numbers(client, steps):
    with pytest.raises(Exception, match="Steps must be a number"):
        client.predict("DDIM", steps, 1, 0.0, 0, api_name="/reverse")


def test_stackgan_notes_non_ascii_captions(client):
    _, _, status = client.predict("ein großer roter Kreis in der Mitte", "nearest-neighbour + conv", 1, 0, True,
                                  api_name="/stackgan_generate")
    assert "non-ASCII" in status


def _fake_queue(waiting, running):
    """A stand-in for gradio's queue: one compute queue, the events `running`, and gradio's pick (the first waiting,
    which then runs)."""
    from types import SimpleNamespace
    compute = SimpleNamespace(queue=list(waiting))

    def pick():
        if not compute.queue:
            return None
        running.append(compute.queue.pop(0))
        return [running[-1]], False, "compute"
    return SimpleNamespace(event_queue_per_concurrency_id={"compute": compute}, active_jobs=[None, running], push=None,
                           get_events=pick)


def _event(session, run_time=0.0, api_name="reverse"):
    import time
    from types import SimpleNamespace
    return SimpleNamespace(session_hash=session, concurrency_id="compute", _id=f"{session}-{time.monotonic_ns()}",
                           run_time=run_time, fn=SimpleNamespace(api_name=api_name))


def test_heavy_and_busy_sessions_wait_behind_the_others():
    """Queue order, without a server: a session with a job running, or one that used far more compute lately than the
    others, waits behind them; everyone else keeps the order of arrival."""
    import time
    from types import SimpleNamespace
    from demos.queue_policy import FairQueue

    running = [_event("greedy")]
    waiting = [_event("greedy"), _event("heavy"), _event("student-a"), _event("student-b"), _event("newcomer")]
    fair = FairQueue(SimpleNamespace(_queue=_fake_queue(waiting, running)), "compute")
    now = time.time()
    fair.started = {"greedy": [(now - 30, running[0])], "heavy": [(now - 100, _event("heavy", 60.0))],
                    "student-a": [(now - 60, _event("student-a", 4.0))],
                    "student-b": [(now - 60, _event("student-b", 1.0)), (now - 1000, _event("student-b", 99.0))]}
    order = [fair.get_events()[0][0].session_hash for _ in waiting]
    # heavy used 60 s against a median of 4 s (student-b's 99 s are older than the window); greedy has a job running
    assert order == ["student-a", "student-b", "newcomer", "heavy", "greedy"]
    assert len(fair.started["student-b"]) == 2  # its old job was pruned, the new one added


def test_a_costly_session_waits_for_a_quiet_server():
    """A session whose request asked for most of its budget (as check_cost declares it) starts nothing while another
    session's job runs or waits; once the server is quiet it runs; two costly sessions take turns, never deadlock."""
    import time
    from types import SimpleNamespace
    from demos import queue_policy
    from demos.queue_policy import FairQueue

    now, running = time.time(), []
    past = {name: _event(name, 5.0) for name in ("greedy", "other-greedy", "student")}
    waiting = [_event("greedy"), _event("student"), _event("newcomer"), _event("other-greedy")]
    queue = _fake_queue(waiting, running)
    fair = FairQueue(SimpleNamespace(_queue=queue), "compute")
    fair.started = {name: [(now - 20, e)] for name, e in past.items()}
    queue_policy._declared.update({past["greedy"]._id: 1.0, past["other-greedy"]._id: 0.9, past["student"]._id: 0.01})
    assert [fair.get_events()[0][0].session_hash for _ in range(2)] == ["student", "newcomer"]
    assert fair.get_events() is None  # the students' jobs run: both costly sessions wait
    running.clear()
    assert fair.get_events()[0][0].session_hash == "greedy"  # a quiet server: the first costly one runs ...
    assert fair.get_events() is None                         # ... and the other waits for it
    running.clear()
    assert fair.get_events()[0][0].session_hash == "other-greedy"
    fair.started = {}
    fair.prune(time.time(), set())
    assert not set(queue_policy._declared) & {e._id for e in past.values()}  # forgotten with their jobs


def test_a_costly_request_waits_from_its_first_join():
    """Before it has run anything, a session whose waiting request asks for most of the budget (read from the
    request's own arguments) is held while students' jobs run; junk arguments count as light (the handler refuses
    them itself)."""
    from types import SimpleNamespace
    from demos import ddpm
    from demos.common import cost_scale
    from demos.queue_policy import FairQueue, asked_share

    def join(session, *args):
        e = _event(session)
        e.fn.fn, e.data = ddpm.reverse_process, SimpleNamespace(data=list(args))
        return e

    assert asked_share(ddpm.reverse_process, ["DDPM (ancestral)", 20, 1, 0.0, 0]) == (
        pytest.approx(1000 * (1 + ddpm.BUDGET.overhead) / (ddpm.BUDGET.image_steps * cost_scale())))
    assert asked_share(ddpm.reverse_process, ["DDIM", "x", [], None, 0]) == 0.0
    running = [join("student-a", "DDIM", 10, 4, 0.0, 0)]
    greedy = join("greedy", "DDPM (ancestral)", 20, 1, 0.0, 0)
    fair = FairQueue(SimpleNamespace(_queue=_fake_queue([greedy, join("student-b", "DDIM", 10, 4, 0.0, 0),
                                                         join("junk", "DDIM", "1e999", "x", 0, 0)], running)),
                     "compute")
    assert [fair.get_events()[0][0].session_hash for _ in range(2)] == ["student-b", "junk"]
    assert fair.get_events() is None
    running.clear()
    assert fair.get_events()[0][0].session_hash == "greedy"


def test_check_cost_declares_the_share_of_the_budget_to_the_queue():
    from gradio.context import LocalContext
    from demos import queue_policy
    from demos.common import Budget, check_cost, cost_scale
    token = LocalContext.event_id.set("event-1")
    try:
        check_cost(4, 50, Budget(800, overhead=2))
    finally:
        LocalContext.event_id.reset(token)
    assert queue_policy._declared.pop("event-1") == pytest.approx(50 * (4 + 2) / (800 * cost_scale()))


def test_a_served_request_declares_its_share_to_the_queue(client):
    """Through the real server (a streamed generator): the queue learns what the /reverse request asked for."""
    from demos import queue_policy
    from demos.common import cost_scale
    from demos.ddpm import BUDGET
    before = set(queue_policy._declared)
    client.predict("DDIM", 10, 3, 0.0, 0, api_name="/reverse")
    shares = [queue_policy._declared[k] for k in set(queue_policy._declared) - before]
    assert shares == [pytest.approx(10 * (3 + BUDGET.overhead) / (BUDGET.image_steps * cost_scale()))]


def test_live_training_runs_one_at_a_time():
    """Two students press "Train live" (each up to 30 s) while a third waits for a light job: one training runs, the
    light job takes the other worker, and the second training starts only when the first is done."""
    from types import SimpleNamespace
    from demos.playground2d import LIVE_TRAINING
    from demos.queue_policy import FairQueue

    running = []
    trains = [_event(f"trainer-{k}", api_name=name) for k, name in enumerate(sorted(LIVE_TRAINING))]
    queue = _fake_queue([*trains, _event("student")], running)
    fair = FairQueue(SimpleNamespace(_queue=queue), "compute", long=LIVE_TRAINING)
    assert [fair.get_events()[0][0].session_hash for _ in range(2)] == ["trainer-0", "student"]
    assert fair.get_events() is None  # trainer-1 waits while trainer-0 runs
    running.remove(trains[0])
    assert fair.get_events()[0][0].session_hash == "trainer-1"


def test_a_bad_restore_does_not_break_another_job_of_the_same_session(app_demo, tmp_path):
    """One browser session: a long job is streaming when a damaged PNG is dropped; both answer, the job completes."""
    demo, url = app_demo
    reverse = next(i for i, fn in demo.fns.items() if fn.api_name == "reverse")
    session = new_session()
    assert join(url, reverse, ["DDIM", 30, 8, 0.0, 0], session).status_code == 200
    bad = png_with_settings(tmp_path / "bad.png", json.dumps({"tab": "ddpm", "steps": "x" * 30_000,
                                                              "seed": [[[[]]]], "eta": {"a": None}}))
    assert join(url, restore_fns(demo)["ddpm"], [upload(url, bad)], session).status_code == 200
    done = results(url, session, 2)
    assert all(m["success"] for m in done), done
    note = next(m for m in done if len(m["output"]["data"]) == 6)["output"]["data"][-1]
    assert "Not restored" in note and len(note) < 3000

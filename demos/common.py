"""What every tab shares: user-facing errors, seeds, frame views, GIF files, plots."""
from __future__ import annotations

import functools
import html
import inspect
import math
import os
import re
import reprlib
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import gradio as gr
from PIL import Image

from pipelines.checkpoints import PROJECT_ROOT, CheckpointMissing
from pipelines import infotext
from pipelines.images import ImageInputError, save_gif, to_digit_tensor
from pipelines.metrics.features import FeatureNetworkMissing

from .i18n import T, has, maybe, tr
from .queue_policy import declare_cost

OUTPUT_DIR = Path(os.environ.get("DIFFUSION_LAB_OUTPUTS", Path(tempfile.gettempdir()) / "diffusion-lab"))
OUTPUT_MAX_AGE = 2 * 3600  # seconds a result file (GIF, frame) stays downloadable; a Space runs for days
PRUNE_EVERY = 600          # seconds between two sweeps of OUTPUT_DIR
MAX_SEED = 2**31 - 1
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
MNIST_EXAMPLES = sorted(str(p) for p in (PROJECT_ROOT / "assets" / "mnist").glob("*.png"))
USER_ERRORS = (ImageInputError, CheckpointMissing, FeatureNetworkMissing, ValueError)
# status prefixes of the Markdown notes: words, not emoji (✅ ⏸ and kin draw as empty boxes without an emoji font,
# as on a fresh Debian with Chromium)
WARN = tr("common.warn", "en")  # English; warn() / note() give the request's language
NOTE = tr("common.note", "en")


def warn() -> str:
    return tr("common.warn")


def note() -> str:
    return tr("common.note")


def _as_gr_error(exc: Exception) -> gr.Error:
    return gr.Error(str(exc), print_exception=False)


def user_errors(fn):
    """Turn the pipelines' user-facing exceptions into gr.Error messages (no stack traces)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except USER_ERRORS as exc:
                raise _as_gr_error(exc) from None
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            raise _as_gr_error(exc) from None
    return wrapper


_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")  # what a person types: "3", "-0.5", ".7"
MAX_ECHO = 80  # characters of a user's own text that a message repeats
# NUL and other C0/C1 controls (ANSI escapes start with one), and the bidi embeddings, overrides and isolates
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# inline Markdown (emphasis, code, links, tables, strike-through, LaTeX's $); echoed text never starts a line, so the
# block markers (- + 1. >) need no escape
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#|~$<>])")


def echo(value, limit: int = MAX_ECHO) -> str:
    """A user's value as a message may repeat it: one line, no control or direction-override characters, at most
    `limit` characters, HTML escaped (gradio renders messages and Markdown as HTML)."""
    text = value if isinstance(value, str) else reprlib.repr(value)
    text = _UNPRINTABLE.sub("\ufffd", text[:limit + 1])
    return html.escape(text if len(text) <= limit else text[:limit] + "…", quote=False)  # text, never an attribute


def echo_md(value, limit: int = MAX_ECHO) -> str:
    """`echo` for Markdown: its punctuation (emphasis, links, code, $ for LaTeX) is backslash-escaped as well."""
    return md_escape(echo(value, limit))


def md_escape(text: str) -> str:
    """Markdown's punctuation backslash-escaped, for a message that already `echo`ed the user's value into it."""
    return _MARKDOWN.sub(r"\\\1", text)


def warn_notes(notes: list[str]) -> str:
    """Show a pipeline's notes (which may quote the user's text) as warnings; returns them as Markdown list items."""
    for n in notes:
        gr.Warning(echo(n, 300))
    return "".join(f"\n- {warn()} {echo_md(n, 300)}" for n in notes)


def check_number(value, name: str, lo: float, hi: float, integer: bool = False):
    """Validate a slider/number value that may arrive from the API as anything: a JSON number, or text written the
    way a person types a number ("3", "0.5"); never a boolean, a list, "1e1" or "nan"."""
    if isinstance(value, str) and _PLAIN_NUMBER.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(tr("common.not_number", name=maybe(name), value=echo(value)))
    v = float(value)
    if math.isnan(v) or not lo <= v <= hi:
        raise ValueError(tr("common.out_of_range", name=maybe(name), lo=f"{lo:g}", hi=f"{hi:g}", value=echo(value)))
    if integer:
        if v != int(v):
            raise ValueError(tr("common.not_whole", name=maybe(name), value=echo(value)))
        return int(v)
    return v


def check_choice(value, name: str, choices):
    if not isinstance(value, (str, int, float)) or value not in choices:
        raise ValueError(tr("common.not_choice", name=maybe(name), choices=[echo(c) for c in choices],
                            value=echo(value)))
    return value


def check_bool(value, name: str) -> bool:
    """A checkbox: true or false, nothing that merely looks like one ("false" is text, and would tick it)."""
    if not isinstance(value, bool):
        raise ValueError(tr("common.not_bool", name=maybe(name), value=echo(value)))
    return value


COST_SCALE_ENV = "DIFFUSION_LAB_COST_SCALE"  # budgets × this (app.py sets PRIVATE_COST_SCALE on a private server)
PRIVATE_COST_SCALE = 12  # a minute of CPU per request for the machine's own user: DDPM ancestral, 1000 steps of 16
REQUEST_SECONDS = 5  # what each tab's budget is sized to: 2 CPU threads of this machine, at the precision it serves


class Budget(NamedTuple):
    """A tab's per-request budget: the `image_steps` its network runs in REQUEST_SECONDS on this server, and
    `overhead`, one network call's fixed cost (the time embedding, every layer's kernel launches, Python) in images of
    its batch. Both measured by `python scripts/call_overhead.py`."""
    image_steps: int
    overhead: int = 0

    def cost(self, images: int, steps: int, calls: int = 1) -> float:
        """A request's cost in image-steps: each of its `steps` denoising steps makes `calls` network calls on
        `images` images in all, and each call costs `overhead` images more than its batch. So one image for 1000
        steps of the DDPM (overhead 10) costs 11,000 image-steps, not 1,000: it takes 22 s, not 2."""
        return steps * (images + calls * self.overhead)


def cost_scale() -> float:
    """The factor on every per-request budget: DIFFUSION_LAB_COST_SCALE (0.1-100), 1 when unset or unreadable."""
    try:
        return min(max(float(os.environ.get(COST_SCALE_ENV, "1")), 0.1), 100.0)
    except ValueError:
        return 1.0


ANCESTRAL, ANCESTRAL_STEPS = "DDPM (ancestral)", 1000  # the ancestral sampler runs every training step


SAMPLER_KEYS = {"DDPM (ancestral)": "sampler.ancestral", "DDIM": "sampler.ddim", "DPM-Solver++ (multistep)": "sampler.dpm",
                "UniPC (multistep)": "sampler.unipc"}


def labelled(values, keys: dict) -> list:
    """Radio/Dropdown choices: each value (what the API takes, unchanged) with its translated label."""
    return [(T(keys[v]), v) if v in keys else v for v in values]


def steps_run(sampler: str, steps: int) -> int:
    """The denoising steps a request really runs: the ancestral sampler ignores the steps slider."""
    return ANCESTRAL_STEPS if sampler == ANCESTRAL else steps


def budget_info(budget: Budget, ancestral: bool = False) -> str:
    """The slider note that states this server's budget (read when the page is built)."""
    from .i18n import T_each
    return T_each("common.budget", lambda lang: budget_text(budget, ancestral, lang))


def budget_text(budget: Budget, ancestral: bool = False, lang: str | None = None) -> str:
    total = round(budget.image_steps * cost_scale())
    note = ""
    if ancestral:  # its 1000 steps of even one image may cost more than a public server allows
        fits = budget.cost(1, ANCESTRAL_STEPS) <= total
        note = tr("common.budget_ancestral" if fits else "common.budget_ancestral_off", lang, steps=ANCESTRAL_STEPS)
    return tr("common.budget", lang, budget=total, overhead=budget.overhead) + note


def check_cost(images: int, steps: int, budget: Budget, calls: int = 1, seconds: float = REQUEST_SECONDS) -> None:
    """Bound a request by what it costs (`Budget.cost`), not only by separate caps on images and steps: it must stay
    within the tab's budget, sized to `seconds` of a 2-core CPU on a shared server, so that one visitor's request
    never holds a worker for long; × DIFFUSION_LAB_COST_SCALE. `calls`: network calls per step (one per model, or
    per guidance scale, that the request samples as a batch of its own)."""
    scale, cost = cost_scale(), budget.cost(images, steps, calls)
    declare_cost(cost / (budget.image_steps * scale))  # the queue's policy holds back sessions that ask for much
    if cost > budget.image_steps * scale:
        raise ValueError(tr("common.cost", images=images, steps=steps, overhead=calls * budget.overhead,
                            total=round(cost), budget=round(budget.image_steps * scale), seconds=seconds * scale))


def received_file(payload):
    """What an image input of a request may be opened as: bytes or a PIL image as they are, and a file only when
    gradio itself received it: an upload, or gradio's cached copy of an example or a default value (its upload and
    cache folder). A URL is never fetched and no other path is ever opened: a raw API payload can name any file."""
    if isinstance(payload, dict):  # a gradio FileData payload; only its server-side path counts, never its url
        if payload.get("url") and not payload.get("path"):
            raise ImageInputError(tr("common.upload_url"))
        payload = payload.get("path")
    if payload is None or isinstance(payload, (bytes, bytearray, Image.Image)) or payload == "":
        return payload
    if not isinstance(payload, str):
        raise ImageInputError(tr("common.upload_not_image"))
    if "://" in payload or payload.lower().startswith("data:"):
        raise ImageInputError(tr("common.upload_url"))
    try:
        path = Path(payload).resolve()  # follows symbolic links out of the folders too
        allowed = path.is_relative_to(_received_root()) and path.is_file()
    except (OSError, ValueError):  # NUL bytes, names too long
        allowed = False
    if not allowed:
        raise ImageInputError(tr("common.upload_foreign"))
    return str(path)


def _received_root() -> Path:
    from gradio.utils import get_upload_folder  # uploads, and the copies gradio makes of examples and values
    return Path(get_upload_folder()).resolve()


def digit_tensor(payload, size: int = 28):
    """An image input as the (1, size, size) MNIST-like tensor and notes (see `to_digit_tensor`), opened safely."""
    return to_digit_tensor(received_file(payload), size)


def digit_input(label: str, value: str | None = None) -> gr.Image:
    """An x₀ picker: upload/paste, or click one of the shipped MNIST test digits below it.

    Wire its events with preprocess=False so the raw upload reaches `to_digit_tensor`'s checks."""
    img = gr.Image(label=label, type="filepath", value=value, height=200, sources=["upload", "clipboard"],
                   image_mode="RGBA", elem_classes=["digit-input"])
    examples_table(MNIST_EXAMPLES, img, T("common.mnist_examples"), examples_per_page=20)
    return img


@user_errors
def use_drawing(drawing):
    """The sketch pad's picture, checked before it is used (a blank pad gets a clear message)."""
    img = drawing.get("composite") if isinstance(drawing, dict) else drawing
    if img is None:
        raise ImageInputError(tr("common.sketch_empty"))
    try:
        to_digit_tensor(img)
    except ImageInputError:
        raise ImageInputError(tr("common.sketch_blank")) from None
    return img


def seed_box(value: int = 0) -> gr.Number:
    return gr.Number(value=value, label=T("common.seed"), precision=0, minimum=0, maximum=MAX_SEED,
                     elem_classes=["advanced"], info=T("common.seed_info"))


def formula(md: str, **kwargs) -> gr.Markdown:
    return gr.Markdown(md, latex_delimiters=LATEX, **kwargs)


def output_path(stem: str, suffix: str) -> Path:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    prune_outputs()
    return OUTPUT_DIR / f"{stem}-{uuid.uuid4().hex[:8]}{suffix}"


_last_prune = [0.0]


def prune_outputs(now: float | None = None) -> int:
    """Delete result files older than OUTPUT_MAX_AGE, at most once every PRUNE_EVERY seconds (every request
    writes ~10 frames and a GIF). Returns how many files went."""
    now = time.time() if now is None else now
    if now - _last_prune[0] < PRUNE_EVERY:
        return 0
    _last_prune[0] = now
    gone = 0
    for path in OUTPUT_DIR.glob("*"):
        try:
            if path.is_file() and now - path.stat().st_mtime > OUTPUT_MAX_AGE:
                path.unlink()
                gone += 1
        except OSError:  # another worker removed it first
            pass
    return gone


def write_gif(frames, stem: str, duration_ms: int = 80) -> str:
    return str(save_gif(frames, output_path(stem, ".gif"), duration_ms))


def write_png(img, stem: str) -> str:
    path = output_path(stem, ".png")
    img.save(path)
    return str(path)


PAUSE = tr("common.pause", "en")  # U+2016, drawn by DejaVu Sans like ▶ and ◀ (U+23F8 ⏸ is in emoji fonts only)


class Player:
    """Play / pause / step buttons and a speed setting that walk a slider through a process, so a teacher
    can show it at the class's pace. Every tick moves the slider by `step`; when the slider's own events
    do not already redraw (e.g. they fire on release only), chain the redraw with `then_run`.

    `end` is the last value, or a callable of the `limit` component's value (e.g. a frame list's length).

    Pause holds at once: a tick the browser sent before the pause reached the server finds `playing` cleared (a
    gr.State is read when the event runs, not when it was sent) and moves nothing."""

    def __init__(self, slider: gr.Slider, start: float, end, step: float = 1, limit=None, fps: float = 4.0):
        with gr.Row(elem_classes=["player"]):
            back = gr.Button(T("common.step_back"), size="sm", min_width=60)
            play = gr.Button(T("common.play"), size="sm", min_width=60, variant="secondary")
            pause = gr.Button(T("common.pause"), size="sm", min_width=60)
            fwd = gr.Button(T("common.step_forward"), size="sm", min_width=60)
            speed = gr.Slider(0.5, 12, value=fps, step=0.5, label=T("common.speed"), min_width=160)
        self.timer = gr.Timer(1 / fps, active=False)
        self.playing = gr.State(False)
        self.start, self.end, self.step = start, end, step
        inputs = [slider] + ([limit] if limit is not None else [])
        quiet = dict(api_visibility="private", show_progress="hidden", concurrency_limit=None)
        play.click(self._play, [speed, *inputs], [self.timer, slider, self.playing], **quiet)
        pause.click(self._pause, None, [self.timer, self.playing], **quiet)
        speed.release(lambda fps: gr.Timer(1 / max(0.5, float(fps or 1))), speed, self.timer, **quiet)
        self.events = [self.timer.tick(self._tick, [self.playing, *inputs], [slider, self.timer, self.playing],
                                       **quiet),
                       back.click(lambda *a: self._move(-1, *a), inputs, slider, **quiet),
                       fwd.click(lambda *a: self._move(1, *a), inputs, slider, **quiet)]

    def then_run(self, fn, inputs, outputs, **kwargs) -> None:
        """Run `fn` after every tick and step (for sliders whose redraw is bound to `.release`)."""
        for event in self.events:
            event.then(fn, inputs, outputs, api_visibility="private", show_progress="hidden", **kwargs)

    def _last(self, limit=None) -> float:
        return self.end(limit) if callable(self.end) else self.end

    def _clip(self, value: float, limit=None) -> float:
        lo, hi = sorted((self.start, self._last(limit)))
        return round(min(max(value, lo), hi), 6)

    def _move(self, direction: int, value, limit=None):
        return self._clip(float(value or 0) + direction * self.step, limit)

    def _play(self, fps, value, limit=None):
        """Start the timer; from the end, start over."""
        at_end = self._clip(float(value or 0), limit) == self._clip(self._last(limit), limit)
        return gr.Timer(1 / max(0.5, float(fps or 1)), active=True), (self.start if at_end else gr.update()), True

    @staticmethod
    def _pause():
        return gr.Timer(active=False), False

    def _tick(self, playing, value, limit=None):
        """One step forward; none once paused (or at the end, where the timer stops)."""
        if not playing:
            return gr.update(), gr.Timer(active=False), False
        new = self._move(1, value, limit)
        done = new == self._clip(self._last(limit), limit)
        return new, (gr.Timer(active=False) if done else gr.update()), not done


def T_name(key: str, name: str):
    """A build-time text `key` with the translated process name `name` (a key) put into its {label}."""
    from .i18n import T_each
    return T_each(key, lambda lang: tr(key, lang, label=maybe(name, lang)))


def examples_table(samples, inputs, label, **kwargs) -> gr.Examples:
    """gr.Examples without column headers: a table of several inputs takes its headers from their labels, which
    gradio's frontend shows untranslated (raw "__i18n__{...}" markers); the table's own label says what it holds."""
    made = gr.Examples(samples, inputs=inputs, label=label, **kwargs)
    made.dataset.headers = []
    return made


class StreamedFrames:
    """A process's frames as they stream out: each is written as a PNG when it is made, and the live image is sent
    as that file, so gradio does not encode the same picture again; at the end the gallery (FramesView.update)
    takes the same files, and the GIF the images, kept only while the request runs."""

    def __init__(self):
        self.images: list = []
        self.files: list[tuple[str, str]] = []

    def add(self, img, caption: str) -> str:
        """Keep one frame; returns its PNG's path, for the live image."""
        self.images.append(img)
        self.files.append((write_png(img, "frame"), caption))
        return self.files[-1][0]

    @property
    def last(self) -> str:
        return self.files[-1][0]

    def gif(self, stem: str, duration_ms: int) -> str:
        return write_gif(self.images, stem, duration_ms=duration_ms)


class FramesView:
    """A gallery of frames + a step slider (with a Player) showing one frame + a GIF, used by every process tab."""

    def __init__(self, label: str = "common.frames"):
        """`label`: the key of the process's name, e.g. "ddpm.frames" ("Reverse process")."""
        with gr.Group():
            self.current = gr.Image(label=T_name("common.frames_current", label), type="pil", interactive=False,
                                    height=300)
            self.slider = gr.Slider(0, 1, value=0, step=1, label=T("common.show_step"), interactive=True)
            self.state = gr.State([])
            Player(self.slider, 0, lambda frames: max(len(frames or []) - 1, 0), limit=self.state)
            self.gallery = gr.Gallery(label=T_name("common.frames_all", label), columns=6, height=220,
                                      object_fit="contain", format="png")
            self.gif = gr.File(label=T("common.gif"), interactive=False)
        self.slider.change(self._pick, [self.state, self.slider], self.current, show_progress="hidden",
                           api_visibility="private")

    @staticmethod
    def _pick(frames, i):
        if not frames:
            return None
        return frames[max(0, min(int(i or 0), len(frames) - 1))][0]

    @property
    def outputs(self):
        return [self.current, self.slider, self.gallery, self.gif, self.state]

    @staticmethod
    def update(frames: StreamedFrames | list = (), gif: str | None = None, show: int | None = None):
        """frames: the request's StreamedFrames (or an empty list while it streams); returns values for `outputs`.
        The gallery serves the frames' PNG files and the session's state keeps only their paths (kept as PIL images,
        every student's frames of every tab stayed in server memory for as long as the session lived)."""
        files = frames.files if frames else []
        last = max(len(files) - 1, 0)
        show = last if show is None else show
        return (files[show][0] if files else None,
                gr.Slider(0, max(last, 1), value=show, step=1),
                files, gif, files)


def samples_image(label="common.samples", height: int = 300) -> gr.Image:
    """A generated-images output served as PNG, so the settings stored by `infotext.attach` survive.
    `label`: a key of the translation tables (or a T(...) of one)."""
    return gr.Image(label=T(label) if isinstance(label, str) and has(label) else label, type="pil", interactive=False,
                    height=height, format="png")


MAX_RESTORED_TEXT = 20_000  # characters a restored text box may hold (the prompt boxes' own limit)


def restore_check(component: gr.components.Component):
    """The check a restored value must pass before it goes into `component`: the range, step and choices the control
    itself offers, as a person typing into it would meet them. Returns value -> checked value (or ValueError)."""
    name = maybe(component.label) if component.label else tr("common.this_control")
    if isinstance(component, gr.Checkbox):
        return lambda v: check_bool(v, name)
    if isinstance(component, (gr.Radio, gr.Dropdown)):
        choices = [c[1] if isinstance(c, tuple) else c for c in component.choices]
        return lambda v: check_choice(v, name, choices)
    if isinstance(component, (gr.Slider, gr.Number)):
        lo = -math.inf if component.minimum is None else component.minimum
        hi = math.inf if component.maximum is None else component.maximum
        if isinstance(component, gr.Number):
            whole = component.precision == 0
        else:
            whole = float(component.step).is_integer() and float(component.minimum).is_integer()
        return lambda v: check_number(v, name, lo, hi, integer=whole)
    if isinstance(component, gr.Textbox):
        def text(v):
            if not isinstance(v, str):
                raise ValueError(tr("common.not_text", name=name, value=echo(v)))
            if len(v) > MAX_RESTORED_TEXT:
                raise ValueError(tr("common.too_long", name=name, length=len(v), limit=MAX_RESTORED_TEXT))
            return v
        return text
    raise TypeError(f"no restore check for {type(component).__name__}")


class SettingsDrop:
    """'Drop a PNG generated here': restores the controls of the tab that made it (from its infotext).

    `controls` maps each stored setting name to the component it restores, e.g. {"seed": seed_box}. Every restored
    value passes the check its control implies (`restore_check`), or the one given in `checks` (name -> value ->
    checked value, for controls whose choices depend on another setting); a value that fails is left out, and the
    note says which and why."""

    def __init__(self, tab: str, controls: dict[str, gr.components.Component], checks: dict | None = None):
        self.tab, self.names = tab, list(controls)
        self.checks = {n: restore_check(c) for n, c in controls.items()} | (checks or {})
        with gr.Group(elem_classes=["advanced"]):
            self.file = gr.File(label=T("common.restore_file"), file_types=[".png"], height=90)
            self.note = gr.Markdown()
        self.file.upload(self.restore, self.file, [*controls.values(), self.note], preprocess=False,
                         api_visibility="private")

    def restore(self, payload):
        keep = [gr.update() for _ in self.names]
        try:
            settings = infotext.read(received_file(payload))
        except ImageInputError as exc:
            return *keep, f"{warn()} {exc}"
        if settings.get("tab") != self.tab:
            where = echo_md(settings.get("tab", tr("common.restore_another")), 40)
            return *keep, f"{warn()} " + tr("common.restore_other_tab", tab=where)
        restored, refused = {}, []
        for n in self.names:
            if n in settings:
                try:
                    restored[n] = self.checks[n](settings[n])
                except ValueError as exc:
                    refused.append(f"**{n}**: " + _MARKDOWN.sub(r"\\\1", str(exc)))
        text = (tr("common.restored", settings=", ".join(f"{n} = {echo_md(v, 40)}" for n, v in restored.items()))
                if restored else tr("common.restored_nothing"))
        if refused:
            text += f"\n\n{warn()} " + tr("common.restore_refused") + "\n" + "\n".join(f"- {r}" for r in refused)
        text += "\n\n" + tr("common.restore_press")
        return *(gr.update(value=restored[n]) if n in restored else gr.update() for n in self.names), text

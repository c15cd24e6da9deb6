"""What every tab shares: user-facing errors, seeds, frame views, GIF files, plots."""
from __future__ import annotations

import functools
import inspect
import math
import os
import tempfile
import time
import uuid
from pathlib import Path

import gradio as gr

from pipelines.checkpoints import PROJECT_ROOT, CheckpointMissing
from pipelines import infotext
from pipelines.images import ImageInputError, save_gif, to_digit_tensor
from pipelines.metrics.features import FeatureNetworkMissing

OUTPUT_DIR = Path(os.environ.get("DIFFUSION_LAB_OUTPUTS", Path(tempfile.gettempdir()) / "diffusion-lab"))
OUTPUT_MAX_AGE = 2 * 3600  # seconds a result file (GIF, frame) stays downloadable; a Space runs for days
PRUNE_EVERY = 600          # seconds between two sweeps of OUTPUT_DIR
MAX_SEED = 2**31 - 1
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
MNIST_EXAMPLES = sorted(str(p) for p in (PROJECT_ROOT / "assets" / "mnist").glob("*.png"))
USER_ERRORS = (ImageInputError, CheckpointMissing, FeatureNetworkMissing, ValueError)


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


def check_number(value, name: str, lo: float, hi: float, integer: bool = False):
    """Validate a slider/number value that may arrive from the API as anything."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}.") from None
    if math.isnan(v) or not lo <= v <= hi:
        raise ValueError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}.")
    if integer:
        if v != int(v):
            raise ValueError(f"{name} must be a whole number, got {value!r}.")
        return int(v)
    return v


def check_choice(value, name: str, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")
    return value


def digit_input(label: str, value: str | None = None) -> gr.Image:
    """An x₀ picker: upload/paste, or click one of the shipped MNIST test digits below it.

    Wire its events with preprocess=False so the raw upload reaches `to_digit_tensor`'s checks."""
    img = gr.Image(label=label, type="filepath", value=value, height=200, sources=["upload", "clipboard"],
                   image_mode="RGBA", elem_classes=["digit-input"])
    gr.Examples(MNIST_EXAMPLES, inputs=img, label="MNIST test digits", examples_per_page=20)
    return img


@user_errors
def use_drawing(drawing):
    """The sketch pad's picture, checked before it is used (a blank pad gets a clear message)."""
    img = drawing.get("composite") if isinstance(drawing, dict) else drawing
    if img is None:
        raise ImageInputError("The sketch pad is empty: draw a digit first.")
    try:
        to_digit_tensor(img)
    except ImageInputError:
        raise ImageInputError("The drawing is blank: draw a digit with the brush, then press the button.") from None
    return img


def seed_box(value: int = 0) -> gr.Number:
    return gr.Number(value=value, label="Seed", precision=0, minimum=0, maximum=MAX_SEED, elem_classes=["advanced"],
                     info="Same seed + same settings = same images (noise is drawn on the CPU).")


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


class Player:
    """Play / pause / step buttons and a speed setting that walk a slider through a process, so a teacher
    can show it at the class's pace. Every tick moves the slider by `step`; when the slider's own events
    do not already redraw (e.g. they fire on release only), chain the redraw with `then_run`.

    `end` is the last value, or a callable of the `limit` component's value (e.g. a frame list's length)."""

    def __init__(self, slider: gr.Slider, start: float, end, step: float = 1, limit=None, fps: float = 4.0):
        with gr.Row(elem_classes=["player"]):
            back = gr.Button("◀ step", size="sm", min_width=60)
            play = gr.Button("▶ play", size="sm", min_width=60, variant="secondary")
            pause = gr.Button("⏸ pause", size="sm", min_width=60)
            fwd = gr.Button("step ▶", size="sm", min_width=60)
            speed = gr.Slider(0.5, 12, value=fps, step=0.5, label="speed (steps per second)", min_width=160)
        self.timer = gr.Timer(1 / fps, active=False)
        self.start, self.end, self.step = start, end, step
        inputs = [slider] + ([limit] if limit is not None else [])
        quiet = dict(api_visibility="private", show_progress="hidden", concurrency_limit=None)
        play.click(self._play, [speed, *inputs], [self.timer, slider], **quiet)
        pause.click(lambda: gr.Timer(active=False), None, self.timer, **quiet)
        speed.release(lambda fps: gr.Timer(1 / max(0.5, float(fps or 1))), speed, self.timer, **quiet)
        self.events = [self.timer.tick(self._tick, inputs, [slider, self.timer], **quiet),
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
        return gr.Timer(1 / max(0.5, float(fps or 1)), active=True), (self.start if at_end else gr.update())

    def _tick(self, value, limit=None):
        new = self._move(1, value, limit)
        done = new == self._clip(self._last(limit), limit)
        return new, (gr.Timer(active=False) if done else gr.update())


class FramesView:
    """A gallery of frames + a step slider (with a Player) showing one frame + a GIF, used by every process tab."""

    def __init__(self, label: str = "Frames"):
        with gr.Group():
            self.current = gr.Image(label=f"{label}: the step chosen below", type="pil", interactive=False,
                                    height=300)
            self.slider = gr.Slider(0, 1, value=0, step=1, label="Show step", interactive=True)
            self.state = gr.State([])
            Player(self.slider, 0, lambda frames: max(len(frames or []) - 1, 0), limit=self.state)
            self.gallery = gr.Gallery(label=f"{label}: every shown step", columns=6, height=220,
                                      object_fit="contain", format="png")
            self.gif = gr.File(label="Animated GIF", interactive=False)
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
    def update(frames: list[tuple], gif: str | None = None, show: int | None = None):
        """frames: [(PIL image, caption)]; returns values for `outputs`. Each frame is written once as a PNG file:
        the gallery serves the files and the session's state keeps only their paths (kept as PIL images, every
        student's frames of every tab stayed in server memory for as long as the session lived)."""
        files = [(write_png(img, "frame"), caption) for img, caption in frames]
        last = max(len(files) - 1, 0)
        show = last if show is None else show
        return (files[show][0] if files else None,
                gr.Slider(0, max(last, 1), value=show, step=1),
                files, gif, files)


def samples_image(label: str = "Samples", height: int = 300) -> gr.Image:
    """A generated-images output served as PNG, so the settings stored by `infotext.attach` survive."""
    return gr.Image(label=label, type="pil", interactive=False, height=height, format="png")


class SettingsDrop:
    """'Drop a PNG generated here': restores the controls of the tab that made it (from its infotext).

    `controls` maps each stored setting name to the component it restores, e.g. {"seed": seed_box}."""

    def __init__(self, tab: str, controls: dict[str, gr.components.Component]):
        self.tab, self.names = tab, list(controls)
        with gr.Group(elem_classes=["advanced"]):
            self.file = gr.File(label="Restore settings: drop a PNG generated in this tab", file_types=[".png"],
                                height=90)
            self.note = gr.Markdown()
        self.file.upload(self.restore, self.file, [*controls.values(), self.note], preprocess=False,
                         api_visibility="private")

    def restore(self, payload):
        try:
            settings = infotext.read(payload)
        except ImageInputError as exc:
            return *(gr.update() for _ in self.names), f"⚠️ {exc}"
        if settings.get("tab") != self.tab:
            where = settings.get("tab", "another")
            return *(gr.update() for _ in self.names), f"⚠️ This PNG was made in the **{where}** tab: drop it there."
        found = [n for n in self.names if n in settings]
        note = "Restored " + ", ".join(f"{n} = {settings[n]}" for n in found) + ". Press the button to regenerate."
        return *(gr.update(value=settings[n]) if n in settings else gr.update() for n in self.names), note

"""Guided lessons: a teacher's script and a student's tutor, one file per tab in lessons/<tab>.toml (issue 21, part 2).

A lesson is 4 to 8 steps. Each step sets some of the tab's controls, presses one of the tab's buttons (the very click
event a person's click fires, so the request goes through the same queue, budget and checks) and says, in both
languages, what to notice, outlining the control or output it is about. A step's file entry:

    [[step]]
    set = { scale = 0, steps = 20 }    # controls, by the names the tab exposes, and their values
    run = "generate"                   # the tab's action (a button it exposes), or no `run`: nothing is pressed
    highlight = "samples"              # the component the step is about (a control, an output or an action)
    en.title = 'w = 0: no guidance'
    en.text = '''Two or three sentences, Markdown with $LaTeX$.'''
    fa.title = '...'
    fa.text = '''...'''

The texts of a lesson live in its file, both languages side by side (a teacher writes or reviews a lesson in one
place); the panel's own words (Next, Back, the step counter) are in locales/*.toml. Settings accumulate: step k
applies the tab's defaults for every control the lesson touches, overridden by steps 1..k in order, so Back and
Restart put the page exactly where that step had it.

A tab exposes what the lesson needs by returning `"lesson": Exposed(components={...}, actions={...})` from build();
app.py puts the panel at the top of the tab (`LessonPanel(tab)`) and binds it after the tab is built
(`panel.bind(exposed)`), which checks the lesson against the components: an unknown name, a value a control would
refuse (out of a slider's range or off its step, not among a Radio's choices, a number for a checkbox), an unknown
action or highlight, a missing language or a step count outside 4..8 raises LessonError while the app is built,
never at a student's click. The panel's events are private (the public API does not grow) and skip the queue: they
only move values; the compute runs when the step presses the tab's own button.
"""
from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import gradio as gr

from .common import formula, restore_check
from .i18n import DEFAULT, LANGUAGES, T, T_each, current_lang, tr

LESSONS_DIR = Path(__file__).resolve().parent.parent / "lessons"
MIN_STEPS, MAX_STEPS = 4, 8
STEP_KEYS = {"set", "run", "highlight", *LANGUAGES}
TEXT_KEYS = {"title", "text"}
HIGHLIGHT = "lesson-highlight"


class LessonError(ValueError):
    """A lesson file that does not fit its tab: raised while the app is built."""


class Exposed(NamedTuple):
    """What a tab shows its lesson: named components (a tuple names linked controls that take the same value, the
    first being the one the action reads), named actions (the buttons a step may press) and, for a control whose
    choices are filled in on page load, the check its values must pass instead (name -> value -> value, raising
    ValueError), as SettingsDrop takes them."""
    components: dict
    actions: dict
    checks: dict | None = None


@dataclass(frozen=True)
class Step:
    set: dict
    run: str | None
    highlight: str | None
    title: dict   # {lang: text}
    text: dict    # {lang: Markdown}


@dataclass(frozen=True)
class Lesson:
    tab: str
    title: dict
    steps: tuple

    def settings(self, position: int, defaults: dict) -> dict:
        """The values step `position` (0-based) puts in the controls: the defaults, then steps 0..position in order."""
        values = {name: defaults[name] for name in self.touched()}
        for step in self.steps[:position + 1]:
            values.update(step.set)
        return values

    def touched(self) -> list[str]:
        """Every control some step sets, in the order the file first names them."""
        return list(dict.fromkeys(name for step in self.steps for name in step.set))


# ---------------------------------------------------------------- reading and checking
def path_of(tab: str) -> Path:
    return LESSONS_DIR / f"{tab}.toml"


def has_lesson(tab: str) -> bool:
    return path_of(tab).is_file()


def _texts(entry, where: str, keys=TEXT_KEYS) -> dict:
    """{lang: {title, text}} of one step (or the lesson's title), every language present and non-empty."""
    out = {}
    for lang in LANGUAGES:
        table = entry.get(lang)
        if not isinstance(table, dict):
            raise LessonError(f"{where}: no '{lang}' texts")
        if set(table) != keys:
            raise LessonError(f"{where}: '{lang}' must have exactly {sorted(keys)}, has {sorted(table)}")
        for k, v in table.items():
            if not isinstance(v, str) or not v.strip():
                raise LessonError(f"{where}: '{lang}.{k}' is empty")
        out[lang] = table
    return out


def parse(tab: str, text: str) -> Lesson:
    """A lesson from its TOML text (structure only; `validate` checks it against the tab)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LessonError(f"lessons/{tab}.toml: {exc}") from None
    unknown = set(doc) - {"title", "step"}
    if unknown:
        raise LessonError(f"lessons/{tab}.toml: unknown top-level keys {sorted(unknown)}")
    title = {lang: t["title"] for lang, t in _texts({k: {"title": v} for k, v in doc.get("title", {}).items()},
                                                    f"lessons/{tab}.toml [title]", {"title"}).items()}
    steps = []
    for i, entry in enumerate(doc.get("step", []), 1):
        where = f"lessons/{tab}.toml step {i}"
        unknown = set(entry) - STEP_KEYS
        if unknown:
            raise LessonError(f"{where}: unknown keys {sorted(unknown)} (a step has {sorted(STEP_KEYS)})")
        values = entry.get("set", {})
        if not isinstance(values, dict):
            raise LessonError(f"{where}: 'set' must be a table of control = value")
        texts = _texts(entry, where)
        steps.append(Step(set=dict(values), run=entry.get("run"), highlight=entry.get("highlight"),
                          title={lang: t["title"] for lang, t in texts.items()},
                          text={lang: t["text"] for lang, t in texts.items()}))
    return Lesson(tab=tab, title=title, steps=tuple(steps))


def load(tab: str) -> Lesson:
    return parse(tab, path_of(tab).read_text(encoding="utf-8"))


def _group(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _hidden_when_presenting(component) -> bool:
    """Inside an 'advanced' block, which presentation mode hides (app.CSS)."""
    block = component
    while block is not None:
        if "advanced" in (getattr(block, "elem_classes", None) or []):
            return True
        block = getattr(block, "parent", None)
    return False


def _check_value(component, value, where: str):
    """The value a person could put into `component`: restore_check's range, whole-number and choice checks, and
    for a slider its step grid too."""
    try:
        check = restore_check(component)
    except TypeError:
        raise LessonError(f"{where}: a lesson cannot set a {type(component).__name__}") from None
    try:
        checked = check(value)
    except ValueError as exc:
        raise LessonError(f"{where}: {exc}") from None
    if isinstance(component, gr.Slider) and component.step:
        k = (float(checked) - float(component.minimum)) / float(component.step)
        if not math.isclose(k, round(k), abs_tol=1e-6):
            raise LessonError(f"{where}: {value} is off the slider's step {component.step:g} "
                              f"(from {component.minimum:g})")
    return checked


def validate(lesson: Lesson, exposed: Exposed) -> None:
    """Every name, value, action and highlight of the lesson exists on the tab and is one a person could choose."""
    if not isinstance(exposed, Exposed):
        raise LessonError(f"lessons/{lesson.tab}.toml: the tab exposes no components (return "
                          f"'lesson': Exposed(...) from its build())")
    if not MIN_STEPS <= len(lesson.steps) <= MAX_STEPS:
        raise LessonError(f"lessons/{lesson.tab}.toml: {len(lesson.steps)} steps; a lesson has "
                          f"{MIN_STEPS} to {MAX_STEPS}")
    components, actions = exposed.components, exposed.actions
    for i, step in enumerate(lesson.steps, 1):
        where = f"lessons/{lesson.tab}.toml step {i}"
        for name, value in step.set.items():
            if name not in components:
                raise LessonError(f"{where}: unknown control '{name}' (the tab exposes {sorted(components)})")
            if name in (exposed.checks or {}):
                try:
                    exposed.checks[name](value)
                except ValueError as exc:
                    raise LessonError(f"{where}, {name} = {value!r}: {exc}") from None
                continue
            for component in _group(components[name]):
                _check_value(component, value, f"{where}, {name} = {value!r}")
        if step.run is not None and step.run not in actions:
            raise LessonError(f"{where}: unknown action '{step.run}' (the tab exposes {sorted(actions)})")
        if step.highlight is not None:
            if step.highlight not in components and step.highlight not in actions:
                raise LessonError(f"{where}: unknown highlight '{step.highlight}'")
            target = _group(components.get(step.highlight, actions.get(step.highlight)))[0]
            if _hidden_when_presenting(target):
                raise LessonError(f"{where}: highlights '{step.highlight}', which presentation mode hides")


# ---------------------------------------------------------------- moving through a lesson
def move(where: str, position: int, n: int) -> int:
    """The step (0-based) after pressing Next, Back or Restart at `position` (-1: before the first step)."""
    position = max(-1, min(int(position), n - 1))
    if where == "next":
        return min(position + 1, n - 1)
    if where == "back":
        return max(position - 1, 0)
    if where == "restart":
        return 0
    raise ValueError(f"unknown move {where!r}")


def counter(position: int, n: int, lang: str | None = None) -> str:
    """'step 2 / 6', or before the first step, '6 steps'."""
    if position < 0:
        return tr("lessons.steps", lang, n=n)
    return tr("lessons.counter", lang, i=position + 1, n=n)


# the browser's half of a step: outline the step's component (and bring it into view), then press the action's button
# as a person would, once the values just set have reached the page
STEP_JS = """(plan) => {
  let p = {};
  try { p = JSON.parse(plan || "{}"); } catch (e) { return; }
  document.querySelectorAll(".%(cls)s[data-lesson='" + p.tab + "']").forEach((e) => {
    e.classList.remove("%(cls)s"); delete e.dataset.lesson; });
  const marked = (p.highlight || []).map((id) => document.getElementById(id)).filter(Boolean);
  marked.forEach((e) => { e.classList.add("%(cls)s"); e.dataset.lesson = p.tab; });
  if (marked.length) marked[0].scrollIntoView({behavior: "smooth", block: "center"});
  if (p.run) setTimeout(() => {
    const el = document.getElementById(p.run);
    const button = el && (el.tagName === "BUTTON" ? el : el.querySelector("button"));
    if (button) button.click();
  }, 250);
}""" % {"cls": HIGHLIGHT}

# the panel: framed at the top of its tab; in presentation mode larger, so the class reads it. It scrolls with the
# page: kept in view (sticky), it covered the controls and the tab bar under it as the page scrolled to what a step
# points at. The outline of the highlighted component is amber with a halo: visible on light and dark backgrounds,
# and it needs no direction (RTL alike).
CSS = """
.lesson-panel { border: 2px solid var(--color-accent) !important; border-radius: var(--block-radius);
  background: var(--background-fill-primary); box-shadow: 0 2px 10px rgba(0, 0, 0, 0.15); }
.lesson-panel .lesson-text { max-height: 30vh; overflow-y: auto; }
.lesson-panel .lesson-buttons { align-items: center; }
.lesson-panel .lesson-counter { white-space: nowrap; }
body.presenting .lesson-panel { border-width: 3px !important; }
body.presenting .lesson-panel .lesson-text .prose { font-size: 1.25em; line-height: 1.55; }
body.presenting .lesson-panel .lesson-counter .prose { font-size: 1.2em; }
.lesson-highlight { outline: 3px solid #d97706 !important; outline-offset: 3px;
  box-shadow: 0 0 0 7px rgba(217, 119, 6, 0.30) !important; border-radius: var(--block-radius);
  transition: outline-color 0.3s, box-shadow 0.3s; }
.dark .lesson-highlight { outline-color: #fbbf24 !important; box-shadow: 0 0 0 7px rgba(251, 191, 36, 0.30) !important; }
"""


class LessonPanel:
    """The lesson panel of one tab: made where it should appear (before the tab's own components), bound once the
    tab is built. `LessonPanel.maybe(tab)` is None for a tab without a lesson file."""

    @classmethod
    def maybe(cls, tab: str) -> LessonPanel | None:
        return cls(tab) if has_lesson(tab) else None

    def __init__(self, tab: str, lesson: Lesson | None = None):
        self.tab = tab
        self.lesson = lesson or load(tab)
        n = len(self.lesson.steps)
        with gr.Group(elem_classes=["lesson-panel"], elem_id=f"lesson-{tab}"):
            with gr.Row(elem_classes=["lesson-buttons"]):
                self.heading = gr.Markdown(T_each(f"lessons.{tab}.heading", lambda lang: self._heading(-1, lang)),
                                           elem_classes=["lesson-counter"])
                self.back = gr.Button(T("lessons.back"), size="sm", interactive=False, scale=0, min_width=90,
                                      elem_id=f"lesson-{tab}-back")
                self.next = gr.Button(T("lessons.next"), size="sm", variant="primary", scale=0, min_width=90,
                                      elem_id=f"lesson-{tab}-next")
                self.restart = gr.Button(T("lessons.restart"), size="sm", scale=0, min_width=90,
                                         elem_id=f"lesson-{tab}-restart")
            self.text = formula(T_each(f"lessons.{tab}.intro", lambda lang: tr("lessons.intro", lang, n=n)),
                                elem_classes=["lesson-text"])
            self.plan = gr.Textbox(visible="hidden", elem_classes=["lesson-plan"])
        self.position = gr.State(-1)
        self.bound = False

    def _heading(self, position: int, lang: str | None = None) -> str:
        lang = lang or current_lang()
        title = self.lesson.title.get(lang, self.lesson.title[DEFAULT])
        return f"**{tr('lessons.lesson', lang)}: {title}** · {counter(position, len(self.lesson.steps), lang)}"

    def bind(self, exposed: Exposed | None) -> None:
        """Check the lesson against the tab's components and wire the buttons."""
        validate(self.lesson, exposed)
        self.components, self.actions = exposed.components, exposed.actions
        self.names = self.lesson.touched()
        self.targets = [c for name in self.names for c in _group(self.components[name])]
        self.defaults = {name: _group(self.components[name])[0].value for name in self.names}
        for name, value in list(self.components.items()) + list(self.actions.items()):
            for k, component in enumerate(_group(value)):
                if not component.elem_id:  # the browser finds what a step outlines or presses by its id
                    component.elem_id = f"lesson-{self.tab}-{name}" + (f"-{k}" if k else "")
        outputs = [self.position, self.heading, self.text, self.plan, self.back, self.next, *self.targets]
        quiet = dict(api_visibility="private", show_progress="hidden", queue=False)
        for button, where in ((self.next, "next"), (self.back, "back"), (self.restart, "restart")):
            button.click(lambda p, where=where: self.go(where, p), self.position, outputs, **quiet).then(
                None, self.plan, None, js=STEP_JS, api_visibility="private")
        self.bound = True

    def plan_of(self, position: int) -> dict:
        """What the browser does for a step: the ids to outline and the button to press."""
        step = self.lesson.steps[position]
        highlight = []
        if step.highlight:
            target = self.components.get(step.highlight, self.actions.get(step.highlight))
            highlight = [c.elem_id for c in _group(target)]
        run = self.actions[step.run].elem_id if step.run else None
        return {"tab": self.tab, "step": position, "highlight": highlight, "run": run}

    def go(self, where: str, position, lang: str | None = None):
        """The panel's outputs after pressing Next / Back / Restart at `position`."""
        lang = lang or current_lang()
        n = len(self.lesson.steps)
        p = move(where, position if isinstance(position, int) else -1, n)
        step = self.lesson.steps[p]
        values = self.lesson.settings(p, self.defaults)
        text = f"**{step.title.get(lang, step.title[DEFAULT])}**\n\n{step.text.get(lang, step.text[DEFAULT])}"
        updates = [gr.update(value=values[name]) for name in self.names for _ in _group(self.components[name])]
        return (p, self._heading(p, lang), text, json.dumps(self.plan_of(p)), gr.update(interactive=p > 0),
                gr.update(interactive=p < n - 1), *updates)

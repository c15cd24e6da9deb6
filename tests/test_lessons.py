"""Guided lessons (issue 21, part 2): every lesson file parses and fits its tab's components, a lesson that names an
unknown control, a value a control refuses or an unknown action fails while the app is built, and Next / Back /
Restart move within the steps, Back putting the previous step's settings back. The browser walk is in
tests/test_lessons_browser.py; the lessons' Persian is checked in tests/test_i18n.py."""
from __future__ import annotations

import importlib
import json
import re

import gradio as gr
import pytest

from demos import i18n, lessons
from demos.lessons import Exposed, LessonError, LessonPanel

TABS = [m.rsplit(".", 1)[-1] for _, m in __import__("app").TABS]
WITH_LESSON = sorted(p.stem for p in lessons.LESSONS_DIR.glob("*.toml"))
WITHOUT_LESSON: set[str] = set()  # every tab has its lesson


def build_with_lesson(tab: str, lesson=None):
    """The tab as app.py builds it: the panel first, then the tab, then the panel bound to what the tab exposes."""
    with gr.Blocks() as demo:
        panel = LessonPanel(tab, lesson)
        hooks = importlib.import_module(f"demos.{tab}").build() or {}
        panel.bind(hooks.get("lesson"))
    return demo, panel


@pytest.fixture(scope="module")
def cfg_tab():
    """The CFG tab's exposed components, built once (for lessons made up by the tests)."""
    with gr.Blocks():
        hooks = importlib.import_module("demos.cfg").build()
    return hooks["lesson"]


def test_every_tab_has_a_lesson_and_every_lesson_a_tab():
    assert set(WITH_LESSON) <= set(TABS), f"lessons for tabs that do not exist: {set(WITH_LESSON) - set(TABS)}"
    assert set(TABS) - set(WITH_LESSON) == WITHOUT_LESSON


@pytest.mark.parametrize("tab", WITH_LESSON)
def test_each_lesson_parses_and_fits_its_tab(tab):
    demo, panel = build_with_lesson(tab)
    lesson = panel.lesson
    assert lessons.MIN_STEPS <= len(lesson.steps) <= lessons.MAX_STEPS
    assert any(step.run for step in lesson.steps), "a lesson that never runs the model"
    for k, step in enumerate(lesson.steps):
        assert step.highlight, f"step {k + 1} outlines nothing"
        for lang in i18n.LANGUAGES:
            assert step.title[lang].strip() and step.text[lang].strip()
        # two or three sentences (a step is something to notice, not a chapter)
        sentences = len(re.findall(r"[.!?؟](?:\s|$)", re.sub(r"\$[^$]*\$|\d\.\d", "", step.text["en"].strip())))
        assert 2 <= sentences <= 4, f"{tab} step {k + 1}: {sentences} sentences"
    # every step's values go to the components as they are, and its plan names ids that exist on the page
    ids = {b.elem_id for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    for p in range(len(lesson.steps)):
        out = panel.go("restart" if p == 0 else "next", p - 1, "en")
        assert out[0] == p
        plan = json.loads(out[3])
        assert set(plan["highlight"]) <= ids and plan["highlight"]
        assert plan["run"] is None or plan["run"] in ids


@pytest.mark.parametrize("tab", WITH_LESSON)
def test_each_lessons_requests_are_cheap(tab):
    """A step answers in a few seconds on 2 cores: no more steps or images than the tab's defaults."""
    demo, panel = build_with_lesson(tab)
    for name in ("steps", "num_images", "sweep_steps", "n", "num_z", "variations", "sweep_images", "n_frames"):
        if name in panel.components:
            default = lessons._group(panel.components[name])[0].value
            # a lesson about DDIM may ask for the reference's 20 steps (25 for zero SNR's), above the frontier's default
            most = max(default, 25 if name == "steps" else 0)
            for step in panel.lesson.steps:
                assert step.set.get(name, default) <= most, f"{tab}: {name} = {step.set[name]} > {most}"


# ---------------------------------------------------------------- a bad lesson fails loudly
GOOD = """
[title]
en = 'A lesson'
fa = 'یک درس'
""" + "".join(f"""
[[step]]
set = {{ scale = {w} }}
run = "generate"
highlight = "samples"
en.title = 'Step {k}'
en.text = 'One. Two.'
fa.title = 'گام {k}'
fa.text = 'یک. دو.'
""" for k, w in enumerate((0, 1, 3, 7), 1))


def test_a_good_made_up_lesson_passes(cfg_tab):
    lessons.validate(lessons.parse("cfg", GOOD), cfg_tab)


@pytest.mark.parametrize("change, error", [
    (("scale = 0", "w = 0"), "unknown control 'w'"),
    (("scale = 0", "scale = 40"), "between 0 and 30"),          # beyond the number box w
    (("scale = 0", "scale = 20"), "between 0 and 15"),          # beyond its linked slider (the box allows 30)
    (("scale = 0", "scale = 0.3"), "off the slider's step"),
    (("scale = 0", "scale = 'high'"), "must be a number"),
    (("scale = 0", "sampler = 'Euler'"), "must be one of"),       # not among the dropdown's choices
    (("scale = 0", "model_name = 'CIFAR-10'"), "must be one of"),  # not among the radio's choices
    (("scale = 0", "seed = 1.5"), "whole number"),
    (('run = "generate"', 'run = "train"'), "unknown action 'train'"),
    (('highlight = "samples"', 'highlight = "nothing"'), "unknown highlight 'nothing'"),
    (('highlight = "samples"', 'highlight = "seed"'), "presentation mode hides"),
    (("fa.text = 'یک. دو.'", "fa.text = ' '"), "'fa.text' is empty"),
    (("fa.title = 'گام 1'\n", ""), "'fa' must have exactly"),
    (('highlight = "samples"', 'hightlight = "samples"'), "unknown keys"),
])
def test_a_bad_lesson_fails_at_build_time(cfg_tab, change, error):
    text = GOOD.replace(*change, 1)
    assert text != GOOD
    with pytest.raises(LessonError, match=re.escape(error)):
        lessons.validate(lessons.parse("cfg", text), cfg_tab)


def test_a_lesson_without_both_languages_or_with_too_few_steps_fails(cfg_tab):
    only_english = GOOD.replace("fa.title = 'گام 2'\nfa.text = 'یک. دو.'\n", "")
    with pytest.raises(LessonError, match="step 2: no 'fa' texts"):
        lessons.parse("cfg", only_english)
    three = GOOD[:GOOD.rindex("[[step]]")]
    with pytest.raises(LessonError, match="3 steps; a lesson has 4 to 8"):
        lessons.validate(lessons.parse("cfg", three), cfg_tab)
    with pytest.raises(LessonError, match="exposes no components"):
        lessons.validate(lessons.parse("cfg", GOOD), None)


def test_the_app_build_fails_on_a_bad_lesson(monkeypatch):
    bad = GOOD.replace("scale = 0", "scale = 20", 1)
    monkeypatch.setattr(lessons, "load", lambda tab: lessons.parse(tab, bad))
    with pytest.raises(LessonError, match="between 0 and 15"):
        build_with_lesson("cfg")


# ---------------------------------------------------------------- Next, Back, Restart
@pytest.mark.parametrize("where, position, n, expected", [
    ("next", -1, 6, 0), ("next", 0, 6, 1), ("next", 5, 6, 5), ("next", 99, 6, 5),
    ("back", -1, 6, 0), ("back", 0, 6, 0), ("back", 3, 6, 2), ("back", 5, 6, 4),
    ("restart", -1, 6, 0), ("restart", 4, 6, 0),
])
def test_moves_stay_within_the_steps(where, position, n, expected):
    assert lessons.move(where, position, n) == expected


def test_an_unknown_move_fails():
    with pytest.raises(ValueError):
        lessons.move("sideways", 0, 6)


def test_the_counter_says_where_the_class_is():
    assert lessons.counter(-1, 6, "en") == "6 steps"
    assert lessons.counter(1, 6, "en") == "step 2 / 6"
    assert lessons.counter(1, 6, "fa") == "گام 2 از 6"


def test_next_back_and_restart_apply_a_steps_settings(cfg_tab):
    from demos import cfg
    demo, panel = build_with_lesson("cfg", lessons.parse("cfg", GOOD.replace(
        "set = { scale = 3 }", "set = { scale = 3, steps = 10 }")))
    names = panel.names
    assert names == ["scale", "steps"]

    def values(out):  # the control updates, after position, heading, text, plan, back and next
        return [u["value"] for u in out[6:]]

    out = panel.go("next", -1, "en")
    assert out[0] == 0 and values(out) == [0, 0, cfg.DEFAULT_STEPS]  # scale (number and slider) = 0, steps at the tab's default
    assert out[4]["interactive"] is False and out[5]["interactive"] is True  # no Back on step 1
    assert "step 1 / 4" in out[1] and out[2].startswith("**Step 1**")
    out = panel.go("next", 2, "en")
    assert out[0] == 3 and values(out) == [7, 7, 10]  # step 3's steps = 10 carries on into step 4
    assert out[5]["interactive"] is False  # no Next on the last step
    out = panel.go("back", 3, "en")
    assert out[0] == 2 and values(out) == [3, 3, 10]  # Back puts step 3's settings back
    out = panel.go("back", 2, "en")
    assert out[0] == 1 and values(out) == [1, 1, cfg.DEFAULT_STEPS]  # and step 2's: steps back at its default
    out = panel.go("restart", 3, "fa")
    assert out[0] == 0 and values(out) == [0, 0, cfg.DEFAULT_STEPS] and "گام 1 از 4" in out[1] and out[2].startswith("**گام 1**")
    plan = json.loads(out[3])
    assert plan["run"] == panel.actions["generate"].elem_id and plan["tab"] == "cfg"


def test_the_panels_events_are_private_and_skip_the_queue():
    demo, panel = build_with_lesson("cfg")
    own = {panel.next._id, panel.back._id, panel.restart._id}
    fns = [fn for fn in demo.fns.values() if {t[0] for t in fn.targets} & own]
    assert len(fns) == 3
    for fn in demo.fns.values():
        ids = {t[0] for t in fn.targets}
        if ids & own or fn.js == lessons.STEP_JS:
            assert fn.api_visibility == "private", fn
    assert all(fn.queue is False for fn in fns)
    steps_js = [fn for fn in demo.fns.values() if fn.js == lessons.STEP_JS]
    assert len(steps_js) == 3 and all(fn.fn is None for fn in steps_js)


def test_the_trilemma_steps_figures_are_the_measured_ones():
    """The playground lesson quotes the trilemma table (times and × floor): each quoted figure is one that
    `python -m pipelines.measure.toy2d` wrote to results/toy2d.json, in both languages."""
    from pipelines.measure.toy2d import RESULTS
    rows = json.loads(RESULTS.read_text())["rows"]
    times = {f"{r['ms_per_1000']:.1f}" for r in rows} | {f"{r['ms_per_1000']:.0f}" for r in rows}
    floors = {f"{r['mmd_over_floor']:.2f}" for r in rows}
    step, = (s for s in lessons.load("playground2d").steps if "5.57" in s.text["en"])
    for text in step.text.values():
        quoted_times = re.findall(r"([0-9.]+) (?:ms|میلی‌ثانیه)", text)
        quoted_floors = re.findall(r"([0-9.]+)×", text)
        assert len(quoted_times) == 3 and len(quoted_floors) == 3
        assert set(quoted_times) <= times and set(quoted_floors) <= floors, (quoted_times, quoted_floors)

"""A guided lesson walked end to end in a real browser, in each language (issue 21, part 2): Next sets the controls,
outlines what the step is about and presses the tab's button; the run finishes with the step's settings; Back puts
the previous step's settings back; Restart returns to step 1. English on a laptop screen, Persian in presentation
mode, as a teacher drives a class. Screenshots of every step go to tests/screenshots/lesson-<lang>-<k>.png: look."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from demos import i18n, lessons

SCREENSHOTS = Path(__file__).parent / "screenshots"
TAB = "cfg"
OUTLINED = f"() => [...document.querySelectorAll('.{lessons.HIGHLIGHT}')].map(e => e.id)"


def value_of(page, name: str) -> str:
    """The value a lesson control shows: its <input> (a number box or a radio's checked option) or <textarea>."""
    box = page.locator(f"#lesson-{TAB}-{name}")
    radio = box.locator("input[type=radio]:checked")
    if radio.count():
        return radio.first.get_attribute("value") or ""
    return box.locator("input:not([type=range]), textarea").first.input_value()


def set_by(lesson, k: int) -> dict:
    """What steps 1..k+1 set, later steps winning (the cfg lesson's first step sets every control it touches)."""
    values = {}
    for step in lesson.steps[:k + 1]:
        values.update(step.set)
    return values


def expect_step(page, lesson, k: int, lang: str):
    """The panel says step k+1, outlines the step's component, and the step's controls hold its settings."""
    n = len(lesson.steps)
    heading = page.locator(f"#lesson-{TAB} div.block.lesson-counter")
    expect(heading).to_contain_text(i18n.tr("lessons.counter", lang, i=k + 1, n=n), timeout=20_000)
    step = lesson.steps[k]
    expect(page.locator(f"#lesson-{TAB} div.block.lesson-text")).to_contain_text(step.title[lang].replace("*", ""))
    want = f"lesson-{TAB}-{step.highlight}"
    page.wait_for_function(f"() => document.getElementById('{want}')?.classList.contains('{lessons.HIGHLIGHT}')",
                           timeout=10_000)
    assert page.evaluate(OUTLINED)[:1] == [want]
    for name, value in set_by(lesson, k).items():
        shown = value_of(page, name)
        assert shown == str(value) or (shown and float(shown) == float(value)), (k + 1, name, shown, value)


@pytest.mark.parametrize("lang, present", [("en", False), ("fa", True)], ids=["english", "persian-presentation"])
def test_a_lesson_walked_from_first_step_to_last_and_back(app_url, browser, lang, present):
    import app
    lesson = lessons.load(TAB)
    SCREENSHOTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1920, "height": 1080} if present else {"width": 1440, "height": 900})
    page.goto(app_url + f"?lang={lang}" + ("&present=1" if present else ""), wait_until="domcontentloaded")
    title = i18n.tr(next(key for key, module in app.TABS if module == f"demos.{TAB}"), lang)
    page.get_by_role("tab", name=title, exact=True).first.click()
    panel = page.locator(f"#lesson-{TAB}").first  # gradio puts the group's id on two nested elements
    expect(panel.locator("div.block.lesson-counter")).to_contain_text(i18n.tr("lessons.steps", lang, n=len(lesson.steps)),
                                                             timeout=60_000)
    if lang == "fa":
        assert panel.evaluate("e => getComputedStyle(e.querySelector('.lesson-text .prose') || e).direction") == "rtl"
    status = page.locator(f"#lesson-{TAB}-status textarea")
    done = i18n.tr("cfg.status_done", lang, label="3", scale=0, n=0, seed=0).split(":")[0]  # "done" / «پایان»
    for k, step in enumerate(lesson.steps):
        page.locator(f"#lesson-{TAB}-next").click()
        expect_step(page, lesson, k, lang)
        if step.run == "generate":  # the tab's own button was pressed: the run ends with this step's w in its status
            scale = set_by(lesson, k)["scale"]
            expect(status).to_have_value(re.compile(f"^{re.escape(done)}: .*w = {scale:g}\\b"), timeout=120_000)
        elif step.run == "sweep":
            expect(page.locator(f"#lesson-{TAB}-sweep img").first).to_be_visible(timeout=120_000)
        page.screenshot(path=str(SCREENSHOTS / f"lesson-{lang}-{k + 1}.png"))
    expect(page.locator(f"#lesson-{TAB}-next")).to_be_disabled()
    page.locator(f"#lesson-{TAB}-back").click()  # the last step set w = 15; Back puts step 5's settings back
    expect_step(page, lesson, len(lesson.steps) - 2, lang)
    page.locator(f"#lesson-{TAB}-restart").click()
    expect_step(page, lesson, 0, lang)
    expect(page.locator(f"#lesson-{TAB}-back")).to_be_disabled()
    page.close()

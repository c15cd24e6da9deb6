"""Headless Chromium opens every tab, drives its main control, checks that no picture starts under its label or
toolbar and that no text needs an emoji font, and saves a screenshot, with presentation mode off and on
(tests/screenshots/<tab>-<mode>.png: look at them)."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from demos.common import PAUSE

SCREENSHOTS = Path(__file__).parent / "screenshots"
# every shown picture of a gr.Image or gr.Gallery on the open tab: the top of its <img> and the bottom of the label and
# toolbar that gradio floats over the same component (null when it has neither)
PICTURES = """() => [...document.querySelectorAll('.block')].filter(b => b.checkVisibility()).flatMap(b => {
  const imgs = [...b.querySelectorAll(':scope > .image-container img, :scope > .gallery-container img')]
    .filter(i => i.checkVisibility() && i.naturalWidth > 0);
  if (!imgs.length) return [];
  const overlays = [...b.querySelectorAll(':scope > label[data-testid="block-label"], .icon-button-wrapper')]
    .filter(o => o.checkVisibility());
  const label = b.querySelector(':scope > label[data-testid="block-label"]');
  return [{label: label ? label.innerText : '', top: Math.min(...imgs.map(i => i.getBoundingClientRect().top)),
           overlay: overlays.length ? Math.max(...overlays.map(o => o.getBoundingClientRect().bottom)) : null}];
})"""
SAMPLE_TABS = {"ddpm", "cfg", "zero_snr", "text2img", "stackgan"}  # their samples_image: "… settings inside)"
SAMPLES_SHOWN = """() => [...document.querySelectorAll('.block')].some(b => b.checkVisibility()
  && (b.querySelector(':scope > label[data-testid="block-label"]')?.innerText || '').includes('settings inside')
  && [...b.querySelectorAll('img')].some(i => i.checkVisibility() && i.complete && i.naturalWidth > 0))"""
# what draws as an empty box without an emoji font (Debian's chromium has DejaVu and Liberation only): emoji
# presentation, the emoji variation selector, and the media-control block of U+23E9-U+23FA (⏸ ⏹ …)
NEEDS_EMOJI_FONT = r"\p{Emoji_Presentation}|\uFE0F|[\u23E9-\u23FA]"


def assert_pictures_clear_of_overlays(page, name: str):
    """No picture starts under its own component's label or toolbar (they hid the top row of the sample grids)."""
    if name in SAMPLE_TABS:
        page.wait_for_function(SAMPLES_SHOWN, timeout=30_000)
    pictures = page.evaluate(PICTURES)
    hidden = [p for p in pictures if p["overlay"] is not None and p["top"] < p["overlay"] - 0.5]
    assert not hidden, f"{name}: pictures start under their label/toolbar: {hidden}"
    if name in SAMPLE_TABS:
        assert any("settings inside" in p["label"] for p in pictures), f"{name}: no samples image measured: {pictures}"


def assert_no_emoji_glyphs(page, name: str):
    found = page.evaluate(f"() => document.body.innerText.match(/{NEEDS_EMOJI_FONT}/gu)")
    assert not found, f"{name}: text that needs an emoji font: {found}"


def drive_ddpm(page):
    page.get_by_label("DDIM steps N").first.fill("4")
    page.get_by_role("button", name="Denoise from pure noise").click()
    expect(page.get_by_label("Progress").first).to_have_value(re.compile(r"^done: 4 steps"), timeout=120_000)


def drive_cfg(page):
    page.get_by_role("button", name="Generate with guidance").click()
    expect(page.get_by_label("Progress").nth(1)).to_have_value(re.compile(r"^done: 3 at w = 3"), timeout=120_000)


def click_visible(page, name: str):
    """Several tabs have a button of the same name; click the one on the open tab."""
    page.get_by_role("button", name=name, exact=True).locator("visible=true").first.click()


GRID_SHOWN = """() => [...document.querySelectorAll('.block')].some(b => b.checkVisibility()
  && (b.querySelector(':scope > label[data-testid="block-label"]')?.innerText || '').startsWith('Rows: mechanisms')
  && [...b.querySelectorAll('img')].some(i => i.checkVisibility() && i.complete && i.naturalWidth > 0))"""


def drive_conditioning(page):
    page.get_by_label("AdaLN").check()
    expect(page.get_by_text(re.compile(r"AdaLN \(adaLN-Zero\)")).first).to_be_visible(timeout=20_000)
    page.get_by_role("button", name="Generate with all four").click()
    page.wait_for_function(GRID_SHOWN, timeout=120_000)


def drive_zero_snr(page):
    click_visible(page, "Generate")
    expect(page.get_by_text(re.compile(r"mean brightness \d\.\d{3}")).first).to_be_visible(timeout=120_000)


def drive_vae(page):
    page.get_by_role("button", name="Interpolate").click()
    expect(page.get_by_text(re.compile(r"\|μ_A\| = ")).first).to_be_visible(timeout=120_000)


def drive_text2img(page):
    click_visible(page, "Generate")
    expect(page.get_by_text(re.compile(r"^done: “")).first).to_be_visible(timeout=180_000)


def drive_stackgan(page):
    click_visible(page, "Generate")
    # the status line, not the slider "Number of noise vectors z"
    expect(page.get_by_text(re.compile(r"noise vectors z \(")).first).to_be_visible(timeout=120_000)


def drive_metrics(page):
    expect(page.get_by_text(re.compile(r"Results of|No full evaluation|No results yet")).first).to_be_visible(
        timeout=60_000)
    # fewest steps at equal quality: the tabs' defaults and one model's curves (a panel per figure)
    expect(page.get_by_text("Fewest steps at equal quality").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text(re.compile(r"images per point, on ")).first).to_be_visible(timeout=30_000)


def drive_playground2d(page):
    status = page.get_by_label("Training status", exact=True)
    expect(status).to_have_value(re.compile("^shipped model"), timeout=60_000)
    page.get_by_label("number input for Training steps").first.fill("300")
    page.get_by_role("button", name="Train live", exact=True).click()
    expect(status).to_have_value(re.compile(r"^done: step 300/300"), timeout=120_000)
    page.get_by_role("button", name="Compare the true step with the Gaussian").click()
    expect(page.get_by_text(re.compile("DDPM's Gaussian has the same mean")).first).to_be_visible(timeout=60_000)


def open_tab(page, title: str):
    """Click a tab; with more tabs than the bar fits, gradio moves the last ones into its "More tabs" menu."""
    tab = page.get_by_role("tab", name=title)
    if tab.count() and tab.first.is_visible():
        tab.first.click()
    else:
        page.get_by_role("button", name="More tabs").click()
        page.locator(".overflow-dropdown button", has_text=title).click()


TABS = [("Forward & reverse diffusion", "ddpm", drive_ddpm), ("Classifier-free guidance", "cfg", drive_cfg),
        ("Conditioning", "conditioning", drive_conditioning),
        ("Zero SNR & v-prediction", "zero_snr", drive_zero_snr),
        ("Text to image (latent diffusion)", "text2img", drive_text2img), ("StackGAN", "stackgan", drive_stackgan),
        ("VAE latent space", "vae", drive_vae), ("2-D playground", "playground2d", drive_playground2d),
        ("Metrics: FID & IS", "metrics", drive_metrics)]


@pytest.mark.parametrize("present", [False, True], ids=["normal", "presentation"])
def test_every_tab_renders_and_its_main_control_works(app_url, browser, present):
    SCREENSHOTS.mkdir(exist_ok=True)
    # a laptop screen, or a 1080p projector for the presentation (at 1.3× zoom all five tab names still fit)
    page = browser.new_page(viewport={"width": 1920, "height": 1080} if present else {"width": 1440, "height": 900})
    page.goto(app_url + ("?present=1" if present else ""), wait_until="domcontentloaded")
    page.get_by_role("tab", name=TABS[0][0]).wait_for(timeout=60_000)
    # presentation mode: the URL switches it on; large type and the advanced controls (seeds) hidden
    expect(page.locator("body")).to_have_class(re.compile("presenting") if present else re.compile(r"^(?!.*presenting)"),
                                               timeout=20_000)
    seed = page.get_by_label("Seed").first
    expect(seed).to_be_hidden() if present else expect(seed).to_be_visible()
    for title, name, drive in TABS:
        open_tab(page, title)
        drive(page)
        assert_pictures_clear_of_overlays(page, name)
        assert_no_emoji_glyphs(page, name)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{'presentation' if present else 'normal'}.png"),
                        full_page=True)
    page.close()


def test_play_walks_the_forward_process_at_the_chosen_speed(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url, wait_until="domcontentloaded")
    t = page.get_by_label("number input for t (0 = clean, 999 = last step)")
    t.wait_for(timeout=60_000)
    start = int(t.input_value())
    page.get_by_role("button", name="▶ play").first.click()
    expect(t).not_to_have_value(str(start), timeout=45_000)
    page.get_by_role("button", name=PAUSE).first.click()
    # a loaded machine may still show a step that was on its way when the pause was pressed: wait until the
    # value holds for 2 s (it never would if the timer kept ticking, 4 steps a second), then check it stays
    paused, held_since = t.input_value(), time.monotonic()
    deadline = held_since + 20
    while time.monotonic() - held_since < 2:
        assert time.monotonic() < deadline, "the slider kept moving after pause"
        page.wait_for_timeout(200)
        if (now := t.input_value()) != paused:
            paused, held_since = now, time.monotonic()
    page.wait_for_timeout(2000)
    assert t.input_value() == paused and int(paused) > start
    page.close()

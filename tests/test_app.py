"""The app as a user and a script see it: Blocks build, named endpoints answer, the page renders."""
import re
from pathlib import Path

import pytest
from gradio_client import handle_file
from playwright.sync_api import expect

from demos.common import MNIST_EXAMPLES as EXAMPLES

SCREENSHOTS = Path(__file__).parent / "screenshots"


def test_blocks_build_with_named_endpoints():
    import app
    demo = app.build_app()
    names = {dep.get("api_name") for dep in demo.config["dependencies"]}
    assert {"forward", "forward_at_t", "reverse"} <= names


def test_every_main_action_waits_in_one_queue_of_two():
    """Two jobs at a time across all tabs, not two per tab (gradio's default: a queue per event)."""
    import app
    demo = app.build_app()
    public = [fn for fn in demo.fns.values() if fn.api_visibility == "public"]
    assert len(public) >= 15 and {fn.concurrency_id for fn in public} == {app.COMPUTE_QUEUE}
    assert {fn.concurrency_limit for fn in public} == {"default"} and demo._queue.default_concurrency_limit == 2
    players = [fn for fn in demo.fns.values() if fn.concurrency_limit is None]   # UI ticks never wait behind jobs
    assert players and all(fn.concurrency_id != app.COMPUTE_QUEUE for fn in players)


def test_a_tick_sent_before_the_pause_moves_nothing():
    """The browser may send a tick just before the pause reaches the server: the tick runs after it and must not
    step the slider (the player's `playing` state is read when the tick runs)."""
    import gradio as gr
    from demos.common import Player
    with gr.Blocks():
        player = Player(gr.Slider(0, 100), 0, 100, step=25)
    timer, _, playing = player._play(4, 50)
    assert timer.active is True and playing is True
    assert player._tick(playing, 50)[0] == 75 and player._tick(playing, 50)[2] is True
    timer, playing = player._pause()
    assert timer.active is False and playing is False
    moved, timer, still = player._tick(playing, 50)
    assert moved == gr.update() and timer.active is False and still is False
    last, timer, still = player._tick(True, 75)  # the last step stops the timer and the play
    assert last == 100 and timer.active is False and still is False


def test_old_result_files_are_swept(tmp_path, monkeypatch):
    """A Space runs for days: GIFs and frames older than OUTPUT_MAX_AGE go, recent ones stay, and gradio's own
    copies are swept on the same terms."""
    import os
    import time

    import app
    from demos import common
    monkeypatch.setattr(common, "OUTPUT_DIR", tmp_path)
    monkeypatch.setattr(common, "_last_prune", [0.0])
    now = time.time()
    old, new = tmp_path / "old.gif", tmp_path / "new.png"
    for path, age in ((old, common.OUTPUT_MAX_AGE + 60), (new, common.OUTPUT_MAX_AGE - 60)):
        path.write_bytes(b"x")
        os.utime(path, (now - age, now - age))
    assert common.prune_outputs(now) == 1 and not old.exists() and new.exists()
    old.write_bytes(b"x")
    os.utime(old, (now - 10 * common.OUTPUT_MAX_AGE,) * 2)
    assert common.prune_outputs(now + 1) == 0 and old.exists()          # at most one sweep per PRUNE_EVERY
    assert common.prune_outputs(now + common.PRUNE_EVERY + 1) == 2 and not new.exists()   # new is now old too
    assert app.build_app().delete_cache == (common.PRUNE_EVERY, common.OUTPUT_MAX_AGE)


def test_forward_endpoint(client):
    strip, x_t, info, gif, plot = client.predict(handle_file(EXAMPLES[0]), "cosine (improved DDPM)", True, 999, 0,
                                                 api_name="/forward")
    assert len(strip) == 8 and Path(x_t).exists() and Path(gif).suffix == ".gif"
    assert "t=999" in info and "ᾱ=0.0000" in info  # zero terminal SNR: nothing of x_0 is left at T


def test_forward_rejects_a_non_image(client, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(Exception, match="not an image"):
        client.predict(handle_file(str(bad)), "linear (DDPM)", False, 10, 0, api_name="/forward")


def test_forward_refuses_an_absurdly_large_upload(client, tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\x89PNG" + bytes(25 * 2**20))  # 25 MB: over the app's upload limit
    with pytest.raises(Exception, match="(?i)too large|exceeds|size"):
        client.predict(handle_file(str(huge)), "linear (DDPM)", False, 10, 0, api_name="/forward")


def test_reverse_endpoint_streams_to_a_gif(client):
    job = client.submit("DDIM", 6, 4, 0.0, 3, api_name="/reverse")
    outputs = job.result(timeout=300)
    live, final, status, current, slider, gallery, gif = outputs  # (gr.State is not sent to clients)
    assert status.startswith("done: 6 steps") and Path(final).exists() and Path(gif).suffix == ".gif"
    assert len(gallery) == 6
    assert len(job.outputs()) >= 2  # streamed: frames arrived before the end


@pytest.mark.parametrize("args, message", [
    (("DDIM", 0, 4, 0.0, 0), "Steps"), (("DDIM", 10, 0, 0.0, 0), "Number of images"),
    (("DDIM", 10, 4, 2.0, 0), "η"), (("Euler", 10, 4, 0.0, 0), "Sampler"), (("DDIM", 10, 4, 0.0, -5), "Seed")])
def test_reverse_rejects_bad_input_clearly(client, args, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/reverse")


def test_page_renders_and_a_control_drives_the_model(app_url, browser):
    SCREENSHOTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url, wait_until="domcontentloaded")
    for text in ("Forward process", "Noise schedule", "Zero terminal SNR", "Reverse process", "Sampler",
                 "Denoise from pure noise"):
        page.get_by_text(text).first.wait_for(state="visible", timeout=60_000)
    page.get_by_label("DDIM steps N").first.fill("5")
    page.get_by_role("button", name="Denoise from pure noise").click()
    expect(page.get_by_label("Progress")).to_have_value(re.compile(r"^done: 5 steps"), timeout=120_000)
    page.screenshot(path=str(SCREENSHOTS / "ddpm_tab.png"), full_page=True)
    page.close()

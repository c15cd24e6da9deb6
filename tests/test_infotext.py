"""Generated PNGs carry their settings (infotext), the same settings give the same bytes, and dropping a
PNG back restores the controls of the tab that made it."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pipelines import infotext
from pipelines.images import ImageInputError


def test_settings_round_trip_through_a_png_file(tmp_path):
    img = infotext.attach(Image.new("L", (8, 8)), tab="cfg", model_name="MNIST", seed=7, scale=2.5, label="3")
    path = tmp_path / "x.png"
    path.write_bytes(infotext.png_bytes(img))
    assert infotext.read(str(path)) == {"tab": "cfg", "model_name": "MNIST", "seed": 7, "scale": 2.5, "label": "3"}
    with pytest.raises(TypeError):  # a request payload is the app's to check first (demos.common.received_file)
        infotext.read({"path": str(path)})
    assert "seed: 7" in Image.open(path).info["parameters"]  # the human-readable line other UIs show


@pytest.mark.parametrize("source,message", [(None, "Drop a PNG"), ("", "Drop a PNG"),
                                            (b"not an image", "not an image"), (Image.new("L", (4, 4)), "no Diffusion Lab")])
def test_read_gives_clear_messages(source, message):
    with pytest.raises(ImageInputError, match=message):
        infotext.read(source)


def test_same_seed_and_settings_give_byte_identical_pngs():
    from demos.ddpm import reverse_process
    final = lambda seed: list(reverse_process("DDIM", 3, 4, 0.0, seed))[-1][1]  # noqa: E731
    a, b, c = final(5), final(5), final(6)
    assert infotext.png_bytes(a) == infotext.png_bytes(b)
    assert infotext.png_bytes(a) != infotext.png_bytes(c)
    s = infotext.read(a)
    assert s["tab"] == "ddpm" and s["seed"] == 5 and s["steps"] == 3 and len(s["weights"]) >= 8


def test_dropping_a_png_restores_the_tab_settings(tmp_path, monkeypatch):
    import gradio as gr
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # the PNG is in gradio's upload folder, as an upload is
    from demos.common import WARN, SettingsDrop
    with gr.Blocks():
        seed, steps = gr.Number(), gr.Slider(1, 100)
        drop = SettingsDrop("ddpm", dict(seed=seed, steps=steps))
    path = tmp_path / "made-here.png"
    path.write_bytes(infotext.png_bytes(infotext.attach(Image.new("L", (8, 8)), tab="ddpm", seed=11, steps=40)))
    seed_u, steps_u, note = drop.restore({"path": str(path)})
    assert seed_u["value"] == 11 and steps_u["value"] == 40 and "Restored" in note
    path.write_bytes(infotext.png_bytes(infotext.attach(Image.new("L", (8, 8)), tab="cfg", seed=1)))
    *_, note = drop.restore({"path": str(path)})
    assert "cfg" in note and "drop it there" in note
    *_, note = drop.restore({"path": None})
    assert note.startswith(WARN)


def test_served_png_keeps_its_settings(client):
    """Through the running app: the image a script downloads still carries the infotext."""
    job = client.submit("DDIM", 3, 2, 0.0, 9, api_name="/reverse")
    live, final, *_ = job.result(timeout=300)
    assert Path(final).suffix == ".png"
    s = infotext.read(final)
    assert s["seed"] == 9 and s["steps"] == 3 and s["tab"] == "ddpm"

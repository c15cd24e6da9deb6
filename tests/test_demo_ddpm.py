"""The forward/reverse tab's callbacks, called directly as Gradio would call them."""
import gradio as gr
import pytest
from PIL import Image, ImageDraw

from demos.common import MNIST_EXAMPLES as EXAMPLES, use_drawing
from gradio_raw import as_upload
from demos.ddpm import forward_at_t, forward_process


def _drawing(blank: bool):
    layer = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    if not blank:
        ImageDraw.Draw(layer).ellipse([80, 40, 200, 240], outline=(0, 0, 0, 255), width=22)
    return {"background": None, "layers": [layer], "composite": layer}


def test_a_drawing_becomes_x0_and_is_noised():
    img = use_drawing(_drawing(blank=False))
    strip, x_t, info, gif, plot = forward_process(img, "linear (DDPM)", False, 0, 0)
    assert len(strip) == 8 and x_t.size == (224, 224) and "t=0" in info


def test_a_blank_drawing_gets_a_clear_message():
    with pytest.raises(gr.Error, match="blank"):
        forward_process(use_drawing(_drawing(blank=True)), "linear (DDPM)", False, 10, 0)
    with pytest.raises(gr.Error, match="empty"):
        use_drawing(None)


def test_gradio_file_payloads_are_accepted():
    x_t, info = forward_at_t({"path": as_upload(EXAMPLES[3]), "meta": {"_type": "gradio.FileData"}}, "linear (DDPM)", True,
                             999, 0)
    assert "ᾱ=0.0000" in info  # zero terminal SNR: pure noise at T


@pytest.mark.parametrize("args, message", [
    (("linear (DDPM)", False, 1000, 0), "t must be"), (("quadratic", False, 5, 0), "Schedule"),
    (("linear (DDPM)", False, float("nan"), 0), "t must be"), (("linear (DDPM)", False, 5, "abc"), "Seed")])
def test_forward_rejects_out_of_range_controls(args, message):
    with pytest.raises(gr.Error, match=message):
        forward_process(as_upload(EXAMPLES[0]), *args)

"""Upload handling: anything a user hands over becomes a 1x28x28 digit or a clear error."""
import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from pipelines.images import ImageInputError, grid, open_image, save_gif, to_digit_tensor, to_pil


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_rgb_odd_sized_light_background_becomes_centred_white_on_black():
    img = Image.new("RGB", (137, 61), (250, 250, 250))
    ImageDraw.Draw(img).rectangle([20, 10, 40, 50], fill=(10, 20, 200))
    x, notes = to_digit_tensor(_png_bytes(img))
    assert x.shape == (1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert any("inverted" in n for n in notes) and any("resized" in n for n in notes)
    assert x[0, 0, 0] == -1                                 # background is black after inversion
    ys, xs = torch.where(x[0] > 0)
    assert abs(ys.float().mean() - 13.5) < 2 and abs(xs.float().mean() - 13.5) < 2  # ink is centred


def test_mnist_like_input_passes_through_without_notes(mnist_test):
    x_in = mnist_test[0][0]
    x, notes = to_digit_tensor(to_pil(x_in))
    assert notes == []
    assert (x - x_in).abs().mean() < 0.15


def test_transparent_sketch_with_strokes_is_accepted():
    img = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(img).line([(140, 40), (140, 240)], fill=(0, 0, 0, 255), width=20)
    x, _ = to_digit_tensor(img)
    assert (x > 0).sum() > 10


@pytest.mark.parametrize("bad, message", [
    (None, "No image"),
    (b"this is not an image at all", "not an image"),
    (Image.new("RGBA", (280, 280), (0, 0, 0, 0)), "blank"),
    (Image.new("L", (28, 28), 255), "blank"),
    (np.zeros((0, 0), dtype=np.uint8), "empty"),
])
def test_bad_input_gets_a_clear_message(bad, message):
    with pytest.raises(ImageInputError, match=message):
        to_digit_tensor(bad)


def test_absurdly_large_upload_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (5000, 4000)).save(path)
    with pytest.raises(ImageInputError, match="limit"):
        open_image(str(path))


def test_grid_and_gif(tmp_path):
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    g = grid(x, nrow=3, scale=2)
    assert g.size == ((28 + 2) * 3 * 2 + 4, (28 + 2) * 2 * 2 + 4)
    frames = [grid(x * k, nrow=3, scale=2) for k in (1.0, 0.5, 0.0)]
    path = save_gif(frames, tmp_path / "a.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 3

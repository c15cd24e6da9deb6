"""The rule-based geometric judge of the captioned shapes: it reads real renders, and refuses malformed shapes."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from pipelines.shapes import geometry
from pipelines.shapes.data import ATTRIBUTES, BACKGROUNDS, COLOURS, shapes_tensors
from pipelines.shapes.geometry import MIN_FIT, UNREADABLE, GeometryJudge


@pytest.fixture(scope="module")
def judge():
    return GeometryJudge()


def draw(paint, colour="red", background="navy", side=64, supersample=4):
    """An anti-aliased 64 px image of what `paint(draw, scale)` draws (coordinates in 64 px units)."""
    img = Image.new("RGB", (side * supersample,) * 2, BACKGROUNDS[background])
    paint(ImageDraw.Draw(img), supersample, COLOURS[colour])
    small = img.resize((side, side), Image.Resampling.BOX)
    return torch.from_numpy(np.asarray(small).copy()).permute(2, 0, 1)[None]


def test_reads_every_attribute_of_real_renders_at_64_px(judge):
    images, _, labels = shapes_tensors("test", 400, 64, seed=3)   # other items than the card's validation
    assert judge.score(images, labels)["all"] == 1.0
    # the least fits stay clear of the thresholds: MIN_FIT sits 0.05 under the worst of 2,000 renders
    reads = judge.read(images)
    for i, shape in enumerate(ATTRIBUTES["shape"]):
        fits = [r["fit"][shape] for r, y in zip(reads, labels[:, 0].tolist()) if y == i]
        assert len(fits) > 50 and min(fits) >= MIN_FIT[shape] + 0.02, (shape, min(fits))


def test_float_and_uint8_inputs_agree_and_32_px_is_resized(judge):
    images, _, labels = shapes_tensors("test", 40, 64)
    assert torch.equal(judge.predict(images), judge.predict(images.float() / 127.5 - 1))
    small, _, labels32 = shapes_tensors("test", 40, 32)
    acc = judge.score(small, labels32)
    assert acc["colour"] == acc["background"] == acc["position"] == 1.0


def test_a_square_with_pinched_sides_is_no_square(judge):
    def square(d, s, fill):
        d.rectangle([20 * s, 20 * s, 44 * s, 44 * s], fill=fill)

    def pinched(d, s, fill):   # the same box, each side bowed 3 px inwards, the corners rounded
        square(d, s, fill)
        bg = BACKGROUNDS["navy"]
        for cx, cy in ((32, 20), (32, 44), (20, 32), (44, 32)):
            d.ellipse([(cx - 9) * s, (cy - 3) * s, (cx + 9) * s, (cy + 3) * s] if cy in (20, 44)
                      else [(cx - 3) * s, (cy - 9) * s, (cx + 3) * s, (cy + 9) * s], fill=bg)
        for cx, cy in ((20, 20), (44, 20), (20, 44), (44, 44)):
            d.ellipse([(cx - 2) * s, (cy - 2) * s, (cx + 2) * s, (cy + 2) * s], fill=bg)

    (clean,), (bad,) = judge.read(draw(square)), judge.read(draw(pinched))
    assert clean["shape"] == "square" and clean["colour"] == "red" and clean["background"] == "navy"
    assert bad["shape"] is None and bad["fit"]["square"] < MIN_FIT["square"], bad["fit"]
    assert bad["colour"] == "red" and bad["size"] == clean["size"] == "large"   # only the shape is unreadable


def test_a_ring_is_no_triangle_or_circle_and_a_blank_image_has_no_shape(judge):
    def ring(d, s, fill):
        d.ellipse([16 * s, 16 * s, 48 * s, 48 * s], fill=fill)
        d.ellipse([24 * s, 24 * s, 40 * s, 40 * s], fill=BACKGROUNDS["white"])

    (r,) = judge.read(draw(ring, "green", "white"))
    assert r["shape"] is None and r["colour"] == "green" and r["background"] == "white"
    blank = draw(lambda d, s, f: None, background="beige")
    (b,) = judge.read(blank)
    assert b["background"] == "beige" and b["shape"] is b["colour"] is b["size"] is b["position"] is None
    pred = judge.predict(blank)
    assert pred[0, 0] == UNREADABLE and pred[0, 4] == ATTRIBUTES["background"].index("beige")
    # an unreadable attribute is scored wrong
    acc = judge.score(blank, [{"shape": 0, "background": pred[0, 4].item()}])
    assert acc["shape"] == 0.0 and acc["background"] == 1.0 and acc["all"] == 0.0


def test_position_size_and_colour_follow_the_picture(judge):
    def disc(cx, r):
        return lambda d, s, fill: d.ellipse([(cx - r) * s, (32 - r) * s, (cx + r) * s, (32 + r) * s], fill=fill)

    reads = [judge.read(draw(disc(cx, r), colour))[0] for cx, r, colour in
             ((17, 9, "purple"), (32, 16, "orange"), (47, 9, "yellow"))]
    assert [x["position"] for x in reads] == ["left", "centre", "right"]
    assert [x["size"] for x in reads] == ["small", "large", "small"]
    assert [x["colour"] for x in reads] == ["purple", "orange", "yellow"]
    assert all(x["shape"] == "circle" for x in reads)


def test_templates_and_bad_input():
    box = (10, 10, 33, 33)
    assert geometry.template("square", box).sum() == 24 * 24
    disc = geometry.template("circle", box).sum()
    assert abs(disc - np.pi * 12 ** 2) < 12   # π r², to within the boundary's rounding
    assert geometry.template("triangle", box).sum() == pytest.approx(24 * 24 / 2, rel=0.06)
    with pytest.raises(ValueError):
        geometry.template("star", box)
    with pytest.raises(ValueError):
        GeometryJudge().predict(torch.zeros(2, 1, 64, 64))

"""A rule-based judge of the captioned shapes: all five attributes read from geometry alone, with no learning.

The CNN judge (`judge.py`) learned what the generator draws, and it is lenient: it accepts squares with pinched sides
and rounded corners, and rings or blobs for crosses. This judge measures the picture instead:

1. background colour b = the median of the border pixels (the generator keeps every shape off the border);
   shape colour f = the median of the pixels far from b (RGB distance above half its 99th percentile).
2. coverage of each pixel c = ⟨x − b, f − b⟩ / ‖f − b‖², clipped to [0, 1] (an anti-aliased edge pixel is a mix
   c·f + (1 − c)·b); the mask is c > ½, cut down to its largest 8-connected component.
3. the attributes, from the mask's bounding box (x0…x1, y0…y1, in pixels of a 64 px canvas):
   - colour, background: the nearest palette colour to f, to b;
   - position: the box's centre x, against the midpoints of the generator's left / centre / right centres;
   - size: the box's longer side, against the gap between the largest small and the smallest large shape;
   - shape: each ideal shape is drawn into the box (circle = its ellipse, square = the box, triangle = apex at the
     top centre, cross = two bars a third of the box thick); the shape is the template of highest
     IoU = |mask ∩ template| / |mask ∪ template|, and only if that IoU reaches the shape's `MIN_FIT`, set just below
     the worst real render. A blob, a ring or a square with pinched sides fits no template that well: its shape is
     read as none, and scored wrong.

`MIN_FIT` and the thresholds are set from the generator's own geometry, and `python -m pipelines.shapes.geometry`
checks them on real renders (`validate`).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

from .data import (ATTRIBUTE_NAMES, ATTRIBUTES, BACKGROUNDS, COLOURS, SIZE_RANGE, X_CENTRE, shapes_tensors)

SIDE = 64                 # the canvas the rules are written for; other sizes are resized to it
# the least template IoU of a readable shape: the least fit of 2,000 real 64 px test-split renders of that shape,
# rounded down to 0.01, less 0.05 (measured by `validate`: circle 0.909, square 0.984, triangle 0.892, cross 0.767;
# the cross is lowest because its bars, a third of a small box, are 5–6 pixels thick and round either way)
MIN_FIT = {"circle": 0.85, "square": 0.93, "triangle": 0.84, "cross": 0.71}
MIN_CONTRAST = 0.15       # RGB distance (0–1 units) below which an image shows no shape at all
UNREADABLE = -1           # the index of an attribute this judge cannot read

# position: midpoints between the generator's left / centre / right centres
POSITION_EDGES = ((X_CENTRE["left"] + X_CENTRE["centre"]) / 2, (X_CENTRE["centre"] + X_CENTRE["right"]) / 2)
# size: a shape's box side is 0.86× (square) to 1.1× (triangle) its extent; small ≤ 0.31·1.1, large ≥ 0.47·0.86
SIZE_EDGE = (SIZE_RANGE["small"][1] * 1.1 + SIZE_RANGE["large"][0] * 0.86) / 2
PALETTES = {"colour": np.array(list(COLOURS.values()), np.float64) / 255,
            "background": np.array(list(BACKGROUNDS.values()), np.float64) / 255}


def to_canvas(images: torch.Tensor) -> np.ndarray:
    """(n, 3, H, W) in [-1, 1] or uint8 -> (n, 64, 64, 3) float64 in [0, 1]."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (n, 3, H, W), got shape {tuple(images.shape)}")
    from .judge import resize_square
    x = images.float().div(255) if images.dtype == torch.uint8 else (images.float().clamp(-1, 1) + 1) / 2
    return resize_square(x, SIDE).clamp(0, 1).permute(0, 2, 3, 1).double().numpy()


def segment(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (H, W, 3) image in [0, 1] -> (mask (H, W) bool, background colour b, shape colour f)."""
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    b = np.median(border, axis=0)
    d = np.linalg.norm(x - b, axis=-1)
    far = d > 0.5 * np.quantile(d, 0.99)
    if np.quantile(d, 0.99) < MIN_CONTRAST or not far.any():
        return np.zeros(d.shape, bool), b, b
    f = np.median(x[far], axis=0)
    c = np.clip(((x - b) @ (f - b)) / max(float((f - b) @ (f - b)), 1e-12), 0, 1)   # step 2: coverage
    parts, count = ndimage.label(c > 0.5, structure=np.ones((3, 3)))
    if count == 0:
        return np.zeros(d.shape, bool), b, f
    largest = 1 + int(np.argmax(ndimage.sum_labels(np.ones_like(c), parts, index=range(1, count + 1))))
    return parts == largest, b, f


def template(shape: str, box: tuple[int, int, int, int], side: int = SIDE, supersample: int = 4) -> np.ndarray:
    """The ideal `shape` drawn into the pixel box (x0, y0, x1, y1), inclusive, as a (side, side) bool mask
    (drawn at `supersample`× and box-filtered, then covered > ½, as the mask is)."""
    s = supersample
    x0, y0, x1, y1 = (v * s for v in box)
    x1, y1 = x1 + s, y1 + s                        # the box's far edge, in supersampled pixels
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    img = Image.new("L", (side * s, side * s), 0)
    draw = ImageDraw.Draw(img)
    if shape == "circle":
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=255)
    elif shape == "square":
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=255)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=255)
    elif shape == "cross":
        tx, ty = rx / 3, ry / 3
        draw.rectangle([x0, cy - ty, x1 - 1, cy + ty], fill=255)
        draw.rectangle([cx - tx, y0, cx + tx, y1 - 1], fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.asarray(img.resize((side, side), Image.Resampling.BOX)) > 127


def read_one(x: np.ndarray) -> dict:
    """The attributes of one (64, 64, 3) image: value names (None where unreadable), the box and every fit."""
    mask, b, f = segment(x)
    nearest = {a: ATTRIBUTES[a][int(np.argmin(np.linalg.norm(PALETTES[a] - v, axis=1)))]
               for a, v in (("colour", f), ("background", b))}
    out = {"background": nearest["background"], "colour": None, "shape": None, "size": None, "position": None,
           "fit": {}, "box": None}
    if not mask.any():
        return out
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
    centre_x = (box[0] + box[2] + 1) / 2 / SIDE
    longer = max(box[2] - box[0], box[3] - box[1]) + 1
    fit = {s: float((mask & (t := template(s, box))).sum() / (mask | t).sum()) for s in ATTRIBUTES["shape"]}
    best = max(fit, key=fit.get)
    out.update(colour=nearest["colour"], fit=fit, box=box,
               shape=best if fit[best] >= MIN_FIT[best] else None,
               size="large" if longer / SIDE > SIZE_EDGE else "small",
               position=ATTRIBUTES["position"][int(np.searchsorted(POSITION_EDGES, centre_x))])
    return out


class GeometryJudge:
    """The same interface as the CNN judge (`predict`, `score`), with no weights; `read` gives the details."""
    attributes = list(ATTRIBUTE_NAMES)

    def read(self, images: torch.Tensor) -> list[dict]:
        return [read_one(x) for x in to_canvas(images)]

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """(n, 5) value indices in `attributes` order; `UNREADABLE` where an attribute cannot be read."""
        rows = [[UNREADABLE if r[a] is None else ATTRIBUTES[a].index(r[a]) for a in self.attributes]
                for r in self.read(images)]
        return torch.tensor(rows, dtype=torch.long).view(-1, len(self.attributes))

    def score(self, images: torch.Tensor, labels) -> dict[str, float]:
        from .judge import score_predictions
        return score_predictions(self.predict(images), labels, self.attributes)


def validate(n: int = 2000, resolutions: tuple[int, ...] = (64, 32)) -> dict:
    """Per-attribute accuracy on `n` real test-split renders at each resolution, and the lowest shape fit."""
    judge, out = GeometryJudge(), {}
    for r in resolutions:
        images, _, labels = shapes_tensors("test", n, r)
        reads = judge.read(images)
        acc = judge.score(images, labels)
        least = {s: min((x["fit"].get(s, 0.0) for x, y in zip(reads, labels[:, 0].tolist()) if y == i), default=None)
                 for i, s in enumerate(ATTRIBUTES["shape"])}
        out[f"{r} px"] = {**acc, **{f"least {s} fit": v for s, v in least.items()}}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description="Validate the geometric judge on real renders of the test split.")
    p.add_argument("--n", type=int, default=2000)
    args = p.parse_args(argv)
    for label, acc in validate(args.n).items():
        print(label, " ".join(f"{k} {v:.4f}" for k, v in acc.items()))


if __name__ == "__main__":
    main()

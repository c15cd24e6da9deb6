"""Captioned coloured shapes: a deterministic, seeded text-to-image dataset made here.

Every image shows one shape on a flat background and is described by five attributes:

    shape       circle, square, triangle, cross
    colour      red, orange, yellow, green, blue, purple
    size        small, large
    position    left, centre, right           (horizontal; the vertical place is free jitter)
    background  black, white, gray, navy, beige

The background palette is disjoint from the shape palette, so a background always differs from
its shape and no colour word names both. Within one attribute set, the exact size, the position
(±3 px horizontally, ±6 px vertically at 64 px) and the caption's wording vary, so samples of
one prompt are not all the same picture (the diversity figures need that).

Captions are natural language from templates filled with synonyms ("a small red circle on the
left, black background", "a red disc, little, on the left side, on a black background", ...).
The templates are split: `TRAIN_TEMPLATES` for training, `HELDOUT_TEMPLATES` only for measuring
whether a model understood the words rather than memorised a sentence pattern.

Item i of a split is a pure function of (split, i, seed): a dataset of any length is generated
lazily, item by item, or at once as uint8 tensors (`shapes_tensors`, cached in memory).

Images are rendered with PIL at 4x and box-filtered down (anti-aliased), at any resolution:
64 x 64 by default, 32 x 32 for a StackGAN Stage I (the same scene: geometry is in units of
the canvas). Datasets return images in [-1, 1] as (3, H, W) — the range every model here uses.

The interface every captioned dataset follows (so CUB-200 birds, or any folder of images with
caption files, plug into the same trainers) is `CaptionedImages`: `ds[i] -> (image, caption,
attributes)`; `ImageCaptionFolder` reads such a folder.

    python -m pipelines.shapes.data --n 16 --out outputs/shapes   # write a few examples as PNGs
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

DATA_VERSION = 1  # bump when rendering or sampling changes: checkpoints record the version they saw

# ----------------------------------------------------------------------------- vocabulary
SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {  # sRGB, chosen far apart in hue so that a small model can keep them apart
    "red": (220, 40, 40), "orange": (245, 140, 20), "yellow": (240, 220, 40),
    "green": (40, 170, 60), "blue": (40, 90, 230), "purple": (150, 50, 200),
}
SIZES = ("small", "large")
POSITIONS = ("left", "centre", "right")
BACKGROUNDS = {
    "black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128),
    "navy": (20, 30, 90), "beige": (225, 210, 170),
}
ATTRIBUTES = {  # attribute -> its values, in label-index order (the judge's heads follow this)
    "shape": SHAPES, "colour": tuple(COLOURS), "size": SIZES,
    "position": POSITIONS, "background": tuple(BACKGROUNDS),
}
ATTRIBUTE_NAMES = tuple(ATTRIBUTES)

# geometry in units of the canvas width (so every resolution shows the same scene)
SIZE_RANGE = {"small": (0.25, 0.31), "large": (0.47, 0.55)}   # shape extent / canvas
X_CENTRE = {"left": 0.27, "centre": 0.5, "right": 0.73}
X_JITTER, Y_JITTER = 3 / 64, 6 / 64

# ----------------------------------------------------------------------------- captions
SYNONYMS = {
    "shape": {"circle": ["circle", "disc"], "square": ["square", "box"],
              "triangle": ["triangle"], "cross": ["cross", "plus sign"]},
    "colour": {c: [c] for c in COLOURS},
    "size": {"small": ["small", "little", "tiny"], "large": ["large", "big"]},
    "position": {"left": ["on the left", "on the left side", "at the left"],
                 "centre": ["in the centre", "in the center", "in the middle"],
                 "right": ["on the right", "on the right side", "at the right"]},
    "background": {"black": ["black"], "white": ["white"], "gray": ["gray", "grey"],
                   "navy": ["navy"], "beige": ["beige"]},
}
# slots: {size} {colour} {shape} {where} {bg}
TRAIN_TEMPLATES = (
    "a {size} {colour} {shape} {where}, {bg} background",
    "a {colour} {shape}, {size}, {where}, on a {bg} background",
    "{size} {colour} {shape} {where} on a {bg} background",
    "a {bg} background with a {size} {colour} {shape} {where}",
    "an image of a {size} {colour} {shape} {where}; the background is {bg}",
    "{where}, a {size} {colour} {shape} on {bg}",
    "a {colour} {shape} that is {size}, placed {where}, with a {bg} background",
    "{bg} backdrop, {colour} {shape}, {size}, {where}",
)
HELDOUT_TEMPLATES = (  # never used for training: prompt adherence is measured with these
    "a picture of a {size} {colour} {shape} sitting {where} against a {bg} backdrop",
    "on a plain {bg} background there is a {size} {colour} {shape} {where}",
    "the {shape} is {colour} and {size}, it is {where} and the background is {bg}",
)
PHRASINGS = {"train": TRAIN_TEMPLATES, "heldout": HELDOUT_TEMPLATES, "all": TRAIN_TEMPLATES + HELDOUT_TEMPLATES}
SPLITS = {"train": 0, "val": 1, "test": 2}   # item i of each split comes from its own seed stream
DEFAULT_PHRASINGS = {"train": "train", "val": "heldout", "test": "heldout"}


def _a_an(text: str) -> str:
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


def caption_for(attributes: dict, template: str, rng: np.random.Generator | None = None) -> str:
    """Fill `template` with `attributes` (value names), picking a synonym per slot with `rng`
    (the first synonym when rng is None)."""
    slots = {"shape": "shape", "colour": "colour", "size": "size", "where": "position", "bg": "background"}
    words = {}
    for slot, attr in slots.items():
        options = SYNONYMS[attr][attributes[attr]]
        words[slot] = options[0] if rng is None else options[int(rng.integers(len(options)))]
    return _a_an(template.format(**words))


def describe(attributes: dict) -> str:
    """The canonical caption of an attribute set (first training template, first synonyms)."""
    return caption_for(attributes, TRAIN_TEMPLATES[0])


# ----------------------------------------------------------------------------- scenes
@dataclass(frozen=True)
class Scene:
    """One item: its attribute values (names) and the geometry that varies within an attribute set."""
    shape: str
    colour: str
    size: str
    position: str
    background: str
    extent: float   # shape extent as a share of the canvas width
    cx: float       # centre, as shares of the canvas
    cy: float

    @property
    def attributes(self) -> dict[str, str]:
        return {a: getattr(self, a) for a in ATTRIBUTE_NAMES}

    @property
    def labels(self) -> dict[str, int]:
        return {a: ATTRIBUTES[a].index(getattr(self, a)) for a in ATTRIBUTE_NAMES}


def item_rng(split: str, index: int, seed: int = 0) -> np.random.Generator:
    """The random stream of item `index` of `split`: a pure function of its arguments."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {sorted(SPLITS)}")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    return np.random.default_rng([DATA_VERSION, seed, SPLITS[split], index])


def sample_scene(rng: np.random.Generator, **fixed: str) -> Scene:
    """Draw the attributes (uniformly; any given in `fixed` are kept) and the free geometry."""
    for k, v in fixed.items():
        if k not in ATTRIBUTES or v not in ATTRIBUTES[k]:
            raise ValueError(f"unknown attribute value {k}={v!r}")
    picks = {a: ATTRIBUTES[a][int(rng.integers(len(ATTRIBUTES[a])))] for a in ATTRIBUTE_NAMES}
    picks.update(fixed)
    lo, hi = SIZE_RANGE[picks["size"]]
    extent = float(rng.uniform(lo, hi))
    cx = X_CENTRE[picks["position"]] + float(rng.uniform(-X_JITTER, X_JITTER))
    cy = 0.5 + float(rng.uniform(-Y_JITTER, Y_JITTER))
    half = 0.55 * extent + 1 / 64  # keep the whole shape (plus a pixel) inside the canvas
    cx, cy = min(max(cx, half), 1 - half), min(max(cy, half), 1 - half)
    return Scene(extent=extent, cx=cx, cy=cy, **picks)


def render(scene: Scene, resolution: int = 64, supersample: int = 4) -> Image.Image:
    """The scene as an RGB PIL image, drawn at `supersample`x and box-filtered down (anti-aliased)."""
    if resolution < 8:
        raise ValueError(f"resolution must be >= 8 pixels, got {resolution}")
    big = resolution * supersample
    img = Image.new("RGB", (big, big), BACKGROUNDS[scene.background])
    draw, fill = ImageDraw.Draw(img), COLOURS[scene.colour]
    cx, cy, r = scene.cx * big, scene.cy * big, scene.extent * big / 2
    if scene.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif scene.shape == "square":
        s = r * 0.86  # about the circle's area (a full-extent square looks much bigger)
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif scene.shape == "triangle":  # equilateral, pointing up, centred on its bounding box, 1.1x wide
        w = 1.1 * r                  # (a triangle of the circle's width has half its area)
        h = w * 3 ** 0.5
        top, bottom = cy - h / 2, cy + h / 2
        draw.polygon([(cx, top), (cx + w, bottom), (cx - w, bottom)], fill=fill)
    elif scene.shape == "cross":     # a plus sign with arms a third of its extent thick
        t = r / 3
        draw.rectangle([cx - r, cy - t, cx + r, cy + t], fill=fill)
        draw.rectangle([cx - t, cy - r, cx + t, cy + r], fill=fill)
    else:
        raise ValueError(f"unknown shape {scene.shape!r}")
    return img.resize((resolution, resolution), Image.Resampling.BOX) if supersample > 1 else img


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> uint8 tensor (3, H, W)."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (..., 3, H, W) -> float in [-1, 1]."""
    return x.float().div(127.5).sub(1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8 in [0, 255]."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


# ----------------------------------------------------------------------------- the dataset interface
class CaptionedImages(torch.utils.data.Dataset):
    """What every text-to-image trainer here reads: `ds[i] -> (image, caption, attributes)`.

    - image: float tensor (3, H, W) in [-1, 1], H == W == `self.resolution`;
    - caption: a str (one caption per item; a dataset with several per image picks one);
    - attributes: dict attribute name -> value index (an empty dict when the data has no labels,
      e.g. CUB birds; prompt-adherence figures then cannot be computed, everything else works).

    `attribute_values` maps each attribute name to its value names ({} when there are none).
    """
    resolution: int = 64
    attribute_values: dict[str, tuple[str, ...]] = {}

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int):
        raise NotImplementedError


class ShapesDataset(CaptionedImages):
    """`length` captioned shapes of `split`, generated lazily; item i is a pure function of (split, i, seed).

    `phrasings`: "train" | "heldout" | "all" caption templates (default: "train" for the train split,
    "heldout" for val/test). `resolution`: any size >= 8 (64 by default; 32 for a StackGAN Stage I).
    """
    attribute_values = ATTRIBUTES

    def __init__(self, split: str = "train", length: int = 50_000, resolution: int = 64,
                 phrasings: str | None = None, seed: int = 0):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {sorted(SPLITS)}")
        phrasings = phrasings or DEFAULT_PHRASINGS[split]
        if phrasings not in PHRASINGS:
            raise ValueError(f"unknown phrasings {phrasings!r}; choose one of {sorted(PHRASINGS)}")
        if int(resolution) < 8 or int(length) < 0:
            raise ValueError(f"need resolution >= 8 and length >= 0, got {resolution} and {length}")
        self.split, self.length, self.resolution = split, int(length), int(resolution)
        self.phrasings, self.seed = phrasings, seed

    def __len__(self) -> int:
        return self.length

    def scene(self, i: int) -> tuple[Scene, str]:
        """(the scene, its caption) of item i, without rendering."""
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for a dataset of {self.length}")
        rng = item_rng(self.split, i, self.seed)
        scene = sample_scene(rng)
        templates = PHRASINGS[self.phrasings]
        return scene, caption_for(scene.attributes, templates[int(rng.integers(len(templates)))], rng)

    def __getitem__(self, i: int):
        scene, caption = self.scene(int(i))
        return to_float(pil_to_tensor(render(scene, self.resolution))), caption, scene.labels


@lru_cache(maxsize=8)
def _cached_tensors(split, n, resolution, phrasings, seed, start):
    ds = ShapesDataset(split, start + n, resolution, phrasings, seed)
    images = torch.empty(n, 3, resolution, resolution, dtype=torch.uint8)
    captions, labels = [], torch.empty(n, len(ATTRIBUTE_NAMES), dtype=torch.long)
    for j in range(n):
        scene, caption = ds.scene(start + j)
        images[j] = pil_to_tensor(render(scene, resolution))
        captions.append(caption)
        labels[j] = torch.tensor([scene.labels[a] for a in ATTRIBUTE_NAMES])
    images.requires_grad_(False)
    return images, tuple(captions), labels


def shapes_tensors(split: str = "train", n: int = 1000, resolution: int = 64, phrasings: str | None = None,
                   seed: int = 0, start: int = 0):
    """Items start..start+n-1 of `split` at once: (uint8 images (n, 3, H, W), captions, labels (n, 5)).

    Label columns follow `ATTRIBUTE_NAMES`. Identical to reading ShapesDataset item by item; cached in
    memory (do not modify the returned tensors in place). Convert images with `to_float`.
    About 0.2 ms per 64 px image on one CPU core.
    """
    phrasings = phrasings or DEFAULT_PHRASINGS.get(split, "train")
    images, captions, labels = _cached_tensors(split, int(n), int(resolution), phrasings, int(seed), int(start))
    return images, list(captions), labels


def labels_to_dicts(labels: torch.Tensor) -> list[dict[str, int]]:
    return [dict(zip(ATTRIBUTE_NAMES, row.tolist())) for row in labels]


# ----------------------------------------------------------------------------- other data (e.g. CUB-200)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ImageCaptionFolder(CaptionedImages):
    """Images with caption files beside them or in a mirrored tree — the layout of CUB-200 with the
    captions of Reed et al. (`CUB_200_2011/images/<class>/<name>.jpg` and `text_c10/<class>/<name>.txt`,
    ten captions a line each):

        ImageCaptionFolder("CUB_200_2011/images", captions_root="text_c10", resolution=64)

    Each item picks one of its image's captions (seeded by (seed, index), so deterministic). Images are
    centre-cropped to a square and resized. `attributes` is {} (no labels to judge adherence with).
    """

    def __init__(self, images_root, captions_root=None, resolution: int = 64, seed: int = 0):
        self.images_root = Path(images_root)
        self.captions_root = Path(captions_root) if captions_root else self.images_root
        self.resolution, self.seed = resolution, seed
        self.items = []
        for img in sorted(p for p in self.images_root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            txt = (self.captions_root / img.relative_to(self.images_root)).with_suffix(".txt")
            if txt.is_file():
                caps = [line.strip() for line in txt.read_text(encoding="utf-8").splitlines() if line.strip()]
                if caps:
                    self.items.append((img, caps))
        if not self.items:
            raise ValueError(f"no image with a non-empty caption file under {self.images_root}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, captions = self.items[i]
        with Image.open(path) as im:
            im = im.convert("RGB")
            s = min(im.size)
            left, top = (im.width - s) // 2, (im.height - s) // 2
            im = im.crop((left, top, left + s, top + s)).resize((self.resolution,) * 2, Image.Resampling.BICUBIC)
        rng = np.random.default_rng([self.seed, i])
        return to_float(pil_to_tensor(im)), captions[int(rng.integers(len(captions)))], {}


def collate(batch):
    """DataLoader collate for CaptionedImages: (images (B, 3, H, W), captions list, labels dict of (B,) tensors)."""
    images, captions, attrs = zip(*batch)
    keys = attrs[0].keys()
    return torch.stack(images), list(captions), {k: torch.tensor([a[k] for a in attrs]) for k in keys}


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(description="Write a few captioned shapes as PNGs (captions in captions.txt).")
    p.add_argument("--split", default="train", choices=list(SPLITS))
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--out", default="outputs/shapes")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ds, lines = ShapesDataset(a.split, a.n, a.resolution), []
    for i in range(a.n):
        scene, caption = ds.scene(i)
        render(scene, a.resolution).save(out / f"{a.split}_{i:04d}.png")
        lines.append(f"{a.split}_{i:04d}.png\t{caption}")
    (out / "captions.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()


def heldout_prompts(n: int, seed: int = 0) -> tuple[list[str], list[dict[str, int]]]:
    """n (caption, requested attribute indices) pairs written with the held-out phrasings (test split)."""
    ds = ShapesDataset("test", n, phrasings="heldout", seed=seed)
    captions, labels = [], []
    for i in range(n):
        scene, caption = ds.scene(i)
        captions.append(caption)
        labels.append(scene.labels)
    return captions, labels

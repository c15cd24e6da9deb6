"""Tensor <-> image conversions, grids and GIFs: the one place every tab uses."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

MAX_UPLOAD_PIXELS = 4096 * 4096


class ImageInputError(ValueError):
    """Input that is not a usable image; the message is meant for the user."""


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) or (H, W) in [-1, 1] -> HxW or HxWxC uint8."""
    x = x.detach().float().cpu()
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if x.ndim == 3:
        x = x.permute(1, 2, 0)
        if x.shape[-1] == 1:
            x = x[..., 0]
    return x.numpy()


def to_pil(x: torch.Tensor, scale: int = 1) -> Image.Image:
    img = Image.fromarray(to_uint8(x))
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def grid(x: torch.Tensor, nrow: int = 8, scale: int = 1, padding: int = 2) -> Image.Image:
    """A batch (B, C, H, W) in [-1, 1] as one PIL grid."""
    g = make_grid(x.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=padding, pad_value=1.0)
    if x.shape[1] == 1:
        g = g[:1]
    return to_pil(g, scale)


def save_gif(frames: list[Image.Image], path: str | Path, duration_ms: int = 80, hold_last_ms: int = 1200) -> Path:
    path = Path(path)
    durations = [duration_ms] * (len(frames) - 1) + [hold_last_ms]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return path


def open_image(data) -> Image.Image:
    """Anything a user may hand us (path, bytes, PIL, numpy) -> PIL, or ImageInputError."""
    if data is None:
        raise ImageInputError("No image given: choose one from the gallery, upload one or draw one.")
    if isinstance(data, Image.Image):
        img = data
    elif isinstance(data, np.ndarray):
        if data.size == 0:
            raise ImageInputError("The image is empty.")
        arr = data
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255 if arr.max() <= 1 else 1), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr)
    else:
        try:
            src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else str(data)
            with Image.open(src) as probe:
                if probe.width * probe.height > MAX_UPLOAD_PIXELS:
                    raise ImageInputError(
                        f"The image is {probe.width}x{probe.height}; the limit is {MAX_UPLOAD_PIXELS:,} pixels.")
                probe.load()
                img = probe.copy()
        except ImageInputError:
            raise
        except Exception as exc:  # PIL raises many types for "not an image"
            raise ImageInputError("That file is not an image PIL can read (try a PNG or JPEG).") from exc
    if img.width * img.height > MAX_UPLOAD_PIXELS:
        raise ImageInputError(f"The image is {img.width}x{img.height}; the limit is {MAX_UPLOAD_PIXELS:,} pixels.")
    if img.width < 1 or img.height < 1:
        raise ImageInputError("The image is empty.")
    return img


def flatten_alpha(img: Image.Image, background=(0, 0, 0)) -> Image.Image:
    """Paint transparent pixels (e.g. an empty sketch pad) with `background`."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        base = Image.new("RGBA", img.size, background + (255,))
        img = Image.alpha_composite(base, img)
    return img.convert("RGB")


def to_digit_tensor(data, size: int = 28) -> tuple[torch.Tensor, list[str]]:
    """Make any image look like an MNIST digit: grey, white ink on black, centred, size x size.

    Returns the (1, size, size) tensor in [-1, 1] and notes on what was changed.
    """
    img = flatten_alpha(open_image(data))
    notes = []
    grey = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    if grey.max() - grey.min() < 1e-3:
        raise ImageInputError("The image is blank (a single flat colour); draw or upload a digit.")
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 0.5:
        grey = 1.0 - grey
        notes.append("inverted (the background was light; MNIST is white ink on black)")
    if img.size != (size, size):
        notes.append(f"resized from {img.width}x{img.height} to {size}x{size}")
    # MNIST-style framing: fit the ink's bounding box into 20x20, centre it in size x size.
    ink = grey > 0.15 * grey.max()
    rows, cols = np.where(ink)
    crop = grey[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
    h, w = crop.shape
    inner = round(size * 20 / 28)
    scale = inner / max(h, w)
    crop_img = Image.fromarray((crop * 255).astype(np.uint8)).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(crop_img, ((size - crop_img.width) // 2, (size - crop_img.height) // 2))
    t = torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 127.5 - 1.0).unsqueeze(0)
    return t, notes

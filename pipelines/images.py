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


def finite_samples(x: torch.Tensor) -> torch.Tensor:
    """Per image of a batch (B, ...): are all its pixels finite? An ε model started at t = T of a zero-terminal-SNR
    schedule computes x̂_0 = (x_T − sqrt(1 − ᾱ_T)·ε̂) / sqrt(ᾱ_T) with ᾱ_T = 0: NaN or inf."""
    return torch.isfinite(x).flatten(1).all(1)


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


def gif_palette(frames: list[Image.Image], samples: int = 6) -> Image.Image:
    """One 256-colour palette for a whole animation, from a strip of frames spread from first to last (the fast
    octree quantizer). PIL's default, a median cut of every frame on its own, took ~35 ms a frame at 636x402."""
    picks = sorted({round(i * (len(frames) - 1) / max(samples - 1, 1)) for i in range(min(samples, len(frames)))})
    strip = Image.new("RGB", (max(frames[i].width for i in picks), sum(frames[i].height for i in picks)))
    y = 0
    for i in picks:
        strip.paste(frames[i].convert("RGB"), (0, y))
        y += frames[i].height
    return strip.quantize(colors=256, method=Image.Quantize.FASTOCTREE)


def save_gif(frames: list[Image.Image], path: str | Path, duration_ms: int = 80, hold_last_ms: int = 1200) -> Path:
    """An animated GIF that loops, holding its last frame. Greyscale frames are stored as they are; colour ones are
    mapped, without dithering, onto one palette shared by every frame (gif_palette)."""
    path = Path(path)
    durations = [duration_ms] * (len(frames) - 1) + [hold_last_ms]
    if any(f.mode != "L" for f in frames):
        palette = gif_palette(frames)
        frames = [f.convert("RGB").quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return path


def _too_large(width: int, height: int, limit: int = MAX_UPLOAD_PIXELS) -> ImageInputError:
    return ImageInputError(f"The image is {width}x{height}; the limit is {limit:,} pixels.")


def _declared_size(src) -> tuple[int, int] | None:
    """The size an image file declares, read from its header only.

    Image.open refuses a decompression bomb (or warns, which a warnings filter may turn into an error) without
    saying its size, so this asks the format plugins directly, as Image.open does, minus PIL's bomb check.
    """
    Image.init()
    try:
        fp = open(src, "rb") if isinstance(src, str) else src
    except OSError:
        return None
    with fp:
        fp.seek(0)
        prefix = fp.read(16)
        for fmt in Image.ID:
            factory, accept = Image.OPEN[fmt]
            accepted = accept(prefix) if accept else True
            if not accepted or isinstance(accepted, str):
                continue
            try:
                fp.seek(0)
                return factory(fp, src if isinstance(src, str) else "").size
            except Exception:  # not this format: try the next, as Image.open does
                continue
    return None


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    """Any numeric pixel array -> uint8 of the same shape, scaled by what its values mean.

    bool: False/True -> 0/255. uint16 (16-bit data): v * 255 / 65535. Other integers (e.g. PIL mode "I"): 8-bit
    if the maximum is <= 255, else 16-bit; clipped to the range. Floats: must be finite; [0, 1] is scaled by 255,
    any other range is stretched from min..max to 0..255 (a flat image stays flat, clipped to 0..255).
    """
    if arr.dtype == np.uint8:
        return arr
    kind = arr.dtype.kind
    if kind == "b":
        return arr.astype(np.uint8) * 255
    if kind in "iu":
        if (kind == "u" and arr.dtype.itemsize == 2) or int(arr.max()) > 255:
            wide = np.clip(arr, 0, 65535).astype(np.uint32)
            return ((wide * 255 + 32767) // 65535).astype(np.uint8)  # exact rounding: 32768 -> 128
        return np.clip(arr, 0, 255).astype(np.uint8)
    if kind == "f":
        a = arr.astype(np.float64)
        if not np.isfinite(a).all():
            raise ImageInputError("The image has NaN or infinite pixel values; only finite numbers can be shown.")
        lo, hi = a.min(), a.max()
        if lo >= 0 and hi <= 1:
            a = a * 255
        elif hi > lo:
            a = (a - lo) * (255 / (hi - lo))
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    raise ImageInputError(f"An array of {arr.dtype} values is not an image; use integers, floats or booleans.")


def _image_to_8bit(img: Image.Image) -> Image.Image:
    """16-bit ("I;16*"), 32-bit integer ("I") and float ("F") images -> mode "L" by their range (see _to_8bit).

    PIL's own convert("L") clips these to 0..255, so a 16-bit or a [0, 1] float image comes out (nearly) black
    and white. 16-bit RGB(A) PNGs need nothing: Pillow opens them as 8-bit RGB(A) (their high bytes).
    """
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        out = Image.fromarray(_to_8bit(np.asarray(img)))
        # keep e.g. a PNG's text chunks (infotext reads them); a transparency key is in the old value range
        out.info.update({k: v for k, v in img.info.items() if k != "transparency"})
        return out
    return img


def open_image(data) -> Image.Image:
    """Anything a user may hand us (path, bytes, PIL, numpy) -> PIL, or ImageInputError."""
    if isinstance(data, dict):  # a request payload: the server decides what it may open (demos.common.received_file)
        raise TypeError("open_image takes a path, bytes or an image, not a request payload")
    if data is None or (isinstance(data, str) and not data.strip()):
        raise ImageInputError("No image given: choose one from the gallery, upload one or draw one.")
    if isinstance(data, Image.Image):
        img = data
    elif isinstance(data, np.ndarray):
        if data.size == 0:
            raise ImageInputError("The image is empty.")
        height, width = (data.shape + (1,))[:2]
        if width * height > MAX_UPLOAD_PIXELS:
            raise _too_large(width, height)
        arr = data[..., 0] if data.ndim == 3 and data.shape[2] == 1 else data  # HxWx1 -> HxW: PIL rejects HxWx1
        try:
            img = Image.fromarray(_to_8bit(arr))
        except TypeError as exc:  # a shape PIL has no mode for
            raise ImageInputError(f"An array of shape {data.shape} is not an image (use HxW, HxWx3 or HxWx4).") from exc
    else:
        try:
            src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else str(data)
            with Image.open(src) as probe:
                if probe.width * probe.height > MAX_UPLOAD_PIXELS:  # the declared size, before any decoding
                    raise _too_large(probe.width, probe.height)
                probe.load()
                img = probe.copy()
        except ImageInputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # PIL refused a huge declared size (the warning is raised when warnings are errors) without saying it.
            size = _declared_size(src)
            if size is None:
                raise ImageInputError(f"The image is too large; the limit is {MAX_UPLOAD_PIXELS:,} pixels.") from exc
            over_ours = size[0] * size[1] > MAX_UPLOAD_PIXELS  # else PIL's own limit was set lower than ours
            raise _too_large(*size, MAX_UPLOAD_PIXELS if over_ours else Image.MAX_IMAGE_PIXELS) from exc
        except Exception as exc:  # PIL raises many types for "not an image"
            raise ImageInputError("That file is not an image PIL can read (try a PNG or JPEG).") from exc
    if img.width * img.height > MAX_UPLOAD_PIXELS:
        raise _too_large(img.width, img.height)
    if img.width < 1 or img.height < 1:
        raise ImageInputError("The image is empty.")
    return _image_to_8bit(img)


def flatten_alpha(img: Image.Image, background=None) -> Image.Image:
    """Paint transparent pixels (e.g. an empty sketch pad) with `background`.

    background=None picks the colour that contrasts with the visible strokes: black ink drawn on a
    transparent canvas lands on white (and is inverted later), white ink on black.
    """
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        if background is None:
            arr = np.asarray(img, dtype=np.float32) / 255.0
            visible = arr[..., 3] > 0.5
            lum = arr[..., :3][visible].mean() if visible.any() else 0.0
            background = (255, 255, 255) if visible.any() and lum < 0.5 else (0, 0, 0)
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
    if img.size == (size, size):  # already digit-sized: keep the user's framing
        t = torch.from_numpy(grey * 2.0 - 1.0).unsqueeze(0)
        return t, notes
    notes.append(f"resized from {img.width}x{img.height} to {size}x{size}")
    # MNIST's own framing: fit the ink's bounding box into 20x20, then centre its mass in size x size.
    ink = grey > 0.15 * grey.max()
    rows, cols = np.where(ink)
    crop = grey[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
    h, w = crop.shape
    scale = round(size * 20 / 28) / max(h, w)
    crop_img = Image.fromarray((crop / crop.max() * 255).astype(np.uint8)).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    canvas = np.zeros((size, size), dtype=np.float32)
    top, left = (size - crop_img.height) // 2, (size - crop_img.width) // 2
    canvas[top: top + crop_img.height, left: left + crop_img.width] = np.asarray(crop_img, np.float32) / 255.0
    ys, xs = np.indices(canvas.shape)
    mass = canvas.sum()
    dy, dx = round(size / 2 - 0.5 - (ys * canvas).sum() / mass), round(size / 2 - 0.5 - (xs * canvas).sum() / mass)
    canvas = np.roll(canvas, (dy, dx), axis=(0, 1))
    t = torch.from_numpy(canvas * 2.0 - 1.0).unsqueeze(0)
    return t, notes


def side_by_side(*images: Image.Image, gap: int = 12, background: int = 255) -> Image.Image:
    """Images next to each other on one canvas (e.g. x_t and the predicted x̂_0 of a reverse step)."""
    mode = "RGB" if any(im.mode == "RGB" for im in images) else "L"
    images = [im.convert(mode) for im in images]
    canvas = Image.new(mode, (sum(im.width for im in images) + gap * (len(images) - 1),
                              max(im.height for im in images)), background if mode == "L" else (background,) * 3)
    x = 0
    for im in images:
        canvas.paste(im, (x, 0))
        x += im.width + gap
    return canvas


def labelled_grid(x: torch.Tensor, row_labels: list[str], col_labels: list[str], scale: int = 2,
                  padding: int = 2, label_width: int = 90, label_height: int = 18) -> Image.Image:
    """x: (rows, cols, C, H, W) in [-1, 1] -> one image with a label left of each row and above each column."""
    from PIL import ImageDraw

    rows, cols = x.shape[:2]
    body = grid(x.flatten(0, 1), nrow=cols, scale=scale, padding=padding).convert("RGB")
    canvas = Image.new("RGB", (body.width + label_width, body.height + label_height), (255, 255, 255))
    canvas.paste(body, (label_width, label_height))
    draw = ImageDraw.Draw(canvas)
    cell_h, cell_w = (body.height - padding) / rows, (body.width - padding) / cols
    for j, text in enumerate(col_labels):
        draw.text((label_width + padding + j * cell_w + cell_w / 2, label_height / 2), text, fill=(0, 0, 0),
                  anchor="mm")
    for i, text in enumerate(row_labels):
        draw.text((label_width - 6, label_height + padding + i * cell_h + cell_h / 2), text, fill=(0, 0, 0),
                  anchor="rm")
    return canvas

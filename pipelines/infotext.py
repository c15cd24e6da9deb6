"""Settings carried inside every generated PNG ("infotext"), so an image can be reproduced from itself.

Two PNG text chunks are written:
    parameters      a human-readable line, like other diffusion UIs: "model: cfg-mnist, seed: 0, w: 3, ..."
    diffusion-lab   the same settings as JSON, which `read` parses back

Same settings + same seed give byte-identical PNGs on the CPU: noise is drawn from a seeded CPU
generator and the text chunks are written in a fixed order.
"""
from __future__ import annotations

import io
import json

from PIL import Image, PngImagePlugin

from .images import ImageInputError, open_image

KEY, HUMAN_KEY = "diffusion-lab", "parameters"


def attach(img: Image.Image, **settings) -> Image.Image:
    """Store `settings` (JSON-serialisable) in the image's PNG text chunks; returns the same image."""
    settings = {k: v for k, v in settings.items() if v is not None}
    img.info[HUMAN_KEY] = ", ".join(f"{k}: {v}" for k, v in settings.items())
    img.info[KEY] = json.dumps(settings, ensure_ascii=False)
    return img


def png_bytes(img: Image.Image) -> bytes:
    """The PNG file as the app serves it: pixels plus the text chunks, nothing time-dependent."""
    info = PngImagePlugin.PngInfo()
    for key in (HUMAN_KEY, KEY):
        if key in img.info:
            info.add_text(key, img.info[key])
    buf = io.BytesIO()
    img.save(buf, format="png", pnginfo=info)
    return buf.getvalue()


MAX_TEXT_CHARS = 65_536  # settings this app writes are a few hundred characters (a 20,000-character prompt fits)
DAMAGED = "The settings stored in this PNG are damaged."


def read(source) -> dict:
    """The settings stored in a PNG (a path, bytes or a PIL image).

    Raises ImageInputError with a clear message when the file is not an image, carries no settings, or carries text
    that is too large or does not parse as a JSON object. The values are not checked here: each one is checked by
    the control it restores, as typed values are."""
    if source is None or source == "":
        raise ImageInputError("Drop a PNG that this app generated to restore its settings.")
    try:
        img = open_image(source)  # keeps the PNG's text chunks in img.info
    except ImageInputError as exc:
        raise ImageInputError(f"{exc} Drop a PNG that this app generated.") from None
    text = img.info.get(KEY)
    if not text:
        raise ImageInputError("This image carries no Diffusion Lab settings (only PNGs generated here do; "
                              "screenshots and JPEGs lose them).")
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
        raise ImageInputError(f"{DAMAGED} (Their text is larger than any this app writes.)")
    try:
        settings = json.loads(text)
    except (ValueError, RecursionError):  # malformed JSON, or nested too deep to parse
        raise ImageInputError(DAMAGED) from None
    if not isinstance(settings, dict):
        raise ImageInputError(DAMAGED)
    return settings

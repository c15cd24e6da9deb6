"""Property-based bad input at every named endpoint, through gradio_client against the launched app.

Each argument is either a valid value or junk (random text, out-of-range and non-finite numbers, None,
booleans, and for image inputs: tiny, huge, empty, non-image and truncated files). Every request must
either succeed or fail with one of the app's own messages (never gradio's anonymous "error"), and
the server must still answer a valid request afterwards.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from gradio_client import handle_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demos.common import MNIST_EXAMPLES

DIGIT = MNIST_EXAMPLES[0]
ANONYMOUS = ("has not enabled verbose error reporting", "Traceback", "upstream Gradio app has raised")


def png(width: int, height: int) -> bytes:
    """A valid greyscale PNG of any size, compressed to almost nothing (for 'huge' uploads)."""
    raw = zlib.compress(b"".join(b"\x00" + bytes(width) for _ in range(height)), 9)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("uploads")
    out = {"digit": DIGIT}
    for name, data in {"tiny.png": png(1, 1), "huge.png": png(5000, 5000), "empty.png": b"",
                       "text.png": b"hello, not an image", "truncated.png": Path(DIGIT).read_bytes()[:60],
                       "notes.txt": b"plain text"}.items():
        (d / name).write_bytes(data)
        out[name] = str(d / name)
    return out


junk = st.one_of(st.text(max_size=24), st.floats(allow_nan=False), st.sampled_from(["nan", "inf", "-inf", "1e309"]),
                 st.integers(-10**12, 10**12), st.none(), st.booleans())
image_key = st.sampled_from(["digit", "tiny.png", "huge.png", "empty.png", "text.png", "truncated.png", "notes.txt"])


def arg(valid: list) -> st.SearchStrategy:
    return st.one_of(st.sampled_from(valid), junk)


TOY_DATASETS = ["two moons", "8 Gaussians on a ring", "my drawing (canvas below)"]
SKETCH = st.one_of(st.none(), junk, st.fixed_dictionaries({"composite": st.one_of(junk, st.sampled_from(
    ["/etc/hostname", "http://127.0.0.1:9/x.png", DIGIT, {"path": "/etc/hostname"}, {"url": "http://127.0.0.1:9/x"}]))}))
SPACING = "the model's own (leading / trailing)"
OWN = "the model's own"
CAPTION = "a picture of a large red circle sitting in the middle against a white backdrop"
ENDPOINTS = {  # api name -> strategies per argument ("IMAGE" marks an upload)
    "/forward": ["IMAGE", arg(["linear (DDPM)", "cosine (improved DDPM)"]), arg([True, False]), arg([0, 500, 999]),
                 arg([0, 1])],
    "/forward_at_t": ["IMAGE", arg(["linear (DDPM)"]), arg([False]), arg([10, 999]), arg([0])],
    "/reverse": [arg(["DDIM"]), arg([2, 3]), arg([1, 2]), arg([0.0, 1.0]), arg([0, 5])],
    "/cfg_generate": [arg(["MNIST", "Fashion-MNIST"]), arg(["3", "Bag"]), arg([0, 3, 30]), arg([0, 0.7]),
                      arg(["DDIM"]), arg([2]), arg([1, 2]), arg([0])],
    "/cfg_sweep": [arg(["MNIST"]), arg(["0, 3", "1"]), arg([2]), arg([0])],
    "/zero_snr_generate": [arg([True, False]), arg([True, False]), arg(["all black", "7"]), arg([1, 3]),
                           arg([0, 0.7]), arg([SPACING, "trailing", "leading"]), arg([2]), arg([1, 2]), arg([0])],
    "/zero_snr_compare": [arg(["all white"]), arg([3]), arg([0.0]), arg([SPACING]), arg([2]), arg([0])],
    "/vae_interpolate": [arg(["2-D latent", "16-D latent"]), "IMAGE", "IMAGE", arg(["linear", "spherical"]),
                         arg([2, 5]), arg([0.5])],
    "/vae_at_lambda": [arg(["16-D latent"]), "IMAGE", "IMAGE", arg(["linear"]), arg([0.0, 1.0])],
    "/vae_latent_map": ["IMAGE", "IMAGE", arg([2, 5]), arg([5])],
    "/vae_reconstruct": [arg(["16-D latent"]), "IMAGE", arg([1, 2]), arg([1.0]), arg([0])],
    "/text2img_generate": [arg(["Shapes LDM (trained here)", "Stable Diffusion (local folder or hub id)"]),
                           arg(["", "no/such/folder"]), arg([CAPTION, ""]), arg(["", "a square"]), arg([0, 3, 15]),
                           arg([0.0, 0.7]), arg(["DDIM", "DPM-Solver++ (multistep)"]), arg([2]), arg([1, 2]), arg([0]),
                           arg([OWN, "on", "off"]), arg([OWN, "trailing"])],
    "/text2img_sweep": [arg(["Shapes LDM (trained here)"]), arg([""]), arg([CAPTION]), arg([""]), arg(["0, 3", "1"]),
                        arg([1]), arg([2]), arg([0])],
    "/stackgan_generate": [arg([CAPTION, ""]), arg(["nearest-neighbour + conv", "PixelShuffle (sub-pixel conv)"]),
                           arg([1, 3]), arg([0]), arg([True, False])],
    "/stackgan_random": [arg(["nearest-neighbour + conv"]), arg([0, 5])],
    "/metrics_compute": [arg(["Real MNIST training images (the floor)"]), arg(["classifier"]), arg([16, 20]),
                         arg([2]), arg([0])],
    # the 2-D playground: the sketch pad's value is sent as it is (preprocess=False), so it gets raw junk too
    "/toy2d_data": [arg(TOY_DATASETS), SKETCH, arg([0, 3])],
    "/toy2d_forward": [arg(TOY_DATASETS), SKETCH, arg(["linear (DDPM)", "cosine (improved DDPM)"]), arg([True, False]),
                       arg([0, 500, 999]), arg([0])],
    "/toy2d_train_ddpm": [arg(TOY_DATASETS), SKETCH, arg(["ε (epsilon)", "v (velocity)"]), arg([100]), arg([0])],
    "/toy2d_score_field": [arg(TOY_DATASETS), SKETCH, arg([1, 500]), arg(["ε (what the network outputs)"]),
                           arg([0, 4]), arg([0])],
    "/toy2d_gaussian_step": [arg(TOY_DATASETS), SKETCH, arg([0.0, 1.5]), arg([-1.0]), arg([1, 500]), arg([2, 1000]),
                             arg([0])],
    "/toy2d_train_gan": [arg(TOY_DATASETS), SKETCH, arg(["DD-GAN, 2 steps", "GAN (1 step)"]), arg([100]), arg([0])],
    "/toy2d_cfg": [arg(["red", "blue"]), arg([0, 3, 10]), arg([1, 500]), arg([0])],
}


def request(draw_args, files):
    return [handle_file(files[a[1]]) if isinstance(a, tuple) and a[0] == "IMAGE" else a for a in draw_args]


@pytest.mark.parametrize("api", list(ENDPOINTS))
def test_every_endpoint_survives_random_bad_input(api, client, files):
    strategies = [st.tuples(st.just("IMAGE"), image_key) if s == "IMAGE" else s for s in ENDPOINTS[api]]

    @settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.tuples(*strategies))
    def check(args):
        try:
            client.predict(*request(args, files), api_name=api)
        except Exception as exc:  # an error is fine if it is ours and says what is wrong
            text = str(exc)
            assert text.strip() and not any(a in text for a in ANONYMOUS), f"{api}{args}: unclear error {text!r}"

    check()
    # the server is still healthy: a valid request answers
    out = client.predict(handle_file(DIGIT), "linear (DDPM)", False, 10, 0, api_name="/forward_at_t")
    assert out and "t=10" in out[1]


# ---------------------------------------------------------------- raw payloads and restored settings
payload_value = st.one_of(junk, st.sampled_from(["/etc/hostname", "http://127.0.0.1:9/x.png", "../../app.py",
                                                 "file:///etc/hostname", DIGIT, "\x00", "~"]),
                          st.just({"_type": "gradio.FileData"}))
raw_payload = st.one_of(payload_value, st.dictionaries(st.sampled_from(["path", "url", "meta", "orig_name", "size"]),
                                                       payload_value, max_size=4),
                        st.lists(payload_value, max_size=3))


def test_raw_image_payloads_get_clear_messages(app_demo):
    """Any JSON where an upload belongs: refused with the app's own words, or (the shipped digit) used."""
    from gradio_raw import call, error_text
    demo, url = app_demo
    index = next(i for i, fn in demo.fns.items() if fn.api_name == "forward_at_t")

    @settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(raw_payload)
    def check(payload):
        out = call(url, index, [payload, "linear (DDPM)", False, 10, 0])
        if not out["success"]:
            text = error_text(out)
            assert text.strip() and not any(a in text for a in ANONYMOUS), f"{payload!r}: {out}"

    check()


settings_value = st.one_of(junk, st.lists(junk, max_size=3), st.dictionaries(st.text(max_size=4), junk, max_size=3),
                           st.text(min_size=0, max_size=40).map(lambda t: t + "<b>*[x](y)*</b>$$"))


@pytest.mark.parametrize("tab", ["ddpm", "cfg", "zero-snr", "text2img", "stackgan"])
def test_restore_survives_random_settings(app_demo, tmp_path, tab):
    """Random values for a tab's own setting names: the note stays short and escaped, and whatever is restored passes
    the check its control makes."""
    import json
    from PIL import Image, PngImagePlugin
    from gradio_raw import call, upload
    demo, url = app_demo
    index, drop = next((i, fn.fn.__self__) for i, fn in demo.fns.items()
                       if getattr(fn.fn, "__name__", "") == "restore" and fn.fn.__self__.tab == tab)

    @settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.dictionaries(st.sampled_from(drop.names), settings_value, min_size=1))
    def check(values):
        info = PngImagePlugin.PngInfo()
        info.add_text("diffusion-lab", json.dumps({"tab": tab, **values}))
        path = tmp_path / "settings.png"
        Image.new("L", (8, 8)).save(path, pnginfo=info)
        out = call(url, index, [upload(url, path)])
        assert out["success"], out
        *updates, note = out["output"]["data"]
        assert len(note) < 4000 and "<b>" not in note and "$$" not in note
        for name, update in zip(drop.names, updates):
            if isinstance(update, dict) and "value" in update:
                drop.checks[name](update["value"])  # raises if a value got through unchecked

    check()

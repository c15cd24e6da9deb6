"""Cross-attention maps (pipelines/ldm/attention_maps.py): the processor's maths, the store, the model and the tab."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from pipelines.checkpoints import CheckpointMissing
from pipelines.ldm.attention_maps import (AttentionRecorder, AttentionStore, attention_maps, capture,
                                          cross_attention_layers)


def tiny_unet(seed: int = 0) -> UNet2DConditionModel:
    """Cross-attention at two resolutions: 8×8 (down and up blocks) and 4×4 (the middle block)."""
    torch.manual_seed(seed)
    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=4).eval()


def _inputs(batch: int, length: int = 6, real: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, 4, 8, 8, generator=g)
    text = torch.randn(batch, length, 16, generator=g)
    mask = torch.zeros(batch, length)
    mask[:, :real] = 1                        # positions real … length − 1 are padding
    return z, text, mask


# ---------------------------------------------------------------- the processor's maths
def test_recorded_maps_are_a_hand_computed_softmax_and_the_output_is_unchanged():
    torch.manual_seed(0)
    attn = Attention(query_dim=8, cross_attention_dim=6, heads=2, dim_head=4).eval()
    h = torch.randn(2, 16, 8)                 # [uncond, cond] rows of the guidance batch, 4×4 pixels
    e = torch.randn(2, 5, 6)
    bias = torch.zeros(2, 1, 5)
    bias[:, :, -1] = -10000.0                 # the UNet's mask: the last position is padding
    store = AttentionStore(num_images=1, layers=1)
    with torch.no_grad():
        out = AttentionRecorder(store, AttnProcessor2_0())(attn, h, e, bias)
        fused = AttnProcessor2_0()(attn, h, e, bias)
        # by hand, the conditional row only: per head softmax(Q Kᵀ / √d + M), then the mean over the heads
        q = attn.to_q(h[1]).view(16, 2, 4).transpose(0, 1)          # (heads, pixels, d)
        k = attn.to_k(e[1]).view(5, 2, 4).transpose(0, 1)           # (heads, tokens, d)
        hand = torch.softmax(q @ k.transpose(1, 2) / 4 ** 0.5 + bias[1], dim=-1).mean(0)   # (pixels, tokens)
    torch.testing.assert_close(out, fused, atol=1e-5, rtol=1e-5)    # A V exactly as without the recorder
    recorded = store.maps()[0]                                      # (tokens, 4, 4)
    torch.testing.assert_close(recorded, hand.T.reshape(5, 4, 4), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(recorded.sum(0), torch.ones(4, 4))
    assert recorded[-1].max() < 1e-6                                # the masked padding gets nothing


def test_store_averages_layers_and_steps_and_keeps_sums_of_one():
    store = AttentionStore(num_images=1, layers=2)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):                      # 3 steps × (one 4×4 layer, one 2×2 layer)
        for hw in (16, 4):
            store.record(torch.softmax(torch.randn(1, hw, 7, generator=g), -1))
    assert store.steps == 3 and store.resolutions == [2, 4]
    for res in (None, 2, 4):
        for steps in (None, (1, 1), (0, 2)):
            total = store.maps(res, steps)[0].sum(0)
            torch.testing.assert_close(total, torch.ones_like(total), atol=1e-5, rtol=0)
    # the 4×4 maps of step 1 alone are that step's record
    assert torch.allclose(store.maps(4, (1, 1)), store.sums[1][4])
    with pytest.raises(ValueError, match="first"):
        store.maps(None, (2, 1))
    with pytest.raises(ValueError, match="4×4"):
        store.maps(8)


# ---------------------------------------------------------------- on a UNet
def test_unet_maps_sum_to_one_keep_the_conditional_half_and_processors_come_back():
    unet = tiny_unet()
    before = dict(unet.attn_processors)
    assert all(type(p) is AttnProcessor2_0 for p in before.values())
    z, text, mask = _inputs(1)
    _, other, other_mask = _inputs(1, seed=7)
    bias_mask = torch.cat([other_mask, mask])
    with torch.no_grad():
        plain = unet(torch.cat([z, z]), 10, encoder_hidden_states=torch.cat([other, text]),
                     encoder_attention_mask=bias_mask).sample
        with capture(unet, 1) as guided:          # [uncond, cond], as the guided predictor batches them
            assert all(type(unet.attn_processors[n]) is AttentionRecorder for n in cross_attention_layers(unet))
            assert all(type(p) is AttnProcessor2_0 for n, p in unet.attn_processors.items() if "attn1" in n)
            out = unet(torch.cat([z, z]), 10, encoder_hidden_states=torch.cat([other, text]),
                       encoder_attention_mask=bias_mask).sample
        with capture(unet, 1) as alone:           # the conditional pass alone (w = 1)
            unet(z, 10, encoder_hidden_states=text, encoder_attention_mask=mask)
    torch.testing.assert_close(out, plain, atol=1e-5, rtol=1e-4)   # recording does not change the prediction
    assert guided.resolutions == [4, 8] and guided.steps == 1 and guided.calls == len(cross_attention_layers(unet))
    for res in (None, 4, 8):
        m = guided.maps(res)[0]
        torch.testing.assert_close(m.sum(0), torch.ones_like(m[0]), atol=1e-5, rtol=0)
        assert m[4:].max() < 1e-6                                   # padding masked as the pipeline packs it
        torch.testing.assert_close(m, alone.maps(res)[0], atol=1e-5, rtol=1e-4)   # the cond half, not the uncond
    after = unet.attn_processors
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)


def test_another_threads_unet_calls_are_not_recorded():
    unet = tiny_unet()
    z, text, mask = _inputs(1)
    with torch.no_grad(), capture(unet, 1) as store:
        t = threading.Thread(target=lambda: unet(z, 10, encoder_hidden_states=text, encoder_attention_mask=mask))
        t.start()
        t.join()
        assert store.calls == 0
        unet(z, 10, encoder_hidden_states=text, encoder_attention_mask=mask)
        assert store.calls == len(cross_attention_layers(unet))


def test_stable_diffusion_path_on_a_tiny_random_checkpoint(tmp_path):
    from pipelines.ldm import pipeline as ldm
    from test_ldm import build_tiny_sd

    ldm.load_sd.cache_clear()
    model = ldm.load_sd(str(build_tiny_sd(tmp_path / "tiny-sd")), "cpu")
    r = attention_maps(model, "a red circle", seed=0, scale=3.0, steps=3)
    assert r.tokens[0] == "<|startoftext|>" and r.tokens[-1] == "<|endoftext|>" and "red</w>" in r.tokens
    assert r.length == 16 and r.resolutions == [4, 8] and r.steps == 3 and r.image.shape == (3, 16, 16)
    for res in (None, 4, 8):
        total = r.maps(res).sum(0)
        torch.testing.assert_close(total, torch.ones_like(total), atol=1e-5, rtol=0)   # padding read too: no mask
    assert all(type(p) is AttnProcessor2_0 for p in model.unet.attn_processors.values())
    ldm.load_sd.cache_clear()


# ---------------------------------------------------------------- the shipped model
@pytest.fixture(scope="module")
def shapes_model():
    from pipelines.ldm.pipeline import load_ldm
    try:
        return load_ldm(device="cpu")
    except CheckpointMissing as exc:
        pytest.skip(f"ldm-shapes not available: {exc}")


def test_shapes_model_maps_tokens_and_bad_prompts(shapes_model):
    from pipelines.text_encoder import load_text_encoder
    prompt = "a small magenta circle on the left, black background"   # magenta: mage ##nta
    r = attention_maps(shapes_model, prompt, seed=0, scale=3.0, steps=4)
    tok = load_text_encoder("cpu").tokenizer
    assert r.tokens == tok.convert_ids_to_tokens(tok(prompt)["input_ids"])   # exactly the tokenizer's split
    assert r.tokens[0] == "[CLS]" and r.tokens[-1] == "[SEP]" and any(t.startswith("##") for t in r.tokens)
    assert r.resolutions == [4, 8] and r.steps == 4 and len(r.timesteps) == 4
    m = r.maps()
    torch.testing.assert_close(m.sum(0), torch.ones_like(m[0]), atol=1e-5, rtol=0)
    assert m[len(r.tokens):].sum() < 1e-4                     # the padding is masked
    assert r.at_step(0).shape == m.shape and not torch.allclose(r.at_step(0), r.at_step(3))
    assert all(type(p) is AttnProcessor2_0 for p in shapes_model.unet.attn_processors.values())
    with pytest.raises(ValueError, match="empty prompt"):
        attention_maps(shapes_model, "   ", steps=2)
    with pytest.raises(ValueError, match="longer than the text encoder reads"):
        attention_maps(shapes_model, "a red circle " * 20, steps=2)
    with pytest.raises(ValueError, match="w = 0"):
        attention_maps(shapes_model, prompt, scale=0, steps=2)
    with pytest.raises(ValueError, match="at most 50 steps"):
        attention_maps(shapes_model, prompt, steps=60)


def test_measurement_mask_and_words(shapes_model):
    from pipelines.measure.attention_maps import caption_word, iou, otsu, shape_mask, word_positions
    from pipelines.shapes.data import render, sample_scene, item_rng, pil_to_tensor, to_float
    scene = sample_scene(item_rng("test", 3), shape="cross", colour="yellow", background="beige", size="large")
    image = to_float(pil_to_tensor(render(scene))[None])[0]
    mask = shape_mask(image)
    assert 0.05 < mask.float().mean() < 0.4 and not mask[0].any() and not mask[:, 0].any()
    caption = "a picture of a large yellow plus sign sitting in the middle against a beige backdrop"
    tokens = shapes_model.tokenize(caption)[0]
    assert caption_word(caption, "shape", "cross") == "plus sign"
    assert [tokens[i] for i in word_positions(shapes_model, tokens, "plus sign")] == ["plus", "sign"]
    assert iou(mask, mask) == 1.0 and iou(mask, ~mask) == 0.0
    assert otsu(torch.tensor([[0.0, 0.1], [0.9, 1.0]])).tolist() == [[False, False], [True, True]]


# ---------------------------------------------------------------- the tab, through gradio_client
def test_attention_endpoint_through_gradio_client(client):
    prompt = "a picture of a large red circle sitting in the middle against a white backdrop"
    picture, maps, legend, tokens, note, token, step, forming = client.predict(
        "Shapes LDM (trained here)", "", prompt, 0, 3.0, 6, "8×8", 2, 6, "one scale for every token",
        api_name="/text2img_attention")
    assert Path(picture).exists() and Path(legend).exists() and Path(forming).exists()
    assert len(maps) == 17 and maps[0]["caption"].startswith("0: [CLS]") and "red" in maps[6]["caption"]
    assert "[SEP]" in maps[-1]["caption"] and Path(maps[0]["image"]).exists()
    assert "17 tokens" in tokens and "steps 2–6" in note and "8×8" in note and step["value"] == 6


@pytest.mark.parametrize("prompt, resolution, message", [
    ("", "all layers", "empty prompt"),
    ("a red circle " * 20, "all layers", "longer than the text encoder reads"),
    ("a red circle", "16×16", "4×4, 8×8"),
])
def test_attention_endpoint_bad_input_clear_messages(client, prompt, resolution, message):
    with pytest.raises(Exception, match=message):
        client.predict("Shapes LDM (trained here)", "", prompt, 0, 3.0, 4, resolution, 1, 4,
                       "each map to its own maximum", api_name="/text2img_attention")

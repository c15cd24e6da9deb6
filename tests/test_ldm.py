"""Latent diffusion: the training commands (tiny, a few steps), the pipeline's five steps, real-SD loading through a
tiny randomly initialised Stable Diffusion built here, the text-to-image tab's input checks, and the shipped model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import gradio as gr
import pytest
import torch

from pipelines.checkpoints import CheckpointMissing
from pipelines.guidance import guided_predictor, two_pass_predictor
from pipelines.checkpoints import CheckpointCorrupt
from pipelines.ldm import pipeline as ldm
from pipelines.text_encoder import PACKAGE, load_text_encoder

PROMPT = "a picture of a large red circle sitting in the middle against a white backdrop"
NEGATIVE = "on a plain black background there is a small blue square on the left"
JUDGE = Path(__file__).resolve().parent.parent / "checkpoints" / "shapes-judge"


def _reset_accelerate():
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(True)


def _tiny_args(root: Path, *extra: str) -> list[str]:
    return ["--runs", str(root / "runs"), "--output", str(root / "ck" / "ldm-shapes"), "--mixed-precision", "no",
            *extra]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """A tiny ldm-shapes checkpoint made by the real training commands (2 VAE steps, 2 + 1 resumed UNet steps)."""
    from pipelines.ldm import train, vae

    root = tmp_path_factory.mktemp("ldm")
    (root / "ck").mkdir()
    if JUDGE.is_dir():  # the evaluation test scores with the shipped judge
        (root / "ck" / "shapes-judge").symlink_to(JUDGE)
    _reset_accelerate()
    vae.main(_tiny_args(root, "--steps", "2", "--batch-size", "8", "--train-images", "32", "--scale-images", "32",
                        "--test-images", "8", "--channels", "8,8,16", "--norm-groups", "4", "--save-every", "1"))
    unet_args = ["--batch-size", "8", "--train-images", "32", "--channels", "16,32", "--norm-groups", "8",
                 "--cross-levels", "1", "--heads", "2", "--save-every", "1"]
    for steps in ("2", "3"):  # the second run resumes the first
        _reset_accelerate()
        train.main(_tiny_args(root, "--steps", steps, *unet_args))
    return root


@pytest.fixture
def tiny(tiny_root, monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tiny_root / "ck"))
    ldm.load_ldm.cache_clear()
    yield ldm.load_ldm("ldm-shapes", "cpu")
    ldm.load_ldm.cache_clear()


# ---------------------------------------------------------------- what the training commands saved
def test_saved_scheduler_is_v_prediction_with_zero_terminal_snr(tiny_root):
    folder = tiny_root / "ck" / "ldm-shapes"
    sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert sched["prediction_type"] == "v_prediction" and sched["rescale_betas_zero_snr"] is True
    assert sched["timestep_spacing"] == "trailing" and sched["beta_schedule"] == "scaled_linear"
    from diffusers import DDPMScheduler
    assert DDPMScheduler.from_config(sched).alphas_cumprod[-1] < 1e-6   # ᾱ_T ≈ 0 (diffusers keeps 2^-24)
    record = json.loads((folder / "training_record.json").read_text())
    assert record["steps"] == 3 and record["sessions"] == 2   # the second run resumed the first's saved state
    assert record["p_uncond"] == 0.1 and record["zero_terminal_snr"] and record["prediction_type"] == "v_prediction"
    # the text encoder is named, not copied
    assert json.loads((folder / "text_encoder.json").read_text())["package"] == PACKAGE
    weights = {p.relative_to(folder).as_posix() for p in folder.rglob("*.safetensors")}
    assert weights == {"unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"}
    card = (folder / "README.md").read_text()
    assert "python -m pipelines.ldm.train" in card and PACKAGE in card


def test_flags_switch_the_schedule_back_to_sd_defaults():
    from pipelines.ldm.train import parse_args
    a = parse_args([])
    assert a.prediction_type == "v_prediction" and a.zero_snr and a.p_uncond == 0.1
    b = parse_args(["--prediction-type", "epsilon", "--no-zero-snr"])
    assert b.prediction_type == "epsilon" and not b.zero_snr


def test_latent_scaling_factor_is_measured_on_the_data(tiny_root):
    from pipelines.ldm.vae import encode_latents, latent_scaling_factor, load_autoencoder
    from pipelines.shapes.data import shapes_tensors

    folder = tiny_root / "ck" / "ldm-shapes" / "vae"
    vae = load_autoencoder(folder).eval()
    images, _, _ = shapes_tensors("train", 32)
    stored = vae.config.scaling_factor
    assert stored != pytest.approx(0.18215)   # not the AutoencoderKL default (SD's own figure)
    assert json.loads((folder / "training_record.json").read_text())["scaling_factor"] == pytest.approx(stored)
    # recomputed from the saved weights and the same images and seed: s = 1 / std(z), z ~ q(z | x)
    assert latent_scaling_factor(vae, images, seed=0)["scaling_factor"] == pytest.approx(stored, rel=1e-4)
    mean, std = encode_latents(vae, images)
    z = mean + std * torch.randn(mean.shape, generator=torch.Generator().manual_seed(0))
    assert (z * stored).std().item() == pytest.approx(1.0, rel=1e-4)


# ---------------------------------------------------------------- the pipeline's steps
def test_negative_prompt_replaces_the_unconditional_embedding(tiny):
    encoder = load_text_encoder("cpu")
    e = tiny.encode_prompt(PROMPT, NEGATIVE, 3)
    neg = encoder.encode([NEGATIVE])
    assert e.uncond.shape == e.cond.shape == (3, 32, 384)
    assert e.uncond.dtype == e.cond.dtype and e.uncond.device == e.cond.device
    torch.testing.assert_close(e.uncond, neg.hidden.expand(3, -1, -1))
    assert torch.equal(e.uncond_mask, neg.mask.expand(3, -1))
    torch.testing.assert_close(e.cond, encoder.encode([PROMPT]).hidden.expand(3, -1, -1))
    plain = tiny.encode_prompt(PROMPT, "", 3)   # no negative prompt: the empty prompt's states, as in training
    torch.testing.assert_close(plain.uncond, encoder.encode([""]).hidden.expand(3, -1, -1))
    # and it is what guidance uses: at w = 3 the negative prompt changes the images, at w = 1 (cond only) it cannot
    kw = dict(steps=2, num_images=1, seed=5)
    assert not torch.allclose(tiny.generate(PROMPT, negative_prompt=NEGATIVE, scale=3.0, **kw),
                              tiny.generate(PROMPT, scale=3.0, **kw))
    torch.testing.assert_close(tiny.generate(PROMPT, negative_prompt=NEGATIVE, scale=1.0, **kw),
                               tiny.generate(PROMPT, scale=1.0, **kw))


def test_cfg_in_one_batched_pass_equals_two_passes(tiny):
    calls = []

    def forward(z, t, c):
        calls.append(len(z))
        return tiny.forward(z, t, c)

    cond, uncond = tiny.encode_prompt(PROMPT, NEGATIVE, 2).conditions()
    z, t = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1)), torch.tensor(700)
    batched = guided_predictor(forward, cond, uncond, 4.0, 0.5)(z, t)
    assert calls == [4], "cond and uncond must run as ONE UNet call over a doubled batch"
    from pipelines.guidance import cfg_combine
    c, u = forward(z, t, cond), forward(z, t, uncond)
    torch.testing.assert_close(batched, cfg_combine(c, u, 4.0, 0.5), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(two_pass_predictor(forward, cond, uncond, 4.0)(z, t), cfg_combine(c, u, 4.0),
                               rtol=1e-4, atol=1e-5)
    assert not torch.allclose(batched, c, atol=1e-4)


def test_frames_stream_latents_and_decoded_predictions_seeded(tiny):
    run = tiny.frames(PROMPT, scale=3.0, sampler="DPM-Solver++ (multistep)", steps=3, num_images=2, seed=7)
    steps = list(run)
    assert [s.i for s in steps] == [0, 1, 2] and steps[0].t == 999   # trailing: starts at t = T
    assert steps[-1].x.shape == steps[-1].denoised.shape == (2, 4, 16, 16)
    assert tiny.decode(steps[-1].denoised).shape == (2, 3, 64, 64)
    view = ldm.channel_view(steps[0].x)
    assert view.shape == (2, 4, 16, 16) and view.abs().max() <= 1
    again = tiny.generate(PROMPT, scale=3.0, sampler="DPM-Solver++ (multistep)", steps=3, num_images=2, seed=7)
    torch.testing.assert_close(tiny.decode(steps[-1].x), again)            # same seed, same images
    # z_T is the seeded CPU draw
    torch.testing.assert_close(tiny.initial_latents(7, 2), torch.randn(2, 4, 16, 16,
                                                                        generator=torch.Generator().manual_seed(7)))


def test_controls_map_onto_the_scheduler_config(tiny):
    s, notes = tiny.make_scheduler("DDIM", zero_snr=False, spacing="leading")
    assert not s.config.rescale_betas_zero_snr and s.config.timestep_spacing == "leading"
    assert s.config.prediction_type == "v_prediction" and notes   # the checkpoint's, and a note on the mismatch
    s, notes = tiny.make_scheduler("DPM-Solver++ (multistep)")
    assert s.config.rescale_betas_zero_snr and s.config.timestep_spacing == "trailing" and not notes
    with pytest.raises(ValueError, match="Sampler"):
        tiny.make_scheduler("Euler")


def test_seed_slerp_endpoints_and_strips(tiny):
    za, zb = tiny.initial_latents(3, 1), tiny.initial_latents(4, 1)
    path = ldm.seed_slerp(za, zb, 5)
    torch.testing.assert_close(path[0], za[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(path[-1], zb[0], atol=1e-5, rtol=1e-5)
    norms = path.flatten(1).norm(dim=1)
    assert (norms > 0.9 * min(za.norm(), zb.norm())).all()   # stays on the shell (a lerp midpoint is ~0.7x)
    kw = dict(scale=3.0, steps=2)
    strip, _ = tiny.interpolate_seeds(PROMPT, 3, 4, 3, **kw)
    torch.testing.assert_close(strip[0], tiny.generate(PROMPT, num_images=1, seed=3, **kw)[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(strip[-1], tiny.generate(PROMPT, num_images=1, seed=4, **kw)[0], atol=1e-4, rtol=1e-4)
    strip, _ = tiny.interpolate_prompts(PROMPT, NEGATIVE, 3, seed=2, **kw)
    torch.testing.assert_close(strip[0], tiny.generate(PROMPT, num_images=1, seed=2, **kw)[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(strip[-1], tiny.generate(NEGATIVE, num_images=1, seed=2, **kw)[0], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="between 2 and"):
        tiny.interpolate_seeds(PROMPT, 0, 1, 1)


def test_prompt_notes_for_empty_long_and_non_ascii(tiny):
    assert any("unconditional" in n for n in tiny.encode_prompt("", "", 1).notes)
    assert any("truncated" in n for n in tiny.encode_prompt("red " * 60, "", 1).notes)
    assert any("non-ASCII" in n for n in tiny.encode_prompt("un carré rouge 🟥", "", 1).notes)
    assert any(n.startswith("The negative prompt") and "truncated" in n
               for n in tiny.encode_prompt(PROMPT, "blue " * 60, 1).notes)
    with pytest.raises(ValueError, match="must be text"):
        tiny.encode_prompt(None, "", 1)


def test_benchmark_rows_split_text_unet_and_vae(tiny, monkeypatch):
    """Each part of the guided batch is timed (all take time), and the table has the two-pass baseline and the
    batched-CFG speed-up row, with a ratio the markdown prints."""
    from argparse import Namespace

    from pipelines.measure import benchmark as bench
    assert bench.BENCHMARKS["ldm"] is bench.bench_ldm_rows
    r = bench.bench_ldm(num_images=4, steps=2, threads=torch.get_num_threads(), repeats=1)
    assert r["images"] == 4 and r["steps"] == 2
    assert all(r[f"{part}_seconds"] > 0 for part in ("text", "unet", "vae", "unet_two_pass")), r
    monkeypatch.setattr(bench, "bench_ldm", lambda **_: r)   # the table of that very measurement
    rows = bench.bench_ldm_rows(Namespace(threads=1, repeats=1))
    assert all(row["seconds"] > 0 for row in rows if "seconds" in row)
    assert any(row["name"].startswith("baseline: Shapes LDM") and "2 separate UNet passes" in row["name"]
               for row in rows)
    (ratio,) = [row for row in rows if "ratio" in row and "batched CFG" in row["name"]]
    assert "batched CFG" in ratio["name"] and 0 < ratio["ratio"] < float("inf")
    (line,) = [line for line in bench.markdown(rows, "").splitlines() if line.startswith(f"| {ratio['name']} |")]
    assert line.endswith("× |") and float(line.split("|")[-2].strip().rstrip("×")) > 0


def test_evaluation_sweeps_held_out_prompts(tiny):
    if not JUDGE.is_dir():
        pytest.skip("the shapes judge is not trained")
    from pipelines.measure import ldm as evaluate
    from pipelines.shapes.data import HELDOUT_TEMPLATES, TRAIN_TEMPLATES, heldout_prompts

    captions, labels = heldout_prompts(6)
    assert len(labels) == 6 and all(set(lab) == {"shape", "colour", "size", "position", "background"} for lab in labels)
    starts = {t.split("{")[0] for t in HELDOUT_TEMPLATES}
    assert all(any(c.startswith(s) for s in starts) for c in captions)
    assert not set(captions) & {t for t in TRAIN_TEMPLATES}
    doc = evaluate.evaluate(n=4, steps=2, scales=(0, 3), log=lambda *_: None)
    assert [r["w"] for r in doc["sweep"]] == [0, 3] and doc["best_scale"] in (0, 3)
    assert doc["real"]["all"] >= 0.75   # the judge reads real images; a 3-step model is not expected to score
    # each row is the judge's reading of what the model draws for those 4 prompts (one batch: seed 0·1000 + 0)
    from pipelines.shapes.geometry import GeometryJudge
    from pipelines.shapes.judge import load_judge
    judge, (prompts, wanted) = load_judge("cpu"), heldout_prompts(4, 0)
    for row in doc["sweep"]:
        images = tiny.generate(prompts, scale=row["w"], sampler="DDIM", steps=2, num_images=4, seed=0)
        expected = judge.score(images, wanted)
        assert {k: row[k] for k in expected} == pytest.approx(expected), (row, expected)
        assert row["geometry"] == pytest.approx(GeometryJudge().score(images, wanted))
    assert doc["target_met"] is False   # three training steps cannot draw the asked shape and colour 90% of the time
    # the geometric judge: validated on real renders, and it reads the 4 real images right
    assert doc["geometry"]["validation"]["all"] >= 0.99 and doc["bar_met"]["validation"]
    assert doc["geometry"]["real"]["all"] == 1.0
    assert doc["bar_met"]["best"] is False and doc["geometry"]["least_of_both"] == evaluate.worst_of_both(
        next(r for r in doc["sweep"] if r["w"] == doc["best_scale"]))
    rows = evaluate.rows(doc)
    assert len(rows) == 2 + 2 + 1 + 1 + 2 + 2 + 1 and "misses" in rows[4]["value"] and "misses" in rows[-1]["value"]


# ---------------------------------------------------------------- missing and corrupt folders
def test_missing_and_corrupt_shapes_checkpoints(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tmp_path))
    ldm.load_ldm.cache_clear()
    with pytest.raises(CheckpointMissing, match="python -m pipelines.ldm.train"):
        ldm.load_ldm("ldm-shapes", "cpu")
    broken = tmp_path / "ldm-shapes"
    shutil.copytree(tiny_root / "ck" / "ldm-shapes", broken)
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointCorrupt, match="could not be loaded.*Retrain"):
        ldm.load_ldm("ldm-shapes", "cpu")
    shutil.rmtree(broken / "vae")
    with pytest.raises(CheckpointCorrupt, match="incomplete"):
        ldm.load_ldm("ldm-shapes", "cpu")
    assert ldm.load_ldm.cache_info().currsize == 0   # nothing half-loaded is kept
    ldm.load_ldm.cache_clear()


# ---------------------------------------------------------------- real Stable Diffusion, as a tiny random one
def build_tiny_sd(folder: Path, prediction_type: str = "v_prediction") -> Path:
    """A randomly initialised Stable Diffusion pipeline in diffusers' layout. No CLIP tokenizer files exist offline,
    so its byte-pair vocabulary is made here from a few words."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    words = "a red blue green circle square on the left right black white background".split()
    vocab, merges = {"<|startoftext|>": 0, "<|endoftext|>": 1}, []
    chars = sorted(set("".join(words)))
    for token in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(token, len(vocab))
    for w in words:  # merge each word left to right: r+e, re+d</w>
        parts = list(w[:-1]) + [w[-1] + "</w>"]
        while len(parts) > 1:
            merges.append(f"{parts[0]} {parts[1]}")
            vocab.setdefault(parts[0] + parts[1], len(vocab))
            parts = [parts[0] + parts[1]] + parts[2:]
    tok_dir = folder.parent / "tokenizer-files"
    tok_dir.mkdir(parents=True, exist_ok=True)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n")
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=16)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                        sample_size=16, layers_per_block=1)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=16,
                                        bos_token_id=0, eos_token_id=1, pad_token_id=1))
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1, prediction_type=prediction_type)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


def test_tiny_stable_diffusion_round_trip_matches_diffusers(tiny_sd):
    from diffusers import StableDiffusionPipeline

    ldm.load_sd.cache_clear()
    model = ldm.load_sd(str(tiny_sd), "cpu")
    assert model.kind == "stable-diffusion" and not model.uses_mask and model.dtype == torch.float32
    assert model.image_size == 16 and model.prediction_type == "v_prediction"
    assert ldm.sd_dtype(torch.device("cuda")) == torch.float16 and ldm.sd_dtype(torch.device("cpu")) == torch.float32
    e = model.encode_prompt("a red circle on the left", "blue square", 2)
    assert e.cond.shape == e.uncond.shape == (2, 16, 16) and e.cond_mask is None
    # our five steps against diffusers' own StableDiffusionPipeline.__call__, same z_T, w and φ (guidance_rescale)
    ours = model.generate("a red circle on the left", negative_prompt="blue square", scale=3.0, rescale=0.5,
                          sampler="DDIM", steps=3, num_images=1, seed=11)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe("a red circle on the left", negative_prompt="blue square", num_inference_steps=3,
                  guidance_scale=3.0, guidance_rescale=0.5, latents=model.initial_latents(11, 1),
                  output_type="pt").images
    torch.testing.assert_close((ours + 1) / 2, theirs, atol=2e-4, rtol=1e-3)
    # the toggles land in its scheduler config
    s, notes = model.make_scheduler("DPM-Solver++ (multistep)", zero_snr=True, spacing="trailing")
    assert s.config.rescale_betas_zero_snr and s.config.timestep_spacing == "trailing" and notes
    assert s.config.prediction_type == "v_prediction"
    ldm.load_sd.cache_clear()


def test_stable_diffusion_missing_or_corrupt_gives_clear_messages(tiny_sd, tmp_path):
    ldm.load_sd.cache_clear()
    with pytest.raises(ldm.StableDiffusionMissing, match="hf download"):
        ldm.load_sd(str(tmp_path / "no-such-folder"), "cpu")
    with pytest.raises(ldm.StableDiffusionMissing, match="not on this machine.*offline"):
        ldm.load_sd("someone/not-downloaded-sd", "cpu")
    with pytest.raises(CheckpointCorrupt, match="model_index.json"):
        ldm.load_sd(str(tmp_path), "cpu")
    broken = tmp_path / "broken-sd"
    shutil.copytree(tiny_sd, broken)
    (broken / "unet" / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointCorrupt, match="could not be loaded"):
        ldm.load_sd(str(broken), "cpu")
    assert ldm.load_sd.cache_info().currsize == 0


# ---------------------------------------------------------------- the tab
def _run(gen):
    return list(gen)[-1]


def _no_progress(*args, **kwargs):
    return None


def test_tab_builds_and_explains_a_missing_checkpoint(tmp_path, monkeypatch):
    from demos import text2img
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tmp_path))
    ldm.load_ldm.cache_clear()
    with gr.Blocks() as demo:
        hooks = text2img.build()
    names = {d.get("api_name") for d in demo.config["dependencies"]}
    assert {"text2img_generate", "text2img_sweep", "text2img_interpolate"} <= names and hooks["load"]
    # one step limit: the tab's steps sliders end where the pipeline's check does (100: the hardening test's
    # 100-step request must be refused for its cost, not its range)
    from demos.i18n import resolve  # the labels are translation keys: their English text
    labels = {id(c): resolve(c["props"]["label"], "en") for c in demo.config["components"] if c["props"].get("label")}
    steps_max = {labels[id(c)]: c["props"]["maximum"] for c in demo.config["components"]
                 if labels.get(id(c)) in ("Steps", "DDIM steps")}
    assert steps_max == {"Steps": ldm.MAX_STEPS, "DDIM steps": ldm.MAX_STEPS} and ldm.MAX_STEPS == 100
    assert "Train it with" in text2img.model_info() and "python -m pipelines.ldm.vae" in text2img.model_info()
    with pytest.raises(gr.Error, match="python -m pipelines.ldm.train"):
        _run(text2img.generate(text2img.SHAPES, "", PROMPT, "", 3, 0, "DDIM", 2, 1, 0, text2img.OWN, text2img.OWN,
                               progress=_no_progress))


GOOD = dict(model_choice="Shapes LDM (trained here)", sd_spec="", prompt=PROMPT, negative_prompt="", scale=3,
            rescale=0.0, sampler="DDIM", steps=2, num_images=1, seed=0, zero_snr="the model's own",
            spacing="the model's own")


@pytest.mark.parametrize("change, message", [
    (dict(scale=99), "CFG scale w must be between"),
    (dict(scale="lots"), "must be a number"),
    (dict(steps=0), "Steps must be between"),
    (dict(steps=ldm.MAX_STEPS + 1), f"Steps must be between 1 and {ldm.MAX_STEPS}"),
    (dict(num_images=10_000), "Number of images"),
    (dict(sampler="Euler"), "Sampler must be one of"),
    (dict(seed=-1), "Seed must be between"),
    (dict(rescale=2), "rescale"),
    (dict(zero_snr=True), "Zero terminal SNR must be one of"),
    (dict(spacing="backwards"), "Timestep spacing must be one of"),
    (dict(prompt=12), "must be text"),
    (dict(prompt="x" * 30_000), "characters long"),
    (dict(model_choice="Imagen"), "Model must be one of"),
    (dict(model_choice="Stable Diffusion (local folder or hub id)"), "Type a Stable Diffusion checkpoint"),
    (dict(model_choice="Stable Diffusion (local folder or hub id)", sd_spec="/no/such/folder"),
     "does not load Stable Diffusion checkpoints"),  # loading by name is opt-in (app.py --allow-sd)
])
def test_tab_rejects_bad_input_clearly(tiny, change, message):
    from demos import text2img
    with pytest.raises(gr.Error, match=message):
        _run(text2img.generate(**dict(GOOD, **change), progress=_no_progress))


def test_tab_with_sd_allowed_says_what_to_download(tiny, monkeypatch):
    from demos import text2img
    monkeypatch.setenv(text2img.ALLOW_SD_ENV, "1")
    with pytest.raises(gr.Error, match="hf download"):
        _run(text2img.generate(**dict(GOOD, model_choice=text2img.SD, sd_spec="/no/such/folder"), progress=_no_progress))


def test_tab_notes_empty_long_and_non_ascii_prompts(tiny):
    from demos import text2img
    from pipelines import infotext

    live, final, status, *_ = _run(text2img.generate(**dict(GOOD, prompt=""), progress=_no_progress))
    assert "unconditional" in status and final.size == (192, 192)
    assert infotext.read(infotext.png_bytes(final))["prompt"] == ""
    _, _, status, *_ = _run(text2img.generate(**dict(GOOD, prompt="red " * 80), progress=_no_progress))
    assert "truncated" in status
    _, _, status, *_ = _run(text2img.generate(**dict(GOOD, prompt="un cercle rouge 🔴"), progress=_no_progress))
    assert "non-ASCII" in status


def test_tab_sweep_and_strips(tiny):
    from demos import text2img
    img, note = text2img.sweep(text2img.SHAPES, "", PROMPT, "", "0, 3", 2, 2, 0, progress=_no_progress)
    assert img.width > img.height and "CFG sweep" in note
    with pytest.raises(gr.Error, match="at least one guidance scale"):
        text2img.sweep(text2img.SHAPES, "", PROMPT, "", " , ", 2, 2, 0, progress=_no_progress)
    strip, note = text2img.interpolate(text2img.SHAPES, "", text2img.INTERP_MODES[1], PROMPT, "", "", 0, 1, 3, 3, 2,
                                       progress=_no_progress)
    assert "slerp" in note and strip.width > 2 * strip.height
    with pytest.raises(gr.Error, match="Frames must be between"):
        text2img.interpolate(text2img.SHAPES, "", text2img.INTERP_MODES[0], PROMPT, NEGATIVE, "", 0, 1, 50, 3, 2,
                             progress=_no_progress)


# ---------------------------------------------------------------- the shipped checkpoint
@pytest.fixture(scope="module")
def shipped():
    ldm.load_ldm.cache_clear()
    return ldm.load_ldm("ldm-shapes", "cpu")     # shipped: a missing checkpoint fails here


def test_shipped_model_follows_held_out_prompts(shipped):
    """A bound on a small sample: 16 held-out prompts at the measured best scale (w = 3 if unmeasured)."""
    from pipelines.measure.ldm import generate_for
    from pipelines.shapes.data import heldout_prompts
    from pipelines.shapes.judge import load_judge

    doc = json.loads((shipped.path / "metrics.json").read_text()).get("adherence", {}) \
        if (shipped.path / "metrics.json").exists() else {}
    captions, labels = heldout_prompts(16, seed=1)   # other prompts than the evaluation's
    acc = load_judge("cpu").score(generate_for(shipped, captions, doc.get("best_scale", 3), 20, seed=1), labels)
    # measured on 240 prompts: 0.97 / 0.91 at w = 3 (6,000 UNet steps); 16 prompts: standard error ≈ 0.05 / 0.07
    assert acc["shape"] >= 0.75 and acc["colour"] >= 0.75, acc   # this sample: 0.875 / 0.94
    assert shipped.prediction_type == "v_prediction" and shipped.zero_snr


def test_shipped_model_meets_the_adherence_target(shipped):
    """The card's measurement (240 held-out prompts) of these very weights meets issue 6's target."""
    doc = json.loads((shipped.path / "metrics.json").read_text())["adherence"]
    assert doc["weights"] == shipped.weights_hash, "the card measured other weights: re-run pipelines.measure.ldm"
    assert doc["target_met"] and doc["best"]["shape"] >= 0.9 and doc["best"]["colour"] >= 0.9

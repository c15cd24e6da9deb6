"""StackGAN: the lesson's maths (conditioning augmentation, KL, matching-aware loss, PixelShuffle), the training
command (tiny, a few steps, resumed), the sampling pipeline, the tab's input checks, and the shipped checkpoints."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
import torch

from pipelines.shapes.diversity import pairwise_rms, real_groups, within_prompt_diversity
from pipelines.stackgan import STAGE1, STAGE2, STAGE2_PIXELSHUFFLE
from pipelines.stackgan import model as M
from pipelines.measure.stackgan_diagnose import diagnose

ROOT = Path(__file__).resolve().parent.parent
JUDGE = ROOT / "checkpoints" / "shapes-judge"


# ----------------------------------------------------------------------------- the maths
def test_networks_produce_the_stage_resolutions_and_one_logit_per_pair():
    torch.manual_seed(0)
    z, phi = torch.randn(5, 64), torch.randn(5, 384)
    g0, d0 = M.StageIGenerator().eval(), M.StageIDiscriminator().eval()
    sketch, mu, logvar = g0(z, phi)
    assert sketch.shape == (5, 3, 32, 32) and mu.shape == logvar.shape == (5, 64)
    assert sketch.abs().max() <= 1 and d0(sketch, phi).shape == (5,)
    for up in M.UPSAMPLES:
        g, d = M.StageIIGenerator(upsample=up).eval(), M.StageIIDiscriminator().eval()
        image = g(sketch, phi)[0]
        assert image.shape == (5, 3, 64, 64) and d(image, phi).shape == (5,)


def test_pixelshuffle_block_moves_channel_groups_into_pixel_blocks():
    """(B, C·r², H, W) -> (B, C, H·r, W·r): output pixel (2h + i, 2w + j) of channel c is input channel c·4 + 2i + j."""
    x = torch.arange(2 * 8 * 3 * 3, dtype=torch.float32).view(2, 8, 3, 3)
    y = torch.nn.PixelShuffle(2)(x)
    assert y.shape == (2, 2, 6, 6)
    assert y[1, 1, 2 * 1 + 1, 2 * 2 + 0] == x[1, 1 * 4 + 2 * 1 + 0, 1, 2]
    block = M.upsample_block(16, 8, "pixelshuffle")
    assert isinstance(block[1], torch.nn.PixelShuffle) and block[0].out_channels == 8 * 4
    assert block(torch.randn(2, 16, 4, 4)).shape == M.upsample_block(16, 8, "nearest")(torch.randn(2, 16, 4, 4)).shape
    with pytest.raises(ValueError, match="upsample"):
        M.upsample_block(16, 8, "bicubic")


def test_conditioning_augmentation_samples_around_mu_and_its_kl_is_the_closed_form():
    torch.manual_seed(0)
    ca, phi = M.ConditioningAugmentation(384, 16), torch.randn(4, 384)
    c0, mu, logvar = ca(phi, eps=torch.zeros(4, 16))
    assert torch.equal(c0, mu)                                    # ε = 0: ĉ = μ
    c1, _, _ = ca(phi)
    c2, _, _ = ca(phi)
    assert not torch.allclose(c1, c2)                             # a fresh ε each call
    p = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    q = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(p, q).sum(1).mean()
    assert torch.allclose(M.kl_to_standard_normal(mu, logvar), expected, atol=1e-5)
    assert M.kl_to_standard_normal(torch.zeros(3, 8), torch.zeros(3, 8)).item() == 0
    c1.sum().backward()                                           # reparameterisation: gradients reach μ and σ
    assert ca.fc.weight.grad is not None and ca.fc.weight.grad.abs().sum() > 0


def test_text_statistics_standardise_phi_inside_both_networks():
    torch.manual_seed(0)
    phi = 0.7 + 0.03 * torch.randn(500, 384)                      # like MiniLM here: similar captions
    g, d = M.StageIGenerator(), M.StageIDiscriminator()
    assert torch.equal(g.ca.standardise(phi), phi)                # identity until set
    M.set_text_statistics(g, phi), M.set_text_statistics(d, phi)
    for net in (g, d):
        std = next(m for m in net.modules() if isinstance(m, M.Standardise))(phi)
        assert std.mean().abs() < 1e-4 and (std.std(0) - 1).abs().max() < 1e-3
    assert "ca.standardise.mean" in g.state_dict()                # saved with the weights


class _Scripted(torch.nn.Module):
    """A 'discriminator' whose logit is +a for a matching pair of a real image, −a otherwise (known answers)."""

    def __init__(self, a: float):
        super().__init__()
        self.a = a

    def forward(self, image, phi):
        real = image.flatten(1).mean(1) > 0          # real images here are +1, fakes −1
        match = phi[:, 0] == torch.arange(1, len(phi) + 1, dtype=phi.dtype)   # image i goes with φ_i = i + 1
        return torch.where(real & match, self.a, -self.a) * torch.ones(len(image))


def test_matching_aware_discriminator_loss_has_the_three_terms():
    n = 4
    real, fake = torch.ones(n, 3, 8, 8), -torch.ones(n, 3, 8, 8)
    phi = torch.arange(1, n + 1, dtype=torch.float32)[:, None].repeat(1, 3)   # φ_i "matches" real image i
    assert torch.equal(M.mismatched(phi), phi.roll(1, 0))
    loss, probs = M.discriminator_loss(_Scripted(5.0), real, fake, phi)
    # a perfect D: real+matching -> σ(5), mismatched -> σ(−5), fake -> σ(−5)
    sp = torch.nn.functional.softplus(torch.tensor(-5.0)).item()           # −log σ(5) = −log(1 − σ(−5))
    assert loss.item() == pytest.approx(sp + 0.5 * (sp + sp), rel=1e-5)
    assert probs["d_real"] > 0.99 and probs["d_wrong"] < 0.01 and probs["d_fake"] < 0.01
    loss_bad, _ = M.discriminator_loss(_Scripted(-5.0), real, fake, phi)   # a D that says the opposite
    assert loss_bad > 5 * loss


def test_generator_loss_is_non_saturating_plus_lambda_kl():
    mu, logvar = torch.full((4, 8), 0.5), torch.zeros(4, 8)
    fake, phi = -torch.ones(4, 3, 8, 8), torch.ones(4, 3)
    loss, parts = M.generator_loss(_Scripted(5.0), fake, phi, mu, logvar, kl_weight=2.0)
    kl = 0.5 * 8 * 0.25
    assert parts["kl"] == pytest.approx(kl)
    assert parts["g_adv"] == pytest.approx(torch.nn.functional.softplus(torch.tensor(5.0)).item(), rel=1e-5)
    assert loss.item() == pytest.approx(parts["g_adv"] + 2.0 * kl / 8, rel=1e-5)   # λ · KL per dimension of ĉ


def test_architecture_summary_counts_every_parameter():
    g = M.StageIIGenerator()
    text = M.architecture_summary(g, "G")
    assert text.startswith(f"G: {M.count_parameters(g):,} parameters")
    parts = sum(int(line.split(": ")[1].replace(",", "")) for line in text.splitlines()[1:]
                if line.startswith("  ") and not line.startswith("    "))
    assert parts == M.count_parameters(g)


# ----------------------------------------------------------------------------- diversity and diagnosis
def test_diversity_is_zero_for_copies_and_positive_for_real_renders():
    same = torch.rand(1, 3, 8, 8).expand(4, -1, -1, -1)
    assert pairwise_rms(same) == 0
    assert pairwise_rms(torch.stack([torch.ones(3, 2, 2), -torch.ones(3, 2, 2)])) == pytest.approx(2.0)
    real = real_groups([{"shape": 0, "colour": 1, "size": 0, "position": 2, "background": 3}] * 2, 4, 32)
    assert real.shape == (2, 4, 3, 32, 32) and within_prompt_diversity(real) > 0.05
    with pytest.raises(ValueError):
        pairwise_rms(torch.zeros(1, 3, 4, 4))


def test_diagnosis_reports_collapse_only_when_diversity_falls():
    curves = {"d_fake": [[1, 0.5], [100, 0.3]], "g_grad_norm": [[1, 2.0], [100, 1.0]],
              "d_loss": [[1, 1.3], [50, 1.2], [100, 1.1], [150, 1.0]]}
    healthy = {"probes": [{"step": s, "all": a, "shape": a, "colour": a, "diversity": 0.3}
                          for s, a in ((1, 0), (50, .2), (100, .4), (150, .5))], "curves": curves}
    collapsed = {"probes": [dict(p, diversity=0.01) for p in healthy["probes"]], "curves": curves}
    found = {f.failure: f for f in diagnose(healthy, real_diversity=0.35)}
    assert not found["mode collapse"].seen and not found["non-convergence"].seen
    assert "0.350" in found["mode collapse"].evidence
    assert {f.failure: f for f in diagnose(collapsed, 0.35)}["mode collapse"].seen
    swinging = {"probes": healthy["probes"] + [{"step": 200, "all": 0.5, "shape": 0.5, "colour": 0.2, "diversity": 0.3}],
                "curves": curves}
    found = {f.failure: f for f in diagnose(swinging, 0.35)}["non-convergence"]
    assert found.seen and "step 200 (colour −0.30)" in found.evidence
    assert "ABOVE real" in {f.failure: f for f in diagnose(healthy, 0.1)}["mode collapse"].evidence


def test_the_projection_term_adds_the_inner_product_of_text_and_pooled_image_features():
    torch.manual_seed(0)
    head = M.MatchingLogit(8, text_dim=6, text_dim_out=4, sn=False, projection=True).eval()
    features, phi = torch.randn(3, 8, 4, 4), torch.randn(3, 6)
    t = head.text(phi)
    paper = head.joint(torch.cat([features, t[:, :, None, None].expand(-1, -1, 4, 4)], 1)).flatten()
    bilinear = torch.einsum("bc,bc->b", t @ head.project.weight.T, features.sum((2, 3)))
    assert torch.allclose(head(features, phi), paper + bilinear, atol=1e-5)
    assert M.StageIDiscriminator(ndf=8).config.get("projection") is None        # the paper's head by default
    assert M.StageIIDiscriminator(ndf=8, projection=True).config["projection"] is True


def test_the_sketch_skip_makes_stage_ii_a_correction_to_the_up_sampled_sketch():
    torch.manual_seed(0)
    G = M.StageIIGenerator(ngf=8, sketch_skip=True).eval()
    sketch, phi = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 384)
    with torch.no_grad():
        G.to_rgb[0].weight.zero_(), G.to_rgb[0].bias.zero_()        # no correction: the sketch, up-sampled
        out, _, _ = G(sketch, phi)
    up = torch.nn.functional.interpolate(sketch, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(out, 0.99 * up, atol=1e-5)
    with torch.no_grad():
        G.to_rgb[0].bias.fill_(0.5)                                 # a correction moves it, inside (-1, 1)
        moved, _, _ = G(sketch, phi)
    assert (moved > out).all() and moved.abs().max() < 1
    assert "sketch_skip" not in M.StageIIGenerator(ngf=8).config    # the paper's decoder by default


def test_a_hard_negative_changes_exactly_the_one_attribute():
    import numpy as np
    from pipelines.shapes.data import ATTRIBUTE_NAMES, BACKGROUNDS, COLOURS
    from pipelines.stackgan.negatives import changed, hard_negative_captions, names
    labels = torch.tensor([[0, 1, 0, 2, 3], [3, 5, 1, 0, 0]])
    rng = np.random.default_rng(0)
    for row in labels:
        attrs = names(row)
        for a in ATTRIBUTE_NAMES:
            new = changed(attrs, a, rng)
            assert new[a] != attrs[a] and {k: v for k, v in new.items() if k != a} == \
                {k: v for k, v in attrs.items() if k != a}
    captions = hard_negative_captions(labels, seed=0)
    assert len(captions) == 2 * len(ATTRIBUTE_NAMES)
    col, bg = ATTRIBUTE_NAMES.index("colour"), ATTRIBUTE_NAMES.index("background")
    for i, row in enumerate(labels):
        attrs = names(row)
        colour_caption, bg_caption = captions[i * 5 + col], captions[i * 5 + bg]
        assert attrs["colour"] not in colour_caption.split() and any(c in colour_caption for c in COLOURS)
        assert attrs["background"] in colour_caption and attrs["colour"] in bg_caption
        assert not any(b in bg_caption.split() for b in (attrs["background"],)) and any(b in bg_caption for b in BACKGROUNDS)


def test_wrong_captions_mix_hard_negatives_and_random_ones():
    from pipelines.stackgan.negatives import pick_wrong
    phi, hard = torch.randn(64, 4), torch.randn(64, 5, 4)
    wrong, which = pick_wrong(phi, hard, 0.5, torch.Generator().manual_seed(0))
    for i in range(64):
        assert torch.equal(wrong[i], hard[i, which[i]] if which[i] >= 0 else phi[i - 1])
    assert 10 < (which >= 0).sum() < 54 and set(which[which >= 0].tolist()) == set(range(5))
    wrong, which = pick_wrong(phi, hard, 0.0)
    assert torch.equal(wrong, phi.roll(1, 0)) and (which == -1).all()


def test_the_adaptive_pick_draws_more_often_what_d_still_accepts():
    from pipelines.stackgan.negatives import AdaptivePick, pick_wrong
    pick = AdaptivePick()
    assert torch.allclose(pick.weights, torch.full((5,), 0.2))
    for _ in range(300):
        pick.update({"d_wrong_shape": 0.6, "d_wrong_colour": 0.2, "d_wrong_size": 0.2, "d_wrong_position": 0.4,
                     "d_wrong_background": 0.0})
    w = pick.weights
    assert w[0] > w[3] > w[1] == w[2] and w[4] == pytest.approx(0.1 / 5)   # background: at the floor, not 0
    _, which = pick_wrong(torch.randn(4000, 4), torch.randn(4000, 5, 4), 1.0, torch.Generator().manual_seed(0), w)
    counts = torch.bincount(which, minlength=5).float() / 4000
    assert torch.allclose(counts, w / w.sum(), atol=0.03)


def test_discriminator_loss_logs_d_wrong_for_each_attribute_s_hard_negatives():
    n = 4
    real, fake = torch.ones(n, 3, 8, 8), -torch.ones(n, 3, 8, 8)
    phi = torch.arange(1, n + 1, dtype=torch.float32)[:, None].repeat(1, 3)
    phi_wrong = phi.clone()
    phi_wrong[:2] += 10                     # rows 0, 1: mismatched (D says −a); rows 2, 3: unchanged (D says +a)
    _, probs = M.discriminator_loss(_Scripted(5.0), real, fake, phi, phi_wrong, torch.tensor([0, -1, 1, 1]))
    assert probs["d_wrong_shape"] < 0.01 and probs["d_wrong_colour"] > 0.99 and "d_wrong_size" not in probs


def test_diagnosis_finds_the_attribute_the_samples_draw_at_chance():
    curves = {"d_fake": [[1, 0.5], [100, 0.5]], "g_grad_norm": [[1, 2.0], [100, 1.0]],
              "d_loss": [[1, 1.3], [100, 0.8]], "d_real": [[1, 0.5], [100, 0.73]], "d_wrong": [[1, 0.5], [100, 0.04]]}
    probes = [{"step": s, "all": 0.05, "shape": sh, "colour": 0.9, "diversity": 0.3}
              for s, sh in ((1, 0.1), (50, 0.2), (100, 0.16))]
    ranks = {a: {"rank": r} for a, r in (("random", 1.0), ("shape", 0.69), ("colour", 1.0))}
    found = {f.failure: f for f in diagnose({"probes": probes, "curves": curves}, 0.3, ranks)}["attribute ignored"]
    assert found.seen and found.evidence.startswith("shape drawn near chance") and "0.04" in found.evidence
    assert "shape 69%" in found.evidence and "random" not in found.evidence.split("in:")[1]
    good = [dict(p, shape=0.9) for p in probes]
    hard = dict(curves, d_wrong_shape=[[100, 0.1]], d_wrong_colour=[[100, 0.05]])
    found = {f.failure: f for f in diagnose({"probes": good, "curves": hard}, 0.3)}["attribute ignored"]
    assert not found.seen and "hard negatives" in found.evidence and "shape 0.10" in found.evidence


def test_the_d_check_figure_is_how_often_d_prefers_the_right_caption():
    from pipelines.measure.stackgan_negatives import attribute_ranks

    class ReadsOnlyColour(torch.nn.Module):     # D's logit = −|φ's colour coordinate − the image's colour|
        def forward(self, image, phi):
            return -(phi[:, 1] - image[:, 0, 0, 0]).abs()
    n = 8
    images = torch.zeros(n, 3, 4, 4)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.float32)
    phi = torch.stack([torch.zeros(n), torch.arange(n, dtype=torch.float32)], 1)
    hard = phi[:, None].repeat(1, 5, 1)
    hard[:, 0, 0] += 3                          # shape changed: a coordinate this D does not read
    hard[:, 1, 1] += 3                          # colour changed
    ranks = attribute_ranks(ReadsOnlyColour(), images, phi, hard)
    assert ranks["colour"]["rank"] == 1.0 and ranks["shape"]["rank"] == 0.0 and ranks["random"]["rank"] == 1.0
    assert ranks["colour"]["d_wrong"] < ranks["colour"]["d_right"]


def test_a_record_quotes_the_earlier_runs_and_the_card_counts_their_wall_time(tmp_path):
    import json
    from pipelines.cards import write_card
    from pipelines.training import earlier_runs, with_earlier
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "training_record.json").write_text(json.dumps(
        {"command": "python -m x --steps 10", "steps": 10, "wall_seconds": 100, "probes": [1]}))
    (tmp_path / "old" / "generator.safetensors").write_bytes(b"weights")
    (tmp_path / "bad.json").write_text(json.dumps({"command": "x"}))
    runs = earlier_runs([tmp_path / "old"], keep=("command", "steps", "wall_seconds"))
    assert runs == [{"command": "python -m x --steps 10", "steps": 10, "wall_seconds": 100,
                     "weights": runs[0]["weights"]}] and len(runs[0]["weights"]) == 10
    with pytest.raises(SystemExit, match="not a training record"):
        earlier_runs([tmp_path / "bad.json"])
    (tmp_path / "later").mkdir()                # a later run that already quotes "old": "old" is counted once
    (tmp_path / "later" / "training_record.json").write_text(json.dumps(
        {"command": "python -m x --later", "wall_seconds": 30, "earlier_runs": runs + runs}))
    both = earlier_runs([tmp_path / "old", tmp_path / "later"], keep=("command", "steps", "wall_seconds"))
    assert [r["command"] for r in both] == ["python -m x --steps 10", "python -m x --later"]
    record = with_earlier({"command": "python -m x --steps 20", "wall_seconds": 50}, runs)
    assert record["total_wall_seconds"] == 150 and with_earlier({"wall_seconds": 1}, []) == {"wall_seconds": 1}
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "training_record.json").write_text(json.dumps(dict(record, earlier_runs=runs + [
        dict(runs[0], command="python -m x --again", wall_seconds=7)])))
    card = write_card(tmp_path / "new", "t", "s").read_text()
    assert "| Wall time of every run of this model, the earlier ones included (s) | 150 |" in card
    assert "- `python -m x --steps 10`: 100 s, steps 10, weights `" in card and "- `python -m x --again`: 7 s" in card


# ----------------------------------------------------------------------------- the training command and pipeline
def _reset_accelerate():
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(True)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """Tiny StackGAN checkpoints made by the real training command: Stage I (2 steps, then resumed to 3) and both
    Stage II variants (2 steps each) on top of it."""
    from pipelines.stackgan import train

    root = tmp_path_factory.mktemp("stackgan")
    ck = root / "ck"
    ck.mkdir()
    if JUDGE.is_dir():
        (ck / "shapes-judge").symlink_to(JUDGE)
    common = ["--train-images", "32", "--batch-size", "8", "--ngf", "8", "--ndf", "8", "--probe-every", "1",
              "--save-every", "1", "--runs", str(root / "runs"), "--threads", "1"]
    for steps in ("2", "3"):
        _reset_accelerate()
        train.main(["--stage", "1", "--steps", steps, "--output", str(ck / STAGE1), *common])
    for name, up, extra in ((STAGE2, "nearest", []), (STAGE2_PIXELSHUFFLE, "pixelshuffle", ["--sketch-skip",
                                                                                           "--projection"])):
        _reset_accelerate()
        train.main(["--stage", "2", "--upsample", up, "--steps", "2", "--stage1", str(ck / STAGE1),
                    "--output", str(ck / name), *extra, *common])
    return root


@pytest.fixture
def tiny(tiny_root, monkeypatch):
    from pipelines.stackgan import pipeline
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tiny_root / "ck"))
    pipeline._load.cache_clear()
    yield pipeline.load_stackgan(STAGE2, "cpu")
    pipeline._load.cache_clear()


def test_training_resumes_and_exports_record_card_and_both_networks(tiny_root):
    import json
    s1 = tiny_root / "ck" / STAGE1
    record = json.loads((s1 / "training_record.json").read_text())
    assert record["steps"] == 3 and "--steps 3" in record["command"]
    assert json.loads((tiny_root / "runs" / STAGE1 / "meta.json").read_text())["sessions"] == 2   # resumed once
    assert {"d_loss", "g_adv", "d_real", "d_wrong", "d_fake", "g_grad_norm", "kl"} <= set(record["curves"])
    assert [p["step"] for p in record["probes"]] == [1, 2, 3]
    assert record["hard_negatives"] == 0.5 and any(k.startswith("d_wrong_") for k in record["curves"])
    assert 0 <= record["probes"][-1]["diversity"] and "shape" in record["probes"][-1]
    for name in (STAGE1, STAGE2, STAGE2_PIXELSHUFFLE):
        folder = tiny_root / "ck" / name
        assert {"generator.safetensors", "discriminator.safetensors", "config.json", "README.md",
                "training_samples.png"} <= {p.name for p in folder.iterdir()}
    card = (tiny_root / "ck" / STAGE2_PIXELSHUFFLE / "README.md").read_text()
    assert "PixelShuffle" in card and "Stage II" in card
    assert "correction to the sketch" in card and "projection term" in card    # the flags it was trained with
    plain = (tiny_root / "ck" / STAGE2 / "README.md").read_text()
    assert "correction to the sketch" not in plain and "projection term" not in plain
    assert json.loads((tiny_root / "ck" / STAGE2 / "config.json").read_text())["stage1"]["name"] == STAGE1


def test_an_image_caption_folder_trains_the_same_way(tmp_path):
    """The CUB-200 layout (images/<class>/<name>.jpg, text/<class>/<name>.txt with a caption per line) trains Stage I;
    without attribute labels the probes are skipped, everything else is the same."""
    import json

    from PIL import Image

    from pipelines.stackgan import train
    for i, colour in enumerate(["red", "blue", "green", "yellow"]):
        (tmp_path / "images" / "001.Bird").mkdir(parents=True, exist_ok=True)
        (tmp_path / "text" / "001.Bird").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (80, 60), colour).save(tmp_path / "images" / "001.Bird" / f"b{i}.jpg")
        (tmp_path / "text" / "001.Bird" / f"b{i}.txt").write_text(f"a {colour} bird\nthis bird is {colour}\n")
    _reset_accelerate()
    train.main(["--stage", "1", "--steps", "2", "--batch-size", "2", "--ngf", "8", "--ndf", "8", "--data",
                str(tmp_path / "images"), "--captions", str(tmp_path / "text"), "--runs", str(tmp_path / "runs"),
                "--output", str(tmp_path / "out"), "--name", "birds", "--threads", "1"])
    record = json.loads((tmp_path / "out" / "training_record.json").read_text())
    assert record["steps"] == 2 and record["train_images"] == 4 and record["probes"] == []
    assert json.loads((tmp_path / "out" / "config.json").read_text())["data"]["name"] == "folder"


def test_stage2_refuses_to_train_without_stage1(tmp_path):
    from pipelines.stackgan import train
    _reset_accelerate()
    with pytest.raises(SystemExit, match="train it first"):
        train.main(["--stage", "2", "--stage1", str(tmp_path / "none"), "--runs", str(tmp_path), "--steps", "1"])


def test_pipeline_is_seeded_and_augmentation_varies_only_c(tiny):
    caption = "a picture of a large red circle sitting in the middle against a white backdrop"
    a, b = tiny.several_z(caption, 3, seed=7), tiny.several_z(caption, 3, seed=7)
    assert a.stage1.shape == (3, 3, 32, 32) and a.stage2.shape == (3, 3, 64, 64)
    assert torch.equal(a.stage2, b.stage2)                                     # same seed, same images
    assert not torch.equal(a.stage2, tiny.several_z(caption, 3, seed=8).stage2)
    mu_only = tiny.several_z(caption, 3, seed=7, augment=False)
    assert not torch.equal(mu_only.stage1, a.stage1)
    by_c = tiny.several_c(caption, 3, seed=7)
    z, eps0, eps = tiny.noise(3, 7)
    one = tiny.draw(tiny.encode([caption])[0], z[:1], eps0[1:2], eps[1:2])     # column 2 = first z, second ĉ
    assert torch.allclose(by_c.stage2[1:2], one.stage2, atol=1e-6)
    with pytest.raises(ValueError, match="never trained without"):
        tiny.several_z("   ", 2)
    with pytest.raises(ValueError, match="between 1 and"):
        tiny.several_z(caption, 0)


def test_tab_callbacks_answer_and_refuse_bad_input(tiny, tiny_root):
    from demos import stackgan as tab
    variant = next(iter(tab.VARIANTS))
    img_z, img_c, status = tab.generate(tab.EXAMPLES[0][0], variant, 3, 1, True)
    assert img_z.size == img_c.size and "3 noise vectors" in status
    img, captions = tab.ten_random(variant, 3)
    assert len(captions.splitlines()) == tab.N_RANDOM and img.width > img.height
    assert tab.ten_random(variant, 3)[1] == captions                          # seeded
    loss, dfig, probes, arch, failures, gallery = tab.training_views(variant)
    assert loss is not None and "Stage II discriminator D" in arch and "mode collapse" in failures
    assert len(gallery) == 2
    for args, message in [(("", variant, 3, 0, True), "Type a caption"),
                          ((None, variant, 3, 0, True), "must be text"),
                          (("x" * 50_000, variant, 3, 0, True), "limit"),
                          (("a red circle", "bicubic", 3, 0, True), "Stage II up-sampling"),
                          (("a red circle", variant, 99, 0, True), "Number of z"),
                          (("a red circle", variant, 3, -4, True), "Seed")]:
        with pytest.raises(gr.Error, match=message):
            tab.generate(*args)


# ----------------------------------------------------------------------------- the shipped checkpoints
SHIPPED = ROOT / "checkpoints"


def test_shipped_stage2_obeys_held_out_captions_and_is_diverse():
    """Fresh samples (not the evaluation's seeds): Stage II's colour and background follow 48 held-out-phrasing prompts,
    and images of one prompt differ (no mode collapse), against real renders of the same attributes."""
    from pipelines.shapes.data import heldout_prompts
    from pipelines.shapes.judge import load_judge
    from pipelines.measure.stackgan import stackgan_groups, stackgan_images
    from pipelines.stackgan.pipeline import load_stackgan

    gan = load_stackgan(STAGE2, "cpu")
    captions, labels = heldout_prompts(48, seed=5)
    _, s2 = stackgan_images(gan, captions, seed=77)
    acc = load_judge("cpu").score(s2, labels)
    # measured on 240 prompts (python -m pipelines.measure.stackgan): shape 0.82, colour 0.97, background 0.96
    # (the model before hard negatives and the sketch skip: shape 0.29, chance 0.25); 48 prompts: standard error ≈ 0.06
    assert acc["shape"] >= 0.65 and acc["colour"] >= 0.85 and acc["background"] >= 0.85, acc
    _, groups = stackgan_groups(gan, captions[:6], 6, seed=77)
    real = within_prompt_diversity(real_groups(labels[:6], 6, 64))
    assert 0.5 * real < within_prompt_diversity(groups) < 1.5 * real       # the band around real

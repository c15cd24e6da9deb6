"""The DDPM's training probes (pipelines/measure/ddpm_probes.py): the EMA weights of the saved state are the ones
sampled, and the card's table is the probes' file."""
import json

import torch
from diffusers import UNet2DModel

from pipelines.checkpoints import write_json
from pipelines.ddpm.pipeline import DDPM
from pipelines.measure import ddpm_probes
from pipelines.schedules import schedule_config


def tiny_ddpm():
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D")).eval()
    return DDPM(unet, schedule_config(), {}, None, torch.device("cpu"))


def test_a_probe_samples_the_saved_ema_weights(tmp_path, mnist_judge):
    model = tiny_ddpm()
    shadow = [torch.randn_like(p) * 0.01 for p in model.unet.parameters()]
    torch.save({"shadow_params": shadow, "optimization_step": 7}, tmp_path / "custom_checkpoint_0.pkl")
    row = ddpm_probes.probe(model, tmp_path, n=6, batch=3, steps=2)
    assert all(torch.equal(p, s) for p, s in zip(model.unet.parameters(), shadow))   # the state's EMA, loaded
    assert 0.0 <= row["confident"] <= 1.0 and 0.0 <= row["entropy"] <= 1.0 + 1e-6
    again = ddpm_probes.probe(model, tmp_path, n=6, batch=3, steps=2)
    assert again == row                                                              # seeded: the same figures


def test_the_card_table_is_the_probes_file(tmp_path):
    assert ddpm_probes.probes_md(tmp_path) == ""
    write_json(tmp_path / ddpm_probes.PROBES, {"command": "python -m pipelines.measure.ddpm_probes", "n": 160,
                                               "sampler": "DDIM 20 steps, η = 0", "seeds": "0…", "weights": "EMA",
                                               "probes": [{"step": 4000, "confident": 0.5, "entropy": 0.99},
                                                          {"step": 4500, "confident": 0.61, "entropy": 0.98}]})
    md = ddpm_probes.probes_md(tmp_path)
    assert "| 4,000 | 0.500 | 0.990 |" in md and "| 4,500 | 0.610 | 0.980 |" in md
    assert json.loads((tmp_path / ddpm_probes.PROBES).read_text())["n"] == 160

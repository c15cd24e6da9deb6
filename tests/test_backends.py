"""The optional ONNX Runtime backend (pipelines/backends.py): chosen by name, refused by name, it gives the images
PyTorch fp32 gives through the same pipeline, and says so in the UI and in every PNG's settings."""
import pytest
import torch
from diffusers import UNet2DModel

from pipelines import backends, infotext
from pipelines.backends import BACKEND_ENV
from pipelines.precision import FP32


def test_the_choice_is_torch_unless_asked_and_a_bad_name_is_refused(monkeypatch):
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    assert backends.requested() == "torch"
    monkeypatch.setenv(BACKEND_ENV, " ONNXRuntime ")
    assert backends.requested() == "onnxruntime"
    monkeypatch.setenv(BACKEND_ENV, "tensorrt")
    with pytest.raises(ValueError, match="must be one of"):
        backends.requested()


def test_torch_leaves_the_network_and_its_precision_alone():
    net = torch.nn.Conv2d(1, 1, 3)
    assert backends.apply(net, "unet2d", FP32, "torch") == (net, FP32)
    gpu = FP32.__class__("fp16", "cuda", "a GPU")
    assert backends.apply(net, "unet2d", gpu, "onnxruntime") == (net, gpu)   # the engines here are CPU ones


def test_onnxruntime_missing_says_how_to_install_it(monkeypatch):
    import builtins
    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(
        ImportError(name=name)) if name == "onnxruntime" else real(name, *a, **k))
    with pytest.raises(RuntimeError, match="pip install onnxruntime"):
        backends.apply(tiny_unet2d(), "unet2d", FP32, "onnxruntime")
    with pytest.raises(ValueError, match="no ONNX export"):
        backends.onnx_engine(torch.nn.Linear(1, 1), "transformer")


def tiny_unet2d():
    torch.manual_seed(0)
    return UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       norm_num_groups=4, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D")).eval()


def test_the_ddpm_pipeline_on_onnxruntime_draws_what_pytorch_draws():
    pytest.importorskip("onnxruntime")
    from pipelines.ddpm.pipeline import DDPM
    from pipelines.schedules import schedule_config
    unet = tiny_unet2d()
    ours = DDPM(unet, schedule_config(), {}, None, torch.device("cpu"))
    engine, precision = backends.apply(unet, "unet2d", FP32, "onnxruntime")
    theirs = DDPM(engine, schedule_config(), {}, None, torch.device("cpu"), precision)
    assert isinstance(engine, backends.Engine) and precision.name == "fp32"
    assert precision.label.startswith("fp32 (ONNX Runtime ") and "ONNX Runtime" in precision.describe()
    for sampler in ("DDIM", "UniPC (multistep)"):
        a = ours.generate(sampler=sampler, steps=4, num_images=3, seed=1)
        b = theirs.generate(sampler=sampler, steps=4, num_images=3, seed=1)
        assert (a - b).abs().max() < 1e-3, sampler
    assert not torch.allclose(theirs.generate(sampler="DDIM", steps=4, num_images=3, seed=2), a)


def test_the_shipped_cfg_model_on_onnxruntime(monkeypatch):
    """The loader applies the backend: the CFG tab's default request gives PyTorch fp32's images, its PNG says
    which engine drew it, and the header says which engine runs."""
    pytest.importorskip("onnxruntime")
    from pipelines.cfg.pipeline import load_cfg
    from pipelines.precision import PRECISION_ENV
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    ours = load_cfg.__wrapped__("cfg-mnist", "cpu")
    monkeypatch.setenv(BACKEND_ENV, "onnxruntime")
    theirs = load_cfg.__wrapped__("cfg-mnist", "cpu")
    assert isinstance(theirs.net, backends.Engine) and not isinstance(ours.net, backends.Engine)
    classes = list(range(10))
    a = ours.generate(classes, scale=3.0, sampler="DPM-Solver++ (multistep)", steps=5, seed=0)
    b = theirs.generate(classes, scale=3.0, sampler="DPM-Solver++ (multistep)", steps=5, seed=0)
    assert (a - b).abs().max() < 1e-3
    import app
    assert "ONNX Runtime" in app.runtime_note()
    from demos import cfg as cfg_tab
    monkeypatch.setattr(cfg_tab, "load_cfg", lambda *a, **k: theirs)
    final = list(cfg_tab.generate("MNIST", 3, 3.0, 0.0, "DDIM", 2, 2, 0))[-1][1]
    assert infotext.read(final)["precision"].startswith("fp32 (ONNX Runtime ")

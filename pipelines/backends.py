"""The engine that runs a model's network: PyTorch (the default), or ONNX Runtime, an optional peer.

    DIFFUSION_LAB_BACKEND = torch | onnxruntime         (python app.py --backend sets it)
    pip install onnxruntime                              (not needed by the app; see requirements-peers.txt)

Why: on a CPU without native bf16 the app runs fp32, and there ONNX Runtime's CPU execution provider ran the same
exported networks faster than PyTorch (`python -m pipelines.benchmark --only peers`, 2 threads, AMD EPYC without
AVX-512: the CFG tab's 16 images in 0.375 s against 0.621 s, the DDPM tab's in 0.473 s against 0.749 s, the images
equal to 8e-5). Where bf16 is native, PyTorch's bf16 path is the one to compare with: the same command tells.

What changes is the network alone. It is exported once, when its model is loaded, at fp32 (`torch.onnx.export`, the
TorchScript exporter, opset 17, the batch dimension dynamic), and an `Engine` stands where the pipeline calls it, so
sampling, guidance, the scheduler and the frames stay the app's own. Such a model runs fp32 and says so: its
precision reads "fp32 (ONNX Runtime …)" in the UI and in every PNG's settings. The networks exported here are the
hand-written class-conditional UNet (the CFG, conditioning and zero-SNR lessons) and the MNIST DDPM's UNet2DModel; the
other models stay on PyTorch whatever is asked.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .precision import Precision

BACKEND_ENV = "DIFFUSION_LAB_BACKEND"
CHOICES = ("torch", "onnxruntime")


def requested() -> str:
    """$DIFFUSION_LAB_BACKEND ("torch" when unset); anything else is refused by name."""
    value = os.environ.get(BACKEND_ENV, "").strip().lower() or "torch"
    if value not in CHOICES:
        raise ValueError(f"{BACKEND_ENV} must be one of {CHOICES}, got {value[:20]!r}")
    return value


class Engine(torch.nn.Module):
    """An exported network behind the module's call: f(*tensors) -> tensor (or `wrap(tensor)`), run by an engine.
    Attributes the pipeline reads from its network (config, null_label, dtype, ...) are the original's."""

    def __init__(self, name: str, run, original: torch.nn.Module, batch_of, wrap=None):
        super().__init__()
        self.name, self._run, self._batch_of, self._wrap = name, run, batch_of, wrap
        object.__setattr__(self, "_original", original)   # not a submodule: its weights are not this engine's

    def __getattr__(self, key):
        try:
            return super().__getattr__(key)
        except AttributeError:
            return getattr(object.__getattribute__(self, "_original"), key)

    def forward(self, *inputs):
        arrays = [a.detach().cpu().float().numpy() if a.is_floating_point() else a.detach().cpu().numpy()
                  for a in self._batch_of(*inputs)]
        out = torch.from_numpy(np.ascontiguousarray(self._run(arrays)))
        return self._wrap(out) if self._wrap else out


def export_onnx(net: torch.nn.Module, example: tuple, folder: Path, threads: int):
    """(run(arrays) -> array, "ONNX Runtime <version>") of `net` exported at fp32 into `folder`."""
    import onnxruntime as ort
    path = Path(folder) / "net.onnx"
    names = [f"in{i}" for i in range(len(example))]
    torch.onnx.export(net, example, str(path), input_names=names, output_names=["out"], opset_version=17,
                      dynamo=False, dynamic_axes={**{n: {0: "batch"} for n in names}, "out": {0: "batch"}})
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda arrays: session.run(None, dict(zip(names, arrays)))[0], f"ONNX Runtime {ort.__version__}"


class UNetSample(torch.nn.Module):
    """diffusers' UNet2DModel returns an output object; an exporter takes a module that returns a tensor."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t):
        return self.unet(x, t).sample


def labelled_batch(x, t, labels):
    """The class-conditional UNet's call, with t as one value per image (the UNet also takes one t for the batch)."""
    return x, torch.as_tensor(t, device=labels.device).reshape(-1).expand(labels.shape[0]).long(), labels


def timestep_batch(x, t):
    return x, torch.as_tensor(t).reshape(-1).expand(x.shape[0]).long()


def sample_output(sample: torch.Tensor):
    from diffusers.models.unets.unet_2d import UNet2DOutput
    return UNet2DOutput(sample=sample)


def onnx_engine(net: torch.nn.Module, kind: str, threads: int | None = None) -> Engine:
    """`net` (kind "class-conditional" or "unet2d") exported to ONNX Runtime, as an Engine with the same call."""
    threads = threads or torch.get_num_threads()
    if kind == "class-conditional":
        c, s = net.config["in_channels"], net.config["image_size"]
        module, example, batch_of, wrap = net, (torch.randn(2, c, s, s), torch.full((2,), 500),
                                                torch.zeros(2, dtype=torch.long)), labelled_batch, None
    elif kind == "unet2d":
        c, s = net.config.in_channels, net.config.sample_size
        module, example = UNetSample(net), (torch.randn(2, c, s, s), torch.full((2,), 500))
        batch_of, wrap = timestep_batch, sample_output
    else:
        raise ValueError(f"no ONNX export for a network of kind {kind!r}")
    with tempfile.TemporaryDirectory(prefix="diffusion-lab-onnx-") as tmp, torch.no_grad():
        run, label = export_onnx(module.eval().float(), example, Path(tmp), threads)   # the session holds the graph
    return Engine(label, run, net, batch_of, wrap)


def apply(net: torch.nn.Module, kind: str, precision: Precision, backend: str | None = None):
    """(the network to call, its precision) under the requested backend: `net` and `precision` unchanged for
    PyTorch, or on a GPU (the exported engines here are CPU ones); an ONNX Runtime engine at fp32 otherwise."""
    backend = backend or requested()
    if backend == "torch" or precision.device_type != "cpu":
        return net, precision
    try:
        engine = onnx_engine(net, kind)
    except ImportError as exc:
        raise RuntimeError(f"{BACKEND_ENV}=onnxruntime needs the onnxruntime package: pip install onnxruntime "
                           f"({exc.name} is not installed)") from None
    return engine, Precision("fp32", "cpu", f"{engine.name} backend, exported at fp32", engine=engine.name)


__all__ = ["BACKEND_ENV", "CHOICES", "Engine", "apply", "export_onnx", "onnx_engine", "requested", "UNetSample"]

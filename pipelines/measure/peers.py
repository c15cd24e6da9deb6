"""The same UNet on the CPU inference engines, in one run: ONNX Runtime (CPU execution provider) and OpenVINO, against
our PyTorch path, through the same pipeline (only the network is swapped), at each tab's default sampler and steps.

    python -m pipelines.benchmark --only peers       # these rows, beside the benchmark's others
    pip install -r requirements-peers.txt            # the engines (not needed by the app)

For each network (the CFG lesson's hand-written UNet, the MNIST DDPM's diffusers UNet2DModel):
1. export it once at fp32: `torch.onnx.export` (TorchScript exporter, opset 17, batch dimension dynamic) for ONNX
   Runtime, `openvino.convert_model` from the module itself for OpenVINO (fp32 inference hint);
2. put the engine where the pipeline calls its network (`Engine`: same inputs, a torch tensor out), so sampling,
   guidance and the scheduler are the app's own;
3. time the tab's main action (16 images at the tab's default) with each engine, the threads pinned to the same
   count, interleaved round by round, fastest of the rounds;
4. check the engine keeps quality: its images against ours, same seed (devices.image_difference's bounds).
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from ..precision import FP32, choose
from ..backends import Engine, UNetSample, export_onnx, labelled_batch, sample_output, timestep_batch
from .devices import image_difference
from .frontier import sampler_label, tab_choice


def export_openvino(net: torch.nn.Module, example: tuple, threads: int):
    import openvino as ov
    compiled = ov.compile_model(ov.convert_model(net, example_input=example), "CPU",
                                {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
    return lambda arrays: compiled(arrays)[0], f"OpenVINO {ov.__version__.split('-')[0]}"


def networks():
    """name -> (load(), the field of the pipeline that holds the net, the module to export, example inputs,
    batch_of(*call) -> the exported inputs, the tab's main action(model))."""
    from ..cfg.pipeline import load_cfg
    from ..ddpm.pipeline import load_ddpm

    def cfg_action(m):
        sampler, steps = tab_choice("cfg")
        return m.generate(list(range(10)) + list(range(6)), scale=3.0, sampler=sampler, steps=steps, seed=0)

    def ddpm_action(m):
        sampler, steps = tab_choice("ddpm")
        return m.generate(sampler=sampler, steps=steps, num_images=16, seed=0)

    x32, x16 = torch.randn(32, 1, 28, 28), torch.randn(16, 1, 28, 28)
    return {
        "cfg-mnist": (lambda: load_cfg("cfg-mnist", "cpu"), "net", lambda m: m.net,
                      (x32, torch.full((32,), 500), torch.arange(32) % 11), labelled_batch, cfg_action,
                      "the CFG lesson's hand-written UNet"),
        "ddpm-mnist": (lambda: load_ddpm("ddpm-mnist", "cpu"), "unet", lambda m: UNetSample(m.unet),
                       (x16, torch.full((16,), 500)), timestep_batch, ddpm_action, "diffusers UNet2DModel"),
    }


def measure(threads: int = 2, rounds: int = 3, only=None, log=print) -> dict:
    """Per network: seconds of the tab's action with ours and each engine, the ratios, and each engine's images
    against ours."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="diffusion-lab-peers-") as tmp:
        for name, (load, field, module, example, batch_of, action, what) in networks().items():
            if only and name not in only:
                continue
            model = load()
            # ours: the precision the server picks for this model here (bf16 where native), not a script's fp32
            model = dataclasses.replace(model, precision=choose(model.device, "auto", model=name))
            net = module(model).eval()
            with torch.no_grad():
                engines = {}
                onnx_run, onnx_name = export_onnx(net, example, Path(tmp), threads)
                ov_run, ov_name = export_openvino(net, example, threads)
                for run, label in ((onnx_run, onnx_name), (ov_run, ov_name)):
                    engine = Engine(label, run, getattr(model, field), batch_of,
                                    sample_output if field == "unet" else None)   # the DDPM reads .sample
                    engines[label] = dataclasses.replace(model, **{field: engine}, precision=FP32)   # exported fp32
            ours = f"PyTorch {torch.__version__.split('+')[0]} ({model.precision.name})"
            paths = {ours: model, **engines}
            images = {k: action(m) for k, m in paths.items()}          # warm-up, and the images compared
            seconds = dict.fromkeys(paths, float("inf"))
            for _ in range(rounds):
                for k, m in paths.items():
                    t0 = time.perf_counter()
                    action(m)
                    seconds[k] = min(seconds[k], time.perf_counter() - t0)
            tab = "cfg" if name.startswith("cfg") else "ddpm"
            sampler, steps = tab_choice(tab)
            row = {"network": what, "action": f"16 images, {sampler_label(sampler)} {steps} steps", "ours": ours,
                   "seconds": seconds, "images": {k: image_difference(images[ours], v) for k, v in images.items()
                                                  if k != ours}}
            fastest_peer = min(row["images"], key=lambda k: seconds[k])
            row["fastest_peer"], row["ours_over_fastest_peer"] = fastest_peer, seconds[ours] / seconds[fastest_peer]
            out[name] = row
            log(f"{name}: " + ", ".join(f"{k} {v:.3f} s" for k, v in seconds.items()) +
                f"; ours / {fastest_peer} = {row['ours_over_fastest_peer']:.2f}")
    return out


def rows(args) -> list[dict]:
    """The benchmark's rows: each engine's time, its ratio to ours, and whether its images are ours."""
    try:
        import onnxruntime  # noqa: F401
        import openvino  # noqa: F401
    except ImportError as exc:
        print(f"peers skipped ({exc.name} is not installed: pip install -r requirements-peers.txt)")
        return []
    out = []
    for name, r in measure(args.threads, args.repeats).items():
        ours = r["ours"]
        out.append(dict(name=f"{name} ({r['network']}), {r['action']}: {ours}", seconds=r["seconds"][ours]))
        for peer, diff in r["images"].items():
            same = "same images" if diff["within"] else "OTHER images"
            out.append(dict(name=f"{name}: {peer}, the same network exported at fp32 ({same}: max |Δ| "
                                 f"{diff['max']:.1e})", seconds=r["seconds"][peer],
                            ratio=r["seconds"][peer] / r["seconds"][ours]))
        out.append(dict(name=f"{name}: ours against the faster peer ({r['fastest_peer']}), its time / ours",
                        ratio=1 / r["ours_over_fastest_peer"]))
    return out

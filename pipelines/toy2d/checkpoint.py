"""The shipped 2-D checkpoints: checkpoints/toy2d-<dataset>-<model>/ with config.json, model.safetensors (fp32: a
few tens of KB), training_record.json and a README.md card (pipelines/cards.write_card)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from safetensors.torch import load_file, save_file

from ..cards import write_card
from ..checkpoints import CheckpointCorrupt, checkpoint_dir, checkpoints_root, read_json, weights_hash, write_json
from .data import DATASETS
from .models import DDGANGenerator, Denoiser, GANGenerator


def name(dataset: str, model: str, denoising_steps: int = 4) -> str:
    """toy2d-8gaussians-ddpm, toy2d-8gaussians-ddgan4 (DD-GAN's T is part of the model), toy2d-8gaussians-gan."""
    return f"toy2d-{dataset}-{model}" + (str(denoising_steps) if model == "ddgan" else "")


def train_command(dataset: str, model: str, denoising_steps: int = 4) -> str:
    extra = f" --denoising-steps {denoising_steps}" if model == "ddgan" else ""
    return f"python -m pipelines.toy2d.train --dataset {dataset} --model {model}{extra}"


SUMMARIES = {
    "ddpm": "An MLP ε-predictor ε_θ(x_t, t) (sinusoidal time embedding added to every residual block) trained with "
            "the DDPM loss ‖ε − ε_θ(x_t, t)‖² on the linear schedule, T = 1000.",
    "ddgan": "A denoising diffusion GAN (Xiao et al. 2022): generator G(x_t, z, t) → x̂_0 followed by the DDPM "
             "posterior step q(x_{t−1} | x_t, x̂_0), and a discriminator D(x_{t−1}, x_t, t); non-saturating loss "
             "with an R1 penalty.",
    "gan": "A plain GAN: generator G(z) → x, discriminator D(x), non-saturating loss, no regulariser.",
}


def save(result, model: str, dataset: str, record: dict, output: str | None = None) -> Path:
    """Write a trained Progress's networks (the generator only for GANs: D is not needed to sample) and its card."""
    steps = result.model["G"].steps if model == "ddgan" else 4
    folder = Path(output) if output else checkpoints_root() / name(dataset, model, steps)
    folder.mkdir(parents=True, exist_ok=True)
    net = result.model["denoiser"] if model == "ddpm" else result.model["G"]
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, folder / "model.safetensors")
    config = dict(_class_name=type(net).__name__, model=model, dataset=dataset, network=net.config)
    if model == "ddpm":
        config["scheduler"] = result.model["config"]
    write_json(folder / "config.json", config)
    write_json(folder / "training_record.json", dict(record, parameters=sum(p.numel() for p in net.parameters())))
    card(folder)
    return folder


def card(folder: Path) -> Path:
    config = read_json(folder / "config.json")
    label = DATASETS[config["dataset"]][0]
    what = config["model"].upper().replace("DDGAN", "DD-GAN")
    steps = f", T = {config['network']['steps']}" if config["model"] == "ddgan" else ""
    summary = (f"{SUMMARIES[config['model']]} Data: {label}, 20,000 points drawn with seed 0 "
               f"(`pipelines/toy2d/data.py`; the \"training images\" are 2-D points). Shown in the **2-D playground** "
               "tab; its figures come from `python -m pipelines.measure.toy2d --threads 2`.")
    return write_card(folder, f"{what} on {label}{steps} (2-D playground)", summary)


@lru_cache(maxsize=32)
def _load(folder: str, stamp: float):
    folder = Path(folder)
    try:
        config = read_json(folder / "config.json")
        cls = {"Denoiser": Denoiser, "DDGANGenerator": DDGANGenerator, "GANGenerator": GANGenerator}[config["_class_name"]]
        net = cls(**config["network"])
        net.load_state_dict(load_file(folder / "model.safetensors"))
    except (KeyError, OSError, RuntimeError, ValueError) as exc:
        raise CheckpointCorrupt(f"The checkpoint {folder.name} cannot be loaded ({type(exc).__name__}); retrain it: "
                                f"{train_command(config.get('dataset', '?'), config.get('model', '?'))}") from None
    net.eval().requires_grad_(False)
    return net, config, read_json(folder / "training_record.json", {}), weights_hash(folder)


def load(dataset: str, model: str, denoising_steps: int = 4):
    """(network, config, training record, weights hash) of a shipped checkpoint; CheckpointMissing says how to train."""
    folder = checkpoint_dir(name(dataset, model, denoising_steps), train_command(dataset, model, denoising_steps),
                            "model.safetensors")
    return _load(str(folder), (folder / "model.safetensors").stat().st_mtime)

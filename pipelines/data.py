"""Datasets through torchvision's ordinary download path, with an offline mirror.

The data root is `$DIFFUSION_LAB_DATA_ROOT` (default `./data`, writable). On a user's
machine torchvision downloads into it as usual. Offline, `$DIFFUSION_LAB_DATA_MIRROR`
names a (possibly read-only) folder in torchvision's layout (`<mirror>/MNIST/raw/*.gz`);
its archives are copied into the root first, and torchvision then finds the verified
files and unpacks them without going online.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from torchvision import datasets, transforms

DATASETS = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}
CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"],
    "brightness-mnist": [str(i) for i in range(10)] + ["all black", "all white"],
    # captioned shapes (pipelines.shapes), for FID / IS: the 24 joint classes shape x colour, index shape·6 + colour
    "shapes": [f"{c} {s}" for s in ("circle", "square", "triangle", "cross")
               for c in ("red", "orange", "yellow", "green", "blue", "purple")],
}
SHAPES_SPLIT = 10_000  # rendered images per split of "shapes" (enough for two 5,000-image halves)
BLANK_SHARE = 1 / 6  # share of brightness-mnist images that are flat black or flat white (half each)


def data_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root or os.environ.get("DIFFUSION_LAB_DATA_ROOT", "data")).expanduser()


def _copy_from_mirror(cls, root: Path) -> None:
    mirror = os.environ.get("DIFFUSION_LAB_DATA_MIRROR")
    if not mirror:
        return
    src = Path(mirror).expanduser() / cls.__name__ / "raw"
    dst = root / cls.__name__ / "raw"
    if not src.is_dir():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.gz"):
        if not (dst / f.name).exists():
            shutil.copyfile(f, dst / f.name)


def load_dataset(name: str, train: bool = True, root=None, transform=None):
    """A torchvision dataset of images in [-1, 1] (the range every model here uses)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    cls, root = DATASETS[name], data_root(root)
    _copy_from_mirror(cls, root)
    transform = transform or transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.5, 0.5)])
    return cls(str(root), train=train, download=True, transform=transform)


def brightness_mnist(train: bool = True, root=None, limit: int | None = None):
    """MNIST where brightness matters (the zero-terminal-SNR lesson): (images in [-1, 1], labels).

    Each digit gets a random background brightness b ~ U[0, 1] and an ink brightness b ± c with contrast
    c ~ U[0.35, 1], so a digit can be dark on light or light on dark. A share `BLANK_SHARE` of the images
    is replaced by a flat all-black (label 10) or all-white (label 11) image. Deterministic per split.
    """
    x, y = dataset_tensors("mnist", train, root, limit)
    g = torch.Generator().manual_seed(0 if train else 1)
    n = len(x)
    ink_mask = (x + 1) / 2                                           # MNIST ink in [0, 1]
    b, c = torch.rand(n, generator=g), 0.35 + 0.65 * torch.rand(n, generator=g)
    up = torch.rand(n, generator=g) < 0.5
    ink = torch.where((up & (b + c <= 1)) | (b - c < 0), b + c, b - c).clamp(0, 1)
    ink = torch.where((ink - b).abs() < 0.35, (b < 0.5).float(), ink)  # no contrast either way: max contrast
    img = b.view(-1, 1, 1, 1) * (1 - ink_mask) + ink.view(-1, 1, 1, 1) * ink_mask
    blank = torch.rand(n, generator=g)
    black, white = blank < BLANK_SHARE / 2, (blank >= BLANK_SHARE / 2) & (blank < BLANK_SHARE)
    img[black], img[white] = 0.0, 1.0
    y = torch.where(black, 10, torch.where(white, 11, y))
    return img * 2 - 1, y


def shapes_joint(train: bool = True, limit: int | None = None):
    """The first SHAPES_SPLIT captioned shapes of the train / test split (64 px, [-1, 1]) with their joint
    shape x colour class (shape·6 + colour; the FID / IS classes of the text-to-image models)."""
    from .shapes.data import ATTRIBUTES, shapes_tensors, to_float
    n = SHAPES_SPLIT if limit is None else min(limit, SHAPES_SPLIT)
    images, _, labels = shapes_tensors("train" if train else "test", n)
    return to_float(images), labels[:, 0] * len(ATTRIBUTES["colour"]) + labels[:, 1]


def dataset_tensors(name: str, train: bool = True, root=None, limit: int | None = None):
    """The whole split as (images in [-1, 1], labels) tensors; MNIST-sized data fits in memory."""
    if name == "brightness-mnist":
        return brightness_mnist(train, root, limit)
    if name == "shapes":
        return shapes_joint(train, limit)
    ds = load_dataset(name, train, root)
    if hasattr(ds, "data") and isinstance(ds.data, torch.Tensor):  # MNIST family: skip per-item PIL
        x = ds.data[:limit].float().div(127.5).sub(1).unsqueeze(1)
        y = torch.as_tensor(ds.targets[:limit])
        return x, y
    n = len(ds) if limit is None else min(limit, len(ds))
    xs, ys = zip(*(ds[i] for i in range(n)))
    return torch.stack(xs), torch.as_tensor(ys)


def export_examples(name: str = "mnist", out_dir: str | os.PathLike = "assets/mnist", per_class: int = 2,
                    root=None) -> list[Path]:
    """Write the first `per_class` test images of each class as PNGs (the app's example gallery)."""
    from PIL import Image

    ds = load_dataset(name, train=False, root=root, transform=lambda img: img)
    out, counts, paths = Path(out_dir), {}, []
    out.mkdir(parents=True, exist_ok=True)
    for i in range(len(ds)):
        img, label = ds[i]
        if counts.get(label, 0) >= per_class:
            continue
        counts[label] = counts.get(label, 0) + 1
        path = out / f"{CLASS_NAMES[name][label].replace('/', '-').lower()}_{counts[label]}_test{i}.png"
        Image.Image.save(img, path)
        paths.append(path)
        if len(paths) == per_class * len(CLASS_NAMES[name]):
            break
    return sorted(paths)


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description="Export test-set example images for the app's galleries.")
    p.add_argument("--dataset", default="mnist", choices=list(DATASETS))
    p.add_argument("--out", default="assets/mnist")
    p.add_argument("--per-class", type=int, default=2)
    a = p.parse_args()
    for path in export_examples(a.dataset, a.out, a.per_class):
        print(path)

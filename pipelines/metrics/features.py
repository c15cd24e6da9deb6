"""Feature networks for FID and IS, behind one interface.

FID and IS are only defined relative to a network, one of its layers and a preprocessing:
a figure is comparable to another only when all three (and n) are the same. So every
network here has a `name` that goes into every figure's label, e.g.
"FID (MNIST classifier features, n=1000)".

  - `JudgeFeatures("mnist" | "fashion-mnist")`: the judge CNN trained here on the real training
    set (pipelines.classifier). Features: its 128-d penultimate layer (fc + ReLU); p(y|x): its
    softmax over the 10 classes. Preprocessing: none beyond making inputs 1×28×28 in [-1, 1].
    The offline default.
  - `InceptionFeatures()`: torchvision's Inception-v3 (ImageNet weights) — the network FID and
    IS were defined with. Features: the 2048-d global average pool ("pool3"); p(y|x): its
    1000-way softmax. Preprocessing: grey → RGB, bilinear resize to 299×299, ImageNet
    normalisation. Used only when the weights are already in the local torch hub cache: this
    code never downloads. Note torchvision's weights are not the TF-ported ones of pytorch-fid
    and published FIDs, so values are comparable within this project only.

A dataset with no judge of its own (brightness-varied MNIST) borrows another dataset's judge as its
feature network (`BORROWED_FEATURES`): its FID and IS use those features against its own test split,
but no judge accuracy is computed, since the borrowed judge does not know its classes.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoints import checkpoints_root, weights_hash
from ..runtime import pick_device


class FeatureNetworkMissing(FileNotFoundError):
    """A feature network's weights are not on disk; the message says which file to place where."""


class FeatureNetwork:
    """name (for labels), `preprocess(x)`, `embed(x)` -> (n, d) features, `probs(x)` -> (n, K) p(y|x)."""

    key: str = ""       # registry key, e.g. "mnist-classifier"
    name: str = ""      # e.g. "MNIST classifier features": goes into every figure label
    short: str = ""     # e.g. "MNIST classifier": the IS label ("IS (MNIST classifier, n=…)")
    layer: str = ""     # which layer the features come from
    dim: int = 0
    num_classes: int = 0
    batch_size: int = 256
    fingerprint: str | None = None   # names these exact weights (for caching reference statistics)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Preprocessed batch -> (features, logits)."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @torch.no_grad()
    def outputs(self, images: torch.Tensor, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """Images (n, C, H, W) in [-1, 1] -> (features (n, d), probs (n, K)) as float64 arrays, in one pass."""
        if images.ndim != 4:
            raise ValueError(f"images must be (n, C, H, W), got shape {tuple(images.shape)}")
        feats, probs = [], []
        for i in range(0, len(images), self.batch_size):
            x = self.preprocess(images[i:i + self.batch_size].float().to(self.device))
            f, logits = self.forward(x)
            feats.append(f.double().cpu())
            probs.append(logits.double().softmax(-1).cpu())
            if progress:
                progress(min(i + self.batch_size, len(images)), len(images))
        return torch.cat(feats).numpy(), torch.cat(probs).numpy()

    def embed(self, images: torch.Tensor) -> np.ndarray:
        return self.outputs(images)[0]

    def probs(self, images: torch.Tensor) -> np.ndarray:
        return self.outputs(images)[1]

    def fid_label(self, n: int) -> str:
        return f"FID ({self.name}, n={n:,})"

    def is_label(self, n: int, splits: int) -> str:
        return f"IS ({self.short}, n={n:,}, {splits} split{'s' if splits != 1 else ''})"

    def describe(self) -> str:
        return f"{self.name}: {self.layer} ({self.dim}-d), p(y|x) over {self.num_classes} classes"


def _to_grey_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """(n, C, H, W) in [-1, 1] -> (n, 1, size, size): channel mean, area/bilinear resize."""
    if x.shape[1] == 3:
        x = x.mean(dim=1, keepdim=True)
    elif x.shape[1] != 1:
        raise ValueError(f"expected 1 or 3 channels, got {x.shape[1]}")
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


# ----------------------------------------------------------------------------- judge classifiers
DATASET_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "brightness-mnist": "brightness-varied MNIST",
                  "shapes": "captioned shapes"}


class JudgeFeatures(FeatureNetwork):
    layer = "penultimate fc layer after ReLU"

    def __init__(self, dataset: str = "mnist", model=None):
        from ..classifier import load_classifier  # raises CheckpointMissing (with the train command)

        if dataset not in JUDGES:
            raise ValueError(f"no judge classifier for {dataset!r}; choose one of {sorted(JUDGES)}")
        self.dataset = dataset
        if model is None:
            model = load_classifier(dataset)
            self.fingerprint = weights_hash(checkpoints_root() / f"classifier-{dataset}")
        self.model = model
        self.key = f"{dataset}-classifier"
        self.short = f"{DATASET_TITLES[dataset]} classifier"
        self.name = f"{self.short} features"
        self.dim = self.model.config["feature_dim"]
        self.num_classes = self.model.config["num_classes"]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return _to_grey_size(x, 28)

    def forward(self, x):
        f = self.model.features(x)           # 128-d, the layer the FID is computed on
        return f, self.model.head(f)         # logits of p(y|x) from the same pass (dropout is off in eval)


class ShapesJudgeFeatures(FeatureNetwork):
    """The shapes attribute judge (`checkpoints/shapes-judge`) as a feature network: FID on its 128-d features,
    IS over the 24 joint shape x colour classes, p(shape, colour | x) = p(shape | x)·p(colour | x) (its two heads)."""
    key = "shapes-judge"
    short = "shapes judge"
    name = "shapes judge features"
    layer = "128-d fc layer after ReLU (shared by the five attribute heads)"

    def __init__(self):
        from ..shapes.judge import NAME, load_judge
        self.model = load_judge("cpu")   # raises CheckpointMissing (with the train command)
        self.fingerprint = weights_hash(checkpoints_root() / NAME)
        self.dim = self.model.config["feature_dim"]
        self.shapes, self.colours = self.model.config["heads"]["shape"], self.model.config["heads"]["colour"]
        self.num_classes = self.shapes * self.colours

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.preprocess(x)

    def forward(self, x):
        f = self.model.features(x)
        shape = self.model.heads["shape"](f).log_softmax(-1)
        colour = self.model.heads["colour"](f).log_softmax(-1)
        return f, (shape[:, :, None] + colour[:, None, :]).flatten(1)   # log p(shape)·p(colour), index s·6 + c


# ----------------------------------------------------------------------------- Inception-v3
def inception_weights():
    from torchvision.models import Inception_V3_Weights
    return Inception_V3_Weights.IMAGENET1K_V1


def inception_cache_file() -> Path:
    """Where torchvision looks for the weights: <torch hub dir>/checkpoints/inception_v3_google-0cc3c7bd.pth."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(inception_weights().url).name


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class InceptionFeatures(FeatureNetwork):
    key = "inception-v3"
    name = "Inception-v3 pool3 features"
    short = "Inception-v3"
    layer = "global average pool (pool3) of torchvision Inception-v3, ImageNet weights"
    dim, num_classes, batch_size = 2048, 1000, 32

    def __init__(self, model=None, device: str | None = None):
        if model is None:
            model = self.load(device)
            self.fingerprint = Path(inception_weights().url).stem   # the file name carries its hash
        self.model = model.eval()
        # one pass gives both: pool3 features from the trunk, logits from the ImageNet head
        self.fc = self.model.fc
        self.model.fc = torch.nn.Identity()

    @staticmethod
    def load(device: str | None = None):
        path = inception_cache_file()
        if not path.is_file():
            w = inception_weights()
            raise FeatureNetworkMissing(
                f"Inception-v3 weights are not in the local torch hub cache, and this app never downloads them. "
                f"Place the file {path.name} (from {w.url}) at {path} — set TORCH_HOME to use another cache "
                f"folder — or use the judge classifier features instead.")
        from torchvision.models import inception_v3
        # the file is in the cache, so torchvision loads it from disk (and checks its hash) without a download
        model = inception_v3(weights=inception_weights(), progress=False)
        return model.to(pick_device(device)).eval()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        # grey -> RGB, [-1, 1] -> [0, 1], resize to 299 (Inception's receptive field is sized for it),
        # ImageNet normalisation (the weights' transform_input=True maps it to what Google's net expects)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        elif x.shape[1] != 3:
            raise ValueError(f"expected 1 or 3 channels, got {x.shape[1]}")
        x = (x.clamp(-1, 1) + 1) / 2
        if x.shape[-2:] != (299, 299):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def forward(self, x):
        f = self.model(x)                    # (n, 2048) after avgpool + flatten (fc is Identity)
        return f, self.fc(f)


# ----------------------------------------------------------------------------- registry
FEATURE_NETWORKS = {
    "mnist-classifier": lambda: JudgeFeatures("mnist"),
    "fashion-mnist-classifier": lambda: JudgeFeatures("fashion-mnist"),
    "inception-v3": InceptionFeatures,
    "shapes-judge": ShapesJudgeFeatures,
}
# a dataset's judge: the classifier trained on it, so its classes are the dataset's (FID/IS features + accuracy)
JUDGES = {"mnist": "mnist-classifier", "fashion-mnist": "fashion-mnist-classifier", "shapes": "shapes-judge"}
# datasets without a judge: FID / IS features of another dataset's judge (no accuracy: other classes)
BORROWED_FEATURES = {"brightness-mnist": "mnist-classifier"}
DEFAULT_FEATURES = {**JUDGES, **BORROWED_FEATURES}


@lru_cache(maxsize=4)
def get_feature_network(key: str) -> FeatureNetwork:
    """A loaded feature network by key; raises CheckpointMissing / FeatureNetworkMissing when absent."""
    if key not in FEATURE_NETWORKS:
        raise ValueError(f"unknown feature network {key!r}; choose one of {sorted(FEATURE_NETWORKS)}")
    return FEATURE_NETWORKS[key]()

"""Test settings: offline, the shared data mirror, and few torch threads beside a server."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DIFFUSION_LAB_DEVICE", "cpu")
os.environ.setdefault("DIFFUSION_LAB_DATA_ROOT", str(ROOT / "data"))
_mirror = ROOT.parent / "shared" / "data"
if _mirror.is_dir():
    os.environ.setdefault("DIFFUSION_LAB_DATA_MIRROR", str(_mirror))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("DIFFUSION_LAB_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def mnist_test():
    from pipelines.data import dataset_tensors
    return dataset_tensors("mnist", train=False)

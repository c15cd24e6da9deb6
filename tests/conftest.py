"""Test settings: offline, the shared data mirror, and few torch threads beside a server."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # threads sleep, not spin, when the CPU is shared
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


@pytest.fixture(scope="session")
def mnist_judge():
    """The shipped MNIST judge as a feature network (FID / IS features and class probabilities)."""
    from pipelines.checkpoints import CheckpointMissing
    from pipelines.metrics.features import get_feature_network
    try:
        return get_feature_network("mnist-classifier")
    except CheckpointMissing as exc:
        pytest.skip(f"MNIST judge classifier not trained yet: {exc}")


@pytest.fixture(scope="session")
def app_demo():
    """The whole app, launched once per test session on a free loopback port, with its MCP server (as --mcp):
    (Blocks, url)."""
    import app
    from pipelines.measure.launch import free_port
    demo = app.build_app()
    port = free_port()
    app.launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
               mcp_server=True)
    yield demo, f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="session")
def app_url(app_demo):
    return app_demo[1]


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client
    return Client(app_url, verbose=False)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium through Playwright (never a downloaded browser)."""
    import shutil
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's package)")
        pytest.skip("chromium is not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
            "--disable-background-networking", "--disable-component-update"])
        yield b
        b.close()


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate keeps one process-wide AcceleratorState: reset it so trainers with other precisions can follow."""
    yield
    import sys
    if "accelerate.state" in sys.modules:
        sys.modules["accelerate.state"].AcceleratorState._reset_state(True)

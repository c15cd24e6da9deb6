"""A launched `python app.py` on loopback, for the measurements that time the app as its users reach it
(`latency`, `scripts/load_test.py`).

The server is a child process with file folders of its own (swept when it stops), so the caller never imports
gradio's server, and two measured apps never share outputs.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from ..checkpoints import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, timeout: float, env: dict | None = None) -> tuple[subprocess.Popen, float]:
    """`python app.py` on loopback; returns (process, seconds until the first page was served). The server gets
    file folders of its own (`proc.scratch`): its shutdown sweeps them, and no other running app's files."""
    scratch = Path(tempfile.mkdtemp(prefix="diffusion-lab-app-"))
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
               GRADIO_TEMP_DIR=str(scratch / "gradio"), DIFFUSION_LAB_OUTPUTS=str(scratch / "outputs"), **(env or {}))
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)], cwd=PROJECT_ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.scratch = scratch
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            shutil.rmtree(scratch, ignore_errors=True)
            raise RuntimeError(f"app.py exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                if r.status == 200:
                    return proc, time.time() - t0
        except OSError:
            time.sleep(0.1)
    stop_app(proc)
    raise TimeoutError(f"no page after {timeout:.0f} s")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(proc.scratch, ignore_errors=True)


def wait_idle(pid: int, below: float = 20.0, timeout: float = 180) -> float:
    """Block until the process (with its children) uses less than `below` % of one core over a whole second: the
    app serves its first page at once and fills its memos in a background thread (the 2-D playground's `warm`,
    ~100 % of a core for ~15 s), which would otherwise share the cores with what is timed. Idle, the app still
    uses 7-10 % of a core here (gradio's event loops; every thread idle in a py-spy dump), so the bar sits above
    that. Returns the seconds waited."""
    import psutil
    proc, t0 = psutil.Process(pid), time.time()

    def cpu_seconds() -> float:
        family = [proc, *proc.children(recursive=True)]
        return sum(sum(p.cpu_times()[:2]) for p in family if p.is_running())

    while time.time() - t0 < timeout:
        used = cpu_seconds()
        time.sleep(1.0)
        if 100 * (cpu_seconds() - used) < below:
            return time.time() - t0
    raise TimeoutError(f"the app was still busy after {timeout:.0f} s")


@contextmanager
def launched_app(timeout: float = 90, env: dict | None = None, settled: bool = True):
    """The app's URL while a `python app.py` child serves it; with `settled`, once its start-up work is done."""
    port = free_port()
    proc, _ = start_app(port, timeout, env)
    try:
        if settled:
            wait_idle(proc.pid)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop_app(proc)

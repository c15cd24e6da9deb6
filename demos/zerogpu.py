"""ZeroGPU: on a Hugging Face Space with ZeroGPU hardware, a GPU is lent to one call at a time.

A handler that runs a network is decorated with `@gpu_task(seconds)`, which is `@spaces.GPU(duration=seconds)`:
on ZeroGPU the call holds a GPU slice for at most that long. Everywhere else (this CPU, a local GPU, a CPU Space)
`spaces.GPU` returns the function itself, so the decorator changes nothing (tests/test_mcp.py checks both).
`spaces` must be imported before torch touches CUDA, which is why app.py imports this module first.
"""
from __future__ import annotations

try:
    import spaces
except ImportError:  # not installed (requirements.txt has it): nothing to hold
    spaces = None

DEFAULT_SECONDS = 60  # a request's budget is a few seconds of 2-core CPU; on a GPU slice far less


def gpu_task(seconds: int = DEFAULT_SECONDS):
    """`spaces.GPU(duration=seconds)`, and a mark (`fn.gpu_seconds`) that says the handler asked for it."""
    def decorate(fn):
        fn.gpu_seconds = seconds
        return spaces.GPU(fn, duration=seconds) if spaces is not None else fn
    return decorate

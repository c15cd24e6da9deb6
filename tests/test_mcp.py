"""The app for scripts and agents: every named endpoint is an MCP tool with its arguments and ranges documented,
one is called through an MCP client; the ZeroGPU decorator is a no-op off ZeroGPU."""
from __future__ import annotations

import asyncio
import inspect
import re

import gradio as gr
import pytest

# endpoints that run no network (closed-form noising, plotting data, reading a results file): they hold no GPU
CPU_ONLY = {"forward", "forward_at_t", "toy2d_data", "toy2d_forward", "toy2d_trilemma"}
RANGE = re.compile(r"from (-?[\d.]+) to (-?[\d.]+)")


def public_endpoints(demo):
    return {fn.api_name: fn for fn in demo.fns.values() if fn.api_visibility == "public" and fn.api_name}


def arguments(block_fn) -> dict:
    """{parameter name: input component} as gradio's API info pairs them (States are not arguments)."""
    names = list(inspect.signature(block_fn.fn).parameters)
    return {name: c for name, c in zip(names, block_fn.inputs) if not isinstance(c, gr.State)}


def mcp_session(url: str, work):
    """Run `await work(session)` in an MCP client session on the app's streamable-HTTP endpoint (in a thread of its
    own: the browser tests' Playwright keeps an event loop running in this one)."""
    from concurrent.futures import ThreadPoolExecutor
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def main():
        async with streamablehttp_client(url + "gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


@pytest.fixture(scope="module")
def tools(app_demo):
    demo, url = app_demo

    async def listed(session):
        return {t.name: t for t in (await session.list_tools()).tools}
    return mcp_session(url, listed)


def test_every_named_endpoint_is_a_tool_named_after_it(app_demo, tools):
    assert set(tools) == set(public_endpoints(app_demo[0]))


def test_every_tool_documents_each_argument_and_each_numbers_range(app_demo, tools):
    missing, wrong = [], []
    for name, block_fn in public_endpoints(app_demo[0]).items():
        tool = tools[name]
        if len(tool.description.split()) < 4:
            missing.append(f"{name}: no description")
        properties = tool.inputSchema.get("properties", {})
        for arg, component in arguments(block_fn).items():
            text = properties.get(arg, {}).get("description", "")
            if not text:
                missing.append(f"{name}({arg})")
                continue
            low, high = getattr(component, "minimum", None), getattr(component, "maximum", None)
            if isinstance(component, (gr.Slider, gr.Number)) and low is not None and high is not None:
                stated = RANGE.search(text)
                if not stated or (float(stated[1]), float(stated[2])) != (float(low), float(high)):
                    wrong.append(f"{name}({arg}): says {stated and stated[0]!r}, the control takes {low:g} to {high:g}")
    assert not missing, f"undocumented: {missing}"
    assert not wrong, f"ranges that disagree with the controls: {wrong}"


@pytest.mark.parametrize("with_progress", [False, True], ids=["plain", "with-progress"])
def test_an_agent_calls_a_tool_and_gets_its_image_and_its_note(app_url, with_progress):
    """Both of gradio's paths: a client that asks for progress notifications, and one that does not (split_mcp_outputs)."""
    updates = []

    async def progress(step, total, message):
        updates.append(message)

    async def call(session):
        return await session.call_tool("toy2d_cfg", {"label": "red", "w": 3, "t": 300, "seed": 0},
                                       progress_callback=progress if with_progress else None)
    result = mcp_session(app_url, call)
    assert not result.isError, result.content
    assert result.content[0].type == "image", result.content                # the figure, then gradio's text parts
    assert any("w = 3" in getattr(part, "text", "") for part in result.content[1:]), result.content   # the note


def test_an_agents_bad_argument_gets_the_tabs_message_not_a_traceback(app_url):
    async def call(session):
        return await session.call_tool("toy2d_cfg", {"label": "purple", "w": 3, "t": 300, "seed": 0})
    result = mcp_session(app_url, call)
    text = " ".join(getattr(part, "text", "") for part in result.content)
    assert result.isError and "purple" in text and "Traceback" not in text, text


def test_mcp_is_off_unless_asked(monkeypatch):
    import os

    import app
    seen = {}
    monkeypatch.setattr(os, "environ", os.environ.copy())  # main() sets the precision, SD and cost variables
    monkeypatch.setattr(app, "launch", lambda demo, **kwargs: seen.update(kwargs))
    monkeypatch.setattr(app, "build_app", lambda: None)
    monkeypatch.delenv(app.MCP_ENV, raising=False)
    app.main([])
    assert seen["mcp_server"] is False
    app.main(["--mcp"])
    assert seen["mcp_server"] is True
    monkeypatch.setenv(app.MCP_ENV, "1")
    app.main([])
    assert seen["mcp_server"] is True


def test_the_zerogpu_decorator_changes_nothing_off_zerogpu():
    from demos.zerogpu import gpu_task

    def handler(x):
        return x + 1
    assert gpu_task(30)(handler) is handler and handler.gpu_seconds == 30 and handler(1) == 2


def test_every_endpoint_that_runs_a_network_asks_for_a_gpu(app_demo):
    endpoints = public_endpoints(app_demo[0])
    assert CPU_ONLY <= set(endpoints), CPU_ONLY - set(endpoints)
    unmarked = {name for name, fn in endpoints.items() if not hasattr(fn.fn, "gpu_seconds")}
    assert unmarked == CPU_ONLY, f"decorate with @gpu_task(): {unmarked - CPU_ONLY}; CPU-only but marked: " \
                                 f"{CPU_ONLY - unmarked}"

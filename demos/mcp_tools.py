"""The app as tools for agents: `python app.py --mcp` serves every named endpoint through gradio's MCP server.

A tool's description and its arguments' are the handler's docstring (its `Args:` section, one line per argument,
ranges written "from A to B"; tests/test_mcp.py checks them against the controls). Two corrections to gradio 6.31's
server, applied before it starts:
- it names a tool after its function, and four tabs have a `generate` (the tools became generate, generate_1, …):
  name each after its endpoint instead (cfg_generate, text2img_generate, …), the names the README's API section uses;
- called without a progress token, as most clients call, it hands a tool's several outputs on as one tuple, which
  reaches the agent as one text blob (an image and its note become the string of a dict): split it into its outputs,
  as its progress path does.
"""
from __future__ import annotations


def fix_gradio_mcp() -> None:
    from gradio.mcp import GradioMCPServer
    if getattr(GradioMCPServer, "fixed_by_diffusion_lab", False):
        return

    def get_tool_to_endpoint(self) -> dict[str, str]:
        tools = {}
        for endpoint in self.api_info["named_endpoints"]:
            block_fn = self.get_block_fn_from_endpoint_name(endpoint)
            if block_fn is not None and block_fn.fn is not None:
                tools[self.valid_and_unique_tool_name(self.tool_prefix + endpoint.lstrip("/"), set(tools))] = endpoint
        return tools

    without_progress = GradioMCPServer._execute_tool_without_progress

    async def execute_tool_without_progress(self, job):
        [result] = await without_progress(self, job)
        return list(result) if isinstance(result, tuple) else [result]

    GradioMCPServer.get_tool_to_endpoint = get_tool_to_endpoint
    GradioMCPServer._execute_tool_without_progress = execute_tool_without_progress
    GradioMCPServer.fixed_by_diffusion_lab = True

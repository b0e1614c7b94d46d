"""Taskline as an MCP server (Model Context Protocol): a lean toolset for agents that work on
tasks, and the tasks as resources, at ``/mcp`` (Streamable HTTP). ``taskline mcp`` (in
:mod:`taskline.cli`) relays the same server to clients that start a process (stdio).

- :mod:`taskline.mcp.tools`: the tools, each a strict argument model and a call into
  :mod:`taskline.service`.
- :mod:`taskline.mcp.server`: the SDK server, the endpoint, tool errors, recording calls.
- :mod:`taskline.mcp.watch`: ``notifications/resources/updated`` from the bus.
"""

from taskline.mcp.server import McpServer

__all__ = ["McpServer"]

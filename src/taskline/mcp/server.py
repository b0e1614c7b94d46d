"""Taskline's MCP server: the toolset of :mod:`taskline.mcp.tools` and the tasks as resources,
over Streamable HTTP at ``/mcp``, built on the official SDK's low-level ``Server``.

**Who.** The endpoint sits behind :class:`~taskline.api.doors.Doors` like every route: the
``Host`` and ``Origin`` checks, and ``Authorization: Bearer`` (or the session cookie) turned
into the request's actor; without credentials a server that checks who asks answers 401.
The endpoint then requires :attr:`~taskline.domain.access.Action.USE_MCP` (admin, member,
agent; a viewer gets 403), and each tool checks its own action through the service, as the
REST route does. A session (``Mcp-Session-Id``) belongs to the principal that opened it:
anyone else presenting its id gets 404, as if it did not exist.

**Tool calls.** Arguments are validated against the tool's model (its ``inputSchema``).
Every refusal — invalid arguments, not found, forbidden, an invalid transition (409), a stale
version (412) — is a tool result with ``isError: true`` and a readable text, never a
JSON-RPC error or a traceback. A call on a task (``task_id``) is recorded on that task as
``tool_call.start`` (name, arguments) and ``tool_call.end`` (result or error, duration) by
the caller, so viewers see an MCP agent work like an SDK agent; where the caller may not
publish on the task (an agent reading another agent's task) the call is not recorded.

**Sessions.** The handshake protocol (2025-11-25 and earlier) runs in session mode, whose
standalone GET stream carries ``notifications/resources/updated``; 2026-07-28 requests are
served one by one and subscribe with ``subscriptions/listen`` (see :mod:`taskline.mcp.watch`).
"""

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import mcp.types as types
import orjson
from mcp.server import Server, ServerRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.subscriptions import ListenHandler
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from pydantic import JsonValue, ValidationError
from starlette.types import Receive, Scope, Send

from taskline import __version__
from taskline.api.doors import ACTOR_KEY, actor_of
from taskline.domain.access import Action, require
from taskline.domain.actors import Actor
from taskline.domain.errors import NotFoundError, TasklineError
from taskline.domain.events import EventIn, WebSocketEventType
from taskline.domain.ids import new_id
from taskline.domain.problems import problem_body, status_of
from taskline.domain.queries import TaskQuery
from taskline.mcp.tools import TOOLS, ToolSpec, input_schema, publish
from taskline.mcp.watch import TASK_URI, ResourceWatch, task_id_of, task_uri
from taskline.service import Services

__all__ = ["INSTRUCTIONS", "McpServer"]

logger = logging.getLogger("taskline.mcp")

E = WebSocketEventType

INSTRUCTIONS = (
    "Taskline is a task board shared by agents and people. Find a task (find_tasks), read it "
    "(get_task), report progress as you work, tick its checklist, post messages, then "
    "complete or fail it. People watch every call live."
)

#: The task resources listed by ``resources/list`` (the newest; the template reaches any).
LISTED_RESOURCES = 50


class McpServer:
    """The MCP server of one application: its SDK server, session manager and watch.

    ``create_app`` builds one, mounts it (it is the ASGI app of ``/mcp``), runs :meth:`run`
    in its lifespan and adds ``watch.on_committed`` to the bus.

    Args:
        services: the application layer the tools act through.
        tools: the toolset (default :data:`~taskline.mcp.tools.TOOLS`).
        session_idle_timeout: seconds after which an idle session is closed.
    """

    def __init__(
        self,
        services: Services,
        *,
        tools: Sequence[ToolSpec] = TOOLS,
        session_idle_timeout: float = 1800.0,
    ) -> None:
        self.services = services
        self.tools = {tool.name: tool for tool in tools}
        self.listed = types.ListToolsResult(
            tools=[
                types.Tool(
                    name=tool.name,
                    description=tool.description,
                    input_schema=input_schema(tool.arguments),
                )
                for tool in tools
            ]
        )
        self.watch = ResourceWatch()
        self.server: Server[Any] = Server(
            "taskline",
            version=__version__,
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_templates,
            on_read_resource=self._read_resource,
            on_subscribe_resource=self._subscribe,
            on_unsubscribe_resource=self._unsubscribe,
            on_subscriptions_listen=ListenHandler(self.watch.listen_bus),
        )
        self.manager = StreamableHTTPSessionManager(
            self.server,
            # the doors check Host and Origin before any route, this one included
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            session_idle_timeout=session_idle_timeout,
        )

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Serve sessions while the block runs; at its end close them and the watch."""
        try:
            async with self.manager.run():
                yield
        finally:
            await self.watch.close()

    # --- the endpoint ------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI: refuse an actor that may not use MCP (401/403 problem details), else serve."""
        actor = actor_of(scope)
        try:
            require(actor, Action.USE_MCP)
        except TasklineError as exc:
            status, _ = status_of(exc)
            body = orjson.dumps(problem_body(exc, instance=scope["path"]))
            headers = [(b"content-type", b"application/problem+json")]
            if status == 401:
                headers.append((b"www-authenticate", b'Bearer realm="taskline"'))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        # the SDK binds each session to the principal that opened it
        scope["user"] = AuthenticatedUser(AccessToken(token="", client_id=str(actor), scopes=[]))
        await self.manager.handle_request(scope, receive, send)

    # --- tools -------------------------------------------------------------------------------

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return self.listed

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        actor = _actor(ctx)
        tool = self.tools.get(params.name)
        if tool is None:
            return _error(f"unknown tool {params.name!r}; tools/list names the tools")
        arguments = params.arguments or {}
        try:
            parsed = tool.arguments.model_validate(arguments)
        except ValidationError as exc:
            return _error(f"invalid arguments: {_validation_text(exc)}")
        task_id: str | None = getattr(parsed, "task_id", None) if tool.on_task else None
        call_id = await self._record_start(actor, task_id, tool.name, arguments)
        if call_id is not None and getattr(parsed, "if_version", None) is not None:
            # versions answered to MCP count the call's own tool-call events (see below): the
            # tool_call.start just logged moved the task on by one
            parsed = parsed.model_copy(update={"if_version": parsed.if_version + 1})  # type: ignore[attr-defined]
        started = time.perf_counter()
        result: JsonValue = None
        error: str | None = None
        try:
            result = await tool.run(self.services, actor, parsed)
        except TasklineError as exc:
            error = _problem_text(exc)
        except Exception:
            logger.exception("MCP tool %s failed", tool.name)
            error = "internal error: the server could not run the tool (see its log)"
        if task_id is not None and call_id is not None:
            duration = round((time.perf_counter() - started) * 1000, 3)
            await self._record_end(actor, task_id, call_id, tool.name, result, error, duration)
            if isinstance(result, dict) and isinstance(version := result.get("version"), int):
                # the answer's version counts the tool_call.end just logged (one more), so an
                # agent passing it back as if_version is refused only for others' changes
                result = {**result, "version": version + 1}
        if error is not None:
            return _error(error)
        return types.CallToolResult(content=[_text(result)])

    async def _record_start(
        self, actor: Actor, task_id: str | None, name: str, arguments: dict[str, Any]
    ) -> str | None:
        """Log ``tool_call.start`` on the task; its call id, or None when not recorded."""
        if task_id is None:
            return None
        call_id = new_id("call")
        start = {"tool_call_id": call_id, "name": name, "args": arguments}
        try:
            await self._publish(actor, task_id, EventIn(event_type=E.TOOL_CALL_START, data=start))
        except TasklineError:  # no such task, or the caller may not publish there
            return None
        return call_id

    async def _record_end(
        self,
        actor: Actor,
        task_id: str,
        call_id: str,
        name: str,
        result: JsonValue,
        error: str | None,
        duration_ms: float,
    ) -> None:
        end: dict[str, Any] = {"tool_call_id": call_id, "name": name, "duration_ms": duration_ms}
        if error is None:
            end["result"] = result
        else:
            end["error"] = error
        try:
            await self._publish(actor, task_id, EventIn(event_type=E.TOOL_CALL_END, data=end))
        except TasklineError as exc:  # the task was deleted meanwhile, say
            logger.info("MCP tool call %s on %s not recorded: %s", call_id, task_id, exc)

    async def _publish(self, actor: Actor, task_id: str, event: EventIn) -> None:
        await publish(self.services, actor, task_id, [event])

    # --- resources ---------------------------------------------------------------------------

    async def _list_resources(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        page = await self.services.tasks.page(TaskQuery(limit=LISTED_RESOURCES, descending=True))
        return types.ListResourcesResult(
            resources=[
                types.Resource(
                    uri=task_uri(task["id"]),
                    name=task["id"],
                    title=task["title"],
                    mime_type="application/json",
                )
                for task in page["items"]
            ]
        )

    async def _list_templates(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        template = types.ResourceTemplate(
            uri_template=TASK_URI,
            name="task",
            description="A Taskline task: fields, checklist, result (JSON).",
            mime_type="application/json",
        )
        return types.ListResourceTemplatesResult(resource_templates=[template])

    async def _read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        task_id = task_id_of(uri)
        if task_id is None:
            raise _mcp_error(types.INVALID_PARAMS, f"not a Taskline resource: {uri}")
        try:
            document = await self.services.tasks.document(task_id)
        except NotFoundError as exc:
            raise _mcp_error(types.INVALID_PARAMS, exc.detail) from None
        text = orjson.dumps(document).decode()
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, mime_type="application/json", text=text)]
        )

    async def _subscribe(
        self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        uri = str(params.uri)
        if task_id_of(uri) is None:
            raise _mcp_error(types.INVALID_PARAMS, f"not a Taskline resource: {uri}")
        connection = _connection(ctx)
        if self.watch.subscribe(connection, ctx.session, uri):
            watch = self.watch
            connection.exit_stack.push_async_callback(watch.forget, connection)
        return types.EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        self.watch.unsubscribe(_connection(ctx), str(params.uri))
        return types.EmptyResult()


# --- helpers --------------------------------------------------------------------------------


def _actor(ctx: ServerRequestContext[Any]) -> Actor:
    """The actor of the HTTP request that carried this message (the doors put it there)."""
    scope = getattr(ctx.request, "scope", None)
    actor = scope.get(ACTOR_KEY) if isinstance(scope, dict) else None
    if not isinstance(actor, Actor):  # not over our endpoint: nobody
        return Actor.anonymous()
    return actor


def _connection(ctx: ServerRequestContext[Any]) -> Any:
    """The connection a message came on (the session's), which owns per-session cleanup.

    The SDK gives handlers the connection only through the session proxy.
    """
    return ctx.session._connection


def _text(value: JsonValue) -> types.TextContent:
    return types.TextContent(type="text", text=orjson.dumps(value).decode())


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _problem_text(exc: TasklineError) -> str:
    """``403 forbidden: the agent role may not …``: the status, the problem type, the detail
    (which names what is allowed, or the current version, where the problem has one)."""
    status, slug = status_of(exc)
    return f"{status} {slug}: {exc.detail}"


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _mcp_error(code: int, message: str) -> MCPError:
    return MCPError(code=code, message=message)

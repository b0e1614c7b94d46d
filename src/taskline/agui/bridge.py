"""Bridge: run a remote AG-UI agent and record its stream into a Taskline task.

:func:`attach` POSTs a ``RunAgentInput`` to any AG-UI endpoint (any framework's), reads the
SSE stream it answers with, and records every event into the task with
``POST /api/v1/tasks/{id}/events?format=agui``, in batches. Existing AG-UI agents thus show
up in Taskline (board, watch endpoints, AG-UI viewers) with no change to their code.

The request: ``threadId`` = the task id, a fresh ``runId`` (``run_…``), the task's current
shared state as ``state``, the given user message (if any) as ``messages``, and empty
``tools``/``context``/``forwardedProps``.

Edge cases:

- The SSE parser follows the official client: frames end at a blank line (``\\n\\n``; a
  ``\\r\\n`` peer is accepted too), only ``data:`` lines count, several are joined with
  ``\\n``; comments, ``event:``, ``id:`` and ``retry:`` lines are ignored.
- An event the official models refuse (or a frame that is not JSON) is not recorded; it is
  reported through ``on_warning`` and the run goes on (as the JS client drops unknown types).
- A batch is sent when it holds ``batch_size`` events, after ``flush_interval`` seconds, and
  at the end. Every recorded event carries the bridge's ``runId`` and the source
  ``agui-bridge`` on its envelope. A task whose last run ended (completed or failed) is
  reopened by the new run's ``RUN_STARTED`` (threads are multi-run); a batch Taskline refuses
  (e.g. the task was cancelled) stops the bridge with :class:`BridgeError`.
- If the remote stream ends, fails or cannot be read after it started a run but before its
  terminal event, a ``RUN_ERROR`` saying so is recorded, so the task is failed rather than
  left in progress. A non-2xx answer before any event is a :class:`BridgeError`, recording
  nothing.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from ag_ui.core import RunAgentInput, UserMessage

from taskline.agui.translate import TERMINAL_TYPES, parse_agui
from taskline.domain.errors import InvalidInputError
from taskline.domain.ids import new_id

__all__ = ["SOURCE", "BridgeError", "BridgeResult", "attach", "sse_events"]

#: The ``source`` of every event the bridge records.
SOURCE = "agui-bridge"


class BridgeError(Exception):
    """The bridge could not run or record the remote run (the message says why).

    ``status`` is Taskline's HTTP status when Taskline refused (404: no such task; 401: no
    token or a refused one; 403: not allowed), else None.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class BridgeResult:
    """What was recorded: counts per AG-UI type, the terminal type, the run id."""

    run_id: str
    recorded: int = 0
    dropped: int = 0
    terminal: str | None = None
    types: dict[str, int] = field(default_factory=dict)


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` of each SSE frame in ``lines`` (text chunks), as the JS client reads it."""
    buffer = ""
    async for chunk in lines:
        buffer += chunk.replace("\r\n", "\n")
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            data = [
                line[5:].removeprefix(" ") for line in block.split("\n") if line.startswith("data:")
            ]
            if data:
                yield "\n".join(data)
    tail = [line[5:].removeprefix(" ") for line in buffer.split("\n") if line.startswith("data:")]
    if tail:
        yield "\n".join(tail)


class _Recorder:
    """Batches events and posts them to the task's AG-UI ingest."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        task_id: str,
        run_id: str,
        batch_size: int,
        flush_interval: float,
    ) -> None:
        self.http = http
        self.task_id = task_id
        self.params = {"format": "agui", "run_id": run_id, "source": SOURCE}
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.pending: list[dict[str, Any]] = []
        self.lock = asyncio.Lock()
        self.recorded = 0

    async def add(self, event: dict[str, Any]) -> None:
        self.pending.append(event)
        if len(self.pending) >= self.batch_size:
            await self.flush()

    async def flush(self) -> None:
        async with self.lock:
            while self.pending:
                batch, self.pending = (
                    self.pending[: self.batch_size],
                    self.pending[self.batch_size :],
                )
                response = await self.http.post(
                    f"/api/v1/tasks/{self.task_id}/events",
                    params=self.params,
                    json=batch,
                )
                status = response.status_code
                if status >= 300:
                    raise BridgeError(
                        f"Taskline refused the events ({status}): {_detail(response)}",
                        status=status,
                    )
                self.recorded += len(batch)

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            if self.pending:
                await self.flush()


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:300]
    return str(body)[:300]


async def attach(
    taskline_url: str,
    agui_url: str,
    task_id: str,
    *,
    message: str | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = None,
    timeout: float = 30.0,
    batch_size: int = 100,
    flush_interval: float = 0.2,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> BridgeResult:
    """Run the AG-UI agent at ``agui_url`` on task ``task_id`` and record its stream.

    Args:
        taskline_url: the Taskline server.
        message: the user message sent to the agent (none: an empty conversation).
        headers: extra headers for the remote agent (e.g. ``Authorization``).
        token: Taskline's token, sent as ``Authorization: Bearer <token>`` to Taskline only
            (never to the remote agent); None sends none (the caller resolves it: the CLI
            uses ``--token``, ``TASKLINE_TOKEN`` or the credentials file, as the SDK does).
        timeout: seconds to wait for either server (per read; the stream itself may be long).
        on_event: called with each valid event (camelCase JSON) before it is recorded.
        on_warning: called with a line for each event that was not recorded.

    Raises:
        BridgeError: the task does not exist, Taskline refused the token, the remote agent
            answered with an error status or could not be reached before sending anything,
            or Taskline refused a batch (``status`` says what Taskline answered).
    """
    if batch_size < 1 or flush_interval <= 0:
        raise ValueError("batch_size must be >= 1 and flush_interval > 0")
    limits = httpx.Timeout(timeout)
    own = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx.AsyncClient(base_url=taskline_url, timeout=limits, headers=own) as taskline,
        httpx.AsyncClient(timeout=limits, headers=headers or {}) as remote,
    ):
        found = await taskline.get(f"/api/v1/tasks/{task_id}/state")
        if found.status_code != 200:
            raise BridgeError(
                f"task {task_id}: {_detail(found)} ({found.status_code})", status=found.status_code
            )
        run_id = new_id("run")
        run_input = RunAgentInput(
            thread_id=task_id,
            run_id=run_id,
            state=found.json().get("state") or {},
            messages=[UserMessage(id=new_id("msg"), content=message)] if message else [],
            tools=[],
            context=[],
            forwarded_props={},
        )
        result = BridgeResult(run_id=run_id)
        recorder = _Recorder(taskline, task_id, run_id, batch_size, flush_interval)
        ticker = asyncio.create_task(recorder.ticker())
        started = False
        failure: str | None = None
        try:
            try:
                async with remote.stream(
                    "POST",
                    agui_url,
                    content=run_input.model_dump_json(by_alias=True, exclude_none=True),
                    headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
                ) as response:
                    if response.status_code >= 300:
                        text = (await response.aread()).decode("utf-8", "replace")[:300]
                        raise BridgeError(
                            f"the AG-UI agent answered {response.status_code}: {text}"
                        )
                    async for data in sse_events(response.aiter_text()):
                        kind = await _take(data, recorder, result, on_event, on_warning)
                        started = started or kind == "RUN_STARTED"
                        if kind in TERMINAL_TYPES:
                            result.terminal = kind
                            break
            except httpx.HTTPError as exc:
                if not started:
                    raise BridgeError(f"the AG-UI agent could not be reached: {exc}") from exc
                failure = f"the AG-UI stream failed: {type(exc).__name__}: {exc}"
            if started and result.terminal is None:
                failure = failure or "the AG-UI stream ended without RUN_FINISHED or RUN_ERROR"
                await recorder.add({"type": "RUN_ERROR", "message": failure, "code": "bridge"})
                result.terminal = "RUN_ERROR"
                result.types["RUN_ERROR"] = result.types.get("RUN_ERROR", 0) + 1
            await recorder.flush()
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError, BridgeError, httpx.HTTPError):
                await ticker
        result.recorded = recorder.recorded
        return result


async def _take(
    data: str,
    recorder: _Recorder,
    result: BridgeResult,
    on_event: Callable[[dict[str, Any]], None] | None,
    on_warning: Callable[[str], None] | None,
) -> str | None:
    """Validate one frame's data and queue it; return its type (None if dropped)."""
    try:
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise InvalidInputError("an AG-UI event must be a JSON object", field="event")
        parse_agui(raw)
    except (ValueError, InvalidInputError) as exc:
        result.dropped += 1
        if on_warning is not None:
            on_warning(f"dropped an event the AG-UI models refuse: {exc}")
        return None
    kind = str(raw["type"])
    result.types[kind] = result.types.get(kind, 0) + 1
    if on_event is not None:
        on_event(raw)
    await recorder.add(raw)
    return kind

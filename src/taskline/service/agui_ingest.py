"""Publishing AG-UI events into a task (``POST /api/v1/tasks/{id}/events?format=agui``, what
``taskline agent attach`` records with): interrupts become requests.

The events are published as :meth:`EventService.publish` does, with one addition: a
``RUN_FINISHED`` whose outcome is an interrupt (an AG-UI agent stopped to ask; stored as the
``custom`` event ``agui:RUN_FINISHED``, which completes nothing) opens one request per
interrupt first (:func:`taskline.agui.interrupts.spec_of`: an approval for ``tool_call`` and
``confirmation``, a question otherwise; ``run_id`` the event's run). The stored event's
interrupts then carry the requests' ids (the agent's own id is kept as
``metadata.taskline.agui_interrupt_id``), so a resume through ``POST /api/v1/agui``, the
inbox and the AG-UI watchers all name the same thing.

Edge cases: a batch holding such an event is stored in parts (the events before it, the
requests, then it and the rest), each part all or nothing; a part refused leaves the earlier
ones stored. Re-sending the batch opens the requests again (the event ids of the other parts
are idempotent as usual). Without a requests service, interrupts are stored as they came.
"""

import json
from collections.abc import Sequence
from typing import Any

from ag_ui.core import RunFinishedEvent
from pydantic import ValidationError

from taskline.agui.interrupts import spec_of
from taskline.agui.translate import AGUI_KEY, event_json, parse_agui
from taskline.domain.actors import Actor
from taskline.domain.errors import InvalidInputError
from taskline.domain.events import EventIn, WebSocketEventType, WebSocketMessage
from taskline.domain.models import utc_now
from taskline.service.events import EventService
from taskline.service.requests import RequestService

__all__ = ["AguiIngest"]


def _is_interrupt(event: EventIn) -> bool:
    original = event.data.get(AGUI_KEY)
    if event.event_type != WebSocketEventType.CUSTOM or not isinstance(original, dict):
        return False
    outcome = original.get("outcome")
    return (
        original.get("type") == "RUN_FINISHED"
        and isinstance(outcome, dict)
        and outcome.get("type") == "interrupt"
    )


class AguiIngest:
    """AG-UI events in (see the module docstring)."""

    def __init__(self, events: EventService, requests: RequestService | None) -> None:
        self.events = events
        self.requests = requests

    async def publish(
        self, task_id: str, events: Sequence[EventIn], *, actor: Actor, source: str | None
    ) -> list[WebSocketMessage]:
        """Store ``events`` (translated AG-UI events), opening a request per interrupt.

        Raises:
            As :meth:`EventService.publish`, and as
            :meth:`~taskline.service.requests.RequestService.open` for the requests
            (InvalidInputError naming ``events.N.outcome.interrupts.M`` for an interrupt
            that does not fit a request, or has expired).
        """
        committed: list[WebSocketMessage] = []
        part: list[EventIn] = []
        for index, event in enumerate(events):
            if self.requests is not None and _is_interrupt(event):
                if part:
                    committed += await self.events.publish(
                        task_id, part, actor=actor, source=source
                    )
                    part = []
                event = await self._ask(self.requests, task_id, event, index, actor)
            part.append(event)
        if part:
            committed += await self.events.publish(task_id, part, actor=actor, source=source)
        return committed

    async def _ask(
        self, requests: RequestService, task_id: str, event: EventIn, index: int, actor: Actor
    ) -> EventIn:
        """Open the requests of an interrupt event; return it naming them."""
        finished = parse_agui(dict(event.data[AGUI_KEY]), field=f"events.{index}")
        assert isinstance(finished, RunFinishedEvent) and finished.outcome is not None
        interrupts = list(getattr(finished.outcome, "interrupts", []))
        now = utc_now()
        renamed = []
        for number, interrupt in enumerate(interrupts):
            field = f"events.{index}.outcome.interrupts.{number}"
            try:
                spec = spec_of(interrupt, run_id=event.run_id, now=now)
            except ValidationError as exc:
                first = exc.errors()[0]
                raise InvalidInputError(f"{field}: {first['msg']}", field=field) from None
            except InvalidInputError as exc:
                raise InvalidInputError(f"{field}: {exc.detail}", field=field) from None
            request = await requests.open(actor, task_id, spec)
            metadata: dict[str, Any] = dict(interrupt.metadata or {})
            taskline = dict(metadata.get("taskline") or {})
            taskline["agui_interrupt_id"] = interrupt.id
            metadata["taskline"] = taskline
            renamed.append(interrupt.model_copy(update={"id": request.id, "metadata": metadata}))
        outcome = finished.outcome.model_copy(update={"interrupts": renamed})
        wire = json.loads(event_json(finished.model_copy(update={"outcome": outcome})))
        wire.pop("timestamp", None)
        data = {**event.data, "value": wire, AGUI_KEY: wire}
        return event.model_copy(update={"data": data})

"""The live demo of ``taskline serve --demo``: the built-in agent reviews the sample folder.

It runs in a background thread with its own event loop and talks to the server like any
agent would (HTTP and WebSockets through the SDK), so what people see in the UI or with
``taskline watch`` is exactly what a real agent produces.
"""

import asyncio
import logging
import threading
from collections.abc import Sequence

from taskline.agent.files import SAMPLE_DOCS
from taskline.agent.runner import review_folder
from taskline.domain.status import TERMINAL_STATUSES
from taskline.sdk import AsyncClient, TasklineClientError

__all__ = ["start_demo_agent"]

logger = logging.getLogger("taskline.demo")
DEMO_TITLE = "Review the sample documents (live demo)"
DEMO_DESCRIPTION = (
    "Taskline's built-in agent reviews the documents shipped with it: headings, word counts, "
    "TODO/FIXME, broken links. Pause, resume, cancel or message it from the UI. It starts "
    "over a little while after it finishes."
)
#: Runs per server start; between runs the finished task is reset and reviewed again.
DEMO_ROUNDS = 50
DEMO_PAUSE = 20.0


async def _run_demo(url: str, delay: float, token: str | None, approve: Sequence[str] = ()) -> None:
    async with AsyncClient(url, token=token) as client:
        for _ in range(200):  # wait up to 20 s for the server to answer
            try:
                await client.health()
                break
            except TasklineClientError:
                await asyncio.sleep(0.1)
        task = await client.create_task(DEMO_TITLE, description=DEMO_DESCRIPTION, tags=["demo"])
        logger.info("demo agent working on %s", task.id)
        for _ in range(DEMO_ROUNDS):
            await review_folder(client, task.id, SAMPLE_DOCS, step_delay=delay, approve=approve)
            await asyncio.sleep(DEMO_PAUSE)
            current = await client.get_task(task.id)
            if current.status not in TERMINAL_STATUSES:
                return  # someone else is driving it now
            # start over on the same task: reopened, with its plan cleared
            await client.replace_task(
                task.id,
                DEMO_TITLE,
                description=DEMO_DESCRIPTION,
                tags=["demo"],
                status="pending",
                sections=[],
            )


def start_demo_agent(
    url: str, *, delay: float = 1.5, token: str | None = None, approve: Sequence[str] = ()
) -> threading.Thread:
    """Start the demo agent against the server at ``url``, signing with ``token``; failures
    are logged, not raised.

    ``serve --demo`` passes a token the server minted for the agent; ``None`` leaves it to
    the SDK (``TASKLINE_TOKEN``, then the credentials file). ``approve``: the steps that wait
    for a person's approval (``TASKLINE_AGENT_APPROVE``), so the demo shows the whole loop.
    """

    def run() -> None:
        try:
            asyncio.run(_run_demo(url, delay, token, approve))
        except Exception:
            logger.exception("the demo agent stopped")

    thread = threading.Thread(target=run, name="taskline-demo-agent", daemon=True)
    thread.start()
    return thread

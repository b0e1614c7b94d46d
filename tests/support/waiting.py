"""Waiting for observable conditions: every wait has a deadline and says what it waited for.

Tests never sleep to synchronise. They poll a condition they can observe (a status endpoint,
an event in the log, a log line, an attribute of a client) until it holds, and fail with a
message naming the condition when the deadline passes. The short sleep between two polls is
not a synchronisation: a slow machine only makes the wait take longer.

Proving that something does *not* happen (a producer stays blocked) can only be done for a
bounded time: :func:`holds_for` / :func:`async_holds_for` check the condition throughout such
a window and fail as soon as it breaks; callers explain why a window is the only way.

``TASKLINE_TEST_TIME_SCALE`` multiplies every deadline (raise it on a very slow machine).
"""

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["TIME_SCALE", "WAIT", "async_holds_for", "async_wait_until", "holds_for", "wait_until"]

T = TypeVar("T")

#: Multiplies deadlines; raise TASKLINE_TEST_TIME_SCALE on a slow machine.
TIME_SCALE = float(os.environ.get("TASKLINE_TEST_TIME_SCALE", "1"))
#: Default deadline in seconds: generous, since reaching it means the test fails anyway.
WAIT = 30.0 * TIME_SCALE
#: Seconds between two polls.
POLL = 0.02

Message = str | Callable[[], str]


def _describe(message: Message) -> str:
    return message() if callable(message) else message


def wait_until(
    predicate: Callable[[], T],
    *,
    message: Message,
    timeout: float = WAIT,
    interval: float = POLL,
) -> T:
    """Poll ``predicate()`` until it returns something true and return that.

    Raises:
        AssertionError: ``timeout`` seconds passed first; the text names ``message`` (a
            string, or a callable called then, to describe the state at the deadline).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {_describe(message)}")
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    *,
    message: Message,
    timeout: float = WAIT,
    interval: float = POLL,
) -> T:
    """:func:`wait_until` for async tests: the event loop keeps running between polls, and
    ``predicate`` may be a coroutine function (a REST call, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {_describe(message)}")
        await asyncio.sleep(interval)


def holds_for(
    predicate: Callable[[], object], seconds: float, *, message: Message, interval: float = POLL
) -> None:
    """Check ``predicate()`` throughout ``seconds``; fail the moment it is false.

    Only for proving that something does not happen, which no observation can show for
    good: say at the call why a bounded window is the only way.
    """
    deadline = time.monotonic() + seconds
    while True:
        if not predicate():
            raise AssertionError(f"no longer true: {_describe(message)}")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


async def async_holds_for(
    predicate: Callable[[], object | Awaitable[object]],
    seconds: float,
    *,
    message: Message,
    interval: float = POLL,
) -> None:
    """:func:`holds_for` for async tests (``predicate`` may be a coroutine function)."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if not value:
            raise AssertionError(f"no longer true: {_describe(message)}")
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)

"""What the API's limits need from a store every server process shares (Redis, in
:mod:`taskline.bus.redis_rates` and :mod:`taskline.bus.redis_sockets`).

The API (:mod:`taskline.api.throttle`) applies the rate limits and WebSocket caps; with several
processes it asks one of these first, so that a principal's limits hold for the deployment,
not per process. When the store cannot be reached they raise
:class:`~taskline.domain.errors.StorageError` and the API falls back to its own per-process
limits (availability over strictness).
"""

from typing import Protocol

__all__ = ["SharedRates", "SharedSockets"]


class SharedRates(Protocol):
    """Token buckets shared by every process: one per bucket name and key."""

    async def take(self, name: str, key: str, per_second: float, burst: int) -> tuple[float, int]:
        """Take a token from ``key``'s bucket ``name`` (``per_second`` flow in, ``burst`` kept;
        a bucket never seen starts full).

        Returns:
            ``(0.0, tokens left)`` when taken; ``(seconds until a token is there, 0)`` when
            not (nothing taken).

        Raises:
            StorageError: the store cannot be reached (it may or may not have taken it).
        """
        ...


class SharedSockets(Protocol):
    """Open WebSockets counted across processes, per principal, per address and in all.

    ``principal`` None (someone anonymous) is counted by address only; ``address`` None (no
    peer address) in all only. Caps of 0 are no cap.
    """

    async def admit(
        self,
        principal: str | None,
        address: str | None,
        *,
        per_principal: int,
        per_address: int,
        total: int,
    ) -> str | None:
        """Count a WebSocket in if every process's sockets together leave room: None, or the
        cap it would pass (``"total"``, ``"address"``, ``"principal"``; nothing counted).

        Raises:
            StorageError: the store cannot be reached (nothing counted in it).
        """
        ...

    def counted(self, principal: str | None, address: str | None) -> None:
        """Count in a WebSocket admitted without the store (it could not be reached): the
        store learns of it once it answers again."""
        ...

    async def release(self, principal: str | None, address: str | None) -> None:
        """Count out a WebSocket :meth:`admit` or :meth:`counted` counted in. Never raises:
        when the store cannot be reached it is told later."""
        ...

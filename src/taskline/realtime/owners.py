"""Who a client id belongs to: the principal that first connected with it.

A client id carries its owner's queued personal messages, so another principal presenting it
is refused (4403). An id is remembered while it is connected and for ``ttl`` seconds after it
left (as long as its offline queue may be kept).
"""

__all__ = ["ClientOwners"]


class ClientOwners:
    """Client id -> owner (an actor's text form), forgotten ``ttl`` seconds after last use."""

    def __init__(self, *, ttl: float) -> None:
        self.ttl = ttl
        self._owners: dict[str, tuple[str, float]] = {}

    def claim(self, client_id: str, owner: str, *, now: float) -> bool:
        """True (and the id is ``owner``'s from now) unless another owner holds it."""
        held = self._owners.get(client_id)
        if held is not None and held[0] != owner and now - held[1] <= self.ttl:
            return False
        self._owners[client_id] = (owner, now)
        return True

    def seen(self, client_id: str, *, now: float) -> None:
        """The id was in use until ``now`` (its client disconnected)."""
        held = self._owners.get(client_id)
        if held is not None:
            self._owners[client_id] = (held[0], now)

    def owner(self, client_id: str) -> str | None:
        held = self._owners.get(client_id)
        return held[0] if held else None

    def expire(self, *, now: float, connected: set[str] | frozenset[str]) -> int:
        """Forget ids unused for ``ttl`` seconds that are not connected; return how many."""
        gone = [
            client_id
            for client_id, (_, last) in self._owners.items()
            if now - last > self.ttl and client_id not in connected
        ]
        for client_id in gone:
            del self._owners[client_id]
        return len(gone)

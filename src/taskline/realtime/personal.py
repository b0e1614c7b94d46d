"""SharedClients: the connection manager's side of a :class:`~taskline.bus.ClientRelay`.

Personal messages, offline queues and client-id owners shared by the processes of one
deployment (see :mod:`taskline.bus.client_relay`). Every call here that Redis fails is logged
(a warning) and answers None or nothing, so that the manager does what one process does
alone: its own offline queue, its own owners' table. Nothing is dropped silently: a message
Redis could not take goes to this process's queue.
"""

import logging

from taskline.bus.client_relay import ClientRelay, Connected, DeliverHere
from taskline.domain.errors import StorageError
from taskline.realtime.offline import QueuedMessages

__all__ = ["SharedClients", "merged"]

logger = logging.getLogger("taskline.realtime")


def merged(first: QueuedMessages, second: QueuedMessages) -> QueuedMessages:
    """Both queues' messages (``first``'s first), their dropped counts added."""
    frames = [*first.frames, *second.frames]
    expired = (first.expired or second.expired) and not frames
    return QueuedMessages(frames=frames, dropped=first.dropped + second.dropped, expired=expired)


class SharedClients:
    """Calls to the relay that fall back (logged) when Redis fails."""

    def __init__(self, relay: ClientRelay) -> None:
        self.relay = relay

    async def start(self, deliver: DeliverHere, connected: Connected) -> None:
        """Start the relay (raises StorageError when Redis cannot be reached)."""
        await self.relay.start(deliver, connected)

    async def close(self) -> None:
        await self.relay.close()

    async def claim_owner(self, client_id: str, owner: str) -> bool | None:
        """Whether ``owner`` may use the id on any process (None: Redis did not answer)."""
        try:
            return await self.relay.claim_owner(client_id, owner)
        except StorageError as exc:
            logger.warning("client %s: owner checked on this process only: %s", client_id, exc)
            return None

    async def online(self, client_id: str) -> QueuedMessages:
        """Record the client here; return what its shared queue held for it (now emptied)."""
        try:
            await self.relay.online(client_id)
            frames, dropped, expired = await self.relay.take(client_id)
        except StorageError as exc:
            logger.warning("client %s: shared queue not read: %s", client_id, exc)
            return QueuedMessages()
        return QueuedMessages(frames=frames, dropped=dropped, expired=expired)

    async def offline(self, client_id: str) -> None:
        try:
            await self.relay.offline(client_id)
        except StorageError as exc:  # its presence key expires within presence_ttl
            logger.warning("client %s: presence not removed from Redis: %s", client_id, exc)

    async def send(self, client_id: str, frame: str) -> bool | None:
        """True if a live connection on another process took the frame, False if it went to
        the shared queue (or that process's), None when Redis failed (nothing was queued)."""
        try:
            return await self.relay.send(client_id, frame)
        except StorageError as exc:
            logger.warning("personal message for client %s kept here: %s", client_id, exc)
            return None

    async def depth(self, client_id: str) -> int:
        """Messages waiting for the client in the shared queue (0 when Redis fails)."""
        try:
            return await self.relay.depth(client_id)
        except StorageError:
            return 0

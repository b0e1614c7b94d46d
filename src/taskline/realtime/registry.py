"""Who is connected, and to what: connections by client id, subscribers by task, the board."""

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator

from taskline.realtime.channel import DirectChannel
from taskline.realtime.subscriber import Subscriber

__all__ = ["Closer", "Connection", "Registry"]

#: Closes a connection with a code and a reason.
Closer = Callable[[int, str], Awaitable[None]]


class Connection:
    """A registered subscriber and its I/O: a direct channel, or a writer task (or neither:
    a reader that pulls, see :mod:`taskline.realtime.follow`), and how to close it."""

    __slots__ = ("catching_up", "channel", "closer", "subscriber", "writer")

    def __init__(
        self, subscriber: Subscriber, closer: Closer, channel: DirectChannel | None
    ) -> None:
        self.subscriber = subscriber
        self.closer = closer
        self.channel = channel
        self.writer: asyncio.Task[None] | None = None
        self.catching_up = False


class Registry:
    """The connections of this process, and the fan-out's view of them."""

    def __init__(self) -> None:
        self.connections: dict[str, Connection] = {}
        self.by_task: dict[str, set[Subscriber]] = defaultdict(set)
        self.board: set[Subscriber] = set()

    def __len__(self) -> int:
        return len(self.connections)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self.connections.values()))

    def get(self, client_id: str) -> Connection | None:
        return self.connections.get(client_id)

    def follow(self, subscriber: Subscriber) -> None:
        """Offer the subscriber its task's events (or the board's) from now on."""
        if subscriber.task_id is None:
            self.board.add(subscriber)
        else:
            self.by_task[subscriber.task_id].add(subscriber)

    def unfollow(self, subscriber: Subscriber) -> None:
        if subscriber.task_id is not None:
            subscribers = self.by_task.get(subscriber.task_id)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self.by_task[subscriber.task_id]
        self.board.discard(subscriber)

    def add(self, connection: Connection) -> None:
        self.connections[connection.subscriber.client_id] = connection

    def remove(self, client_id: str) -> Connection | None:
        """Forget the connection (and stop offering it events); None if it was not here."""
        connection = self.connections.pop(client_id, None)
        if connection is not None:
            self.unfollow(connection.subscriber)
        return connection

    def subscribers_of(self, task_id: str) -> set[Subscriber] | None:
        return self.by_task.get(task_id)

"""Live delivery: the ConnectionManager, subscribers and their delivery core, heartbeats, resume."""

from taskline.realtime.close_codes import CloseCode
from taskline.realtime.follow import Delivered, Following
from taskline.realtime.log_poller import LogPoller
from taskline.realtime.manager import ConnectionManager, CursorVoidError
from taskline.realtime.subscriber import Subscriber, SubscriberState

__all__ = [
    "CloseCode",
    "ConnectionManager",
    "CursorVoidError",
    "Delivered",
    "Following",
    "LogPoller",
    "Subscriber",
    "SubscriberState",
]

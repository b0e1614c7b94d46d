"""Live delivery: the ConnectionManager, subscribers and their delivery core, heartbeats, resume."""

from taskline.realtime.close_codes import CloseCode
from taskline.realtime.manager import ConnectionManager
from taskline.realtime.subscriber import Subscriber, SubscriberState

__all__ = ["CloseCode", "ConnectionManager", "Subscriber", "SubscriberState"]

"""Live delivery: the ConnectionManager, subscribers, outboxes, heartbeats and resume."""

from taskline.realtime.close_codes import CloseCode
from taskline.realtime.manager import ConnectionManager
from taskline.realtime.subscriber import Subscriber, SubscriberState

__all__ = ["CloseCode", "ConnectionManager", "Subscriber", "SubscriberState"]

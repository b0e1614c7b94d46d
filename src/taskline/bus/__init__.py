"""The event bus: in-process handlers, history and stats; memory and Redis notifiers.

It may import only :mod:`taskline.domain`; the app injects how events are persisted.
"""

from taskline.bus.agent_relay import AgentRelay
from taskline.bus.client_relay import ClientRelay
from taskline.bus.event_bus import Attribution, BusState, EventBus, LinkStatus, PersistEvents
from taskline.bus.notifier import BatchCallback, MemoryNotifier, Notifier
from taskline.bus.redis_notifier import RedisNotifier
from taskline.bus.redis_rates import RedisRates
from taskline.bus.redis_sockets import RedisSockets
from taskline.bus.run_lock import RunLock
from taskline.bus.subscription import Handler, HandlerSubscription

__all__ = [
    "AgentRelay",
    "Attribution",
    "BatchCallback",
    "BusState",
    "ClientRelay",
    "EventBus",
    "Handler",
    "HandlerSubscription",
    "LinkStatus",
    "MemoryNotifier",
    "Notifier",
    "PersistEvents",
    "RedisNotifier",
    "RedisRates",
    "RedisSockets",
    "RunLock",
]

"""WebSocket close codes Taskline uses (RFC 6455 §7.4; 4000-4999 are application codes)."""

from enum import IntEnum

__all__ = ["CloseCode"]


class CloseCode(IntEnum):
    """Why the server closed a connection. Every code but ``UNKNOWN_TASK`` invites a resume."""

    NORMAL = 1000
    GOING_AWAY = 1001  #: the server is shutting down; reconnect with ``since`` later
    POLICY_VIOLATION = 1008  #: a query parameter or id the server cannot take: do not retry
    MESSAGE_TOO_BIG = 1009  #: a client frame was larger than the limit
    TRY_AGAIN_LATER = 1013  #: a connection cap is reached (per principal, address, or all)
    SLOW_CONSUMER = 4008  #: the client took no bytes for ``write_timeout`` s: resume with since
    UNAUTHENTICATED = 4401  #: no credentials, or refused ones: sign in or send a token
    FORBIDDEN = 4403  #: not allowed: a foreign Origin, another agent's id, another's client id
    UNKNOWN_TASK = 4404  #: the task does not exist
    STALE = 4408  #: no client activity within ``stale_after`` seconds
    EPOCH_MISMATCH = 4409  #: the ``since`` cursor belongs to another database's log
    TOO_MANY_MESSAGES = 4429  #: the client sent frames faster than the frame limit

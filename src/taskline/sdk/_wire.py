"""The WebSocket boundary: URLs, opening a connection, and what a close code means.

The ``websockets`` library's exceptions stop here: callers get a :class:`Dropped` (worth a
reconnect) or one of the SDK's errors (not worth one).
"""

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from taskline.sdk._errors import (
    InvalidRequest,
    NotFound,
    TasklineAuthError,
    TasklineClientError,
)

__all__ = [
    "Dropped",
    "decode",
    "encode",
    "fatal_close",
    "open_socket",
    "token_sent",
    "websocket_url",
]

#: Close codes after which reconnecting cannot help (each maps to an error below).
_POLICY_VIOLATION = 1008
_MESSAGE_TOO_BIG = 1009
_UNKNOWN_TASK = 4404
_UNAUTHENTICATED = 4401  # no token, or one the server does not accept
_FORBIDDEN = 4403  # a valid token that may not open this connection
_PROBLEMS = "https://taskline.dev/problems/"
#: Largest frame accepted from the server (a batched subscription frame can be large).
MAX_INCOMING_FRAME = 16 * 1024 * 1024


class Dropped(Exception):
    """The connection failed or closed in a way that a reconnect may fix (control flow inside
    the SDK; never raised to callers)."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def token_sent(headers: Mapping[str, str]) -> bool:
    """Whether ``headers`` (a connection's upgrade headers) carry a token."""
    return any(name.lower() == "authorization" for name in headers)


def _auth_error(status: int, detail: str, *, sent: bool) -> TasklineAuthError:
    kind, title = (
        ("unauthenticated", "Unauthorized") if status == 401 else ("forbidden", "Forbidden")
    )
    problem = {"type": _PROBLEMS + kind, "title": title, "status": status, "detail": detail}
    return TasklineAuthError(problem, token_sent=sent)


def websocket_url(base: str, path: str, params: Mapping[str, Any] | None = None) -> str:
    """Return the ``ws(s)://`` URL for ``path`` under the HTTP base URL ``base``.

    A path prefix on ``base`` (a reverse proxy's mount point) is kept; ``None`` parameters are
    left out.
    """
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, query, ""))


async def open_socket(
    url: str,
    *,
    headers: Mapping[str, str],
    open_timeout: float,
    close_timeout: float,
) -> ClientConnection:
    """Open a WebSocket (no compression) or raise.

    Like httpx, ``websockets`` (15 and later) honours the proxy environment variables
    (``HTTPS_PROXY``, ``NO_PROXY``, ...).

    Raises:
        Dropped: refused, reset, timed out, or a 5xx answer to the upgrade: try again later.
        NotFound: the upgrade was answered 404 (wrong URL, or a server without this route).
        TasklineAuthError: the upgrade was answered 401 or 403 (a proxy's or the server's).
        InvalidRequest: another 4xx answer, or a URL the library refuses.
    """
    try:
        return await connect(
            url,
            additional_headers=dict(headers),
            compression=None,
            open_timeout=open_timeout,
            close_timeout=close_timeout,
            max_size=MAX_INCOMING_FRAME,
            max_queue=64,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status >= 500:
            raise Dropped(f"the upgrade was answered {status}") from exc
        detail = f"{_without_query(url)}: the upgrade was answered {status}"
        if status in {401, 403}:
            raise _auth_error(status, detail, sent=token_sent(headers)) from exc
        problem = {"status": status, "title": "WebSocket refused", "detail": f"{url}: {status}"}
        raise (NotFound if status == 404 else InvalidRequest)(problem) from exc
    except InvalidURI as exc:
        raise InvalidRequest(
            {"status": 400, "title": "Invalid URL", "detail": f"{url}: {exc}"}
        ) from exc
    except (OSError, TimeoutError, InvalidHandshake, EOFError) as exc:
        raise Dropped(f"cannot connect: {type(exc).__name__}: {exc}".rstrip(": ")) from exc


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def fatal_close(
    code: int | None, reason: str, what: str, *, sent_token: bool = False
) -> TasklineClientError | None:
    """Return the error a close code means, or None when reconnecting may help.

    ``what`` names the connection in the message ("task 'task_x'", "agent 'agent_x'");
    ``sent_token`` says whether the connection's upgrade carried a token (for the hint of a
    4401). 4401 and 4403 (credentials refused, or not allowed) are never worth a reconnect.
    """
    if code in {_UNAUTHENTICATED, _FORBIDDEN}:
        status = 401 if code == _UNAUTHENTICATED else 403
        default = "the server refused the credentials" if status == 401 else "not allowed"
        return _auth_error(status, f"{what}: {reason or default}", sent=sent_token)
    if code == _UNKNOWN_TASK:
        return NotFound({"status": 404, "title": "Not found", "detail": reason or f"{what}"})
    if code == _POLICY_VIOLATION:
        return InvalidRequest(
            {"status": 400, "title": "Refused", "detail": f"{what}: {reason or 'bad request'}"}
        )
    if code == _MESSAGE_TOO_BIG:
        return InvalidRequest(
            {
                "status": 413,
                "title": "Frame too large",
                "detail": f"{what}: the server refused a frame as too large ({reason})",
            }
        )
    return None


def encode(frame: Any) -> str:
    """Encode a frame as compact JSON text."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def decode(text: str | bytes) -> Any:
    """Decode a frame; raise ``ValueError`` if it is not JSON."""
    return json.loads(text)

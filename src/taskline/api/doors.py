"""Every request passes here first: HTTP, Server-Sent Events and every WebSocket.

In order, for each request:

1. **Host.** The ``Host`` header must name this server (the bind address, ``localhost``, the
   public URL's host, or ``allowed_hosts``): a page on another name that resolves to this
   machine (DNS rebinding) is refused (400; a WebSocket is closed with 4403).
2. **Who.** ``Authorization: Bearer <token>`` or the ``taskline_session`` cookie is turned
   into the :class:`~taskline.domain.actors.Actor` the route sees (``scope["taskline.actor"]``).
   A credential that is sent but refused is a 401 even on open paths, except a session
   cookie on the routes that sign in and out (:data:`SIGN_IN_PATHS`): there it counts as no
   credential, else a browser whose session was revoked elsewhere could never sign in again
   (its page cannot clear an ``HttpOnly`` cookie; signing in replaces it). Without credentials
   only the open paths answer (health, the UI's files, signing in, the API document); the
   rest answer 401 (a WebSocket: 4401).
3. **Cross-site requests.** A browser sends cookies to this server from any page, so an
   unsafe request (POST, PUT, PATCH, DELETE) or a WebSocket that carries an ``Origin`` must
   come from an allowed one: the server's own (the one its ``Host`` names), the public URL's,
   or ``allowed_origins``; and a cookie-signed unsafe request must carry one. Requests signed
   with a bearer token are exempt: a page cannot attach one the way it can a cookie.
4. **Media type.** An unsafe request with a body must be JSON (``application/json`` or
   ``…+json``), else 415: a form or ``text/plain`` body is what a cross-site page can send
   without asking (no CORS preflight).

What each actor may then do is decided by the application layer (:mod:`taskline.service`,
with :mod:`taskline.domain.access`). HTTP responses get ``X-Content-Type-Options``,
``X-Frame-Options`` and ``Referrer-Policy``. With ``insecure`` none of this is checked:
everyone is an anonymous admin.

A WebSocket that passed (with ``insecure`` too) is counted against the connection caps
(``sockets``, :class:`~taskline.api.throttle.SocketCaps`) for as long as the app serves it:
here, in this frame, because a stream lives for hours and another middleware's frame would
stay in memory with each.
"""

import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskline.domain.actors import Actor, Role
from taskline.domain.problems import PROBLEM_TYPE_BASE
from taskline.realtime import CloseCode
from taskline.service.identity import Identity
from taskline.settings import Settings

if TYPE_CHECKING:
    from taskline.api.throttle import SocketCaps

__all__ = ["ACTOR_KEY", "OPEN_PATHS", "SESSION_COOKIE", "SIGN_IN_PATHS", "Doors", "actor_of"]

#: Where the request's actor is kept in the ASGI scope.
ACTOR_KEY = "taskline.actor"
SESSION_COOKIE = "taskline_session"
#: Paths that answer without credentials (exact, or a prefix ending in ``/``).
OPEN_PATHS = (
    "/",
    "/health",
    "/favicon.ico",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/auth/link",
    "/api/v1/auth/session",
    "/api/v1/auth/token",
    "/api/v1/auth/me",
    "/ui/",
)
_OPEN_EXACT = frozenset(OPEN_PATHS)
#: Where a dead session cookie is ignored rather than refused (see the module docstring).
SIGN_IN_PATHS = frozenset({"/api/v1/auth/session", "/api/v1/auth/token", "/auth/link"})
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
_ANONYMOUS = Actor.anonymous()
_EVERYONE = Actor.anonymous(Role.ADMIN)


def actor_of(scope: Scope) -> Actor:
    """The actor :class:`Doors` found for this request (anonymous if it did not run)."""
    actor: Actor = scope.get(ACTOR_KEY, _ANONYMOUS)
    return actor


def _is_open(path: str) -> bool:
    return path in _OPEN_EXACT or path.startswith("/ui/")


def _host_name(host: str) -> str:
    """``example.org:8000`` -> ``example.org``; ``[::1]:8000`` -> ``::1``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The host names this server answers to (None: any)."""
    if "*" in settings.allowed_hosts:
        return None
    names = {*_LOOPBACK, *(h.lower() for h in settings.allowed_hosts)}
    if settings.host in {"0.0.0.0", "::", ""}:
        # bound to every address: the machine's own names too
        names.update({socket.gethostname().lower(), socket.getfqdn().lower()})
    else:
        names.add(settings.host.lower())
    if settings.public_url:
        names.add((urlsplit(settings.public_url).hostname or "").lower())
    return frozenset(names)


def allowed_origins(settings: Settings) -> frozenset[str]:
    """Origins besides the request's own whose pages may use the cookie."""
    origins = {o.rstrip("/").lower() for o in (*settings.allowed_origins, *settings.cors_origins)}
    if settings.public_url:
        parts = urlsplit(settings.public_url)
        origins.add(f"{parts.scheme}://{parts.netloc}".lower())
    return frozenset(origins)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value or None
    return None


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class Doors:
    """ASGI middleware applying the checks of the module docstring before ``app``.

    Args:
        app: what serves the request once it passed.
        settings: the checks' configuration.
        identity: who a presented secret stands for.
        sockets: the WebSocket caps (None: none).
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        identity: Identity,
        *,
        sockets: "SocketCaps | None" = None,
    ) -> None:
        self.app = app
        self.sockets = sockets
        self.identity = identity
        self.insecure = settings.insecure
        self.checks_who_asks = settings.checks_who_asks
        self.hosts = allowed_hosts(settings)
        self.origins = allowed_origins(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or self.insecure:
            if kind in ("http", "websocket"):
                scope[ACTOR_KEY] = _EVERYONE
            if kind == "websocket" and self.sockets is not None:
                await self._counted(scope, receive, send, self.sockets)
                return
            await self.app(scope, receive, send)
            return
        host = origin = authorization = cookie = content_type = ""
        has_body = False
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"cookie":
                cookie = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                has_body = value not in (b"0", b"")
            elif name == b"transfer-encoding":
                has_body = True
        websocket = kind == "websocket"
        if self.hosts is not None and _host_name(host).lower() not in self.hosts:
            await self._refuse(
                scope,
                receive,
                send,
                400,
                "host-not-allowed",
                f"this server does not answer to the host {_host_name(host)!r}; "
                "add it to TASKLINE_ALLOWED_HOSTS or set TASKLINE_PUBLIC_URL",
                CloseCode.FORBIDDEN,
            )
            return
        path: str = scope["path"]
        method = "GET" if websocket else scope["method"]
        actor, by_cookie, refused = await self._who(authorization, cookie)
        if refused is not None and not authorization and path in SIGN_IN_PATHS:
            refused = None  # a dead session cookie: sign in (or out) as if it were not sent
        by_bearer = bool(authorization) and refused is None
        if refused is not None:
            await self._refuse(
                scope, receive, send, 401, "unauthenticated", refused, CloseCode.UNAUTHENTICATED
            )
            return
        if actor is None:
            if not _is_open(path):
                await self._refuse(
                    scope,
                    receive,
                    send,
                    401,
                    "unauthenticated",
                    "sign in, or send an API token: Authorization: Bearer <token>",
                    CloseCode.UNAUTHENTICATED,
                )
                return
            actor = _ANONYMOUS
        if not by_bearer and (websocket or method in _UNSAFE) and origin:
            if not self._origin_allowed(origin, host):
                await self._refuse(
                    scope,
                    receive,
                    send,
                    403,
                    "origin-not-allowed",
                    f"requests from pages on {origin} may not use this server; "
                    "add the origin to TASKLINE_ALLOWED_ORIGINS if it is yours",
                    CloseCode.FORBIDDEN,
                )
                return
        elif by_cookie and method in _UNSAFE and not origin:
            await self._refuse(
                scope,
                receive,
                send,
                403,
                "origin-not-allowed",
                "a request signed with the session cookie must carry an Origin header",
                CloseCode.FORBIDDEN,
            )
            return
        if method in _UNSAFE and has_body and not _is_json(content_type):
            await self._refuse(
                scope,
                receive,
                send,
                415,
                "unsupported-media-type",
                f"send the body as application/json (got {content_type or 'no Content-Type'!r})",
                CloseCode.FORBIDDEN,
            )
            return
        scope[ACTOR_KEY] = actor
        if websocket:
            sockets = self.sockets
            if sockets is None:
                await self.app(scope, receive, send)
                return
            refusal = await sockets.admit(scope)
            if refusal is not None:
                await sockets.refuse(scope, receive, send, refusal)
                return
            try:  # counted here, in this frame: a stream lives for hours
                await self.app(scope, receive, send)
            finally:
                await sockets.release(scope)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in _SECURITY_HEADERS if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_secured)

    async def _counted(
        self, scope: Scope, receive: Receive, send: Send, sockets: "SocketCaps"
    ) -> None:
        """Serve a WebSocket counted against the caps (the unchecked path's)."""
        refusal = await sockets.admit(scope)
        if refusal is not None:
            await sockets.refuse(scope, receive, send, refusal)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            await sockets.release(scope)

    async def _who(self, authorization: str, cookie: str) -> tuple[Actor | None, bool, str | None]:
        """(actor or None, signed by the cookie, why presented credentials were refused)."""
        if not self.checks_who_asks:
            return _EVERYONE, False, None
        if authorization:
            scheme, _, secret = authorization.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                return None, False, "use Authorization: Bearer <token>"
            actor = await self.identity.authenticate(secret.strip())
            if actor is None:
                return None, False, "the token is unknown, expired or revoked"
            return actor, False, None
        session = _cookie(cookie, SESSION_COOKIE) if cookie else None
        if session:
            actor = await self.identity.authenticate(session)
            if actor is None:
                return None, False, "your session has ended; sign in again"
            return actor, True, None
        return None, False, None

    def _origin_allowed(self, origin: str, host: str) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self.origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == host.lower()

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        slug: str,
        detail: str,
        close_code: int,
    ) -> None:
        if scope["type"] == "websocket":
            # accepted, then closed before any data: browsers see the code and the reason
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": close_code, "reason": detail[:120]})
            return
        body = orjson.dumps(
            {
                "type": PROBLEM_TYPE_BASE + slug,
                "title": _TITLES[status],
                "status": status,
                "detail": detail,
                "instance": scope["path"],
            }
        )
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            *_SECURITY_HEADERS,
        ]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="taskline"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 415: "Unsupported media type"}

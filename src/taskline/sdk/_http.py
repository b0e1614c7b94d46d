"""The HTTP layer every client face shares: one description of a call, one error mapping.

A :class:`Call` says what to send and how to read the answer; it does no I/O. A client face
(:class:`~taskline.sdk.Client` or :class:`~taskline.sdk.AsyncClient`) sends the request
inside :func:`transport_errors` and hands the response to :meth:`Call.handle`, so endpoints,
error translation and parsing are written once.
"""

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from email.message import Message as _HeaderParser
from enum import Enum
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Union
from urllib.parse import quote

import httpx

from taskline.domain.preconditions import etag
from taskline.sdk._errors import (
    ApiError,
    Conflict,
    InvalidRequest,
    LeaseLost,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    ServerUnreachableError,
    TasklineAuthError,
    UnexpectedResponseError,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from taskline.domain.models import Task

__all__ = [
    "Call",
    "IfMatch",
    "api_error",
    "conditional",
    "counts",
    "download",
    "json_object",
    "jsonable",
    "model",
    "model_list",
    "no_content",
    "optional_model",
    "path_id",
    "request_headers",
    "seqs",
    "server_url",
    "transport_errors",
]

T = TypeVar("T")
M = TypeVar("M", bound="BaseModel")

Parser = Callable[[httpx.Response], T]

_ERROR_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: InvalidRequest,
    422: InvalidRequest,
    428: PreconditionRequired,
}


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API call: the request to send and the parser for a successful answer."""

    method: str
    path: str
    parse: Parser[T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    #: seconds to wait for the answer (None: the client's timeout), for a long poll
    read_timeout: float | None = None

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """Build the request on ``http`` (its base URL, headers and timeout apply; a
        ``read_timeout`` replaces the client's for reading the answer)."""
        extra: dict[str, Any] = {}
        if self.read_timeout is not None:
            timeout = http.timeout
            extra["timeout"] = httpx.Timeout(
                connect=timeout.connect,
                read=self.read_timeout,
                write=timeout.write,
                pool=timeout.pool,
            )
        return http.build_request(
            self.method,
            self.path,
            params=self.params,
            json=self.json,
            content=self.content,
            headers=self.headers,
            **extra,
        )

    def handle(self, response: httpx.Response) -> T:
        """Return the parsed answer, or raise :class:`ApiError` (a subclass) for 4xx/5xx.

        The response must have been read. A 2xx whose body cannot be parsed raises
        :class:`UnexpectedResponseError`; so does a 3xx, which Taskline never sends.
        """
        if response.status_code >= 400:
            raise api_error(response)
        if not response.is_success:
            reason = f"status {response.status_code} {response.reason_phrase}".rstrip()
            raise _unexpected(response, reason)
        return self.parse(response)


@contextmanager
def transport_errors(url: str) -> Iterator[None]:
    """Translate httpx's "no answer" errors into :class:`ServerUnreachableError` for ``url``.

    Timeouts (connect, read, write, pool) and transport failures (refused, reset, DNS) all
    mean the server did not answer; the httpx error is chained as the cause.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ServerUnreachableError(
            url, f"no answer in time ({type(exc).__name__})", timed_out=True
        ) from exc
    except httpx.TransportError as exc:
        raise ServerUnreachableError(url, str(exc) or type(exc).__name__) from exc
    except httpx.RequestError as exc:  # decoding errors, too many redirects
        raise UnexpectedResponseError(
            exc.request.method, str(exc.request.url), str(exc) or type(exc).__name__
        ) from exc


def api_error(response: httpx.Response) -> ApiError:
    """Return the :class:`ApiError` subclass for a refused request, carrying its problem body.

    A body that is not problem JSON (a proxy's HTML page, say) is replaced by a problem built
    from the status line, so ``detail`` is always a readable sentence. A 401 or 403 is a
    :class:`TasklineAuthError`, which knows whether the request carried a token.
    """
    problem: dict[str, Any] | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        problem = dict(body)
        problem.setdefault("status", response.status_code)
        if not isinstance(problem["detail"], str):  # e.g. a plain FastAPI error list
            problem["detail"] = str(problem["detail"])
    else:
        reason = response.reason_phrase or "error"
        text = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        problem = {
            "type": "about:blank",
            "title": reason,
            "status": response.status_code,
            "detail": f"{response.request.method} {response.request.url.path}: {text or reason}",
        }
    if response.status_code in {401, 403}:
        token_sent = "authorization" in response.request.headers
        return TasklineAuthError(problem, token_sent=token_sent)
    if response.status_code == 409 and str(problem.get("type", "")).endswith("/lease-conflict"):
        return LeaseLost(problem)
    return _ERROR_BY_STATUS.get(response.status_code, ApiError)(problem)


# --- parsers ----------------------------------------------------------------------------------


def _unexpected(response: httpx.Response, reason: str) -> UnexpectedResponseError:
    return UnexpectedResponseError(response.request.method, str(response.request.url), reason)


def model(kind: type[M]) -> Parser[M]:
    """Parse the body as one ``kind`` (a domain model)."""

    def parse(response: httpx.Response) -> M:
        try:
            return kind.model_validate_json(response.content)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise _unexpected(response, f"not a {kind.__name__}: {exc}") from exc

    return parse


def model_list(kind: type[M], *, key: str | None = None) -> Parser[list[M]]:
    """Parse the body as a JSON array of ``kind`` (``key``: the array is that member of a
    JSON object)."""

    def parse(response: httpx.Response) -> list[M]:
        try:
            items = response.json()
            if key is not None:
                items = items.get(key) if isinstance(items, dict) else None
            if not isinstance(items, list):
                raise ValueError("expected a JSON array")
            return [kind.model_validate(item) for item in items]
        except ValueError as exc:
            raise _unexpected(response, f"not a list of {kind.__name__}: {exc}") from exc

    return parse


def optional_model(kind: type[M]) -> Parser[M | None]:
    """Parse the body as one ``kind``, or return None for 204 No Content."""
    parse_model = model(kind)

    def parse(response: httpx.Response) -> M | None:
        if response.status_code == 204:
            return None
        return parse_model(response)

    return parse


def seqs(response: httpx.Response) -> list[int]:
    """Parse a publish answer: the ``seqs`` the server gave the events, in the order sent."""
    body = json_object(response)
    values = body.get("seqs")
    if not isinstance(values, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        raise _unexpected(response, "expected 'seqs', a list of integers")
    return values


def json_object(response: httpx.Response) -> dict[str, Any]:
    """Parse the body as a JSON object."""
    try:
        body = response.json()
    except ValueError as exc:
        raise _unexpected(response, f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _unexpected(response, "expected a JSON object")
    return body


def counts(response: httpx.Response) -> dict[str, int]:
    """Parse the body as a JSON object of integer counts (an import summary)."""
    body = json_object(response)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in body.values()):
        raise _unexpected(response, "expected a JSON object of integer counts")
    return body


def no_content(response: httpx.Response) -> None:
    """Accept any successful answer and ignore its body (204 No Content)."""
    return None


def download(fallback: str) -> Parser[tuple[str, bytes]]:
    """Return ``(filename, body)``; the name comes from Content-Disposition, else ``fallback``.

    Only the last path component of the server's name is kept, so writing the file into a
    directory can never escape it.
    """

    def parse(response: httpx.Response) -> tuple[str, bytes]:
        header = _HeaderParser()
        header["content-disposition"] = response.headers.get("content-disposition", "")
        raw = header.get_filename() or ""
        name = PurePosixPath(raw.replace("\\", "/")).name
        if name in {"", ".", ".."}:
            name = fallback
        return name, response.content

    return parse


# --- request helpers --------------------------------------------------------------------------


def server_url(url: str) -> str:
    """Return ``url`` without a trailing slash, or raise ``ValueError`` if it is not http(s)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid server URL {url!r}: {exc}") from exc
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise ValueError(f"invalid server URL {url!r}: expected http(s)://host[:port]")
    return url.rstrip("/")


def request_headers(token: str | None) -> dict[str, str]:
    """The headers every request carries (HTTP and WebSocket upgrades alike): ``token``, when
    given, as ``Authorization: Bearer <token>`` (see ``_credentials.resolve_token`` for where
    a client's token comes from)."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


#: What ``if_match=`` accepts: a task (its version), a version, an ETag as the server sent
#: it (``'"3"'``) or ``"*"`` (any version); None sends no If-Match.
IfMatch = Union["Task", int, str, None]


def conditional(if_match: IfMatch) -> dict[str, str] | None:
    """The ``If-Match`` header for ``if_match`` (None: no header)."""
    if if_match is None:
        return None
    if isinstance(if_match, bool):
        raise TypeError("if_match must be a Task, a version, an ETag or '*', not a bool")
    if isinstance(if_match, int):
        return {"If-Match": etag(if_match)}
    if isinstance(if_match, str):
        text = if_match.strip()
        return {"If-Match": etag(int(text)) if text.isdecimal() else text}
    return {"If-Match": etag(if_match.version)}


def path_id(value: str) -> str:
    """Quote an id for use as one path segment (``/`` and ``..`` cannot change the route)."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in {".", ".."} else quoted


def jsonable(value: Any) -> Any:
    """Convert ``value`` to plain JSON types: models are dumped, enums become their value.

    Accepts what callers naturally pass as fields: dicts, lists, tuples, sets, pydantic models
    (``SectionCreate(...)``), enums, datetimes; anything else is left for ``json`` to judge.
    """
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_unset=True)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value

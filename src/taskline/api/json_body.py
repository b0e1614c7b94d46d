"""Reading JSON request bodies: the route class every router with a body uses.

FastAPI reads a JSON body with ``json.loads``; a body nested deeper than its recursion reaches
is then a bare 400, and a lone surrogate escape (``"\\ud800"``) becomes a string no encoder
writes back. :class:`JsonBodyRoute` reads the body first with
:func:`taskline.domain.json_bounds.parse_json` instead (same meaning otherwise), so a value
nested too deep is a 422 naming its field like any other out-of-bounds value, and a lone
surrogate is a 422 naming where it is. What FastAPI then validates is that parsed body.
"""

import email.message
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from taskline.domain.json_bounds import parse_json

__all__ = ["JsonBodyRoute"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class JsonBodyRoute(APIRoute):
    """An ``APIRoute`` whose JSON body is parsed by ``parse_json`` (see the module docstring)."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def read_json_then_handle(request: Request) -> Response:
            await _read_json(request)
            return await handler(request)

        return read_json_then_handle


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI would read the body as JSON (no content type, or ``…/json``,
    ``…/…+json``): the same test as ``fastapi.routing``."""
    if not content_type:
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


async def _read_json(request: Request) -> None:
    if not _is_json(request.headers.get("content-type")):
        return
    body = await request.body()
    if not body:
        return
    try:
        parsed = parse_json(body)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ],
            body=exc.doc,
        ) from None
    # Starlette's Request.json() returns what it finds here instead of parsing again
    request._json = parsed

"""A JSON response that serialises with orjson exactly as the Pydantic models would."""

import logging
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response

from taskline.domain.json_bounds import readable

__all__ = ["JSONBytes", "document", "problem_doc"]

logger = logging.getLogger("taskline.api")


class JSONBytes(Response):
    """JSON via orjson; datetimes are written like Pydantic writes them (UTC with ``Z``).

    A value stored before the bounds of :mod:`taskline.domain.json_bounds` that orjson cannot
    write (an integer beyond 64 bits, say) does not fail the whole response: that part is
    replaced by a ``{"taskline_unreadable": …}`` marker and a warning is logged.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_UTC_Z)
        except orjson.JSONEncodeError:
            fixed, problems = readable(content)
            logger.warning("a response holds values no encoder writes: %s", "; ".join(problems))
            return orjson.dumps(fixed, option=orjson.OPT_UTC_Z)


def document(model: BaseModel) -> dict[str, Any]:
    """The fields of ``model`` (nested models too) as a document for :class:`JSONBytes`: what
    ``model_dump()`` gives, without pydantic walking the JSON values it holds (so a value an
    older version stored nested deeper than pydantic writes still reaches the fallback)."""
    return {name: _plain(getattr(model, name)) for name in type(model).model_fields}


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return document(value)
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return [_plain(item) for item in value]
    return value


def problem_doc(description: str) -> dict[str, Any]:
    """One entry of a route's OpenAPI ``responses``: an error answered as problem+json."""
    return {"description": description, "content": {"application/problem+json": {}}}

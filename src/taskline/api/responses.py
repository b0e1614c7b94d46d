"""A JSON response that serialises with orjson exactly as the Pydantic models would."""

from typing import Any

import orjson
from starlette.responses import Response

__all__ = ["JSONBytes"]


class JSONBytes(Response):
    """JSON via orjson; datetimes are written like Pydantic writes them (UTC with ``Z``)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z)

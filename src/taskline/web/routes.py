"""Serve the browser UI: ``/ui/`` is the page, ``/ui/js/...`` and ``/ui/css/...`` its files.

Everything is plain files from ``static/`` beside this module: ES modules, one stylesheet,
no bundler, no CDN, so the UI works offline and ships inside the wheel. ``GET /`` sends a
browser here (content negotiation in :mod:`taskline.api.meta`).

Files are served with ``Cache-Control: no-cache``: the browser keeps them but revalidates
(ETag, 304), so after an upgrade no page mixes old and new modules.
"""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).parent / "static"

#: The page loads only its own scripts and styles and talks only to its own server.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'"
)


class _RevalidatedFiles(StaticFiles):
    """Static files the browser must revalidate before reuse (cheap: ETag and 304)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


router = APIRouter(include_in_schema=False)


@router.get("/ui/", name="web_index")
async def web_index() -> FileResponse:
    """The single page; every view (board, ``#/tasks/{id}``) is routed in the browser."""
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


router.mount("/ui", _RevalidatedFiles(directory=STATIC_DIR, check_dir=True), name="web_static")

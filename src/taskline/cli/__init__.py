"""The ``taskline`` command line: a thin click + rich layer over the SDK (and the server).

``main.py`` holds the root group; each command group lives in its own module. Server-side
imports (the app, uvicorn, the store) happen inside ``serve`` and ``db`` only, so the client
commands start quickly.
"""

__all__: list[str] = []

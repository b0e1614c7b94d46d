"""Where a client's token comes from, and the file ``taskline login`` keeps tokens in.

A client given no token (``token=None``) uses, in this order:

1. the ``TASKLINE_TOKEN`` environment variable (when set and not empty);
2. the token stored for the server in the credentials file;
3. none (the request goes out without ``Authorization``).

The credentials file is ``$XDG_CONFIG_HOME/taskline/credentials.json``
(``~/.config/taskline/credentials.json`` when ``XDG_CONFIG_HOME`` is unset, empty or not an
absolute path). It is a JSON object mapping each server, as ``scheme://host:port`` (see
:func:`server_key`), to its token::

    {"http://127.0.0.1:8000": "tl_..."}

It is written with mode 0600 (its folder, when created, 0700), replaced in one step (a
reader never sees half a file), and never holds anything but tokens.
"""

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from taskline.sdk._errors import CredentialsError

__all__ = [
    "TOKEN_VARIABLE",
    "credentials_path",
    "remove_token",
    "resolve_token",
    "server_key",
    "store_token",
    "stored_token",
]

logger = logging.getLogger("taskline.sdk")

#: The environment variable a client's token comes from when none is given.
TOKEN_VARIABLE = "TASKLINE_TOKEN"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def credentials_path(environ: Mapping[str, str] | None = None) -> Path:
    """The credentials file's path (it may not exist)."""
    env = os.environ if environ is None else environ
    config = env.get("XDG_CONFIG_HOME", "")
    base = Path(config) if config and Path(config).is_absolute() else Path.home() / ".config"
    return base / "taskline" / "credentials.json"


def server_key(url: str) -> str:
    """The key of the server at ``url`` in the credentials file: ``scheme://host:port``.

    The scheme and host are lower-cased, the port is always written (80 and 443 when left
    out) and any path, query or trailing slash is dropped, so ``http://LOCALHOST/`` and
    ``http://localhost:80`` name the same server.

    Raises:
        ValueError: ``url`` is not an ``http://`` or ``https://`` URL with a host.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a port that is not a number, or out of range
        raise ValueError(f"invalid server URL {url!r}: {exc}") from None
    if scheme not in _DEFAULT_PORTS or not host:
        raise ValueError(f"invalid server URL {url!r}: expected http(s)://host[:port]")
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port or _DEFAULT_PORTS[scheme]}"


def _read(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CredentialsError(path, f"cannot read it ({exc.strerror or exc})") from exc
    try:
        body = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise CredentialsError(path, f"not JSON ({exc}); fix or delete it") from exc
    if not isinstance(body, dict):
        raise CredentialsError(path, "expected a JSON object of server URL -> token")
    return {str(k): v for k, v in body.items() if isinstance(v, str) and v}


def stored_token(url: str, *, path: Path | None = None) -> str | None:
    """The token stored for the server at ``url``, or None.

    Raises:
        CredentialsError: the file exists but cannot be read or is not a JSON object.
        ValueError: ``url`` is not an http(s) URL.
    """
    return _read(path or credentials_path()).get(server_key(url))


def _write(path: Path, tokens: Mapping[str, str]) -> None:
    folder = path.parent
    try:
        if not folder.is_dir():
            folder.mkdir(mode=0o700, parents=True)
            folder.chmod(0o700)  # mkdir's mode is masked by the umask
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".credentials.", suffix=".tmp")
    except OSError as exc:
        raise CredentialsError(path, f"cannot write it ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:  # mkstemp made it 0600
            json.dump(dict(sorted(tokens.items())), file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise CredentialsError(path, f"cannot write it ({exc.strerror or exc})") from exc


def store_token(url: str, token: str, *, path: Path | None = None) -> Path:
    """Store ``token`` for the server at ``url`` (replacing its earlier one); return the file.

    Other servers' tokens are kept. A file that cannot be read is not overwritten.

    Raises:
        CredentialsError: the file cannot be read or written.
        ValueError: ``url`` is not an http(s) URL, or ``token`` is empty or holds whitespace.
    """
    if not token or any(c.isspace() for c in token):
        raise ValueError("a token is one word: not empty, no spaces or line breaks")
    target = path or credentials_path()
    key = server_key(url)
    tokens = _read(target)
    tokens[key] = token
    _write(target, tokens)
    return target


def remove_token(url: str, *, path: Path | None = None) -> bool:
    """Forget the token stored for the server at ``url``; return False if there was none.

    Raises:
        CredentialsError: the file cannot be read or written.
        ValueError: ``url`` is not an http(s) URL.
    """
    target = path or credentials_path()
    key = server_key(url)
    tokens = _read(target)
    if key not in tokens:
        return False
    del tokens[key]
    _write(target, tokens)
    return True


def resolve_token(
    url: str,
    token: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> str | None:
    """The token a client for ``url`` sends: ``token`` if given, else ``TASKLINE_TOKEN``, else
    the credentials file's entry for the server, else None.

    An empty ``token`` (``""``) means "send none" and looks nowhere else. A credentials file
    that cannot be read is logged (``taskline.sdk``, warning) and treated as empty, so a
    broken file never stops a client that needs no token.
    """
    if token is not None:
        return token or None
    env = os.environ if environ is None else environ
    from_env = env.get(TOKEN_VARIABLE, "").strip()
    if from_env:
        return from_env
    target = path or (credentials_path(environ) if environ is not None else credentials_path())
    try:
        return stored_token(url, path=target)
    except CredentialsError as exc:
        logger.warning("%s; sending no token", exc)
    except ValueError:
        pass  # not an http(s) URL: the client refuses it itself
    return None

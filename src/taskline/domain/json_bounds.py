"""What a storable JSON value is: the one definition every way in checks, and the way out's
fallback for values stored before the check existed.

A JSON value a client stores — a task's ``result``, an agent's ``metadata``, each member of an
event's ``data``, the shared state (a snapshot, a patch's values, what a patch makes), a
personal message, an imported task or agent — is *storable* when:

- it is made of ``null``, booleans, numbers, strings, arrays and objects (string keys) only;
- its integers lie in the signed 64-bit range, ``-2**63`` to ``2**63 - 1`` (:data:`MIN_INT`,
  :data:`MAX_INT`), and its other numbers are finite;
- it nests at most :data:`MAX_DEPTH` (64) levels of arrays and objects (a scalar is 0 levels,
  ``[1]`` one, ``{"a": [1]}`` two);
- every string, object keys included, is text both databases store — Unicode (no lone
  surrogate from a ``\\uD800`` escape) without U+0000 (PostgreSQL refuses it) — of at most
  :data:`MAX_STRING_LENGTH` characters;
- every array and every object holds at most :data:`MAX_ITEMS` members.

The bounds fit the default request body limit (1 MiB): the longest string and the largest
array both fit in one request, and everything that is storable can be written by every encoder
on the way out (orjson, pydantic, the standard library) with the envelopes around it.

:func:`check_storable` raises :class:`JsonBoundsError` (a ``ValueError``) naming where the value
breaks a bound (a JSON Pointer into it); :data:`StorableJson` and :data:`StorableObject` are the
pydantic types of model fields that hold such values. :func:`parse_json` reads request bodies
and socket frames so that the checks can name the field even when the text nests deeper than
the standard parser reaches.

Values stored before these checks may break them. :func:`readable` gives such a value back with
each part no encoder can write (an integer beyond 64 bits, a non-finite number, a lone
surrogate, nesting beyond :data:`READ_DEPTH`) replaced by a marker object
``{"taskline_unreadable": "<why>"}``, so that a list holding one such value is still served.
"""

import json
import math
import re
from collections.abc import Iterator
from typing import Annotated, Any, Final

import orjson
from pydantic import BeforeValidator, JsonValue
from pydantic_core import PydanticCustomError

from taskline.domain.errors import InvalidInputError

__all__ = [
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_ITEMS",
    "MAX_STRING_LENGTH",
    "MIN_INT",
    "READ_DEPTH",
    "UNREADABLE_KEY",
    "JsonBoundsError",
    "StorableJson",
    "StorableObject",
    "check_container",
    "check_storable",
    "json_pointer",
    "parse_json",
    "readable",
    "scalar_problem",
]

#: Levels of arrays and objects a storable value nests at most.
MAX_DEPTH: Final = 64
#: The signed 64-bit range of storable integers.
MIN_INT: Final = -(2**63)
MAX_INT: Final = 2**63 - 1
#: Characters in one string (or object key) at most: half the default body limit.
MAX_STRING_LENGTH: Final = 512 * 1024
#: Members of one array or one object at most.
MAX_ITEMS: Final = 100_000
#: Levels below which :func:`readable` cuts what an older version stored (a stored value
#: within it, wrapped in the envelopes of every way out, stays well inside every encoder's
#: limit of about 250 levels).
READ_DEPTH: Final = 128
#: The key of the marker :func:`readable` puts in place of a part no encoder can write.
UNREADABLE_KEY: Final = "taskline_unreadable"

#: Nesting, from the root of a request body or frame, beyond which :func:`parse_json` cuts a
#: text the standard parser cannot read (deeper than any field's value may be: the check of
#: the field then says it nests too deep).
_PARSE_CAP = 2 * MAX_DEPTH

_SURROGATE = re.compile("[\ud800-\udfff]")
# 19 digits in a row: maybe an integer beyond 64 bits (or a long fraction: harmless). Every
# digit becomes "0", then one search for nineteen of them: far faster than a regex.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19
# escapes that may make a string no database stores: a surrogate (paired or not) or U+0000
_SUSPECT_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")
_SUSPECT_ESCAPE_BYTES = re.compile(rb"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")
# strings (skipped whole), runs of opening brackets, runs of closing brackets
_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]+|[\]}]+', re.DOTALL)

Key = str | int


class JsonBoundsError(ValueError):
    """A value that is not storable; ``path`` leads to the part that breaks a bound."""

    def __init__(self, reason: str, path: tuple[Key, ...] = ()) -> None:
        self.reason = reason
        self.path = path
        where = f" (at {json_pointer(path, limit=12)})" if path else ""
        super().__init__(f"{reason}{where}")


def json_pointer(path: tuple[Key, ...] | list[Key], *, limit: int | None = None) -> str:
    """``path`` as a JSON Pointer (RFC 6901); with ``limit``, longer paths end in ``/…``."""
    shown = path if limit is None or len(path) <= limit else path[:limit]
    text = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in shown)
    return text + ("/…" if len(shown) < len(path) else "")


def scalar_problem(value: Any) -> str | None:
    """Why a scalar (anything but an array or object) is not storable; None: it is."""
    if value is None or value is True or value is False:
        return None
    if isinstance(value, int):
        if MIN_INT <= value <= MAX_INT:
            return None
        return f"integer {_short_int(value)} is outside the signed 64-bit range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a JSON number"
    if isinstance(value, str):
        return _string_problem(value)
    return f"{type(value).__name__} is not a JSON value"


def _string_problem(text: str) -> str | None:
    if len(text) > MAX_STRING_LENGTH:
        return f"a string of {len(text)} characters is longer than {MAX_STRING_LENGTH}"
    return _text_problem(text)


def _text_problem(text: str) -> str | None:
    """Why a string is not text both databases store (None: it is)."""
    if "\x00" in text:
        return "a string holds U+0000, which PostgreSQL cannot store"
    if not text.isascii() and _SURROGATE.search(text):
        return "a string holds a lone surrogate (an unpaired \\uD800-\\uDFFF escape)"
    return None


def _short_int(value: int) -> str:
    digits = str(value) if value.bit_length() < 300 else f"of {value.bit_length()} bits"
    return digits if len(digits) <= 40 else digits[:20] + "…"


def _is_storable(value: Any, max_depth: int) -> bool:
    """Whether ``value`` is storable (fast: no paths kept, no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth >= max_depth or len(node) > MAX_ITEMS:
                return False
            for key, child in node.items():
                if not isinstance(key, str) or _string_problem(key) is not None:
                    return False
                if isinstance(child, dict | list):
                    stack.append((child, depth + 1))
                elif scalar_problem(child) is not None:
                    return False
        elif isinstance(node, list):
            if depth >= max_depth or len(node) > MAX_ITEMS:
                return False
            for child in node:
                if isinstance(child, dict | list):
                    stack.append((child, depth + 1))
                elif scalar_problem(child) is not None:
                    return False
        elif scalar_problem(node) is not None:
            return False
    return True


def _first_problem(value: Any, max_depth: int) -> JsonBoundsError:
    """The first part of a value that is not storable, with its path (slow: only on failure)."""
    stack: list[tuple[Any, int, tuple[Key, ...]]] = [(value, 0, ())]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict | list):
            if depth >= max_depth:
                return JsonBoundsError(f"nested deeper than {max_depth} levels", path)
            if len(node) > MAX_ITEMS:
                kind = "an object" if isinstance(node, dict) else "an array"
                return JsonBoundsError(
                    f"{kind} of {len(node)} members is larger than {MAX_ITEMS}", path
                )
            items: Iterator[tuple[Key, Any]]
            if isinstance(node, dict):
                for key in node:
                    if not isinstance(key, str):
                        return JsonBoundsError(f"object key {key!r} is not a string", path)
                    problem = _string_problem(key)
                    if problem is not None:
                        return JsonBoundsError(f"object key: {problem}", (*path, key))
                items = iter(node.items())
            else:
                items = enumerate(node)
            children = [(child, depth + 1, (*path, key)) for key, child in items]
            stack.extend(reversed(children))  # report in document order
        else:
            problem = scalar_problem(node)
            if problem is not None:
                return JsonBoundsError(problem, path)
    raise AssertionError("no problem found in a value that failed the check")


def check_storable(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Check that ``value`` is a storable JSON value (see the module docstring).

    ``max_depth`` lets a wrapper the server puts around stored values (an event's
    ``data.patch`` list of operations, say) nest that much more.

    Raises:
        JsonBoundsError: naming the bound broken and where (a JSON Pointer into ``value``).
    """
    if not isinstance(value, dict | list):  # the common case, quickly
        problem = scalar_problem(value)
        if problem is not None:
            raise JsonBoundsError(problem)
    elif not _is_storable(value, max_depth):
        raise _first_problem(value, max_depth)


def check_container(value: dict[str, Any] | list[Any]) -> None:
    """Check the bounds of one array or object itself — its size, its keys — and not those of
    its members (for a wrapper whose members are checked one by one).

    Raises:
        JsonBoundsError: the container is too large, or a key is not storable.
    """
    if len(value) > MAX_ITEMS:
        kind = "an object" if isinstance(value, dict) else "an array"
        raise JsonBoundsError(f"{kind} of {len(value)} members is larger than {MAX_ITEMS}")
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise JsonBoundsError(f"object key {key!r} is not a string")
            problem = _string_problem(key)
            if problem is not None:
                raise JsonBoundsError(f"object key: {problem}", (key,))


def _pydantic_check(value: Any) -> Any:
    try:
        check_storable(value)
    except JsonBoundsError as exc:
        raise PydanticCustomError("storable_json", str(exc)) from None
    return value


def _pydantic_check_object(value: Any) -> Any:
    if isinstance(value, dict):
        return _pydantic_check(value)
    return value  # not an object: the dict type says so


#: A model field holding a storable JSON value, checked before pydantic looks inside it (so a
#: value nested too deep is refused with this message, not pydantic's recursion error).
StorableJson = Annotated[JsonValue, BeforeValidator(_pydantic_check)]
#: A JSON object that is storable as a whole (an agent's ``metadata``, a personal message).
StorableObject = Annotated[dict[str, JsonValue], BeforeValidator(_pydantic_check_object)]


# --- reading request bodies and frames --------------------------------------------------------


def parse_json(text: str | bytes) -> Any:
    """Parse a request body or a socket frame with ``json.loads``'s meaning (orjson reads it
    when it can, a lot faster), with these differences:

    - a text nested deeper than the parsers reach is not an error: whatever lies deeper than
      128 levels from its root is read as ``null``, which no field accepts anyway — the value
      of the field holding it nests more than :data:`MAX_DEPTH` levels, and the field's check
      says so;
    - a string, anywhere, that no database stores — holding a lone surrogate (an unpaired
      ``\\uD800``-``\\uDFFF`` escape) or U+0000 — is refused, naming where it is.

    Integers are exact, however large (orjson would read those beyond 64 bits as floats): the
    checks of the fields refuse them by name.

    Raises:
        json.JSONDecodeError: ``text`` is not JSON.
        InvalidInputError: a string no database stores (``field`` is its path).
    """
    value = _parse(text)
    if isinstance(text, bytes):
        suspect = _SUSPECT_ESCAPE_BYTES.search(text) is not None
    else:
        suspect = _SUSPECT_ESCAPE.search(text) is not None
    if suspect:
        _refuse_bad_text(value)
    return value


def _parse(text: str | bytes) -> Any:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass  # NaN, a lone surrogate, deeper than orjson goes, or not JSON: json.loads says
    else:
        raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
        if raw.translate(_DIGITS_TO_ZERO).find(_NINETEEN_DIGITS) < 0:
            return value
    try:
        return json.loads(text)
    except RecursionError:
        cut = _cut_deep(_as_text(text), _PARSE_CAP)
        try:
            return json.loads(cut)
        except RecursionError:  # brackets that do not pair up
            raise json.JSONDecodeError("nested too deeply to read", cut, 0) from None
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"not UTF-8 text ({exc.reason})", "", exc.start) from None


def _as_text(text: str | bytes) -> str:
    if isinstance(text, str):
        return text
    return text.decode(json.detect_encoding(text), "surrogatepass")


def _cut_deep(text: str, cap: int) -> str:
    """``text`` with every array or object that opens deeper than ``cap`` replaced by
    ``null`` (strings are skipped whole; runs of brackets are taken at once)."""
    pieces: list[str] = []
    depth = 0
    kept_to = 0
    cut_from: int | None = None
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token[0] == '"':
            continue
        start = match.start()
        if token[0] in "[{":
            if cut_from is None and depth + len(token) > cap:
                cut_from = start + (cap - depth)
            depth += len(token)
        else:
            if cut_from is not None and depth - len(token) <= cap:
                end = start + (depth - cap)
                pieces.extend((text[kept_to:cut_from], "null"))
                kept_to = end
                cut_from = None
            depth -= len(token)
            if depth < 0:
                break  # not JSON: the parser says where
    pieces.append(text[kept_to:])
    return "".join(pieces)


def _refuse_bad_text(value: Any) -> None:
    stack: list[tuple[Any, tuple[Key, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                problem = _text_problem(key)
                if problem is not None:
                    _refuse_text((*path, key), problem)
                stack.append((child, (*path, key)))
        elif isinstance(node, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(node))
        elif isinstance(node, str):
            problem = _text_problem(node)
            if problem is not None:
                _refuse_text(path, problem)


def _refuse_text(path: tuple[Key, ...], problem: str) -> None:
    field = ".".join(str(p) for p in path) or "body"
    raise InvalidInputError(f"{field}: {problem}", field=field)


# --- the way out: values stored before the bounds ---------------------------------------------


def readable(value: Any, *, max_depth: int = READ_DEPTH) -> tuple[Any, list[str]]:
    """``value`` with each part no encoder can write replaced by a marker, and what was
    replaced (empty: ``value`` itself is returned, not a copy).

    Replaced: integers outside the signed 64-bit range, non-finite numbers, strings holding a
    lone surrogate, and arrays or objects nested deeper than ``max_depth`` levels; a key with a
    lone surrogate has it replaced by U+FFFD. Anything else (datetimes, enums, long strings)
    is left as it is.
    """
    if _is_writable(value, max_depth):
        return value, []
    problems: list[str] = []
    return _rebuild(value, 0, max_depth, (), problems), problems


def _marker(reason: str) -> dict[str, str]:
    return {UNREADABLE_KEY: reason}


def _writablescalar_problem(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if MIN_INT <= value <= MAX_INT:
            return None
        return f"integer {_short_int(value)} is outside the signed 64-bit range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a JSON number"
    if isinstance(value, str) and not value.isascii() and _SURROGATE.search(value):
        return "a string holds a lone surrogate"
    return None


def _is_writable(value: Any, max_depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth >= max_depth:
                return False
            for key, child in node.items():
                if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                    return False
                stack.append((child, depth + 1))
        elif isinstance(node, list | tuple):
            if depth >= max_depth:
                return False
            stack.extend((child, depth + 1) for child in node)
        elif _writablescalar_problem(node) is not None:
            return False
    return True


def _rebuild(
    node: Any, depth: int, max_depth: int, path: tuple[Key, ...], problems: list[str]
) -> Any:
    """A copy of ``node`` with its unwritable parts replaced (recursion stops at
    ``max_depth``, so it is bounded)."""
    if isinstance(node, dict | list | tuple):
        if depth >= max_depth:
            problems.append(
                f"nested deeper than {max_depth} levels at {json_pointer(path, limit=8)}"
            )
            return _marker(f"nested deeper than {max_depth} levels")
        if isinstance(node, dict):
            rebuilt: dict[Any, Any] = {}
            for key, child in node.items():
                if isinstance(key, str) and _SURROGATE.search(key):
                    key = _SURROGATE.sub("\ufffd", key)
                    problems.append(f"a key with a lone surrogate at {json_pointer(path) or '/'}")
                rebuilt[key] = _rebuild(child, depth + 1, max_depth, (*path, key), problems)
            return rebuilt
        return [
            _rebuild(child, depth + 1, max_depth, (*path, index), problems)
            for index, child in enumerate(node)
        ]
    problem = _writablescalar_problem(node)
    if problem is None:
        return node
    problems.append(f"{problem} at {json_pointer(path, limit=8)}")
    return _marker(problem)

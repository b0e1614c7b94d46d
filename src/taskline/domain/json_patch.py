"""JSON Patch (RFC 6902) over JSON Pointer (RFC 6901), as the shared state applies it.

:func:`apply_patch` returns the patched document and leaves its input untouched: either every
operation applies, or :class:`PatchError` is raised and nothing changed. It follows the RFC:

- ``add``, ``replace`` and ``test`` need a ``value`` member (``null`` is a value; a missing
  one is an error), ``move`` and ``copy`` a ``from`` member; other members are ignored (§4);
- an empty patch is a valid no-op;
- a pointer is ``""`` (the whole document) or ``/``-separated tokens in which ``~1`` is ``/``
  and ``~0`` is ``~`` (any other ``~`` is an error); an array index is ``0`` or digits without
  a leading zero, and ``-`` (past the last element) is valid only as the target of ``add``;
- ``add`` sets an object member (replacing it) or inserts into an array (at most at its
  length); ``remove``, ``replace`` and ``test`` need the target to exist; ``move`` is a
  ``remove`` then an ``add`` (not into the moved value's own children; onto itself it does
  nothing); ``test`` compares as JSON (numbers by value, ``true`` is not ``1``, object members
  in any order).

One choice where the RFC says nothing: removing the whole document (``remove`` of ``""``) is an
error — JSON has no empty document; ``replace`` it instead. ``src/taskline/web/static/js/
json-patch.js`` applies patches the same way in the browser; ``tests/json_patch_cases.json``
holds the cases both must agree on.

Bounds, checked after each operation so that no patch can grow the document unboundedly on
its way (2,000 ``copy`` operations of a few hundred bytes each could double it every time):

- ``max_bytes``: the document's size as compact JSON (UTF-8) — the shared state's
  ``TASKLINE_MAX_STATE_BYTES``;
- ``max_depth``: whatever an operation puts somewhere must fit within that many levels there
  (:data:`~taskline.domain.json_bounds.MAX_DEPTH`);
- applying the patch copies at most ``max_bytes`` members of arrays and objects: it copies only
  the containers an operation changes something in, each once, and a document of
  ``max_bytes`` holds at most half as many members — only ``copy`` cycles that would make it
  copy the same large part again and again reach the budget.

Unchanged parts of the document are shared between the input and the result (and between the
result and the patch's values), never copied: nothing may change them in place afterwards.
"""

import re
from collections.abc import Iterator
from typing import Any, Final

import orjson

from taskline.domain.json_bounds import MAX_DEPTH

__all__ = ["DEFAULT_MAX_STATE_BYTES", "PatchError", "apply_patch", "json_equal"]

#: The shared state's size limit unless configured (``TASKLINE_MAX_STATE_BYTES``): 1 MiB.
DEFAULT_MAX_STATE_BYTES: Final = 1024 * 1024

_OPERATIONS = frozenset({"add", "remove", "replace", "move", "copy", "test"})
_INDEX = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE = re.compile(r"~(?![01])")

Container = dict[str, Any] | list[Any]


class PatchError(ValueError):
    """A patch that does not apply, or whose result would break a bound; ``index`` is the
    position of the operation refused (``None``: the patch as a whole)."""

    def __init__(self, message: str, index: int | None = None) -> None:
        self.index = index
        self.reason = message
        super().__init__(message if index is None else f"operation {index}: {message}")


def apply_patch(
    document: Any,
    operations: Any,
    *,
    max_bytes: int | None = DEFAULT_MAX_STATE_BYTES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Apply the RFC 6902 patch ``operations`` to ``document``; return the result (see the
    module docstring). ``max_bytes=None`` checks no size (and copies without a budget).

    Raises:
        PatchError: the patch is malformed, an operation does not apply, or the document would
            break a bound; ``document`` is unchanged.
    """
    if not isinstance(operations, list):
        raise PatchError("a patch is a list of operations")
    patcher = _Patcher(document, max_bytes, max_depth)
    for index, operation in enumerate(operations):
        patcher.index = index
        patcher.apply(operation)
    return patcher.root


def json_equal(a: Any, b: Any) -> bool:
    """Whether two JSON values are equal as RFC 6902's ``test`` compares them: numbers by
    value (``1 == 1.0``), booleans only with booleans, arrays in order, objects by members."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        if isinstance(x, bool) or isinstance(y, bool) or x is None or y is None:
            if not (type(x) is type(y) and x == y):
                return False
        elif (isinstance(x, int | float) and isinstance(y, int | float)) or (
            isinstance(x, str) and isinstance(y, str)
        ):
            if x != y:
                return False
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif isinstance(x, dict) and isinstance(y, dict):
            if x.keys() != y.keys():
                return False
            stack.extend((value, y[key]) for key, value in x.items())
        else:
            return False
    return True


def _children(node: Container) -> Iterator[Any]:
    return iter(node.values() if isinstance(node, dict) else node)


class _Patcher:
    """One patch being applied, copy-on-write.

    ``owned`` holds the ids of the containers this patch made (copies of the input's) and that
    only one place refers to: those, and only those, are changed in place. A container is
    copied the first time an operation changes something inside it; one that ``copy`` or
    ``move`` takes becomes shared again (a later change copies it). Sizes and heights of
    shared containers never change, so they are remembered.
    """

    def __init__(self, root: Any, max_bytes: int | None, max_depth: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.index = 0
        self.owned: set[int] = set()
        self.sizes: dict[int, int] = {}
        self.heights: dict[int, int] = {}
        self.copy_budget = max_bytes
        self.size = 0
        if max_bytes is not None:
            try:
                self.size = len(orjson.dumps(root))
            except orjson.JSONEncodeError:
                raise PatchError(
                    "the document holds values that cannot be stored (written by an older "
                    "version); replace it whole (a state.snapshot)"
                ) from None

    def fail(self, message: str) -> PatchError:
        return PatchError(message, self.index)

    # --- operations -------------------------------------------------------------------------

    def apply(self, operation: Any) -> None:
        if not isinstance(operation, dict):
            raise self.fail("an operation is an object")
        op = operation.get("op")
        if not isinstance(op, str) or op not in _OPERATIONS:
            raise self.fail(f"unknown op {op!r}")
        if "path" not in operation:
            raise self.fail(f"{op!r} needs a 'path' member")
        path = self.pointer(operation["path"], "path")
        if op in ("add", "replace", "test") and "value" not in operation:
            raise self.fail(f"{op!r} needs a 'value' member")
        if op in ("move", "copy"):
            if "from" not in operation:
                raise self.fail(f"{op!r} needs a 'from' member")
            source = self.pointer(operation["from"], "from")
        if op == "add":
            self.add(path, operation["value"])
        elif op == "remove":
            self.remove(path)
        elif op == "replace":
            self.replace(path, operation["value"])
        elif op == "move":
            if source == path:
                self.get(source)  # must exist; moving a value onto itself changes nothing
            elif path[: len(source)] == source:
                raise self.fail(f"cannot move {operation['from']!r} into its own child")
            else:
                value = self.remove(source)
                self.owned.discard(id(value))
                self.add(path, value)
        elif op == "copy":
            value = self.get(source)
            self.owned.discard(id(value))  # now in two places
            self.add(path, value)
        elif not json_equal(self.get(path), operation["value"]):  # test
            raise self.fail(f"test failed at {operation['path']!r}")
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise self.fail(
                f"the document would be {self.size} bytes, more than the limit of {self.max_bytes}"
            )

    def add(self, path: list[str], value: Any) -> None:
        self.check_depth(len(path), value)
        if not path:
            self.size = self.size_of(value)
            self.root = value
            return
        parent, key = self.parent(path)
        if isinstance(parent, list):
            position = len(parent) if key == "-" else self.position(key, len(parent) + 1)
            self.size += self.size_of(value) + (1 if parent else 0)
            parent.insert(position, value)
        else:
            if key in parent:
                self.size += self.size_of(value) - self.size_of(parent[key])
            else:
                self.size += self.key_size(key) + 1 + self.size_of(value) + (1 if parent else 0)
            parent[key] = value

    def remove(self, path: list[str]) -> Any:
        if not path:
            raise self.fail("cannot remove the whole document (replace it instead)")
        parent, key = self.parent(path)
        if isinstance(parent, list):
            value = parent.pop(self.position(key, len(parent)))
            self.size -= self.size_of(value) + (1 if parent else 0)
        else:
            if key not in parent:
                raise self.fail(f"no member {key!r} to remove")
            value = parent.pop(key)
            self.size -= self.key_size(key) + 1 + self.size_of(value) + (1 if parent else 0)
        return value

    def replace(self, path: list[str], value: Any) -> None:
        self.check_depth(len(path), value)
        if not path:
            self.size = self.size_of(value)
            self.root = value
            return
        parent, key = self.parent(path)
        if isinstance(parent, list):
            position = self.position(key, len(parent))
            self.size += self.size_of(value) - self.size_of(parent[position])
            parent[position] = value
        elif key in parent:
            self.size += self.size_of(value) - self.size_of(parent[key])
            parent[key] = value
        else:
            raise self.fail(f"no member {key!r} to replace")

    # --- finding things ---------------------------------------------------------------------

    def pointer(self, pointer: Any, member: str) -> list[str]:
        if not isinstance(pointer, str):
            raise self.fail(f"{member!r} must be a JSON Pointer (a string)")
        if pointer == "":
            return []
        if pointer[0] != "/":
            raise self.fail(f"{member!r}: {pointer!r} is not a JSON Pointer (it starts with '/')")
        tokens = pointer[1:].split("/")
        if any(_BAD_ESCAPE.search(token) for token in tokens):
            raise self.fail(f"{member!r}: in {pointer!r}, '~' is not followed by 0 or 1")
        return [token.replace("~1", "/").replace("~0", "~") for token in tokens]

    def position(self, token: str, limit: int) -> int:
        """The array index ``token`` names, below ``limit``."""
        if token == "-" or not _INDEX.fullmatch(token):
            raise self.fail(f"{token!r} is not an index of the array")
        if len(token) > 12 or int(token) >= limit:
            raise self.fail(f"index {token} is past the end of the array")
        return int(token)

    def get(self, path: list[str]) -> Any:
        node = self.root
        for token in path:
            node = self.child(node, token)
        return node

    def child(self, node: Any, token: str) -> Any:
        if isinstance(node, dict):
            if token not in node:
                raise self.fail(f"no member {token!r}")
            return node[token]
        if isinstance(node, list):
            return node[self.position(token, len(node))]
        raise self.fail(f"cannot look up {token!r} inside {_kind(node)}")

    def parent(self, path: list[str]) -> tuple[Container, str]:
        """The container holding ``path``'s target (copied along the way, so that it can be
        changed), and the target's token."""
        self.root = node = self.own(self.root, path[0])
        for token in path[:-1]:
            child = self.child(node, token)
            owned = self.own(child, token)
            if owned is not child:
                if isinstance(node, dict):
                    node[token] = owned
                else:
                    node[int(token)] = owned
            node = owned
        return node, path[-1]

    def own(self, node: Any, token: str) -> Container:
        """``node`` itself if this patch owns it, else a copy it owns."""
        if not isinstance(node, dict | list):
            raise self.fail(f"cannot look up {token!r} inside {_kind(node)}")
        if id(node) in self.owned:
            return node
        if self.copy_budget is not None:
            self.copy_budget -= len(node)
            if self.copy_budget < 0:
                raise self.fail(
                    "the patch copies the same parts of the document again and again "
                    "(copy cycles); send fewer operations, or a snapshot"
                )
        copy: Container = dict(node) if isinstance(node, dict) else list(node)
        for child in _children(copy):
            if isinstance(child, dict | list):
                self.owned.discard(id(child))  # now in two places
        self.owned.add(id(copy))
        self.sizes.pop(id(copy), None)  # an id a dead container had
        self.heights.pop(id(copy), None)
        return copy

    # --- bounds -----------------------------------------------------------------------------

    def check_depth(self, depth: int, value: Any) -> None:
        if depth + self.height_of(value) > self.max_depth:
            raise self.fail(f"the value would nest deeper than {self.max_depth} levels there")

    def key_size(self, key: str) -> int:
        return len(orjson.dumps(key)) if self.max_bytes is not None else 0

    def size_of(self, value: Any) -> int:
        if self.max_bytes is None:
            return 0
        shared = isinstance(value, dict | list) and id(value) not in self.owned
        if shared and id(value) in self.sizes:
            return self.sizes[id(value)]
        try:
            size = len(orjson.dumps(value))
        except orjson.JSONEncodeError as exc:
            raise self.fail(f"the value cannot be stored ({exc})") from None
        if shared:
            self.sizes[id(value)] = size
        return size

    def height_of(self, value: Any) -> int:
        """Levels of arrays and objects in ``value`` (a scalar: 0), remembering those of shared
        containers; no recursion."""
        if not isinstance(value, dict | list):
            return 0
        known = self._known_height(value)
        if known is not None:
            return known
        heights: dict[int, int] = {}
        stack: list[tuple[Container, bool]] = [(value, False)]
        while stack:
            node, children_done = stack.pop()
            if children_done:
                height = 1 + max(
                    (self._height_known(child, heights) for child in _children(node)), default=0
                )
                heights[id(node)] = height
                if id(node) not in self.owned:
                    self.heights[id(node)] = height
                continue
            stack.append((node, True))
            for child in _children(node):
                if (
                    isinstance(child, dict | list)
                    and id(child) not in heights
                    and self._known_height(child) is None
                ):
                    stack.append((child, False))
        return heights[id(value)]

    def _known_height(self, node: Container) -> int | None:
        return None if id(node) in self.owned else self.heights.get(id(node))

    def _height_known(self, child: Any, heights: dict[int, int]) -> int:
        if not isinstance(child, dict | list):
            return 0
        known = self._known_height(child)
        return known if known is not None else heights[id(child)]


def _kind(node: Any) -> str:
    if node is None:
        return "null"
    if isinstance(node, bool):
        return "a boolean"
    if isinstance(node, int | float):
        return "a number"
    return "a string" if isinstance(node, str) else type(node).__name__

"""Item surgery for the conformance checks: walk an item's leaves, copy it with one changed or gone.

An item is a plain value as a DynamoDB table holds it (maps, lists, strings, numbers, ...); a
path is the keys and list positions leading to one of its values. Every change returns a deep
copy: the checks derive hundreds of variants from one sample and must never alter it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

ItemPath = tuple[str | int, ...]
"""Where a value sits in an item: map keys and list positions, outermost first."""


def leaves(value: Any, path: ItemPath = (), *, containers: bool = False) -> Iterator[tuple[ItemPath, Any]]:
    """(path, value) of every leaf of an item (and of every map/list too, with ``containers``)."""
    if isinstance(value, Mapping):
        if containers and path:
            yield path, value
        for key, item in value.items():
            yield from leaves(item, (*path, key), containers=containers)
    elif isinstance(value, list):
        if containers and path:
            yield path, value
        for position, item in enumerate(value):
            yield from leaves(item, (*path, position), containers=containers)
    elif path:
        yield path, value


def value_at(item: Any, path: ItemPath) -> Any:
    """The value at ``path``."""
    for part in path:
        item = item[part]
    return item


def with_value(item: Mapping[str, Any], path: ItemPath, value: Any) -> dict[str, Any]:
    """A copy of ``item`` with ``value`` at ``path``."""
    copied = copy.deepcopy(dict(item))
    target: Any = copied
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copied


def without_value(item: Mapping[str, Any], path: ItemPath) -> dict[str, Any]:
    """A copy of ``item`` without the value at ``path``."""
    copied = copy.deepcopy(dict(item))
    target: Any = copied
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return copied


def show(path: ItemPath) -> str:
    """A path as the checks' messages write it: ``address[0].city`` (names only, never values)."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")


def strings(value: Any) -> Iterator[str]:
    """Every string leaf of ``value``."""
    for _, leaf in leaves(value):
        if isinstance(leaf, str):
            yield leaf


def is_number(value: Any) -> bool:
    """Whether ``value`` is a number (a bool is not)."""
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def numbers(value: Any) -> Iterator[Decimal]:
    """Every number leaf of ``value``, as an exact `Decimal`."""
    for _, leaf in leaves(value):
        if is_number(leaf):
            yield Decimal(str(leaf))

"""What compiled templates run on: sandboxed access, values, filters, tests and the render budget.

A compiled template (see `fhirpipes.engine.compiler`) is plain Python that builds the resource's
JSON value directly. It reaches record data only through the functions here, so this module is
the sandbox: attribute access reads dict keys first and refuses private and mutating attributes,
every value that goes into the output is normalised by `value` (and pruned when empty), and
everything that can grow (loops, strings, numbers, lists) is charged to a per-record `Budget`.

Nothing here imports Jinja: a Lambda whose package ships compiled templates never imports it
(Jinja's own filter implementations are imported on first use of a filter we don't implement).
"""

from __future__ import annotations

import base64
import datetime
import re
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, NamedTuple, cast

from fhirpipes.conversions import FILTERS as CONVERSION_FILTERS


class MissingValueError(Exception):
    """A template used a name or attribute the record (or context) doesn't have; ``name`` is it."""

    def __init__(self, name: str | None) -> None:
        super().__init__("undefined")
        self.name = name


class UnsafeError(Exception):
    """The sandbox refused an attribute or call (the message names the attribute, never a value)."""


class BudgetExceededError(Exception):
    """A record's render went over one of the `Limits` (the message says which)."""


class NotJSONError(TypeError):
    """A template expression produced a value with no JSON form (names the type, never the value)."""


class Missing:
    """What a missing name or attribute evaluates to: anything but ``default`` and ``is defined``
    on it is an error naming it (Jinja's StrictUndefined, without raising on the lookup itself)."""

    __slots__ = ("name",)

    def __init__(self, name: str | None) -> None:
        self.name = name

    def fail(self, *args: Any, **kwargs: Any) -> Any:
        raise MissingValueError(self.name)

    __bool__ = __str__ = __iter__ = __len__ = __eq__ = __ne__ = __hash__ = __contains__ = fail
    __lt__ = __le__ = __gt__ = __ge__ = __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = fail
    __rmul__ = __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = fail
    __pow__ = __rpow__ = __neg__ = __pos__ = __call__ = __getitem__ = __int__ = __float__ = fail

    def __repr__(self) -> str:
        return f"Missing({self.name!r})"


# ---------------------------------------------------------------- the budget


class Limits(NamedTuple):
    """Per-record bounds on a render. The defaults are far above what a real mapper needs (a
    DynamoDB item is at most 400 KB); `FHIRPIPES_RENDER_BUDGET` changes them."""

    iterations: int = 100_000
    """Loop iterations, all loops together."""
    string_length: int = 1_000_000
    """The longest string (or list) an operation may build."""
    work: int = 20_000_000
    """Characters and items built by operations, all together."""
    output_items: int = 200_000
    """Values added to the output from inside loops and macros."""
    integer_bits: int = 4_096
    """The largest integer an operation may build."""
    seconds: float = 2.0
    """Wall time, checked at loop iterations and macro calls."""


DEFAULT_LIMITS = Limits()


class Budget:
    """What is left of the current record's `Limits` (one render at a time per process)."""

    __slots__ = ("deadline", "iterations", "limits", "output", "work")

    def __init__(self) -> None:
        self.start()

    def start(self, limits: Limits | None = None) -> None:
        self.limits = limits or DEFAULT_LIMITS
        self.iterations = self.limits.iterations
        self.work = self.limits.work
        self.output = self.limits.output_items
        self.deadline = time.monotonic() + self.limits.seconds


BUDGET = Budget()


def exceeded(what: str) -> BudgetExceededError:
    return BudgetExceededError(f"the render went over its budget of {what} (FHIRPIPES_RENDER_BUDGET)")


def tick() -> None:
    """One loop iteration (or macro call); the clock is read every 256 of them."""
    budget = BUDGET
    left = budget.iterations = budget.iterations - 1
    if left < 0 or left & 255 == 0:
        if left < 0:
            raise exceeded(f"{budget.limits.iterations} loop iterations")
        if time.monotonic() > budget.deadline:
            raise exceeded(f"{budget.limits.seconds} seconds")


def charge(size: int) -> None:
    """Account for an operation that built ``size`` characters or items."""
    budget = BUDGET
    if size > budget.limits.string_length:
        raise exceeded(f"{budget.limits.string_length} characters or items in one value")
    budget.work -= size
    if budget.work < 0:
        raise exceeded(f"{budget.limits.work} characters and items built")


def _check_length(size: int) -> None:
    """Refuse, before building it, a value longer than the budget allows."""
    if size > BUDGET.limits.string_length:
        raise exceeded(f"{BUDGET.limits.string_length} characters or items in one value")


def _charged(result: Any) -> Any:
    if isinstance(result, str | list | tuple | dict | bytes):
        charge(len(result))
    elif type(result) is int and result.bit_length() > BUDGET.limits.integer_bits:
        raise exceeded(f"{BUDGET.limits.integer_bits}-bit integers")
    return result


# ---------------------------------------------------------------- values into the output

NA: Any = object()
"""No argument passed (a macro parameter's default applies)."""


def value(item: Any) -> Any:
    """The JSON value of an expression's result, pruned: ``None`` when it is empty.

    Equal to parsing the JSON text the value would render as (fractional numbers as `Decimal`),
    then dropping empty and whitespace-only strings, nulls and empty objects and lists,
    recursively: an element appears only where the item has a value for it.
    """
    kind = type(item)
    if kind is str:
        return None if not item or item.isspace() else item
    if item is None or kind is bool or kind is int:
        return item
    if kind is dict or kind is list:
        return _container(item)
    return _scalar(item)


def value_in_loop(item: Any) -> Any:
    """`value`, counted against the budget's output items (for values added inside loops and macros)."""
    budget = BUDGET
    budget.output -= 1
    if budget.output < 0:
        raise exceeded(f"{budget.limits.output_items} output values from loops and macros")
    return value(item)


def _container(item: Any) -> Any:
    if isinstance(item, Mapping):
        pruned = {}
        for key, member in item.items():
            member = value(member)
            if member is not None:
                pruned[key if type(key) is str else _key(key)] = member
        return pruned or None
    items = []
    for element in item:
        element = value(element)
        if element is not None:
            items.append(element)
    return items or None


def _key(key: Any) -> str:
    if isinstance(key, Missing):
        key.fail()
    return str(key)


def _scalar(item: Any) -> Any:
    if isinstance(item, Missing):
        item.fail()
    if isinstance(item, Decimal):
        if not item.is_finite():
            raise NotJSONError("a non-finite number has no JSON form")
        text = str(item)
        # JSON text without a fraction or exponent parses back as an int.
        return item if ("." in text or "E" in text or "e" in text) else int(text)
    if isinstance(item, float):
        if item != item or item in (float("inf"), float("-inf")):
            raise NotJSONError("a non-finite number has no JSON form")
        return Decimal(float.__repr__(item))
    if isinstance(item, bool):
        return bool(item)
    if isinstance(item, int):
        return int(item)
    if isinstance(item, str):
        return value(str(item))
    if isinstance(item, Mapping | list | tuple):
        return _container(item)
    if isinstance(item, set | frozenset):
        # DynamoDB sets have no order: sort so the same item always gives the same resource.
        return _container(sorted(item, key=sort_key))
    if isinstance(item, bytes | bytearray):
        return base64.b64encode(item).decode("ascii") or None
    if isinstance(item, datetime.date | datetime.time):
        return item.isoformat()
    raise NotJSONError(f"a {type(item).__name__} has no JSON form")


def sort_key(item: Any) -> str:
    """The order of a set's members: by their JSON text, so it doesn't depend on hashing."""
    from fhirpipes.engine.values import to_json

    return to_json(item)


def same(a: Any, b: Any) -> bool:
    """Equal as a template sees them: equal, and of the same types all the way down (``1`` is not
    ``True``, ``Decimal("1.0")`` is not ``Decimal("1")``). May say False for equal sets (safe:
    callers then do the full work); never says True for values a template could tell apart."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is str:
        return bool(a == b)
    try:
        # For equal values, repr tells the types apart (1, True, 1.0, Decimal('1'), '1'), at C speed.
        return bool(a == b) and repr(a) == repr(b)
    except (TypeError, ValueError, RecursionError):
        return False


# ---------------------------------------------------------------- sandboxed access

_DICT_METHODS = frozenset({"get", "items", "keys", "values"})
_STR_METHODS = frozenset(
    {
        "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha",
        "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "lower",
        "lstrip", "partition", "removeprefix", "removesuffix", "rfind", "rindex", "rpartition",
        "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper",
    }
)  # fmt: skip
_LIST_METHODS = frozenset({"count", "index"})


def getattr_(obj: Any, name: str) -> Any:
    """``obj.name`` in a template: a dict's key first (record attributes are data), then safe attributes."""
    if type(obj) is dict:
        found = obj.get(name, NA)
        if found is not NA:
            return found
        if name in _DICT_METHODS:
            return getattr(obj, name)
        if hasattr(dict, name) and not name.startswith("_"):
            raise UnsafeError(f"access to the dict method {name!r} is unsafe (record data is read-only)")
        return Missing(name)
    return _attribute(obj, name)


def getattr_or(obj: Any, name: str, fallback: Any) -> Any:
    """``obj.name | default(fallback)`` with a constant fallback: no `Missing` made for an absent key."""
    if type(obj) is dict:
        found = obj.get(name, NA)
        if found is not NA:
            return found
        if name not in _DICT_METHODS and not hasattr(dict, name):
            return fallback
    found = getattr_(obj, name)
    return fallback if type(found) is Missing else found


def _attribute(obj: Any, name: str) -> Any:
    if type(obj) is Missing:
        obj.fail()
    if name.startswith("_"):
        raise UnsafeError(f"access to the attribute {name!r} is unsafe")
    if isinstance(obj, Namespace | TemplateModule | Loop):
        return obj.attribute(name)
    if isinstance(obj, str):
        bounded = _BOUNDED_STR_METHODS.get(name)
        if bounded is not None:
            return _bind(bounded, obj)
        if name in _STR_METHODS:
            return _bind(_charging(getattr(str, name)), obj)
        return _unsafe_or_missing(str, name)
    if isinstance(obj, Mapping):
        if name in _DICT_METHODS:
            return getattr(obj, name)
        return _unsafe_or_missing(dict, name)
    if isinstance(obj, list | tuple):
        if name in _LIST_METHODS:
            return getattr(obj, name)
        return _unsafe_or_missing(list, name)
    if isinstance(obj, int | float | Decimal | bytes | set | frozenset) or obj is None:
        return _unsafe_or_missing(type(obj), name)
    return _foreign_attribute(obj, name)


def _unsafe_or_missing(kind: type, name: str) -> Any:
    if hasattr(kind, name):
        raise UnsafeError(f"access to the method {name!r} is unsafe in a template")
    return Missing(name)


def _foreign_attribute(obj: Any, name: str) -> Any:
    """An attribute of an object a plugin's context hook supplied: Jinja's sandbox policy decides."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment  # rare: only for plugin-supplied objects

    try:
        found = getattr(obj, name)
    except AttributeError:
        return Missing(name)
    if not ImmutableSandboxedEnvironment().is_safe_attribute(obj, name, found):
        raise UnsafeError(f"access to the attribute {name!r} is unsafe")
    return found


def getitem(obj: Any, key: Any) -> Any:
    """``obj[key]`` in a template: missing keys and indexes are `Missing`, not errors."""
    if type(obj) is dict:
        found = obj.get(key, NA) if _hashable(key) else NA
        return Missing(key if isinstance(key, str) else None) if found is NA else found
    if type(obj) is Missing:
        obj.fail()
    if isinstance(key, str) and not isinstance(obj, Mapping):
        try:
            return _attribute(obj, key)
        except UnsafeError:
            pass  # raised below, without the name: the key may be a record's value
        raise UnsafeError("access to an attribute by a computed name is unsafe")
    if type(key) is slice:
        result = obj[key]
        return _charged(result)
    try:
        return obj[key]
    except (LookupError, TypeError):
        return Missing(key if isinstance(key, str) else None)


def _hashable(key: Any) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


def lookup(context: Mapping[str, Any], name: str) -> Any:
    """A name the template doesn't assign: from the context, else a global, else `Missing`."""
    found = context.get(name, NA)
    if found is not NA:
        return found
    found = GLOBALS.get(name, NA)
    return Missing(name) if found is NA else found


class Namespace:
    """Jinja's ``namespace()``: the one object a template can assign attributes on (in loops)."""

    __slots__ = ("members",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.members: dict[str, Any] = dict(*args, **kwargs)

    def attribute(self, name: str) -> Any:
        return self.members.get(name, Missing(name))

    def set(self, name: str, item: Any) -> None:
        self.members[name] = item


def set_attribute(target: Any, name: str, item: Any) -> None:
    """``{% set ns.name = value %}``: only on a `Namespace`."""
    if not isinstance(target, Namespace):
        raise UnsafeError("only a namespace() object's attributes can be set")
    target.set(name, item)


class TemplateModule:
    """An imported template: its macros and top-level variables."""

    __slots__ = ("exports", "name")

    def __init__(self, name: str, exports: dict[str, Any]) -> None:
        self.name = name
        self.exports = exports

    def attribute(self, name: str) -> Any:
        return self.exports.get(name, Missing(name))


class Loop:
    """The ``loop`` variable of a ``{% for %}`` (the parts of Jinja's LoopContext templates use)."""

    __slots__ = ("index0", "items", "length")

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.length = len(items)
        self.index0 = -1

    def attribute(self, name: str) -> Any:
        index0 = self.index0
        if name == "index":
            return index0 + 1
        if name == "index0":
            return index0
        if name == "first":
            return index0 == 0
        if name == "last":
            return index0 == self.length - 1
        if name == "length":
            return self.length
        if name == "revindex":
            return self.length - index0
        if name == "revindex0":
            return self.length - index0 - 1
        if name == "previtem":
            return self.items[index0 - 1] if index0 > 0 else Missing("previtem")
        if name == "nextitem":
            return self.items[index0 + 1] if index0 + 1 < self.length else Missing("nextitem")
        if name == "depth":
            return 1
        if name == "depth0":
            return 0
        if name == "cycle":
            return self.cycle
        return Missing(name)

    def cycle(self, *options: Any) -> Any:
        if not options:
            raise TypeError("loop.cycle() needs at least one value")
        return options[self.index0 % len(options)]


def iterate(source: Any) -> list[Any]:
    """What ``{% for %}`` goes over: a dict's keys, a set in a stable order, any other iterable."""
    if type(source) is list:
        return source
    if type(source) is Missing:
        source.fail()
    if isinstance(source, Mapping):
        return list(source)
    if isinstance(source, set | frozenset):
        return sorted(source, key=sort_key)
    if isinstance(source, str | bytes):
        return list(source)
    items = list(source)
    charge(len(items))
    return items


def bounded_range(*args: Any) -> range:
    """``range()`` that refuses a range longer than the budget's iterations."""
    result = range(*args)
    if len(result) > BUDGET.limits.iterations:
        raise exceeded(f"{BUDGET.limits.iterations} loop iterations")
    return result


def macro_arguments(name: str, count: int | None, unknown: dict[str, Any] | None) -> None:
    """A macro called with more arguments than it takes (names are the template's, not data)."""
    if unknown:
        raise TypeError(f"macro {name!r} takes no keyword argument {sorted(unknown)[0]!r}")
    raise TypeError(f"macro {name!r} was called with too many arguments ({count})")


def dict_(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return dict(*args, **kwargs)


GLOBALS: dict[str, Any] = {"range": bounded_range, "dict": dict_, "namespace": Namespace}


# ---------------------------------------------------------------- operators that can grow


def concat(*parts: Any) -> str:
    """``a ~ b``: plain text joined (Jinja's semantics), bounded."""
    text = "".join([part if type(part) is str else _text(part) for part in parts])
    charge(len(text))
    return text


def _text(part: Any) -> str:
    if type(part) is Missing:
        part.fail()
    return str(part)


def add(left: Any, right: Any) -> Any:
    if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        _check_length(len(left) + len(right))
    return _charged(left + right)


def multiply(left: Any, right: Any) -> Any:
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple | bytes) and isinstance(count, int):
            _check_length(len(sequence) * max(count, 0))
    if type(left) is int and type(right) is int:
        _check_bits(left.bit_length() + right.bit_length())
    return _charged(left * right)


def power(base: Any, exponent: Any) -> Any:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        _check_bits(max(base.bit_length(), 1) * exponent if abs(base) > 1 else 1)
    elif isinstance(exponent, int | Decimal) and abs(exponent) > BUDGET.limits.integer_bits:  # type: ignore[operator]
        raise exceeded(f"{BUDGET.limits.integer_bits}-bit integers")
    return _charged(base**exponent)


def _check_bits(bits: int) -> None:
    if bits > BUDGET.limits.integer_bits:
        raise exceeded(f"{BUDGET.limits.integer_bits}-bit integers")


_FORMAT_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        return format_text(left, *(right if isinstance(right, tuple) else (right,)))
    return _charged(left % right)


def format_text(template: Any, *args: Any, **kwargs: Any) -> str:
    """printf-style formatting (``%`` and ``| format``) with the field widths bounded."""
    if type(template) is Missing:
        template.fail()
    template = str(template)
    for match in _FORMAT_WIDTH.finditer(template):
        for width in match.groups():
            if width == "*":
                raise UnsafeError("'*' field widths are not allowed in templates")
            if width is not None:
                _check_length(int(width))
    for arg in args:
        if type(arg) is Missing:
            arg.fail()
    result: str = template % (kwargs if kwargs else args)
    charge(len(result))
    return result


# ---------------------------------------------------------------- bounded str methods


def _bind(method: Callable[..., Any], text: str) -> Callable[..., Any]:
    def bound(*args: Any, **kwargs: Any) -> Any:
        return method(text, *args, **kwargs)

    return bound


def _charging(method: Callable[..., Any]) -> Callable[..., Any]:
    def charged(*args: Any, **kwargs: Any) -> Any:
        return _charged(method(*args, **kwargs))

    return charged


def _padding(kind: str) -> Callable[..., str]:
    def pad(text: str, width: Any, *args: Any) -> str:
        _check_length(int(width))
        result: str = getattr(str, kind)(text, width, *args)
        charge(len(result))
        return result

    return pad


def _replace(text: str, old: Any, new: Any, count: Any = -1) -> str:
    old, new = str(old), str(new)
    occurrences = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    _check_length(len(text) + occurrences * (len(new) - len(old)))
    result = text.replace(old, new, -1 if count is None else count)
    charge(len(result))
    return result


def _join(text: str, items: Iterable[Any]) -> str:
    result = text.join(items)
    charge(len(result))
    return result


def _expandtabs(text: str, tabsize: int = 8) -> str:
    _check_length(len(text) * max(int(tabsize), 1))
    return text.expandtabs(tabsize)


_BOUNDED_STR_METHODS: dict[str, Callable[..., Any]] = {
    "center": _padding("center"),
    "ljust": _padding("ljust"),
    "rjust": _padding("rjust"),
    "zfill": lambda text, width: _padding("zfill")(text, width),
    "replace": _replace,
    "join": _join,
    "expandtabs": _expandtabs,
}


# ---------------------------------------------------------------- filters and tests


def _upper(text: Any) -> str:
    return str(text).upper()


def _lower(text: Any) -> str:
    return str(text).lower()


def _trim(text: Any, chars: str | None = None) -> str:
    return str(text).strip(chars)


def _string(item: Any) -> str:
    return _charged(str(item))  # type: ignore[no-any-return]


def _length(item: Any) -> int:
    return len(item)


def _first(items: Any) -> Any:
    for item in iterate(items):
        return item
    return Missing("first")


def _last(items: Any) -> Any:
    items = iterate(items)
    return items[-1] if items else Missing("last")


def _join_filter(items: Any, separator: str = "", attribute: Any = None) -> str:
    parts = iterate(items)
    if attribute is not None:
        parts = [getitem(part, attribute) for part in parts]
    return concat(*[_join_part(part, str(separator), index) for index, part in enumerate(parts)])


def _join_part(part: Any, separator: str, index: int) -> str:
    text = part if type(part) is str else _text(part)
    return separator + text if index else text


def _replace_filter(text: Any, old: Any, new: Any, count: Any = None) -> str:
    return _replace(str(text), old, new, -1 if count is None else count)


def _center(text: Any, width: int = 80) -> str:
    return _padding("center")(str(text), width)


def _int(item: Any, default: int = 0, base: int = 10) -> int:
    try:
        if isinstance(item, str | bytes):
            return int(item, base)
        return int(item)
    except (TypeError, ValueError, OverflowError, ArithmeticError):
        try:
            return int(float(item))
        except (TypeError, ValueError, OverflowError):
            return default


def _float(item: Any, default: float = 0.0) -> float:
    try:
        return float(item)
    except (TypeError, ValueError):
        return default


def _list(items: Any) -> list[Any]:
    return list(iterate(items))


def _select(items: Any) -> list[Any]:
    return [item for item in iterate(items) if item]


NATIVE_FILTERS: dict[str, Callable[..., Any]] = {
    **cast("dict[str, Callable[..., Any]]", CONVERSION_FILTERS),
    "upper": _upper,
    "lower": _lower,
    "trim": _trim,
    "string": _string,
    "length": _length,
    "count": _length,
    "first": _first,
    "last": _last,
    "join": _join_filter,
    "replace": _replace_filter,
    "center": _center,
    "format": format_text,
    "int": _int,
    "float": _float,
    "list": _list,
    "abs": abs,
    "title": lambda text: str(text).title(),
    "capitalize": lambda text: str(text).capitalize(),
    "select": _select,
}
"""Filters implemented here; any other Jinja built-in filter runs Jinja's own code (imported on use)."""

REFUSED_FILTERS = frozenset({"random", "indent", "wordwrap", "filesizeformat", "pprint", "urlize"})
"""Jinja filters a template may not use: non-deterministic, or output growth we don't bound."""


def filter_function(name: str) -> Callable[..., Any]:
    """The function a compiled template calls for ``| name``: refuses `Missing` in, charges what comes out."""
    native = NATIVE_FILTERS.get(name)
    if native is not None:

        def checked(item: Any, *args: Any, **kwargs: Any) -> Any:
            if type(item) is Missing:
                item.fail()
            for arg in args:
                if type(arg) is Missing:
                    arg.fail()
            result = native(item, *args, **kwargs)
            if type(result) is str and len(result) > 256:  # short results: nothing to account for
                charge(len(result))
            return result

        return checked

    def via_jinja(item: Any, *args: Any, **kwargs: Any) -> Any:
        if type(item) is Missing:
            item.fail()
        for arg in (*args, *kwargs.values()):
            # A count or width (batch, slice, truncate, ...) beyond the budget is refused before
            # Jinja's code builds anything that large.
            if type(arg) is int and arg > BUDGET.limits.string_length:
                raise exceeded(f"{BUDGET.limits.string_length} characters or items in one value")
        result = _jinja().call_filter(name, item, args, kwargs)
        if hasattr(result, "__next__"):  # map, select, ...: generators
            result = list(result)
        if isinstance(result, str):
            result = str(result)  # Markup is just text here: every output is a value
        return _charged(result)

    return via_jinja


def _is_number(item: Any) -> bool:
    return isinstance(item, int | float | Decimal) and not isinstance(item, bool)


NATIVE_TESTS: dict[str, Callable[..., bool]] = {
    "none": lambda item: item is None,
    "string": lambda item: isinstance(item, str),
    "number": _is_number,
    "integer": lambda item: isinstance(item, int) and not isinstance(item, bool),
    "float": lambda item: isinstance(item, float),
    "boolean": lambda item: item is True or item is False,
    "true": lambda item: item is True,
    "false": lambda item: item is False,
    "mapping": lambda item: isinstance(item, Mapping),
    "sequence": lambda item: isinstance(item, list | tuple | str),
    "iterable": lambda item: isinstance(item, list | tuple | str | set | frozenset | Mapping),
    "even": lambda item: item % 2 == 0,
    "odd": lambda item: item % 2 == 1,
    "divisibleby": lambda item, number: item % number == 0,
    "in": lambda item, container: item in container,
    "sameas": lambda item, other: item is other,
    "eq": lambda item, other: item == other,
    "ne": lambda item, other: item != other,
    "lt": lambda item, other: item < other,
    "le": lambda item, other: item <= other,
    "gt": lambda item, other: item > other,
    "ge": lambda item, other: item >= other,
    "lower": lambda item: str(item).islower(),
    "upper": lambda item: str(item).isupper(),
}
for _alias, _name in (("==", "eq"), ("equalto", "eq"), ("!=", "ne"), ("<", "lt"), ("lessthan", "lt")):
    NATIVE_TESTS[_alias] = NATIVE_TESTS[_name]
for _alias, _name in (("<=", "le"), (">", "gt"), ("greaterthan", "gt"), (">=", "ge")):
    NATIVE_TESTS[_alias] = NATIVE_TESTS[_name]


def test_function(name: str) -> Callable[..., bool]:
    """The function a compiled template calls for ``is name`` (``defined``/``undefined`` are inlined)."""
    native = NATIVE_TESTS.get(name)
    if native is not None:

        def checked(item: Any, *args: Any) -> bool:
            if type(item) is Missing:
                item.fail()
            return native(item, *args)

        return checked

    def via_jinja(item: Any, *args: Any, **kwargs: Any) -> bool:
        if type(item) is Missing:
            item.fail()
        return bool(_jinja().call_test(name, item, args, kwargs))

    return via_jinja


_JINJA: list[Any] = []


def _jinja() -> Any:
    """A sandboxed Jinja environment, only to run Jinja's built-in filters and tests we don't implement."""
    if not _JINJA:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        environment = ImmutableSandboxedEnvironment()
        environment.filters.update(NATIVE_FILTERS)
        _JINJA.append(environment)
    return _JINJA[0]

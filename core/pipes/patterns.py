"""EventBridge event patterns, applied the way EventBridge Pipes filters records.

A pipe's ``FilterCriteria`` holds up to five filters; each ``Pattern`` is an EventBridge event
pattern as JSON text, and a record goes on to the enrichment/target when *any* filter matches
("Event filtering in Amazon EventBridge Pipes"; Lambda's "event filtering" page for the five).
A pattern is compiled once into a tree of small matcher closures, cached by its text.

Rules implemented, by the AWS page that documents them:

* "Amazon EventBridge event patterns" / "Event pattern syntax": a pattern mirrors the event's
  structure; an object drills into the event object; every field named must match (AND) and a
  field matches when any value in its array matches (OR). Pattern values are always arrays.
* "Arrays in event patterns": when the event value is an array, the field matches if any
  element matches. Arrays of objects are searched element by element, and all fields of one
  sub-pattern must match within the *same* element (Event Ruler's array-consistent matching).
* "Matching null values and empty strings": ``[null]`` and ``[""]`` are distinct values.
* "Content filtering" / "Comparison operators": ``prefix``, ``suffix`` (both also with
  ``{"equals-ignore-case": ...}``), ``equals-ignore-case``, ``wildcard`` (``*`` is any run,
  ``\\*`` a literal star, ``\\\\`` a literal backslash, ``**`` and other escapes invalid),
  ``anything-but`` (a string, a number, a list of only strings or only numbers, or an object
  with ``prefix``, ``suffix``, ``equals-ignore-case`` or ``wildcard``), ``numeric`` (``=`` or a
  lower bound ``>``/``>=`` and/or an upper bound ``<``/``<=``), ``exists``, ``cidr`` (IPv4 and
  IPv6), and ``$or`` (a list of at least two objects; operator names can't be field names
  inside it).
* Numeric matching "works with values that are JSON numbers" and "is limited to values between
  -5.0e9 and +5.0e9 inclusive": pattern operands outside that range are refused, event numbers
  outside it never match ``numeric``, and a JSON string such as DynamoDB's ``{"N": "42"}`` never
  matches ``numeric``. Pipes/Lambda DynamoDB filtering drills down to the type key
  (``{"NewImage": {"age": {"N": [...]}}}``).
* "Exists matching only works on leaf nodes": ``exists`` looks at the field's leaf values, so
  an object-valued field does not "exist" and an empty array (DynamoDB ``{"L": []}``) does not
  exist either; a missing field matches nothing except ``{"exists": false}`` (``anything-but``
  included: it needs a value to compare).
* "If you include a key more than once the last reference will be the one used" (JSON text
  parsed with the usual last-key-wins rule). The pattern text may be at most 4096 characters
  (``AWS::Pipes::Pipe Filter`` / ``Pattern``: maximum 4096).

Choices where the documentation is silent or ambiguous:

* Exact numbers compare numerically (``5`` matches ``5.0``), as current EventBridge does (Event
  Ruler adds a numeric-equality matcher next to the literal one); an older Lambda page said
  ``300`` and ``3.0e2`` differ, which a parsed ``dict`` event can't reproduce anyway. Booleans
  are never numbers (``true`` does not match ``1``).
* ``anything-but X`` matches a leaf value exactly when ``X`` would not: ``{"anything-but":
  "a"}`` matches ``null``, numbers and booleans; ``{"anything-but": {"prefix": "a"}}`` matches a
  number. On an array it matches when any element qualifies.
* The comparison table marks ``anything-but`` with ``prefix``/``suffix``/``equals-ignore-case``/
  ``wildcard`` as "Pipe support: No"; they are accepted here anyway (a superset), so patterns
  written for an event bus behave the same locally.
* ``equals-ignore-case`` compares ``str.lower()`` of both sides.
* A pattern given as a ``dict`` is measured and cached by its compact JSON text.
* An event that is not an object is matched as an empty object (only ``exists: false`` can
  match it); the runner should decode SQS/Kinesis bodies before filtering.
* Pipes documents ``eventName``, ``eventID`` and similar poller-added fields as not filterable;
  they are filterable here, since local records carry them as plain fields.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "MAX_FILTERS",
    "MAX_PATTERN_LENGTH",
    "CompiledPattern",
    "InvalidPattern",
    "compile_pattern",
    "matches",
    "matches_any",
    "validate_filters",
    "validate_pattern",
]

MAX_PATTERN_LENGTH: Final = 4096
MAX_FILTERS: Final = 5
# "Numeric matching is limited to values between -5.0e9 and +5.0e9 inclusive."
NUMERIC_LIMIT: Final = 5.0e9

_OPERATORS: Final = frozenset(
    {"anything-but", "cidr", "equals-ignore-case", "exists", "numeric", "prefix", "suffix", "wildcard"}
)
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})

# A test on one leaf value; a matcher on all leaf values of a field; a matcher on an object.
LeafTest = Callable[[Any], bool]
ValuesMatcher = Callable[[list[Any]], bool]
ObjectMatcher = Callable[[Any], bool]
PatternLike = str | Mapping[str, Any]


class InvalidPattern(ValueError):
    """An event pattern EventBridge would refuse; ``reason`` says why and ``where`` (a JSON path
    into the pattern, ``$`` for the whole of it) says where."""

    def __init__(self, reason: str, where: str = "$") -> None:
        self.reason = reason
        self.where = where
        super().__init__(f"Event pattern is not valid. Reason: {reason} (at {where})")


class CompiledPattern:
    """A validated pattern, ready to test records against with `matches`."""

    __slots__ = ("_matcher", "text")

    def __init__(self, text: str, matcher: ObjectMatcher) -> None:
        self.text = text
        self._matcher = matcher

    def matches(self, event: Any) -> bool:
        """Whether ``event`` (a parsed JSON object) matches this pattern."""
        return self._matcher(event)

    def __repr__(self) -> str:
        return f"CompiledPattern({self.text!r})"


def compile_pattern(pattern: PatternLike) -> CompiledPattern:
    """Validate ``pattern`` (JSON text or a mapping) and compile it; cached by pattern text.

    Raises `InvalidPattern` with the reason and where in the pattern.
    """
    return _compile_text(_pattern_text(pattern))


def validate_pattern(pattern: PatternLike) -> None:
    """Raise `InvalidPattern` unless EventBridge would accept ``pattern``."""
    compile_pattern(pattern)


def matches(pattern: PatternLike, event: Any) -> bool:
    """Whether ``event`` matches ``pattern``; an invalid pattern raises `InvalidPattern`."""
    return compile_pattern(pattern).matches(event)


def validate_filters(patterns: Iterable[Any] | None) -> None:
    """Raise `InvalidPattern` unless ``patterns`` is a usable list of Pipe filters.

    Each item is a pattern (JSON text or mapping) or a ``{"Pattern": "<json>"}`` filter as
    in ``FilterCriteria.Filters``; at most `MAX_FILTERS` of them.
    """
    _compile_filters(patterns)


def matches_any(patterns: Iterable[Any] | None, event: Any) -> bool:
    """Whether a record passes a pipe's filters: any filter matches, or there are none."""
    compiled = _compile_filters(patterns)
    return not compiled or any(pattern.matches(event) for pattern in compiled)


def _compile_filters(patterns: Iterable[Any] | None) -> list[CompiledPattern]:
    if patterns is None:
        return []
    if isinstance(patterns, str | Mapping):
        # A lone pattern would otherwise be iterated as characters or keys.
        raise TypeError("filters must be a list of patterns, not a single pattern")
    items = list(patterns)
    if len(items) > MAX_FILTERS:
        raise InvalidPattern(f"{len(items)} filters given; a pipe accepts at most {MAX_FILTERS}", "Filters")
    compiled = []
    for index, item in enumerate(items):
        # A FilterCriteria entry, {"Pattern": "<json text>"}: no valid pattern has a string leaf.
        if isinstance(item, Mapping) and len(item) == 1 and isinstance(item.get("Pattern"), str):
            item = item["Pattern"]
        try:
            compiled.append(compile_pattern(item))
        except InvalidPattern as exc:
            raise InvalidPattern(exc.reason, f"Filters[{index}] {exc.where}") from None
    return compiled


def _pattern_text(pattern: Any) -> str:
    if isinstance(pattern, str):
        return pattern
    if isinstance(pattern, Mapping):
        try:
            return json.dumps(pattern, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidPattern(f"pattern has no JSON form: {exc}") from None
    raise InvalidPattern(f"pattern must be JSON text or an object, not {type(pattern).__name__}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@functools.lru_cache(maxsize=512)
def _compile_text(text: str) -> CompiledPattern:
    if len(text) > MAX_PATTERN_LENGTH:
        raise InvalidPattern(f"pattern is {len(text)} characters long; the maximum is {MAX_PATTERN_LENGTH}")
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidPattern(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:
        raise InvalidPattern(f"not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidPattern(f"Filter is not an object (the pattern is a JSON {_json_type(parsed)})")
    return CompiledPattern(text, _compile_object(parsed, "$", in_or=False))


# --- structure: objects, fields, $or ----------------------------------------------------------


def _compile_object(pattern: Mapping[str, Any], where: str, *, in_or: bool) -> ObjectMatcher:
    if not pattern:
        raise InvalidPattern("Empty objects are not allowed", where)
    checks: list[ObjectMatcher] = []
    for key, value in pattern.items():
        here = _child(where, key)
        if key == "$or":
            checks.append(_compile_or(value, here))
            continue
        if in_or and key in _OPERATORS:
            raise InvalidPattern(f'"{key}" is an operator name and cannot be a field name inside $or', here)
        if isinstance(value, Mapping):
            checks.append(_nested_field(key, _compile_object(value, here, in_or=in_or)))
        elif isinstance(value, list | tuple):
            checks.append(_leaf_field(key, _compile_values(value, here)))
        else:
            raise InvalidPattern(
                f'"{key}" must be an object or an array; pattern values are always arrays, '
                f"e.g. [{_show(value)}], not a bare {_json_type(value)}",
                here,
            )
    if len(checks) == 1:
        return checks[0]
    return lambda obj: all(check(obj) for check in checks)


def _compile_or(value: Any, where: str) -> ObjectMatcher:
    if not isinstance(value, list | tuple) or len(value) < 2:
        raise InvalidPattern("$or must be an array of at least 2 objects", where)
    branches: list[ObjectMatcher] = []
    for index, branch in enumerate(value):
        if not isinstance(branch, Mapping):
            raise InvalidPattern(
                f"only objects are allowed in a $or array, not a {_json_type(branch)}", f"{where}[{index}]"
            )
        branches.append(_compile_object(branch, f"{where}[{index}]", in_or=True))
    return lambda obj: any(branch(obj) for branch in branches)


def _field_values(obj: Any, key: str) -> list[Any]:
    """The values of ``obj[key]`` with arrays flattened: ``[]`` when missing or an empty array."""
    if not isinstance(obj, Mapping) or key not in obj:
        return []
    value = obj[key]
    if not isinstance(value, list | tuple):
        return [value]
    flat: list[Any] = []
    _flatten(value, flat)
    return flat


def _flatten(items: Iterable[Any], out: list[Any]) -> None:
    for item in items:
        if isinstance(item, list | tuple):
            _flatten(item, out)
        else:
            out.append(item)


def _nested_field(key: str, sub: ObjectMatcher) -> ObjectMatcher:
    def match(obj: Any) -> bool:
        children = [value for value in _field_values(obj, key) if isinstance(value, Mapping)]
        if not children:
            # Nothing to drill into: only "exists": false (or $or of it) can still match.
            return sub(_EMPTY)
        return any(sub(child) for child in children)

    return match


def _leaf_field(key: str, matchers: tuple[ValuesMatcher, ...]) -> ObjectMatcher:
    def match(obj: Any) -> bool:
        leaves = [value for value in _field_values(obj, key) if not isinstance(value, Mapping)]
        return any(matcher(leaves) for matcher in matchers)

    return match


# --- values: the array under a field -----------------------------------------------------------


def _compile_values(values: list[Any] | tuple[Any, ...], where: str) -> tuple[ValuesMatcher, ...]:
    if not values:
        raise InvalidPattern("Empty arrays are not allowed", where)
    exact: set[tuple[str, Any]] = set()
    matchers: list[ValuesMatcher] = []
    for index, value in enumerate(values):
        here = f"{where}[{index}]"
        if isinstance(value, Mapping):
            matchers.append(_compile_operator(value, here))
        elif _is_scalar(value):
            exact.add(_exact_key(value, here))
        else:
            raise InvalidPattern(
                f"a match value must be a string, number, true, false, null or an operator object, "
                f"not a {_json_type(value)}",
                here,
            )
    if exact:
        # All literal values of one field share a single set lookup.
        keys = frozenset(exact)
        matchers.insert(0, _any_leaf(lambda leaf: _leaf_key(leaf) in keys))
    return tuple(matchers)


def _any_leaf(test: LeafTest) -> ValuesMatcher:
    return lambda leaves: any(test(leaf) for leaf in leaves)


def _compile_operator(expression: Mapping[Any, Any], where: str) -> ValuesMatcher:
    if len(expression) != 1:
        if not expression:
            raise InvalidPattern("Match expression name not found (empty object)", where)
        names = ", ".join(f'"{name}"' for name in expression)
        raise InvalidPattern(f"Only one key allowed in match expression, found {names}", where)
    ((name, operand),) = expression.items()
    here = _child(where, str(name))
    if name == "exists":
        if not isinstance(operand, bool):
            reason = f"exists match pattern must be either true or false, not {_show(operand)}"
            raise InvalidPattern(reason, here)
        return (lambda leaves: bool(leaves)) if operand else (lambda leaves: not leaves)
    compiler = _LEAF_OPERATORS.get(name)
    if compiler is None:
        known = ", ".join(sorted(_OPERATORS))
        raise InvalidPattern(f'Unrecognized match type "{name}" (operators: {known})', here)
    return _any_leaf(compiler(operand, here))


# --- leaf operators ---------------------------------------------------------------------------


def _string_test(kind: str, operand: Any, where: str) -> LeafTest:
    """prefix / suffix, with an optional {"equals-ignore-case": ...} operand."""
    ignore_case = False
    if isinstance(operand, Mapping) and len(operand) == 1 and "equals-ignore-case" in operand:
        operand = operand["equals-ignore-case"]
        ignore_case = True
        where = _child(where, "equals-ignore-case")
    if not isinstance(operand, str):
        raise InvalidPattern(f"{kind} match pattern must be a string, not {_show(operand)}", where)
    affix = operand.lower() if ignore_case else operand
    check = str.startswith if kind == "prefix" else str.endswith

    def test(leaf: Any) -> bool:
        if not isinstance(leaf, str):
            return False
        return check(leaf.lower() if ignore_case else leaf, affix)

    return test


def _prefix(operand: Any, where: str) -> LeafTest:
    return _string_test("prefix", operand, where)


def _suffix(operand: Any, where: str) -> LeafTest:
    return _string_test("suffix", operand, where)


def _equals_ignore_case(operand: Any, where: str) -> LeafTest:
    if not isinstance(operand, str):
        reason = f"equals-ignore-case match pattern must be a string, not {_show(operand)}"
        raise InvalidPattern(reason, where)
    folded = operand.lower()
    return lambda leaf: isinstance(leaf, str) and leaf.lower() == folded


def _wildcard(operand: Any, where: str) -> LeafTest:
    if not isinstance(operand, str):
        raise InvalidPattern(f"wildcard match pattern must be a string, not {_show(operand)}", where)
    chunks = _wildcard_chunks(operand, where)
    if len(chunks) == 1:
        return lambda leaf: isinstance(leaf, str) and leaf == chunks[0]
    first, *middle, last = chunks
    fixed = len(first) + len(last)

    def test(leaf: Any) -> bool:
        # Leftmost-first search for each piece between stars: linear, never backtracks.
        if not isinstance(leaf, str) or len(leaf) < fixed or not leaf.startswith(first):
            return False
        if not leaf.endswith(last):
            return False
        position, end = len(first), len(leaf) - len(last)
        for chunk in middle:
            found = leaf.find(chunk, position, end)
            if found < 0:
                return False
            position = found + len(chunk)
        return True

    return test


def _wildcard_chunks(text: str, where: str) -> tuple[str, ...]:
    """The literal pieces between unescaped ``*``s (one piece means no wildcard at all)."""
    chunks: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            following = text[index + 1 : index + 2]
            if following not in ("*", "\\"):
                raise InvalidPattern(
                    f"Invalid escape at position {index} of wildcard {_show(text)}: "
                    "only \\* and \\\\ may be escaped",
                    where,
                )
            current.append(following)
            index += 2
            continue
        if char == "*":
            if text[index + 1 : index + 2] == "*":
                raise InvalidPattern(
                    f"Consecutive wildcard characters at position {index} of wildcard {_show(text)}", where
                )
            chunks.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    chunks.append("".join(current))
    return tuple(chunks)


def _cidr(operand: Any, where: str) -> LeafTest:
    if not isinstance(operand, str):
        raise InvalidPattern(f"cidr match pattern must be a string, not {_show(operand)}", where)
    try:
        network = ipaddress.ip_network(operand, strict=False)
    except ValueError:
        raise InvalidPattern(f"{_show(operand)} is not an IPv4 or IPv6 CIDR block", where) from None

    def test(leaf: Any) -> bool:
        if not isinstance(leaf, str):
            return False
        try:
            address = ipaddress.ip_address(leaf)
        except ValueError:
            return False
        return address.version == network.version and address in network

    return test


def _numeric(operand: Any, where: str) -> LeafTest:
    if not isinstance(operand, list | tuple):
        raise InvalidPattern(f"Value of numeric must be an array, not {_show(operand)}", where)
    if not operand:
        raise InvalidPattern('numeric expression is empty; expected e.g. [">", 0, "<=", 5]', where)
    terms = list(operand)
    lower: tuple[float, bool] | None = None  # (bound, inclusive)
    upper: tuple[float, bool] | None = None
    position = 0
    while position < len(terms):
        operator = terms[position]
        here = f"{where}[{position}]"
        if operator not in ("=", ">", ">=", "<", "<="):
            raise InvalidPattern(f"Unrecognized numeric range operator {_show(operator)}", here)
        if position + 1 >= len(terms):
            raise InvalidPattern(f'"{operator}" must be followed by a number', here)
        bound = _numeric_operand(terms[position + 1], operator, f"{where}[{position + 1}]")
        if operator == "=":
            if len(terms) != 2:
                raise InvalidPattern('Too many elements in numeric expression: "=" stands alone', where)
            lower = upper = (bound, True)
        elif operator in (">", ">="):
            if position != 0:
                raise InvalidPattern(
                    f'Bad numeric range operator "{operator}": a lower bound (">" or ">=") must come first',
                    here,
                )
            lower = (bound, operator == ">=")
        else:
            if upper is not None:
                raise InvalidPattern("Too many terms in numeric range expression", here)
            upper = (bound, operator == "<=")
        position += 2
        if upper is not None and position < len(terms):
            raise InvalidPattern("Too many terms in numeric range expression", f"{where}[{position}]")
    if lower is not None and upper is not None and lower is not upper and lower[0] >= upper[0]:
        raise InvalidPattern(
            f"numeric range out of order: lower bound {lower[0]} must be less than upper bound {upper[0]}",
            where,
        )
    return _range_test(lower, upper)


def _numeric_operand(value: Any, operator: str, where: str) -> float:
    if not _is_number(value):
        raise InvalidPattern(f'Value of "{operator}" must be numeric, not {_show(value)}', where)
    if not -NUMERIC_LIMIT <= value <= NUMERIC_LIMIT:
        reason = f"numeric value {value} is out of range: must be between -5.0e9 and 5.0e9"
        raise InvalidPattern(reason, where)
    bound: float = value  # kept as written (5, not 5.0) for messages
    return bound


def _range_test(lower: tuple[float, bool] | None, upper: tuple[float, bool] | None) -> LeafTest:
    def test(leaf: Any) -> bool:
        # Only JSON numbers: DynamoDB's {"N": "42"} is a string and never matches.
        if not _is_number(leaf) or not -NUMERIC_LIMIT <= leaf <= NUMERIC_LIMIT:
            return False
        if lower is not None and not (leaf >= lower[0] if lower[1] else leaf > lower[0]):
            return False
        return upper is None or (leaf <= upper[0] if upper[1] else leaf < upper[0])

    return test


def _anything_but(operand: Any, where: str) -> LeafTest:
    if isinstance(operand, Mapping):
        return _anything_but_operator(operand, where)
    values = operand if isinstance(operand, list | tuple) else [operand]
    if not values:
        raise InvalidPattern("anything-but list is empty", where)
    kinds = set()
    keys = set()
    for index, value in enumerate(values):
        here = f"{where}[{index}]" if values is operand else where
        if isinstance(value, str):
            kinds.add("string")
        elif _is_number(value):
            kinds.add("number")
            _numeric_operand(value, "anything-but", here)
        else:
            raise InvalidPattern(
                f"anything-but takes strings or numbers (or a list of them), not {_show(value)}", here
            )
        keys.add(_exact_key(value, here))
    if len(kinds) > 1:
        raise InvalidPattern("anything-but list mixes strings and numbers; use only one type", where)
    frozen = frozenset(keys)
    return lambda leaf: _leaf_key(leaf) not in frozen


def _anything_but_operator(operand: Mapping[Any, Any], where: str) -> LeafTest:
    if len(operand) != 1:
        raise InvalidPattern("anything-but object must hold exactly one operator", where)
    ((name, inner),) = operand.items()
    here = _child(where, str(name))
    if name in ("prefix", "suffix"):
        if not isinstance(inner, str) or not inner:
            raise InvalidPattern(f"anything-but {name} must be a non-empty string, not {_show(inner)}", here)
        positive = _string_test(name, inner, here)
    elif name in ("equals-ignore-case", "wildcard"):
        items = inner if isinstance(inner, list | tuple) else [inner]
        if not items:
            raise InvalidPattern(f"anything-but {name} list is empty", here)
        build = _equals_ignore_case if name == "equals-ignore-case" else _wildcard
        tests = [build(item, f"{here}[{i}]" if items is inner else here) for i, item in enumerate(items)]

        def positive(leaf: Any) -> bool:
            return any(test(leaf) for test in tests)

    else:
        raise InvalidPattern(
            f'Unsupported anything-but pattern "{name}" (use prefix, suffix, equals-ignore-case or wildcard)',
            here,
        )
    return lambda leaf: not positive(leaf)


_LEAF_OPERATORS: Final[dict[str, Callable[[Any, str], LeafTest]]] = {
    "anything-but": _anything_but,
    "cidr": _cidr,
    "equals-ignore-case": _equals_ignore_case,
    "numeric": _numeric,
    "prefix": _prefix,
    "suffix": _suffix,
    "wildcard": _wildcard,
}


# --- values and messages ----------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Decimal):
        return value.is_finite()
    return isinstance(value, int)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool | int | float | Decimal)


def _exact_key(value: Any, where: str) -> tuple[str, Any]:
    key = _leaf_key(value)
    if key is None:
        raise InvalidPattern(f"{_show(value)} is not a JSON value", where)
    return key


def _leaf_key(value: Any) -> tuple[str, Any] | None:
    """A hashable identity under which equal JSON scalars meet: 5 and 5.0 do, true and 1 don't."""
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, bool):
        return ("boolean", value)
    if value is None:
        return ("null", None)
    if _is_number(value):
        return ("number", value)
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number" if _is_number(value) else type(value).__name__


def _show(value: Any) -> str:
    """A pattern value for a message (configuration, not record data), shortened."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _child(where: str, key: str) -> str:
    if key and all(char.isalnum() or char in "-_$" for char in key):
        return f"{where}.{key}"
    return f"{where}[{json.dumps(key, ensure_ascii=False)}]"

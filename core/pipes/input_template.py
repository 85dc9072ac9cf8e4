"""EventBridge Pipes input templates (``InputTemplate``), rendered locally, record by record.

Behaviour, by what "Amazon EventBridge Pipes input transformation" documents:

* A template is free text, a JSON path, or a JSON object with inline JSON paths; placeholders
  are ``<$.path>`` (dot notation, dashes, underscores, slashes, alphanumerics, ``[n]`` array
  indices, ``*`` wildcards) and the reserved variables ``<aws.pipes.pipe-arn>``,
  ``<aws.pipes.pipe-name>``, ``<aws.pipes.source-arn>``, ``<aws.pipes.enrichment-arn>``,
  ``<aws.pipes.target-arn>``, ``<aws.pipes.event.ingestion-time>`` (ISO 8601),
  ``<aws.pipes.event>`` and ``<aws.pipes.event.json>``.
* "EventBridge replaces input transformers at runtime to ensure valid JSON output": in a JSON
  object template an unquoted placeholder becomes a JSON value (``"instance":
  <$.detail.instance-id>`` gives ``"instance": "i-0123456789"``; objects and arrays stay JSON),
  and a placeholder inside a quoted string is text, escaped so the string stays valid.
* "Implicit body data parsing": an object substituted as text loses its quotes
  (``{"key": "value"}`` becomes ``{key:value}``); wrap it unquoted in JSON to keep it JSON.
* ``InputTemplate`` is at most 8192 characters (Pipes API ``PipeTargetParameters``).

Choices where the documentation is silent or ambiguous:

* The template is JSON when, with every placeholder standing in for a value, it parses as a
  JSON *object*; anything else (a bare ``<$.path>``, an array, the documentation's own
  trailing-comma examples) is plain text, where placeholders are substituted as text.
* A path that doesn't exist, and a reserved variable the pipe context lacks, give the empty
  string: nothing inside quotes or in plain text, ``""`` in an unquoted JSON position (so the
  output stays valid JSON and the value stays a string, as it is everywhere else).
* As text: strings are inserted as they are, numbers as JSON numbers, ``true``/``false``/
  ``null`` as those words, objects and arrays in the quote-less form ``{a:1,b:[x,2]}``.
* ``<aws.pipes.event>`` is the event as a value (like ``<$>``, the whole event, also accepted);
  ``<aws.pipes.event.json>`` is the event as JSON text: unquoted in JSON it is the JSON value,
  inside quotes it is escaped JSON text, in plain text it is the JSON text itself.
* A path with a ``*`` yields the JSON array of everything it reaches (possibly empty).
* ``<aws.pipes.event.ingestion-time>`` is, in order: the ``ingestion_time`` keyword, the pipe
  context's ``ingestion_time``, or now; one instant for a whole batch, formatted
  ``2024-05-01T12:00:00.123Z``.
* JSON output is ASCII (non-ASCII characters as ``\\u`` escapes): the same JSON, and safe
  for any character a record may hold. A value with no JSON form raises ``TypeError`` naming
  its type only (records hold PHI).
* An empty template (``""`` or ``None``) passes records through: the batch function returns
  the very same objects, `render_input_template` the event's JSON text.
* Decoding SQS ``body`` / Kinesis ``data`` into JSON is the source's job, not done here.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, Final

__all__ = [
    "MAX_INPUT_TEMPLATE_LENGTH",
    "InvalidInputTemplate",
    "PipeContext",
    "render_input_template",
    "render_input_template_batch",
    "validate_input_template",
]

MAX_INPUT_TEMPLATE_LENGTH: Final = 8192


class InvalidInputTemplate(ValueError):
    """An input template EventBridge Pipes would refuse; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"Input template is not valid. Reason: {reason}")


@dataclass(frozen=True)
class PipeContext:
    """What the reserved ``<aws.pipes.*>`` variables read; every field may be left out.

    ``ingestion_time`` (ISO 8601 text) pins ``<aws.pipes.event.ingestion-time>``, e.g. in tests.
    """

    name: str | None = None
    arn: str | None = None
    source_arn: str | None = None
    enrichment_arn: str | None = None
    target_arn: str | None = None
    ingestion_time: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PipeContext:
        """Build from field names or the variables' own names (``"pipe-arn"``, ``"source-arn"``,
        ...); other keys are ignored. A `datetime` ingestion time is formatted."""
        known = {field.name for field in fields(cls)}
        found: dict[str, Any] = {}
        for key, value in values.items():
            name = _ALIASES.get(key, key)
            if name in known:
                found[name] = _format_time(value) if isinstance(value, dt.datetime) else value
        return cls(**found)


_ALIASES: Final = {
    "pipe-name": "name",
    "pipe-arn": "arn",
    "source-arn": "source_arn",
    "enrichment-arn": "enrichment_arn",
    "target-arn": "target_arn",
    "ingestion-time": "ingestion_time",
}


def validate_input_template(template: str | None) -> None:
    """Raise `InvalidInputTemplate` unless Pipes would accept ``template``."""
    if template:
        _parse(template)


def render_input_template(
    template: str | None,
    event: Any,
    *,
    pipe: PipeContext | Mapping[str, Any] | None = None,
    ingestion_time: str | dt.datetime | None = None,
) -> str:
    """Render ``template`` for one record; the text Pipes would hand to the target.

    Raises `InvalidInputTemplate` for a template Pipes would refuse.
    """
    if not template:
        return _json_text(event)
    parsed = _parse(template)
    context = _context(pipe)
    return _render(parsed, event, context, _instant(parsed, context, ingestion_time))


def render_input_template_batch(
    template: str | None,
    events: Iterable[Any],
    *,
    pipe: PipeContext | Mapping[str, Any] | None = None,
    ingestion_time: str | dt.datetime | None = None,
) -> list[Any]:
    """Render ``template`` for each record of a batch, as Pipes does.

    A JSON template gives parsed JSON values, a plain-text one strings, and an empty template
    the events themselves (the same objects, untouched).
    """
    if not template:
        return list(events)
    parsed = _parse(template)
    context = _context(pipe)
    instant = _instant(parsed, context, ingestion_time)
    rendered = [_render(parsed, event, context, instant) for event in events]
    if parsed.is_json:
        return [json.loads(text) for text in rendered]
    return rendered


# --- parsing (once per template text) ---------------------------------------------------------


class _Kind(enum.Enum):
    PATH = "path"
    CONTEXT = "context"  # a PipeContext field
    TIME = "time"
    EVENT = "event"
    EVENT_JSON = "event-json"


class _Wildcard(enum.Enum):
    ANY = "*"


Segment = str | int | _Wildcard

_VARIABLES: Final[dict[str, tuple[_Kind, str]]] = {
    "aws.pipes.pipe-arn": (_Kind.CONTEXT, "arn"),
    "aws.pipes.pipe-name": (_Kind.CONTEXT, "name"),
    "aws.pipes.source-arn": (_Kind.CONTEXT, "source_arn"),
    "aws.pipes.enrichment-arn": (_Kind.CONTEXT, "enrichment_arn"),
    "aws.pipes.target-arn": (_Kind.CONTEXT, "target_arn"),
    "aws.pipes.event.ingestion-time": (_Kind.TIME, ""),
    "aws.pipes.event": (_Kind.EVENT, ""),
    "aws.pipes.event.json": (_Kind.EVENT_JSON, ""),
}

_PLACEHOLDER_START: Final = re.compile(r"<(?=\$|aws\.pipes\.)")
# One step of a path: ".key" (no dots, brackets, quotes, angle brackets or spaces) or "[n]".
_PATH_STEP: Final = re.compile(r"\.([^.\[\]<>\"'\s]+)|\[(\d+|\*)\]")


@dataclass(frozen=True)
class _Slot:
    text: str  # as written, for messages
    kind: _Kind
    quoted: bool  # inside a JSON string of the template
    attribute: str = ""
    path: tuple[Segment, ...] = ()


@dataclass(frozen=True)
class _Template:
    parts: tuple[str | _Slot, ...]
    is_json: bool
    uses_time: bool


@functools.lru_cache(maxsize=256)
def _parse(template: str) -> _Template:
    if not isinstance(template, str):
        raise TypeError(f"an input template is text, not {type(template).__name__}")
    if len(template) > MAX_INPUT_TEMPLATE_LENGTH:
        raise InvalidInputTemplate(
            f"template is {len(template)} characters long; the maximum is {MAX_INPUT_TEMPLATE_LENGTH}"
        )
    parts: list[str | _Slot] = []
    in_string = escaped = False
    position = 0
    while (start := _PLACEHOLDER_START.search(template, position)) is not None:
        begin = start.start()
        literal = template[position:begin]
        in_string, escaped = _track_quotes(literal, in_string, escaped)
        end = template.find(">", begin)
        reopened = template.find("<", begin + 1)
        if end < 0 or 0 <= reopened < end:
            snippet = template[begin : begin + 40]
            raise InvalidInputTemplate(
                f"unterminated placeholder at position {begin}: {snippet!r} has no '>'"
            )
        if literal:
            parts.append(literal)
        parts.append(_parse_slot(template[begin + 1 : end], in_string))
        escaped = False
        position = end + 1
    if position < len(template):
        parts.append(template[position:])
    slots = [part for part in parts if isinstance(part, _Slot)]
    return _Template(
        parts=tuple(parts),
        is_json=_is_json_object(parts),
        uses_time=any(slot.kind is _Kind.TIME for slot in slots),
    )


def _track_quotes(text: str, in_string: bool, escaped: bool) -> tuple[bool, bool]:
    """Follow JSON string quoting through literal template text."""
    for char in text:
        if escaped:
            escaped = False
        elif in_string and char == "\\":
            escaped = True
        elif char == '"':
            in_string = not in_string
    return in_string, escaped


def _parse_slot(body: str, quoted: bool) -> _Slot:
    text = f"<{body}>"
    if body.startswith("$"):
        return _Slot(text, _Kind.PATH, quoted, path=_parse_path(body, text))
    variable = _VARIABLES.get(body)
    if variable is None:
        known = ", ".join(f"<{name}>" for name in _VARIABLES)
        raise InvalidInputTemplate(f"unknown reserved variable {text}; Pipes defines {known}")
    kind, attribute = variable
    return _Slot(text, kind, quoted, attribute=attribute)


def _parse_path(body: str, text: str) -> tuple[Segment, ...]:
    segments: list[Segment] = []
    position = 1  # after "$"
    while position < len(body):
        step = _PATH_STEP.match(body, position)
        if step is None:
            raise InvalidInputTemplate(
                f"invalid JSON path {text} at character {position + 1}: expected .key or [index]"
            )
        key, index = step.groups()
        if key is not None:
            segments.append(_Wildcard.ANY if key == "*" else key)
        else:
            segments.append(_Wildcard.ANY if index == "*" else int(index))
        position = step.end()
    return tuple(segments)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_json_object(parts: list[str | _Slot]) -> bool:
    # Stand-ins: an unquoted placeholder is a value; a quoted one adds nothing to its string.
    probe = "".join(part if isinstance(part, str) else ("" if part.quoted else "null") for part in parts)
    try:
        return isinstance(json.loads(probe, parse_constant=_reject_constant), dict)
    except ValueError:
        return False


# --- rendering (per record) -------------------------------------------------------------------


class _Missing(enum.Enum):
    MISSING = "missing"


def _context(pipe: PipeContext | Mapping[str, Any] | None) -> PipeContext:
    if pipe is None:
        return PipeContext()
    if isinstance(pipe, PipeContext):
        return pipe
    if isinstance(pipe, Mapping):
        return PipeContext.from_mapping(pipe)
    raise TypeError(f"pipe must be a PipeContext or a mapping, not {type(pipe).__name__}")


def _instant(parsed: _Template, context: PipeContext, given: str | dt.datetime | None) -> str:
    if not parsed.uses_time:
        return ""
    if given is None:
        given = context.ingestion_time or dt.datetime.now(dt.UTC)
    return _format_time(given) if isinstance(given, dt.datetime) else given


def _format_time(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)  # a naive time is taken to be UTC
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _render(parsed: _Template, event: Any, context: PipeContext, instant: str) -> str:
    out: list[str] = []
    for part in parsed.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = _value(part, event, context, instant)
        if value is _Missing.MISSING:
            out.append('""' if parsed.is_json and not part.quoted else "")
            continue
        if parsed.is_json and not part.quoted:
            out.append(_json_text(value))
            continue
        text = _json_text(value) if part.kind is _Kind.EVENT_JSON else _text(value)
        out.append(_escape(text) if parsed.is_json else text)
    return "".join(out)


def _value(slot: _Slot, event: Any, context: PipeContext, instant: str) -> Any:
    if slot.kind is _Kind.PATH:
        return _resolve(event, slot.path)
    if slot.kind is _Kind.CONTEXT:
        found = getattr(context, slot.attribute)
        return _Missing.MISSING if found is None else found
    if slot.kind is _Kind.TIME:
        return instant
    return event


def _resolve(root: Any, path: tuple[Segment, ...]) -> Any:
    nodes = [root]
    for segment in path:
        reached: list[Any] = []
        for node in nodes:
            if segment is _Wildcard.ANY:
                if isinstance(node, Mapping):
                    reached.extend(node.values())
                elif isinstance(node, list | tuple):
                    reached.extend(node)
            elif isinstance(segment, str):
                if isinstance(node, Mapping) and segment in node:
                    reached.append(node[segment])
            elif isinstance(node, list | tuple) and segment < len(node):
                reached.append(node[segment])
        nodes = reached
    if _Wildcard.ANY in path:
        return nodes
    return nodes[0] if nodes else _Missing.MISSING


def _escape(text: str) -> str:
    """``text`` made safe to sit between the quotes of a JSON string."""
    return json.dumps(text)[1:-1]


def _text(value: Any) -> str:
    """A value substituted as text (objects and arrays lose their quotes, as Pipes does)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{key}:{_text(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_text(item) for item in value) + "]"
    return _json_text(value)


def _json_text(value: Any) -> str:
    """Compact, ASCII-only JSON for a value; `Decimal` numbers are written exactly."""
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float) and math.isfinite(value):
        return float.__repr__(value)
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"a JSON object key must be a string, not {type(key).__name__}")
            items.append(f"{json.dumps(key)}:{_json_text(item)}")
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_text(item) for item in value) + "]"
    raise TypeError(f"a {type(value).__name__} value has no JSON form")

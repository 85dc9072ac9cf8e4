"""EventBridge Pipes input templates: placeholders, reserved variables, JSON safety, batches."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirpipes.pipes import (
    MAX_INPUT_TEMPLATE_LENGTH,
    InvalidInputTemplate,
    PipeContext,
    render_input_template,
    render_input_template_batch,
    validate_input_template,
)

# The sample event of "Amazon EventBridge Pipes input transformation".
EC2_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2015-11-11T21:29:54Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
    "detail": {"instance-id": "i-0123456789", "state": "RUNNING"},
}
PIPE = PipeContext(
    name="example",
    arn="arn:aws:pipes:us-east-1:123456789012:pipe/example",
    source_arn="arn:aws:dynamodb:us-east-1:123456789012:table/patients/stream/2024-05-27T12:00:00.000",
    enrichment_arn="arn:aws:lambda:us-east-1:123456789012:function:fhirpipes",
    target_arn="arn:aws:sqs:us-east-1:123456789012:fhir",
    ingestion_time="2024-05-27T12:00:00.000Z",
)

EVENT: dict[str, Any] = {
    "attributes": {"SenderId": "AIDAIENQZJOLO23YVJ4VO"},
    "detail": {
        "instance-id": "i-0123456789",
        "some_key": "underscored",
        "a/b": "slashed",
        "count": 3,
        "ratio": 0.5,
        "on": True,
        "off": False,
        "nothing": None,
        "obj": {"a": 1, "b": "x"},
        "list": [1, "two", None],
        "items": [{"id": "first", "tags": ["t0", "t1"]}, {"id": "second", "tags": []}],
    },
    "dynamodb": {"NewImage": {"name": {"S": "Chalmers"}, "age": {"N": "42"}}},
}


def render(template: str, event: Any = None, **kwargs: Any) -> str:
    return render_input_template(template, EVENT if event is None else event, **kwargs)


# --- plain-text templates ----------------------------------------------------------------------

TEXT_CASES = [
    pytest.param("Hello, sender", "Hello, sender", id="static-string"),
    pytest.param("<$.attributes.SenderId>", "AIDAIENQZJOLO23YVJ4VO", id="json-path"),
    pytest.param("Hello, <$.attributes.SenderId>", "Hello, AIDAIENQZJOLO23YVJ4VO", id="dynamic-string"),
    pytest.param("<$.detail.instance-id>", "i-0123456789", id="dashes"),
    pytest.param("<$.detail.some_key>", "underscored", id="underscores"),
    pytest.param("<$.detail.a/b>", "slashed", id="slashes"),
    pytest.param("<$.detail.items[0].id>", "first", id="index"),
    pytest.param("<$.detail.items[1].id>", "second", id="second-index"),
    pytest.param("<$.detail.items[0].tags[1]>", "t1", id="nested-index"),
    pytest.param("<$.detail.items[5].id>", "", id="index-out-of-range"),
    pytest.param("<$.dynamodb.NewImage.name.S>", "Chalmers", id="dynamodb-attribute"),
    pytest.param("n=<$.detail.count> r=<$.detail.ratio>", "n=3 r=0.5", id="numbers"),
    pytest.param("<$.detail.on>/<$.detail.off>/<$.detail.nothing>", "true/false/null", id="literals"),
    pytest.param("<$.detail.obj>", "{a:1,b:x}", id="object-loses-quotes"),
    pytest.param("<$.detail.list>", "[1,two,null]", id="array-loses-quotes"),
    pytest.param("[<$.nope>]", "[]", id="missing-path-is-empty"),
    pytest.param("<$.detail.items[*].id>", "[first,second]", id="wildcard-index"),
    pytest.param("<$.detail.items.id>", "", id="key-on-array-is-missing"),
    pytest.param("<$.detail.obj.*>", "[1,x]", id="wildcard-key"),
    pytest.param(
        "a < b > c <html> <aws.events.event>", "a < b > c <html> <aws.events.event>", id="other-brackets"
    ),
    pytest.param('{"a": <$.detail.count>,}', '{"a": 3,}', id="broken-json-is-text"),
    pytest.param("[<$.detail.count>, <$.detail.instance-id>]", "[3, i-0123456789]", id="json-array-is-text"),
]


@pytest.mark.parametrize(("template", "expected"), TEXT_CASES)
def test_plain_text_template(template: str, expected: str) -> None:
    assert render(template) == expected


# --- JSON templates ----------------------------------------------------------------------------

JSON_CASES = [
    pytest.param('{"v": <$.detail.instance-id>}', "i-0123456789", id="unquoted-string-is-quoted"),
    pytest.param('{"v": <$.detail.count>}', 3, id="unquoted-number"),
    pytest.param('{"v": <$.detail.ratio>}', 0.5, id="unquoted-float"),
    pytest.param('{"v": <$.detail.on>}', True, id="unquoted-true"),
    pytest.param('{"v": <$.detail.nothing>}', None, id="unquoted-null"),
    pytest.param('{"v": <$.detail.obj>}', {"a": 1, "b": "x"}, id="unquoted-object"),
    pytest.param('{"v": <$.detail.list>}', [1, "two", None], id="unquoted-array"),
    pytest.param('{"v": <$.nope>}', "", id="unquoted-missing-is-empty-string"),
    pytest.param('{"v": <$.detail.items[*].id>}', ["first", "second"], id="unquoted-wildcard"),
    pytest.param('{"v": <$.detail.items[1].tags[*]>}', [], id="unquoted-wildcard-nothing"),
    pytest.param('{"v": "<$.detail.instance-id>"}', "i-0123456789", id="quoted-string"),
    pytest.param('{"v": "id=<$.detail.instance-id>!"}', "id=i-0123456789!", id="quoted-in-text"),
    pytest.param('{"v": "<$.detail.count>"}', "3", id="quoted-number-is-text"),
    pytest.param('{"v": "<$.detail.off>"}', "false", id="quoted-boolean-is-text"),
    pytest.param('{"v": "<$.detail.nothing>"}', "null", id="quoted-null-is-text"),
    pytest.param('{"v": "<$.detail.obj>"}', "{a:1,b:x}", id="quoted-object-loses-quotes"),
    pytest.param('{"v": "<$.detail.list>"}', "[1,two,null]", id="quoted-array-loses-quotes"),
    pytest.param('{"v": "[<$.nope>]"}', "[]", id="quoted-missing-is-empty"),
    pytest.param('{"v": "\\"<$.detail.count>\\""}', '"3"', id="after-escaped-quote"),
    pytest.param('{"v": ["<$.detail.count>", <$.detail.count>]}', ["3", 3], id="inside-an-array"),
    pytest.param(
        '{"v": {"w": <$.detail.items[0]>}}', {"w": {"id": "first", "tags": ["t0", "t1"]}}, id="nested"
    ),
    pytest.param('{"v": <$.dynamodb.NewImage.age.N>}', "42", id="dynamodb-number-is-a-string"),
    pytest.param('{"v": <$>}', EVENT, id="whole-event"),
]


@pytest.mark.parametrize(("template", "expected"), JSON_CASES)
def test_json_template(template: str, expected: Any) -> None:
    assert json.loads(render(template)) == {"v": expected}


def test_documented_example() -> None:
    template = """{
  "instance" : <$.detail.instance-id>,
  "state": <$.detail.state>,
  "pipeArn" : <aws.pipes.pipe-arn>,
  "pipeName" : <aws.pipes.pipe-name>,
  "originalEvent" : <aws.pipes.event.json>
}"""
    output = render_input_template(template, EC2_EVENT, pipe=PIPE)
    assert json.loads(output) == {
        "instance": "i-0123456789",
        "state": "RUNNING",
        "pipeArn": PIPE.arn,
        "pipeName": "example",
        "originalEvent": EC2_EVENT,
    }
    assert output.startswith('{\n  "instance" : "i-0123456789",\n')  # the template's layout is kept


def test_placeholder_in_a_key() -> None:
    assert json.loads(render('{"<$.detail.instance-id>": 1}')) == {"i-0123456789": 1}


# --- reserved variables ------------------------------------------------------------------------

RESERVED = [
    pytest.param("aws.pipes.pipe-arn", PIPE.arn, id="pipe-arn"),
    pytest.param("aws.pipes.pipe-name", PIPE.name, id="pipe-name"),
    pytest.param("aws.pipes.source-arn", PIPE.source_arn, id="source-arn"),
    pytest.param("aws.pipes.enrichment-arn", PIPE.enrichment_arn, id="enrichment-arn"),
    pytest.param("aws.pipes.target-arn", PIPE.target_arn, id="target-arn"),
    pytest.param("aws.pipes.event.ingestion-time", PIPE.ingestion_time, id="ingestion-time"),
]


@pytest.mark.parametrize(("variable", "expected"), RESERVED)
def test_reserved_variable(variable: str, expected: str) -> None:
    assert render(f"<{variable}>", pipe=PIPE) == expected
    assert json.loads(render(f'{{"v": <{variable}>}}', pipe=PIPE)) == {"v": expected}
    assert json.loads(render(f'{{"v": "[<{variable}>]"}}', pipe=PIPE)) == {"v": f"[{expected}]"}


@pytest.mark.parametrize(
    "pipe",
    [
        pytest.param(dataclasses.asdict(PIPE), id="field-names"),
        pytest.param(
            {
                "pipe-name": PIPE.name,
                "pipe-arn": PIPE.arn,
                "source-arn": PIPE.source_arn,
                "enrichment-arn": PIPE.enrichment_arn,
                "target-arn": PIPE.target_arn,
                "ingestion-time": dt.datetime(2024, 5, 27, 12, tzinfo=dt.UTC),
                "Description": "ignored",
            },
            id="variable-names",
        ),
    ],
)
def test_pipe_context_from_a_mapping(pipe: dict[str, Any]) -> None:
    template = " ".join(f"<{param.values[0]}>" for param in RESERVED)
    assert render(template, pipe=pipe) == render(template, pipe=PIPE)


def test_reserved_variables_without_a_pipe_are_empty() -> None:
    assert render("[<aws.pipes.pipe-arn>]") == "[]"
    assert json.loads(render('{"v": <aws.pipes.target-arn>}')) == {"v": ""}


def test_pipe_context_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PIPE.name = "other"  # type: ignore[misc]


def test_pipe_must_be_a_context_or_mapping() -> None:
    with pytest.raises(TypeError, match="not list"):
        render("<aws.pipes.pipe-name>", pipe=["example"])


@pytest.mark.parametrize(
    ("given_time", "expected"),
    [
        pytest.param("2020-01-02T03:04:05Z", "2020-01-02T03:04:05Z", id="text-as-is"),
        pytest.param(
            dt.datetime(2020, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC), "2020-01-02T03:04:05.678Z", id="utc"
        ),
        pytest.param(
            dt.datetime(2020, 1, 2, 4, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            "2020-01-02T03:04:05.000Z",
            id="converted-to-utc",
        ),
        pytest.param(dt.datetime(2020, 1, 2, 3, 4, 5), "2020-01-02T03:04:05.000Z", id="naive-is-utc"),
    ],
)
def test_ingestion_time_keyword(given_time: str | dt.datetime, expected: str) -> None:
    # The keyword wins over the pipe context's own ingestion_time.
    assert render("<aws.pipes.event.ingestion-time>", pipe=PIPE, ingestion_time=given_time) == expected


def test_ingestion_time_defaults_to_now() -> None:
    before = dt.datetime.now(dt.UTC)
    stamp = render("<aws.pipes.event.ingestion-time>")
    after = dt.datetime.now(dt.UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    moment = dt.datetime.fromisoformat(stamp)
    assert before - dt.timedelta(milliseconds=1) <= moment <= after


EVENT_VARIABLE_CASES = [
    pytest.param('{"v": <aws.pipes.event>}', {"v": EVENT}, id="event-unquoted"),
    pytest.param('{"v": <aws.pipes.event.json>}', {"v": EVENT}, id="event-json-unquoted"),
    pytest.param(
        '{"v": "<aws.pipes.event.json>"}', {"v": json.dumps(EVENT, separators=(",", ":"))}, id="json-quoted"
    ),
]


@pytest.mark.parametrize(("template", "expected"), EVENT_VARIABLE_CASES)
def test_event_variables_in_json(template: str, expected: Any) -> None:
    assert json.loads(render(template)) == expected


def test_event_variables_as_text() -> None:
    event = {"a": 1, "b": "x"}
    assert render("<aws.pipes.event>", event) == "{a:1,b:x}"
    assert render("<aws.pipes.event.json>", event) == '{"a":1,"b":"x"}'
    assert json.loads(render('{"v": "<aws.pipes.event>"}', event)) == {"v": "{a:1,b:x}"}
    assert json.loads(json.loads(render('{"v": "<aws.pipes.event.json>"}', event))["v"]) == event


# --- values that must not break the JSON -------------------------------------------------------

NASTY = [
    pytest.param('say "hi"', id="quotes"),
    pytest.param("C:\\temp\\", id="backslashes"),
    pytest.param("line\nbreak\r\ttab", id="control-characters"),
    pytest.param("Zo\u00eb \u2013 \u6771\u4eac \U0001fa7a", id="unicode"),
    pytest.param("\u2028\u2029", id="line-separators"),
    pytest.param("\ud800", id="lone-surrogate"),
    pytest.param('", "injected": "x', id="injection-attempt"),
    pytest.param("<$.detail.count> <aws.pipes.pipe-arn>", id="placeholder-text-in-a-value"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("value", NASTY)
def test_awkward_strings_keep_json_valid(value: str) -> None:
    event = {"v": value, "o": {"k": value}}
    template = '{"unquoted": <$.v>, "quoted": "<<$.v>>", "object": <$.o>, "text": "<$.o>"}'
    output = render_input_template(template, event, pipe=PIPE)
    assert json.loads(output) == {
        "unquoted": value,
        "quoted": f"<{value}>",
        "object": {"k": value},
        "text": f"{{k:{value}}}",
    }
    assert output.isascii()


@pytest.mark.parametrize("value", NASTY)
def test_awkward_strings_as_plain_text_are_unchanged(value: str) -> None:
    assert render_input_template("[<$.v>]", {"v": value}) == f"[{value}]"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(database=None)
@given(st.text(max_size=30), JSON_VALUES)
def test_any_value_renders_valid_json(text: str, value: Any) -> None:
    event = {"t": text, "v": value}
    output = render_input_template('{"a": <$.t>, "b": "x<$.t>x", "c": <$.v>, "d": "<$.v>"}', event)
    parsed = json.loads(output)
    assert parsed["a"] == text
    assert parsed["b"] == f"x{text}x"
    assert parsed["c"] == value


def test_decimal_numbers_are_exact() -> None:
    event = {"n": Decimal("12345678901234567890.123456789"), "i": Decimal("7")}
    assert (
        render_input_template('{"n": <$.n>, "i": <$.i>}', event)
        == '{"n": 12345678901234567890.123456789, "i": 7}'
    )


def test_value_without_json_form_names_only_its_type() -> None:
    with pytest.raises(TypeError, match=r"^a set value has no JSON form$"):
        render_input_template('{"v": <$.v>}', {"v": {"secret"}})


# --- invalid templates -------------------------------------------------------------------------

INVALID_CASES = [
    pytest.param("Hello <$.name", "unterminated placeholder at position 6", id="unterminated"),
    pytest.param(
        '{"a": <$.a, "b": <$.b>}', "unterminated placeholder at position 6", id="unterminated-before-next"
    ),
    pytest.param("<aws.pipes.pipe-arn", "unterminated placeholder", id="unterminated-variable"),
    pytest.param("<aws.pipes.nope>", "unknown reserved variable <aws.pipes.nope>", id="unknown-variable"),
    pytest.param("<aws.pipes.event.JSON>", "unknown reserved variable", id="variables-are-case-sensitive"),
    pytest.param("<$.a..b>", "invalid JSON path <$.a..b> at character 4", id="empty-key"),
    pytest.param("<$.a[x]>", "invalid JSON path <$.a[x]>", id="non-numeric-index"),
    pytest.param("<$.a[-1]>", "invalid JSON path", id="negative-index"),
    pytest.param("<$.a b>", "invalid JSON path", id="space-in-path"),
    pytest.param("<$a>", "invalid JSON path <$a> at character 2", id="no-dot"),
    pytest.param(
        "x" * (MAX_INPUT_TEMPLATE_LENGTH + 1),
        "template is 8193 characters long; the maximum is 8192",
        id="long",
    ),
]


@pytest.mark.parametrize(("template", "reason"), INVALID_CASES)
def test_invalid_template(template: str, reason: str) -> None:
    with pytest.raises(InvalidInputTemplate) as raised:
        validate_input_template(template)
    assert reason in raised.value.reason
    assert str(raised.value) == f"Input template is not valid. Reason: {raised.value.reason}"
    with pytest.raises(InvalidInputTemplate):
        render_input_template(template, EVENT)
    with pytest.raises(InvalidInputTemplate):
        render_input_template_batch(template, [EVENT])


def test_invalid_template_is_a_value_error() -> None:
    assert issubclass(InvalidInputTemplate, ValueError)


def test_length_limit_is_inclusive() -> None:
    template = "x" * MAX_INPUT_TEMPLATE_LENGTH
    assert render(template) == template


# --- batches and pass-through ------------------------------------------------------------------


def test_batch_renders_each_record() -> None:
    events = [{"id": 1, "name": 'A "quoted" name'}, {"id": 2}, {"id": 3, "name": None}]
    rendered = render_input_template_batch(
        '{"id": <$.id>, "name": <$.name>, "at": <aws.pipes.event.ingestion-time>}', events
    )
    assert [item["id"] for item in rendered] == [1, 2, 3]
    assert [item["name"] for item in rendered] == ['A "quoted" name', "", None]
    assert len({item["at"] for item in rendered}) == 1  # one ingestion instant for the batch


def test_batch_with_a_text_template_gives_strings() -> None:
    assert render_input_template_batch("id <$.id>", iter([{"id": 1}, {"id": 2}])) == ["id 1", "id 2"]


@pytest.mark.parametrize("template", [pytest.param("", id="empty"), pytest.param(None, id="none")])
def test_empty_template_passes_records_through(template: str | None) -> None:
    events = [{"id": 1}, {"id": 2, "nested": {"x": [1]}}]
    passed = render_input_template_batch(template, events, pipe=PIPE)
    assert len(passed) == len(events)
    assert all(out is given for out, given in zip(passed, events, strict=True))
    assert render_input_template(template, {"a": [1, "é"]}) == '{"a":[1,"\\u00e9"]}'
    validate_input_template(template)


def test_template_is_parsed_once() -> None:
    from fhirpipes.pipes import input_template

    template = '{"parsed": "once <$.id>"}'
    before = input_template._parse.cache_info()
    render_input_template_batch(template, [{"id": n} for n in range(5)])
    render_input_template(template, {"id": 6})
    after = input_template._parse.cache_info()
    assert after.misses - before.misses <= 1
    assert after.hits - before.hits >= 1

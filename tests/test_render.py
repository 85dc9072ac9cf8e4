"""Templates render JSON values by construction: no record value can change the JSON structure."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirpipes.errors import RenderError
from fhirpipes.render import environment

HOSTILE = [
    'quote " and \\ backslash',
    "new\nline\r\ttab",
    "{{ 7 * 7 }} {% if true %}x{% endif %}",
    "</script><script>alert(1)</script>",
    "\u202eRTL override \u200f",
    "astral \U0001f600 \U00010348",
    '", "admin": true, "x": "',
    "] } { [",
    "\u2028\u2029",
    "\ud800 lone surrogate",
]


def render_text(source: str, **context: Any) -> str:
    return environment("fhirpipes.templates").from_string(source).render(context)


def render_json(source: str, **context: Any) -> Any:
    return json.loads(render_text(source, **context))


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_strings_stay_one_json_string(value: str) -> None:
    assert render_json('{"a": {{ v }}, "b": [{{ v }}]}', v=value) == {"a": value, "b": [value]}


@settings(max_examples=300, deadline=None, database=None)
@given(st.text())
def test_any_string_renders_as_itself(value: str) -> None:
    assert render_json('{"a": {{ v }}}', v=value) == {"a": value}


@settings(max_examples=100, deadline=None, database=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_any_json_value_renders_as_itself(value: Any) -> None:
    assert render_json("{{ v }}", v=value) == value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (3, "3"),
        (Decimal("1.50"), "1.50"),
        ({"a": [1]}, '{"a":[1]}'),
        ({"b", "a"}, '["a","b"]'),
    ],
)
def test_values_render_as_json(value: Any, text: str) -> None:
    assert render_text("{{ v }}", v=value) == text


@pytest.mark.parametrize("value", HOSTILE)
def test_shared_macros_compose_and_stay_safe(value: str) -> None:
    source = (
        '{% import "_macros/fhir.j2" as fhir %}'
        '{"name": [{{ fhir.human_name(family=v, given=[v, none]) }}],'
        ' "address": [{{ fhir.address(line=[v], city=v) }}],'
        ' "telecom": [{{ fhir.contact_point("phone", v) }}]}'
    )
    assert render_json(source, v=value) == {
        "name": [
            {"use": None, "text": None, "family": value, "given": [value, None], "prefix": [], "suffix": []}
        ],
        "address": [
            {"use": None, "type": None, "line": [value], "city": value, "district": None, "state": None,
             "postalCode": None, "country": None}
        ],
        "telecom": [{"system": "phone", "value": value, "use": None, "rank": None}],
    }  # fmt: skip


def test_macros_give_null_without_content() -> None:
    source = (
        '{% import "_macros/fhir.j2" as fhir %}'
        '[{{ fhir.human_name(use="official") }}, {{ fhir.address(use="home") }}]'
    )
    assert render_json(source) == [None, None]


@pytest.mark.parametrize(
    "expression",
    [
        "v | safe",
        "v | forceescape",
        "v | e",
        "fhir.coding('s', 'c') ~ v",
        "fhir.coding('s', 'c') + v",
        "[fhir.coding('s', 'c'), v] | join",
        "fhir.coding('s', 'c') | replace('c', v)",
        "'%s' | format(v)",
    ],
)
def test_nothing_turns_a_record_value_into_raw_json(expression: str) -> None:
    value = '",1,"'  # would add an element to the list if it escaped its string
    rendered = render_json('{% import "_macros/fhir.j2" as fhir %}[{{ ' + expression + " }}]", v=value)
    assert len(rendered) == 1
    assert isinstance(rendered[0], str)


@pytest.mark.parametrize(
    "expression",
    [
        "v.__class__",
        "v.__class__.__mro__",
        "''.__class__.__subclasses__()",
        "lipsum.__globals__",
        "cycler.__init__.__globals__",
    ],
)
def test_sandbox_keeps_templates_from_python_internals(expression: str) -> None:
    template = environment("fhirpipes.templates").from_string("{{ " + expression + " }}")
    with pytest.raises(Exception) as caught:
        template.render(v="x")
    assert type(caught.value).__name__ in ("SecurityError", "MissingValueError", "UndefinedError")


def test_record_data_cannot_be_mutated() -> None:
    template = environment("fhirpipes.templates").from_string("{{ new.update({'a': 1}) }}")
    with pytest.raises(Exception, match="unsafe"):
        template.render(new={})


def test_item_attributes_win_over_dict_methods() -> None:
    assert render_json("{{ new.items }}", new={"items": ["a"]}) == ["a"]


def test_undefined_names_are_errors() -> None:
    template = environment("fhirpipes.templates").from_string('{"a": {{ new.missing }}}')
    with pytest.raises(Exception, match="missing"):
        template.render(new={})


def test_optional_attributes_are_explicit() -> None:
    assert render_json('{"a": {{ new.missing | default(none) }}, "b": {{ new.get("b") }}}', new={}) == {
        "a": None,
        "b": None,
    }


SECRET = "SECRET-VALUE-7731"


@pytest.mark.parametrize(
    ("template", "line", "code", "where"),
    [
        ("missing.json.j2", 4, "missing-value", "missing.json.j2"),
        ("in_macro.json.j2", 4, "missing-value", "in_macro.json.j2"),
        ("bad_json.json.j2", 4, "invalid-json", "bad_json.json.j2"),
        ("syntax.json.j2", 3, "template-syntax", "syntax.json.j2"),
        ("crash.json.j2", 3, "render-failed", "crash.json.j2"),
    ],
)
def test_render_errors_name_template_and_line(template: str, line: int, code: str, where: str) -> None:
    from fhirpipes.render import render

    with pytest.raises(RenderError) as caught:
        render("template_fixtures", template, {"keys": {"id": SECRET}, "new": {"name": SECRET}})
    error = caught.value
    assert (error.template, error.line, error.code) == (where, line, code)
    assert SECRET not in str(error)


def test_an_error_inside_a_macro_names_the_callers_line_and_the_macros() -> None:
    from fhirpipes.render import render

    with pytest.raises(RenderError) as caught:
        render("template_fixtures", "in_macro.json.j2", {"new": {}})
    assert (caught.value.template, caught.value.line) == ("in_macro.json.j2", 4)
    assert "(in _macros/broken.j2 line 2)" in caught.value.message
    assert "'lastName'" in caught.value.message


def test_macros_work_inside_loops() -> None:
    source = '{% import "_macros/fhir.j2" as fhir %}[{% for c in codes %}{{ fhir.coding("s", c) }},{% endfor %} null]'
    assert render_json(source, codes=["a", "b"]) == [
        {"system": "s", "code": "a", "display": None},
        {"system": "s", "code": "b", "display": None},
        None,
    ]


def test_undefined_message_names_schema_not_data() -> None:
    from fhirpipes.render import render

    with pytest.raises(RenderError) as caught:
        render("template_fixtures", "missing.json.j2", {"keys": {"id": "x"}, "new": {}})
    assert "'gender'" in caught.value.message

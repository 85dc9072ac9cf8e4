"""The engine: templates compile to code that builds JSON values; no record value can change the structure."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirpipes.engine import from_string, render
from fhirpipes.engine.compiler import parse, reads_of
from fhirpipes.engine.runtime import Limits
from fhirpipes.engine.values import to_json
from fhirpipes.errors import RenderError

HOSTILE = [
    'quote " and \\ backslash',
    "new\nline\r\ttab",
    "{{ 7 * 7 }} {% if true %}x{% endif %}",
    "</script><script>alert(1)</script>",
    "\u202eRTL override \u200f",
    "astral \U0001f600 \U00010348",
    '", "admin": true, "x": "',
    "] } { [",
    "line sep \u2028\u2029",
    "\ud800 lone surrogate",
    "Smith&#34;}], &#34;active&#34;: false, &#34;name&#34;: [{&#34;family&#34;: &#34;Evil",
    "\u00eb\u00df non-ASCII",
]
MACROS = '{% import "_macros/fhir.j2" as fhir %}'


def value_of(source: str, **context: Any) -> Any:
    return from_string(source).render(context)


def refusal(source: str, **context: Any) -> RenderError:
    with pytest.raises(RenderError) as caught:
        value_of(source, **context)
    return caught.value


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_strings_stay_one_json_string(value: str) -> None:
    assert value_of('{"a": {{ v }}, "b": [{{ v }}]}', v=value) == {"a": value, "b": [value]}


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(
    "source",
    [
        '{"a": {{ v | upper | lower }}}',
        '{% set x %}{{ v }}{% endset %}{"a": {{ x }}}',
        '{% macro m(x) %}{{ x }}{% endmacro %}{"a": {{ m(v) }}}',
        '{% macro m() %}{{ caller() }}{% endmacro %}{"a": {% call m() %}{{ v }}{% endcall %}}',
        '{"a": [{% for c in [v] %}{{ c }}{% endfor %}]}',
        '{"a": {% if v %}{{ v }}{% else %}null{% endif %}}',
        '{% with x = v %}{"a": {{ x }}}{% endwith %}',
        '{"a": {{ v ~ "" }}}',
        '{"a": {{ [v] | join }}}',
        '{"a": {{ "%s" | format(v) }}}',
        '{"a": {{ v | replace("\\\\", "") }}}',
        '{"a": {{ v | striptags }}}',
        '{"a": {{ v | safe }}}',
        '{"a": {{ v | e }}}',
    ],
)
def test_no_construct_turns_record_text_into_structure(source: str, value: str) -> None:
    rendered = value_of(source, v=value)
    if rendered is None:  # striptags of whitespace: empty, pruned
        return
    assert set(rendered) == {"a"}
    inner = rendered["a"][0] if isinstance(rendered["a"], list) else rendered["a"]
    assert isinstance(inner, str)


def test_filter_blocks_are_refused_when_the_template_compiles() -> None:
    error = refusal('{\n"a": {% filter striptags %}{{ new.v }}{% endfilter %}\n}', new={"v": "x"})
    assert (error.code, error.line) == ("template-unsupported", 2)
    assert "filter" in error.message


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("{ {{ k }}: 1 }", "template-unsupported"),  # a value can't name a member
        ('{"a": "{{ v }}"}', "invalid-json"),  # nor go inside a JSON string
        ('{"a": 1 "b": 2}', "invalid-json"),
        ('{"a": 1,, "b": 2}', "invalid-json"),
        ("[1, 2,]", "invalid-json"),
        ('{"a": [1}', "invalid-json"),
        ('{% include "x.j2" %}', "template-unsupported"),
        ('{% import "_macros/fhir.j2" as f with context %}{}', "template-unsupported"),
        ('{"a": {{ v | random }}}', "template-unsupported"),
        ('{"a": {{ v | nosuchfilter }}}', "template-unsupported"),
        ('{"a": {{ v }', "template-syntax"),
    ],
)
def test_constructs_without_the_guarantee_are_refused_at_compile_time(source: str, code: str) -> None:
    assert refusal(source, v="x", k="x").code == code


def test_commas_are_lenient_next_to_blocks() -> None:
    source = "[{% if a %}1,{% endif %}{% if b %}2,{% endif %} 3, {% for x in xs %}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}]"
    assert value_of(source, a=True, b=False, xs=[4, 5]) == [1, 3, 4, 5]


def test_an_if_without_else_in_a_value_position_gives_nothing() -> None:
    assert value_of('{"a": {% if x %}1{% endif %}, "b": 2}', x=False) == {"b": 2}


@settings(max_examples=300, deadline=None, database=None)
@given(st.text())
def test_any_string_renders_as_itself(value: str) -> None:
    assert value_of('{"a": {{ v }}}', v=value) == (None if not value or value.isspace() else {"a": value})


@pytest.mark.parametrize("blank", ["", " ", "   ", "\t", "\n \r", "\u00a0", "\u2028"])
def test_empty_and_whitespace_only_values_are_absent(blank: str) -> None:
    assert value_of('{"a": {{ v }}, "b": [{{ v }}], "c": {"d": {{ v }}}, "e": 1}', v=blank) == {"e": 1}


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def prune(value: Any) -> Any:
    """The rule, as a reference: drop "", whitespace-only strings, null, {} and [] recursively."""
    if isinstance(value, dict):
        kept = {key: prune(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item is not None} or None
    if isinstance(value, list):
        return [item for item in map(prune, value) if item is not None] or None
    return None if isinstance(value, str) and not value.strip() else value


@settings(max_examples=200, deadline=None, database=None)
@given(
    JSON_VALUES | st.sets(st.text(max_size=3)) | st.sets(st.decimals(allow_nan=False, allow_infinity=False))
)
def test_a_slot_gives_the_value_its_json_text_parses_to(value: Any) -> None:
    # The contract of the text-rendering engine it replaces: value == prune(json.loads(to_json(value))).
    expected = prune(json.loads(to_json(value), parse_float=Decimal))
    assert value_of("{{ v }}", v=value) == expected


def test_shared_macros_compose() -> None:
    source = (
        MACROS + '{"name": [{{ fhir.human_name(family=v, given=[v, none]) }}],'
        ' "address": [{{ fhir.address(line=[v], city=v) }}],'
        ' "telecom": [{{ fhir.contact_point("phone", v) }}]}'
    )
    assert value_of(source, v="x") == {
        "name": [{"family": "x", "given": ["x"]}],
        "address": [{"line": ["x"], "city": "x"}],
        "telecom": [{"system": "phone", "value": "x"}],
    }


def test_macros_give_null_without_content() -> None:
    assert (
        value_of(MACROS + '[{{ fhir.human_name(use="official") }}, {{ fhir.address(use="home") }}]') is None
    )


def test_macros_work_inside_loops() -> None:
    source = MACROS + '[{% for c in codes %}{{ fhir.coding("s", c) }},{% endfor %} null]'
    assert value_of(source, codes=["a", "b"]) == [{"system": "s", "code": "a"}, {"system": "s", "code": "b"}]


@pytest.mark.parametrize(
    "expression",
    [
        "v.__class__",
        "v.__class__.__mro__",
        "''.__class__.__subclasses__()",
        "v.format",
        "new.update({'a': 1})",
    ],
)
def test_the_sandbox_keeps_templates_from_python_internals(expression: str) -> None:
    assert refusal("{{ " + expression + " }}", v="x", new={}).code == "unsafe-template"


def test_item_attributes_win_over_dict_methods() -> None:
    assert value_of("{{ new.items }}", new={"items": ["a"]}) == ["a"]


def test_undefined_names_are_errors_and_optional_attributes_explicit() -> None:
    assert refusal('{"a": {{ new.missing }}}', new={}).code == "missing-value"
    assert value_of('{"a": {{ new.missing | default(none) }}, "b": {{ new.get("b") }}, "c": 1}', new={}) == {
        "c": 1
    }
    assert value_of('{"a": {{ new.x is defined }}}', new={}) == {"a": False}


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
    with pytest.raises(RenderError) as caught:
        render("template_fixtures", template, {"keys": {"id": SECRET}, "new": {"name": SECRET}})
    error = caught.value
    assert (error.template, error.line, error.code) == (where, line, code)
    assert SECRET not in str(error)
    assert error.__cause__ is None and error.__context__ is None


def test_an_error_inside_a_macro_names_the_callers_line_and_the_macros() -> None:
    with pytest.raises(RenderError) as caught:
        render("template_fixtures", "in_macro.json.j2", {"new": {}})
    assert (caught.value.template, caught.value.line) == ("in_macro.json.j2", 4)
    assert "(in _macros/broken.j2 line 2)" in caught.value.message
    assert "'lastName'" in caught.value.message


# ---------------------------------------------------------------- the render budget


@pytest.mark.parametrize(
    "expression",
    [
        "[{% for a in range(10**5) %}{% for b in range(10**5) %}1,{% endfor %}{% endfor %}]",
        "{{ 'x' * 10**9 }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ 'x' | center(10**9) }}",
        "{{ 'x'.center(10**9) }}",
        "{{ 'x'.ljust(10**9) }}",
        "{{ 10 ** 5000 }}",
        "{{ 7 ** (10**9) }}",
        "{{ [1] * 10**9 }}",
        "{{ 'ab' | replace('', 'x' * 999999) }}",
        "{% set ns = namespace(s='x' * 1000) %}[{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}]",
        "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
        "[{% for i in range(100000) %}{{ ('x' * 999999) | upper | length }},{% endfor %}]",
        "[{% for i in range(100000) %}{{ ('x' * 999999).upper() | length }},{% endfor %}]",
        "{{ [1, 2] | batch(10**9, 'x') | list }}",
        "{{ [1, 2] | slice(10**9) | list }}",
    ],
)
def test_adversarial_templates_hit_the_render_budget(expression: str) -> None:
    error = refusal("\n" + expression)
    assert error.code == "render-budget-exceeded"
    assert error.line == 2
    assert error.template == "<string>"


def test_lipsum_and_other_jinja_globals_are_absent() -> None:
    assert refusal("{{ lipsum(10**6) }}").code == "missing-value"


def test_the_budget_is_a_setting() -> None:
    template = from_string("[{% for i in range(50) %}{{ i }},{% endfor %}]")
    assert len(template.render({})) == 50
    with pytest.raises(RenderError) as caught:
        template.render({}, Limits(iterations=10))
    assert caught.value.code == "render-budget-exceeded"
    assert "10 loop iterations" in caught.value.message
    template.render({})  # the next render has the whole budget again


def test_a_real_mapper_is_far_inside_the_budget() -> None:
    from fhirpipes.testing.stream import make_record

    items = [{"id": f"p{n}", "lastName": "x" * 10_000, "firstName": "y"} for n in range(3)]
    from fhirpipes.handler import handler

    events = handler([make_record("Patients", item) for item in items])
    assert [event["details"]["command"] for event in events] == ["PUT"] * 3


def test_the_engine_reaches_no_module_above_it() -> None:
    # dispatch -> resource -> engine, never back up (the old templatecache -> plugins circle).
    import subprocess
    import sys

    code = "import sys, fhirpipes.engine; print(sorted(m for m in sys.modules if m.startswith('fhirpipes')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for above in ("fhirpipes.plugins", "fhirpipes.resource", "fhirpipes.dispatch", "fhirpipes.handler"):
        assert f"'{above}'" not in loaded


def test_a_refused_computed_attribute_name_is_not_quoted() -> None:
    error = refusal("{{ 'text'[new.key] }}", new={"key": "__MRN-0042__"})
    assert error.code == "unsafe-template" and "MRN-0042" not in str(error)


@pytest.mark.parametrize(
    ("source", "reads"),
    [
        (
            '{"a": {{ new.x }}, "b": {{ new["y"] }}, "c": {{ new.get("z") }}}',
            {"x", "y", "z", "get"},
        ),  # "get" too: an attribute of that name would win
        ('{"a": {{ new.x is defined }}, "b": {{ "w" in new }}}', {"x", "w"}),
        ('{"a": {{ f(new) }}}', None),  # passed whole
        ("[{% for k in new %}{{ k }},{% endfor %}]", None),  # iterated
        ('{"a": {{ new[key] }}}', None),  # a computed key
        ('{% set n = new %}{"a": {{ n.x }}}', None),  # aliased
        ('{"a": {{ new.items() }}}', None),
        ('{"a": {{ old.x }}}', set()),
    ],
)
def test_what_a_template_reads(source: str, reads: set[str] | None) -> None:
    found = reads_of(parse(source, "t"), "new")
    assert found == (None if reads is None else frozenset(reads))

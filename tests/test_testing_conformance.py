"""The conformance kit against deliberately broken mappers: it must fail what it promises to catch.

Each case writes a small mapper package and a test module subclassing `MapperConformanceTests`
into a pytester directory and runs pytest on it (in process: fast), selecting the check that
must fail. One subprocess run proves assertion rewriting reaches the kit as users get it.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from builders import PYTESTER_ARGS

from fhirpipes.resource import model_class
from fhirpipes.testing.schema import schema_path

pytest_plugins = ["pytester"]

# In-process pytester runs drop the modules they imported when they end; fhirpipes.resource caches
# model classes across runs, so import the models the inner runs use here, outside any of them.
for _resource_type in ("Patient", "Practitioner", "Observation"):
    model_class(_resource_type, "R4B")

GOOD_TEMPLATE = """\
{
  "resourceType": "Patient",
  "id": {{ keys.id }},
  "name": [{"family": {{ new.lastName }}, "given": [{{ new.firstName | default(none) }}]}],
  "gender": {{ new.gender | default(none) | fhir_gender }},
  "multipleBirthInteger": {{ new.birthOrder | default(none) }}
}
"""

SAMPLES = '[{"id": "k-1", "lastName": "Okafor", "firstName": "Ngozi", "gender": "F", "birthOrder": 2}]'


def write_plugin(
    pytester: pytest.Pytester,
    package: str,
    *,
    template: str = GOOD_TEMPLATE,
    mapper_args: str = "",
    prelude: str = "",
    class_body: str = "",
    samples: str = SAMPLES,
    ship_template: bool = True,
) -> None:
    """A mapper package ``package`` (importable from the pytester dir) and test_<package>.py for it."""
    folder = pytester.mkpydir(package)
    if ship_template:
        (folder / "mapper.json.j2").write_text(template)
    (folder / "__init__.py").write_text(
        textwrap.dedent(
            """\
            import json
            from fhirpipes import Mapper, PipeSpec, RecordError
            {prelude}
            MAPPER = Mapper(
                table="Things", resource_type="Patient", template="{template_name}",
                template_package=__name__, samples=json.loads({samples!r}), {mapper_args}
            )
            """
        ).format(
            prelude=textwrap.dedent(prelude),
            template_name="mapper.json.j2" if ship_template else "patient.json.j2",
            samples=samples,
            mapper_args=mapper_args,
        )
    )
    pytester.makepyfile(
        **{
            f"test_{package}": textwrap.dedent(
                """\
                from fhirpipes.testing import MapperConformanceTests
                from {package} import MAPPER

                class TestThings(MapperConformanceTests):
                    mapper = MAPPER
                    published = False
                {body}
                """
            ).format(package=package, body=textwrap.indent(textwrap.dedent(class_body), "    "))
        }
    )
    pytester.syspathinsert()


def run(pytester: pytest.Pytester, check: str) -> pytest.RunResult:
    return pytester.runpytest(*PYTESTER_ARGS, "-k", check, "-q")


@pytest.fixture
def json_schema(monkeypatch: pytest.MonkeyPatch) -> str:
    """The FHIR JSON Schema for the inner runs (their working directory is pytester's)."""
    path = schema_path("R4B")
    if path is None:
        pytest.skip("fhir.schema.json is not installed: run `make defs`")
    monkeypatch.setenv("FHIRPIPES_FHIR_SCHEMA", str(path))
    return str(path)


def test_a_sound_mapper_passes_every_check(pytester: pytest.Pytester, json_schema: str) -> None:
    write_plugin(pytester, "sound")
    result = pytester.runpytest(*PYTESTER_ARGS, "-q", "-rs")
    # Skipped: the entry point (published = False) and soft delete (it deletes).
    result.assert_outcomes(passed=16, skipped=2)


def test_a_template_that_would_half_render_json_is_refused_when_it_compiles(
    pytester: pytest.Pytester,
) -> None:
    # Text that breaks the JSON for some values only: the compiler refuses it before any record.
    template = GOOD_TEMPLATE.replace(
        '"id": {{ keys.id }},', '"id": {{ keys.id }},{% if "{" in new.lastName %} oops{% endif %}'
    )
    write_plugin(pytester, "halfjson", template=template)
    result = run(pytester, "resolves")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the template does not load: the template text is not JSON here*line=3*"])


def test_catches_strings_not_kept_intact(pytester: pytest.Pytester) -> None:
    template = GOOD_TEMPLATE.replace("{{ new.lastName }}", '{{ new.lastName | replace("\\\\", "/") }}')
    write_plugin(pytester, "mangled", template=template)
    result = run(pytester, "hostile")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*lastName = *did not come through intact*"])


def test_catches_nondeterministic_ids(pytester: pytest.Pytester) -> None:
    prelude = """\
        import itertools
        _counter = itertools.count()
        def context(record):
            return {"serial": next(_counter)}
    """
    template = GOOD_TEMPLATE.replace('"id": {{ keys.id }}', '"id": {{ keys.id ~ "-" ~ serial }}')
    write_plugin(pytester, "random_ids", template=template, prelude=prelude, mapper_args="context=context")
    result = run(pytester, "deterministic or remove_gives or modify_gives")
    result.assert_outcomes(failed=3)
    # Assertion rewriting reaches the kit: the compared values are shown, not just the message.
    result.stdout.fnmatch_lines(["*sample 0 maps differently the second time*", "*Differing items*"])


def test_catches_rounded_numbers(pytester: pytest.Pytester) -> None:
    template = """\
{"resourceType": "Observation", "id": {{ keys.id }}, "status": "final", "code": {"text": "weight"},
 "valueQuantity": {"value": {{ new.kg | round(2) }}, "unit": "kg"}}
"""
    write_plugin(
        pytester,
        "rounding",
        template=template,
        samples='[{"id": "o-1", "kg": 72.5}]',
        class_body='mapper = MAPPER.__class__(**{**MAPPER.__dict__, "resource_type": "Observation"})',
    )
    result = run(pytester, "numbers")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*kg = 1234567.891: the number did not reach the output exactly*"])


def test_catches_errors_that_quote_record_values(pytester: pytest.Pytester) -> None:
    prelude = """\
        def context(record):
            name = record.new.get("lastName") if record.new else None
            if name is not None and not name.isalpha():
                raise RecordError(f"lastName {name!r} is not alphabetic")
            return {}
    """
    write_plugin(pytester, "leaky_error", prelude=prelude, mapper_args="context=context")
    result = run(pytester, "no_record_value")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*lastName = <canary>: a record value appears in an error message or log*"])


def test_catches_log_lines_that_quote_record_values(pytester: pytest.Pytester) -> None:
    prelude = """\
        import logging
        def context(record):
            logging.getLogger("fhirpipes.things").info("mapping %s", record.new.get("firstName"))
            return {}
    """
    write_plugin(pytester, "leaky_log", prelude=prelude, mapper_args="context=context")
    result = run(pytester, "no_record_value")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*firstName = <canary>: a record value appears in an error message or log*"])


def test_catches_a_missing_attribute_that_fails_the_batch(pytester: pytest.Pytester) -> None:
    prelude = """\
        def context(record):
            return {"initial": record.new["lastName"][0] if record.new else ""}
    """
    write_plugin(pytester, "crashing", prelude=prelude, mapper_args="context=context")
    result = run(pytester, "missing_required or dropping")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*without 'lastName': raised KeyError (not a RecordError*"])


def test_catches_a_required_attribute_that_is_not_an_error(pytester: pytest.Pytester) -> None:
    write_plugin(pytester, "lenient", class_body='required_attributes = ("firstName",)')
    result = run(pytester, "missing_required")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*without 'firstName' did not fail*"])


def test_catches_codes_outside_required_value_sets(pytester: pytest.Pytester) -> None:
    template = GOOD_TEMPLATE.replace("new.gender | default(none) | fhir_gender", "new.gender | default(none)")
    write_plugin(pytester, "raw_gender", template=template)
    result = run(pytester, "samples_map")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*sample 0 did not map*invalid-code*Patient.gender*"])


def test_catches_an_element_made_from_an_empty_value(pytester: pytest.Pytester) -> None:
    # The built-in Patient template's old telecom: guarded by "is defined", so "" or NULL still
    # gave {"system": "phone", "use": "home"} (and the same for the MRN and the address).
    template = GOOD_TEMPLATE.replace(
        '"gender":',
        '"telecom": [{% if new.phone is defined %}{"system": "phone", "value": {{ new.phone }}, "use": "home"}'
        '{% endif %}],\n  "gender":',
    )
    samples = '[{"id": "k-1", "lastName": "Okafor", "phone": "+1 555 0100"}]'
    write_plugin(pytester, "empty_phone", template=template, samples=samples)
    result = run(pytester, "empty_values")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*sample 0, phone = '': the output differs from the item without it*"])


def test_catches_a_default_in_place_of_a_null(pytester: pytest.Pytester) -> None:
    # The old `active | default(true)`: an item without `active` said true, one with NULL said nothing.
    template = GOOD_TEMPLATE.replace('"gender":', '"active": {{ new.active | default(true) }},\n  "gender":')
    samples = '[{"id": "k-1", "lastName": "Okafor", "active": false}]'
    write_plugin(pytester, "default_true", template=template, samples=samples)
    result = run(pytester, "empty_values")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*sample 0, active = '': the output differs from the item without it*"])


def test_catches_a_null_turned_into_text(pytester: pytest.Pytester) -> None:
    # The old qualification code: `q.code | string` wrote NULL as "None" (and true as "True").
    template = GOOD_TEMPLATE.replace(
        '"gender":', '"maritalStatus": {"text": {{ new.status | string }}},\n  "gender":'
    )
    samples = '[{"id": "k-1", "lastName": "Okafor", "status": "married"}]'
    write_plugin(pytester, "null_text", template=template, samples=samples)
    result = run(pytester, "empty_values")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*sample 0, status = None: the output holds values the sample's own output*"]
    )


def test_an_empty_value_may_be_refused_but_not_crash_the_template(pytester: pytest.Pytester) -> None:
    # Iterating a NULL list fails with a TypeError: a broken template, not a refusal of the value.
    template = GOOD_TEMPLATE.replace(
        '"given": [{{ new.firstName | default(none) }}]',
        '"given": [{% for n in new.nicknames | default([]) %}{{ n }},{% endfor %}]',
    )
    samples = '[{"id": "k-1", "lastName": "Okafor", "nicknames": ["Ngo"]}]'
    write_plugin(pytester, "null_list", template=template, samples=samples)
    result = run(pytester, "empty_values")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*sample 0, nicknames = None: not a refusal of the value: record error render-failed*"]
    )


def test_catches_a_template_that_is_not_package_data(pytester: pytest.Pytester) -> None:
    # The mapper names a template its package doesn't ship; the shared package happens to have one.
    write_plugin(pytester, "unshipped", ship_template=False)
    result = run(pytester, "package_data")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*'patient.json.j2' is not package data of 'unshipped'*"])


def test_catches_an_invalid_pipe_filter(pytester: pytest.Pytester) -> None:
    write_plugin(pytester, "bad_filter", mapper_args='pipe=PipeSpec(filters=({"eventName": "INSERT"},))')
    result = run(pytester, "pipe_filter")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the Pipe filter is not valid*"])


def test_catches_a_filter_that_drops_deletes_the_mapper_handles(pytester: pytest.Pytester) -> None:
    filters = 'pipe=PipeSpec(filters=({"eventName": ["INSERT", "MODIFY"]},))'
    write_plugin(pytester, "no_removes", mapper_args=filters)
    result = run(pytester, "pipe_filter")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the Pipe filter drops its REMOVE*"])


def test_catches_an_unpublished_plugin(pytester: pytest.Pytester) -> None:
    write_plugin(pytester, "ghost", class_body='published = True\nplugin = "not-installed"')
    result = run(pytester, "published")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no entry point 'not-installed' in the 'fhirpipes' group*"])


def test_capability_flags_skip_what_the_mapper_does_not_do(pytester: pytest.Pytester) -> None:
    write_plugin(
        pytester,
        "flags",
        class_body="handles_deletes = False\nskips_unchanged = False\nsupports_soft_delete = False",
    )
    result = pytester.runpytest(*PYTESTER_ARGS, "-q", "-rs", "-k", "remove or unchanged or soft")
    result.assert_outcomes(skipped=3)


def test_a_check_can_be_overridden(pytester: pytest.Pytester) -> None:
    body = """\
        def test_numbers_survive(self):
            assert self.get_samples()[0]["birthOrder"] == 2
    """
    write_plugin(pytester, "overriding", class_body=body)
    run(pytester, "numbers").assert_outcomes(passed=1)


@pytest.mark.slow
def test_assertion_rewriting_reaches_the_kit_in_a_fresh_process(pytester: pytest.Pytester) -> None:
    prelude = """\
        import itertools
        _counter = itertools.count()
        def context(record):
            return {"serial": next(_counter)}
    """
    template = GOOD_TEMPLATE.replace('"id": {{ keys.id }}', '"id": {{ keys.id ~ "-" ~ serial }}')
    write_plugin(pytester, "fresh_random", template=template, prelude=prelude, mapper_args="context=context")
    result = pytester.runpytest_subprocess(*PYTESTER_ARGS, "-k", "deterministic")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*AssertionError: sample 0 maps differently the second time*", "*Differing items*"]
    )


def test_the_schema_check_skips_without_the_schema(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FHIRPIPES_FHIR_SCHEMA", str(pytester.path / "nowhere.json"))
    write_plugin(pytester, "no_schema")
    result = pytester.runpytest(*PYTESTER_ARGS, "-q", "-rs", "-k", "json_schema")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*fhir.schema.json not found*"])


def test_catches_an_observation_status_outside_its_required_value_set(pytester: pytest.Pytester) -> None:
    # A third-party resource type: the bindings are generated for every one, not only the built-ins'.
    template = """\
{"resourceType": "Observation", "id": {{ keys.id }}, "status": {{ new.status }}, "code": {"text": "weight"}}
"""
    write_plugin(
        pytester,
        "banana",
        template=template,
        samples='[{"id": "o-1", "status": "banana"}]',
        class_body='mapper = MAPPER.__class__(**{**MAPPER.__dict__, "resource_type": "Observation"})',
    )
    result = run(pytester, "required_bindings")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*sample 0 writes a code outside a required value set*path=Observation.status*"]
    )
    assert "banana" not in result.stdout.str().split("sample 0 writes", 1)[1].split("\n", 1)[0]


def test_catches_what_only_the_json_schema_refuses(
    pytester: pytest.Pytester, json_schema: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The runtime now enforces what the HL7 schema checks (primitive regexes, bindings, spaces), so the
    # check is shown failing on a schema of our own: the real one, with HumanName.family narrowed.
    schema = json.loads(Path(json_schema).read_text(encoding="utf-8"))
    schema["definitions"]["HumanName"]["properties"]["family"] = {"type": "string", "pattern": "^Z"}
    narrowed = tmp_path / "narrowed.schema.json"
    narrowed.write_text(json.dumps(schema), encoding="utf-8")
    monkeypatch.setenv("FHIRPIPES_FHIR_SCHEMA", str(narrowed))
    write_plugin(pytester, "narrowed")
    result = run(pytester, "json_schema or samples_map")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*sample 0 fails the FHIR JSON Schema: name[[]0[]].family: does not match*"])

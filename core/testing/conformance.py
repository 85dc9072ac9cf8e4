"""The conformance kit: `MapperConformanceTests`, the checks every fhirpipes mapper should pass.

A plugin's own test module subclasses it, as pandas' extension-array base tests and SQLAlchemy's
dialect suite work::

    from fhirpipes.testing import MapperConformanceTests
    from fhirpipes_observation import OBSERVATION

    class TestObservation(MapperConformanceTests):
        plugin = "observation"      # its entry-point name in the ``fhirpipes`` group
        mapper = OBSERVATION        # optional when the plugin registers one mapper
        # samples = [...]           # default: the mapper's own ``samples``

Every check is an ordinary ``test_*`` method: override one to adapt or replace it, or set a
capability flag (``handles_deletes``, ``supports_soft_delete``, ``skips_unchanged``,
``published``) to skip what the mapper declares it doesn't do. The same methods run without
pytest in ``fhirpipes conformance`` (`fhirpipes.testing.runner`), so every assertion carries its
own message.

Mapping goes through the core's own path: `fhirpipes.plugins.load_registry` and
`fhirpipes.dispatch.Dispatcher`, with records built as a DynamoDB stream delivers them. The
checks' helpers live beside this module: item surgery (`fhirpipes.testing.items`), log capture
(`fhirpipes.testing.logcapture`), and what a template reads (`fhirpipes.engine.analysis`).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.resources
import json
import sys
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, NoReturn

from fhirpipes.dispatch import Dispatcher, Outcome
from fhirpipes.errors import ErrorCode, InvalidResourceError, RecordError, RenderError
from fhirpipes.hookspecs import hookimpl
from fhirpipes.mapper import MAX_BATCH_SIZE, MAX_BATCHING_WINDOW_SECONDS, Mapper
from fhirpipes.plugins import Registry, entry_points, load_registry
from fhirpipes.settings import Settings
from fhirpipes.testing.items import (
    is_number,
    leaves,
    numbers,
    show,
    strings,
    value_at,
    with_value,
    without_value,
)
from fhirpipes.testing.logcapture import capture_logs
from fhirpipes.testing.runner import CheckSkipped
from fhirpipes.testing.stream import make_record

HOSTILE_STRINGS: tuple[str, ...] = (
    "quote \" apostrophe ' end",
    'back\\slash \\u0041 \\" \\n end',
    "new\nline\r\ncarriage\ttab end",
    "{{ 7 * 7 }} {% raw %} {# x #} ${x} <$.path> end",
    "</script><script>alert(1)</script> &amp; <b> end",
    "\u202erevo\u202c \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 end",
    "astral \U0001f600 \U0001d11e \U00020000 end",
    "sep \u2028 \u2029 \x7f \u00a0 end",
)
"""Strings that break naive templates: JSON and Jinja syntax, HTML, bidi and astral unicode."""

REFUSAL_CODES = frozenset(
    {
        ErrorCode.CONVERSION_FAILED,
        ErrorCode.INVALID_RESOURCE,
        ErrorCode.INVALID_CODE,
        ErrorCode.CONTROL_CHARACTER,
        ErrorCode.MISSING_VALUE,
        ErrorCode.WRONG_RESOURCE_TYPE,
    }
)
"""Record-error codes that mean "the value was refused": acceptable answers to a hostile value."""

BROKEN_CODES = frozenset(
    {
        ErrorCode.INVALID_JSON,
        ErrorCode.NOT_JSON,
        ErrorCode.NOT_AN_OBJECT,
        ErrorCode.UNSAFE_TEMPLATE,
        ErrorCode.TEMPLATE_SYNTAX,
    }
)
"""Record-error codes that mean the template itself broke (half-rendered JSON and the like)."""


@dataclasses.dataclass
class Mapped:
    """What mapping one record gave: the core's `Outcome`, any other exception, and the log lines."""

    outcome: Outcome | None
    exception: BaseException | None
    logs: list[str]

    @property
    def status(self) -> str:
        return "crashed" if self.outcome is None else self.outcome.status

    @property
    def error(self) -> RecordError | None:
        return None if self.outcome is None else self.outcome.error

    @property
    def entity(self) -> dict[str, Any] | None:
        event = None if self.outcome is None else self.outcome.event
        if event is None:
            return None
        entity = event["details"].get("entity")
        return entity if isinstance(entity, dict) else None

    @property
    def command(self) -> str | None:
        event = None if self.outcome is None else self.outcome.event
        return None if event is None else str(event["details"]["command"])

    def describe(self) -> str:
        """A one-line account for assertion messages (codes and places, no values)."""
        if self.exception is not None:
            return f"raised {type(self.exception).__name__} (not a RecordError: it would fail the batch)"
        if self.error is not None:
            return f"record error {self.error.code}: {self.error}"
        return f"{self.status} ({self.command})"


class MapperConformanceTests:
    """Subclass in a test module (name it ``Test...``) and set `plugin` and/or `mapper`."""

    plugin: ClassVar[str | None] = None
    """The plugin's entry-point name in the ``fhirpipes`` group."""
    mapper: ClassVar[Mapper | None] = None
    """The mapper under test; default: the one the plugin registers (set it if it registers several)."""
    samples: ClassVar[Sequence[Mapping[str, Any]] | None] = None
    """Sample items (plain values, as the table holds them); default: ``mapper.samples``."""
    tables: ClassVar[Sequence[str] | None] = None
    """The tables the plugin registers (exactly); default: the mapper's table."""
    key_attributes: ClassVar[Sequence[str] | None] = None
    """The table's key attributes; default: the ``keys.<name>`` the template reads, else ``id``."""
    required_attributes: ClassVar[Sequence[str] | None] = None
    """Attributes whose absence must be a record error; default: what the template reads strictly."""

    # Capability flags: None means "as the mapper declares" (``on_delete``, ``skip_unchanged``).
    published: ClassVar[bool] = True
    handles_deletes: ClassVar[bool | None] = None
    supports_soft_delete: ClassVar[bool | None] = None
    skips_unchanged: ClassVar[bool | None] = None

    _kit_programmatic: ClassVar[bool] = False

    # ---------------------------------------------------------------- setup the checks share

    def skip(self, reason: str) -> NoReturn:
        """Skip this check (pytest's skip under pytest, `CheckSkipped` in ``fhirpipes conformance``)."""
        if not self._kit_programmatic and "pytest" in sys.modules:
            import pytest

            pytest.skip(reason)
        raise CheckSkipped(reason)

    def get_registry(self) -> Registry:
        """The registry mapping goes through: the plugin's own, loaded from its entry point."""
        # Cached on the class (pytest makes an instance per check), for this plugin and mapper object.
        cached = type(self).__dict__.get("_kit_registry")
        if cached is not None and cached[0] == self.plugin and cached[1] is self.mapper:
            return cached[2]  # type: ignore[no-any-return]
        if self.plugin is not None:
            registry = load_registry(only=[self.plugin])
        elif self.mapper is not None:
            mapper = self.mapper
            holder = SimpleNamespace(register_mappers=hookimpl(lambda register: register(mapper)))
            registry = load_registry(modules={"mapper-under-test": holder})
        else:
            raise AssertionError(f"{type(self).__name__}: set `plugin` (entry-point name) or `mapper`")
        type.__setattr__(type(self), "_kit_registry", (self.plugin, self.mapper, registry))
        return registry

    def get_mapper(self) -> Mapper:
        """The mapper under test."""
        if self.mapper is not None:
            return self.mapper
        mappers = self.get_registry().mappers
        assert len(mappers) == 1, (
            f"plugin {self.plugin!r} registers {len(mappers)} mappers: set `mapper` on the test class "
            "to say which one this class checks"
        )
        return mappers[0]

    def get_dispatcher(self, settings: Settings | None = None) -> Dispatcher:
        """The core's dispatcher over `get_registry`, with default settings (error events, not raising)."""
        return Dispatcher(self.get_registry(), settings or Settings())

    def get_samples(self) -> list[dict[str, Any]]:
        """Deep copies of the sample items."""
        samples = self.samples if self.samples is not None else self.get_mapper().samples
        return [copy.deepcopy(dict(item)) for item in samples]

    def get_key_attributes(self) -> tuple[str, ...]:
        """The item's key attributes."""
        if self.key_attributes is not None:
            return tuple(self.key_attributes)
        from fhirpipes.engine.analysis import template_reads  # parses with Jinja: only when asked

        mapper = self.get_mapper()
        return template_reads(mapper.template_package, mapper.template, "keys")[0] or ("id",)

    def get_required_attributes(self) -> tuple[str, ...]:
        """The attributes an item can't do without."""
        if self.required_attributes is not None:
            return tuple(self.required_attributes)
        from fhirpipes.engine.analysis import template_reads  # parses with Jinja: only when asked

        mapper = self.get_mapper()
        return template_reads(mapper.template_package, mapper.template, "new")[0]

    def flag(self, name: str) -> bool:
        """A capability flag: the class's setting, else what the mapper declares."""
        value = getattr(self, name)
        if value is not None:
            return bool(value)
        mapper = self.get_mapper()
        derived = {
            "handles_deletes": mapper.on_delete == "delete",
            "supports_soft_delete": mapper.on_delete == "soft-delete",
            "skips_unchanged": mapper.skip_unchanged,
        }
        return derived[name]

    def record_for(
        self, new: Mapping[str, Any] | None, old: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """A stream record of the mapper's table carrying ``new``/``old`` (INSERT, MODIFY or REMOVE)."""
        return make_record(self.get_mapper().table, new, old, keys=self.get_key_attributes(), **kwargs)

    def map_raw(self, raw: Any, settings: Settings | None = None) -> Mapped:
        """Map one raw record with the core's dispatcher, capturing the ``fhirpipes`` log lines."""
        dispatcher = self.get_dispatcher(
            settings
        )  # outside the try: a plugin that won't load is no record's fault
        with capture_logs() as lines:
            try:
                outcome: Outcome | None = dispatcher.map_record(raw)
                exception = None
            except Exception as exc:  # the check reports it: anything not a RecordError fails a batch
                outcome, exception = None, exc
        return Mapped(outcome, exception, lines)

    def map_item(
        self, item: Mapping[str, Any], event_name: str = "INSERT", settings: Settings | None = None
    ) -> Mapped:
        """Map ``item`` as an INSERT, a REMOVE (as OldImage) or a MODIFY (from a keys-only old image)."""
        keys = self.get_key_attributes()
        if event_name == "INSERT":
            raw = self.record_for(item)
        elif event_name == "REMOVE":
            raw = self.record_for(None, item)
        elif event_name == "MODIFY":
            raw = self.record_for(item, {name: item[name] for name in keys if name in item})
        else:
            raise ValueError("event_name must be INSERT, MODIFY or REMOVE")
        return self.map_raw(raw, settings)

    def mapped_entity(self, item: Mapping[str, Any], what: str) -> dict[str, Any]:
        """The entity an INSERT of ``item`` maps to (asserting it maps)."""
        result = self.map_item(item)
        assert result.entity is not None and result.command == "PUT", f"{what}: {result.describe()}"
        return result.entity

    # ---------------------------------------------------------------- the checks

    def test_published_in_entry_point_group(self) -> None:
        """The plugin is installed in the ``fhirpipes`` group and registers exactly its tables."""
        if not self.published:
            self.skip("published = False: the plugin is not installed as an entry point")
        assert self.plugin, (
            "set `plugin` on the test class to the entry-point name the plugin is published under "
            "(or `published = False` while it isn't installed)"
        )
        names = [ep.name for ep in entry_points()]
        assert self.plugin in names, (
            f"no entry point {self.plugin!r} in the 'fhirpipes' group (installed: {names}); declare "
            f'[project.entry-points.fhirpipes] {self.plugin} = "<your package>" and reinstall'
        )
        registry = load_registry(only=[self.plugin])
        expected = self.tables if self.tables is not None else [self.get_mapper().table]
        assert sorted(registry.tables) == sorted(expected), (
            f"plugin {self.plugin!r} registers tables {sorted(registry.tables)}, expected {sorted(expected)}"
        )
        if self.mapper is not None:
            assert self.mapper in registry.mappers, (
                f"the plugin {self.plugin!r} does not register the mapper under test "
                f"(for table {self.mapper.table!r})"
            )

    def test_template_resolves_from_package_data(self) -> None:
        """The template ships inside the mapper's package and compiles."""
        from fhirpipes.engine import check_template, template_source

        mapper = self.get_mapper()
        shipped = importlib.resources.files(mapper.template_package).joinpath(mapper.template)
        assert shipped.is_file(), (
            f"template {mapper.template!r} is not package data of {mapper.template_package!r}: "
            "list it in [tool.setuptools.package-data] and reinstall"
        )
        try:
            check_template(mapper.template_package, mapper.template)
        except RenderError as exc:
            raise AssertionError(f"the template does not load: {exc}") from exc
        _, loaded = template_source(mapper.template_package, mapper.template)
        assert loaded.resolve() == Path(str(shipped)).resolve(), (
            f"{mapper.template!r} loads from {loaded}, not from the package {mapper.template_package!r}"
        )

    def test_samples_map_to_valid_resources(self) -> None:
        """Every sample maps to a valid resource of the declared type and FHIR version."""
        from fhirpipes.resource import model_class, validate

        mapper = self.get_mapper()
        samples = self.get_samples()
        assert samples, "no sample items: give the Mapper `samples` (or set `samples` on the test class)"
        batch = [self.record_for(item) for item in samples]
        with capture_logs():
            events = self.get_dispatcher().map_batch(batch)
        assert len(events) == len(samples), (
            f"{_count(len(samples), 'sample')} gave {_count(len(events), 'event')}"
        )
        cls = model_class(mapper.resource_type, mapper.fhir_version)
        for index, event in enumerate(events):
            details = event["details"]
            assert details["command"] == "PUT", (
                f"sample {index} did not map: {details.get('error', details['command'])}"
            )
            entity = details["entity"]
            assert entity.get("resourceType") == mapper.resource_type, (
                f"sample {index} gave a {entity.get('resourceType')}, not a {mapper.resource_type}"
            )
            assert event["eventType"] == f"{mapper.resource_type}Change"
            cls.model_validate(entity)  # raises with the FHIR path if the output is not valid
            try:
                again = validate(mapper, copy.deepcopy(entity))  # required value sets too
            except InvalidResourceError as exc:
                raise AssertionError(f"sample {index}: {exc}") from exc
            assert again == entity, f"sample {index}: the output changes when validated again"
            assert json.loads(json.dumps(entity)) == entity, f"sample {index}: the output is not plain JSON"

    def test_samples_hold_required_bindings(self) -> None:
        """Every coded element of every sample's output is in its required value set (any resource type).

        The bindings are FHIR's own, generated from the official definitions (`fhirpipes.bindings`).
        """
        from fhirpipes.resource import validate

        mapper = self.get_mapper()
        for index, item in enumerate(self.get_samples()):
            result = self.map_item(item)
            assert result.error is None or result.error.code != "invalid-code", (
                f"sample {index} writes a code outside a required value set: {result.describe()}"
            )
            entity = result.entity
            assert entity is not None, f"sample {index}: {result.describe()}"
            try:
                validate(mapper, copy.deepcopy(entity))
            except InvalidResourceError as exc:
                raise AssertionError(f"sample {index}: {exc} at {exc.path}") from None

    def test_samples_pass_the_fhir_json_schema(self) -> None:
        """Every sample's output passes HL7's FHIR JSON Schema, a validator independent of fhir.resources.

        R4 schema (R4B mappers are checked against it; R5 has none in the registries): skipped when
        it or `jsonschema` is not installed (see `fhirpipes.testing.schema`).
        """
        from fhirpipes.testing.schema import schema_errors, unavailable_reason

        mapper = self.get_mapper()
        reason = unavailable_reason(mapper.fhir_version)
        if reason is not None:
            self.skip(reason)
        for index, item in enumerate(self.get_samples()):
            entity = self.mapped_entity(item, f"sample {index}")
            errors = schema_errors(entity, mapper.fhir_version)
            assert not errors, f"sample {index} fails the FHIR JSON Schema: {'; '.join(errors[:5])}"

    def test_samples_hold_fhir_invariants(self) -> None:
        """Every sample's output satisfies every error-severity invariant of FHIR's definitions: the
        resource's own (obs-6, dom-3, ...) and its datatypes' at each element (per-1 on every Period),
        evaluated with a FHIRPath engine (fhirpathpy; skipped, saying so, when it is not installed).

        The Lambda checks the datatype invariants a template commonly breaks; this check has them all.
        """
        from fhirpipes.testing.invariants import evaluate, unavailable_reason

        mapper = self.get_mapper()
        reason = unavailable_reason(mapper.fhir_version)
        if reason is not None:
            self.skip(reason)
        for index, item in enumerate(self.get_samples()):
            entity = self.mapped_entity(item, f"sample {index}")
            failures = evaluate(entity, mapper.fhir_version).failures
            assert not failures, (
                f"sample {index} breaks FHIR invariants: {'; '.join(str(f) for f in failures[:5])}"
            )

    def test_mapping_is_deterministic(self) -> None:
        """The same item gives the same resource and id, whatever the attribute order."""
        for index, item in enumerate(self.get_samples()):
            first = self.mapped_entity(item, f"sample {index}")
            second = self.mapped_entity(copy.deepcopy(item), f"sample {index} (again)")
            assert first == second, f"sample {index} maps differently the second time"
            reordered = dict(reversed(list(item.items())))
            third = self.mapped_entity(reordered, f"sample {index} (attributes reordered)")
            assert first == third, (
                f"sample {index} maps differently when its attributes come in another order"
            )

    def test_modify_gives_the_insert_id(self) -> None:
        """A MODIFY of an item addresses the resource its INSERT created."""
        for index, item in enumerate(self.get_samples()):
            inserted = self.mapped_entity(item, f"sample {index}")
            # Not skipped as unchanged: an item of defaults maps like its keys-only old image.
            modified = self.map_item(item, "MODIFY", Settings(skip_unchanged=False))
            assert modified.command == "PUT" and modified.entity is not None, (
                f"sample {index} as a MODIFY: {modified.describe()}"
            )
            assert modified.entity["id"] == inserted["id"], (
                f"sample {index}: MODIFY gives id {modified.entity['id']!r}, INSERT {inserted['id']!r}"
            )

    def test_remove_gives_the_insert_id(self) -> None:
        """A REMOVE of an item deletes the resource its INSERT created."""
        if not self.flag("handles_deletes"):
            self.skip("the mapper doesn't turn REMOVE into DELETE (on_delete is not 'delete')")
        for index, item in enumerate(self.get_samples()):
            inserted = self.mapped_entity(item, f"sample {index}")
            removed = self.map_item(item, "REMOVE")
            assert removed.command == "DELETE" and removed.entity is not None, (
                f"sample {index} as a REMOVE: {removed.describe()}"
            )
            mapper = self.get_mapper()
            addressed = {key: removed.entity.get(key) for key in ("resourceType", "id")}
            assert addressed == {"resourceType": mapper.resource_type, "id": inserted["id"]}, (
                f"sample {index}: REMOVE deletes {removed.entity}, INSERT created id {inserted['id']!r}"
            )

    def test_soft_delete_marks_inactive(self) -> None:
        """With ``on_delete="soft-delete"``, a REMOVE re-sends the resource with ``active: false``."""
        if not self.flag("supports_soft_delete"):
            self.skip("the mapper doesn't soft-delete (on_delete is not 'soft-delete')")
        for index, item in enumerate(self.get_samples()):
            inserted = self.mapped_entity(item, f"sample {index}")
            removed = self.map_item(item, "REMOVE")
            assert removed.command == "PUT" and removed.entity is not None, (
                f"sample {index} as a REMOVE: {removed.describe()}"
            )
            assert removed.entity["id"] == inserted["id"], f"sample {index}: the soft delete moved the id"
            assert removed.entity.get("active") is False, f"sample {index}: the soft delete isn't inactive"

    def test_unchanged_modify_is_skipped(self) -> None:
        """A MODIFY whose old and new items map alike sends nothing (``skip_unchanged``)."""
        if not self.flag("skips_unchanged"):
            self.skip("the mapper sends unchanged MODIFYs (skip_unchanged = False)")
        for index, item in enumerate(self.get_samples()):
            result = self.map_raw(self.record_for(item, copy.deepcopy(item)))
            assert result.status == "skipped", f"sample {index}, unchanged MODIFY: {result.describe()}"

    def test_hostile_strings_stay_intact(self) -> None:
        """Quotes, backslashes, newlines, ``{{ }}``, ``</script>``, bidi and astral text: valid JSON, intact.

        Where the sample's value appears verbatim in the output, the hostile value must too, or be
        refused as a record error (a FHIR type or a filter may legitimately refuse it). Any value
        may be refused, but never with half-rendered JSON or an exception that fails the batch.
        """
        keys = set(self.get_key_attributes())
        for index, item in enumerate(self.get_samples()):
            verbatim = set(strings(self.mapped_entity(item, f"sample {index}")))
            paths = [path for path, value in leaves(item) if isinstance(value, str)]
            for hostile in HOSTILE_STRINGS:
                for path in paths:
                    original = value_at(item, path)
                    mutated = with_value(item, path, hostile)
                    result = self.map_item(mutated)
                    where = f"sample {index}, {show(path)} = {hostile!r}"
                    self.assert_refused_cleanly(result, where)
                    if result.entity is not None and original in verbatim:
                        assert hostile in set(strings(result.entity)), (
                            f"{where}: the value did not come through intact (the sample's value "
                            "appears verbatim in its output, this one doesn't)"
                        )
                # Every string hostile at once (keys kept: a hostile id is refused, which hides the rest).
                mutated = copy.deepcopy(item)
                for path in paths:
                    if path[0] not in keys:
                        mutated = with_value(mutated, path, hostile)
                result = self.map_item(mutated)
                self.assert_refused_cleanly(result, f"sample {index}, every string = {hostile!r}")

    def test_numbers_survive(self) -> None:
        """Numbers reach the output exactly: no float rounding, no truncation."""
        checked = 0
        for index, item in enumerate(self.get_samples()):
            output_numbers = set(numbers(self.mapped_entity(item, f"sample {index}")))
            for path, value in leaves(item):
                if not is_number(value) or Decimal(str(value)) not in output_numbers:
                    continue
                integral = Decimal(str(value)) == Decimal(str(value)).to_integral_value()
                candidates = (
                    [Decimal(2147483647), Decimal(9007199254740993)]
                    if integral
                    else [Decimal("0.1"), Decimal("1234567.891"), Decimal("3.14159265358979")]
                )
                survived = 0
                for candidate in candidates:
                    result = self.map_item(with_value(item, path, candidate))
                    where = f"sample {index}, {show(path)} = {candidate}"
                    if result.entity is None:
                        assert result.error is not None and result.error.code in REFUSAL_CODES, (
                            f"{where}: {result.describe()}"
                        )
                        continue
                    assert candidate in set(numbers(result.entity)), (
                        f"{where}: the number did not reach the output exactly (rounded or truncated?)"
                    )
                    survived += 1
                assert survived, f"sample {index}, {show(path)}: no test number mapped at all"
                checked += 1
        if not checked:
            self.skip("no numeric attribute of the samples reaches the output")

    def test_missing_required_attribute_is_a_record_error(self) -> None:
        """An item without a required attribute is a record error naming the template line."""
        required = self.get_required_attributes()
        if not required:
            self.skip("the template reads no attribute strictly (set `required_attributes` if it should)")
        mapper = self.get_mapper()
        checked = set()
        for index, item in enumerate(self.get_samples()):
            for name in required:
                if name not in item:
                    continue
                checked.add(name)
                result = self.map_item({key: value for key, value in item.items() if key != name})
                where = f"sample {index} without {name!r}"
                assert result.exception is None, f"{where}: {result.describe()}"
                assert result.status == "failed" and result.error is not None, (
                    f"{where} did not fail: {result.describe()}"
                )
                assert result.entity is None, f"{where}: an error event must carry no entity"
                assert isinstance(result.error, RenderError), f"{where}: {result.describe()}"
                assert result.error.code not in BROKEN_CODES, f"{where}: {result.describe()}"
                assert result.error.template is not None and result.error.line is not None, (
                    f"{where}: the error names no template line ({result.describe()})"
                )
        missing = sorted(set(required) - checked)
        assert not missing, (
            f"required attributes {missing} (of mapper {mapper.name}) appear in no sample: add them"
        )

    def test_dropping_any_attribute_never_breaks_json(self) -> None:
        """Without any one attribute, an item maps or is refused cleanly, never half-rendered."""
        keys = set(self.get_key_attributes())
        for index, item in enumerate(self.get_samples()):
            for path, _value in leaves(item, containers=True):
                if path[0] in keys:
                    continue
                result = self.map_item(without_value(item, path))
                self.assert_refused_cleanly(result, f"sample {index} without {show(path)}")

    empty_values: ClassVar[tuple[Any, ...]] = ("", None, "   ")
    """What `test_empty_values_invent_nothing` sets each attribute to: empty, NULL, whitespace."""

    def test_empty_values_invent_nothing(self) -> None:
        """An empty value is no value: any attribute set to ``""``, NULL or ``"   "`` maps exactly like
        the item without it, or is refused with a clean record error. So no element comes from
        an empty value: no identifier with a system and no value, no telecom with only a use, no
        ``{"use": "home"}`` address, no ``"None"`` code, no default in place of a NULL.

        Where the item without the attribute is refused (a required attribute), the empty value
        may be refused too or map (whether an empty required value is an error is the mapper's
        decision), but what it maps to holds no value the sample's own output doesn't (a NULL
        written as ``"None"``).
        """
        keys = set(self.get_key_attributes())
        for index, item in enumerate(self.get_samples()):
            # One event id and sequence number for all variants: meta.source must not differ.
            def mapped(variant: Mapping[str, Any]) -> Mapped:
                return self.map_raw(self.record_for(variant, event_id="empty-values", sequence_number="1"))

            sample = mapped(item).entity
            known = {json.dumps(leaf, default=str) for _, leaf in leaves(sample)}
            for path, _value in leaves(item, containers=True):
                if path[0] in keys:
                    continue
                without = mapped(without_value(item, path))
                for empty in self.empty_values:
                    result = mapped(with_value(item, path, empty))
                    where = f"sample {index}, {show(path)} = {empty!r}"
                    self.assert_refused_cleanly(result, where)
                    if result.error is not None:
                        assert result.error.code in REFUSAL_CODES, (
                            f"{where}: not a refusal of the value: {result.describe()}"
                        )
                        continue
                    if without.error is not None:  # required: see the docstring
                        made = {json.dumps(leaf, default=str) for _, leaf in leaves(result.entity)} - known
                        assert not made, (
                            f"{where}: the output holds values the sample's own output doesn't "
                            "(an empty value turned into text?)"
                        )
                        continue
                    assert result.command == without.command, (
                        f"{where} gives {result.describe()}, without it {without.describe()}: "
                        "an empty value must map like no value"
                    )
                    assert result.entity == without.entity, (
                        f"{where}: the output differs from the item without it (something was made "
                        "from an empty value)"
                    )

    def test_no_record_value_in_errors_or_logs(self) -> None:
        """No record value appears in an error message or a ``fhirpipes`` log line (records are PHI)."""
        from fhirpipes.engine import template_source

        mapper = self.get_mapper()
        keys = set(self.get_key_attributes())
        source, _ = template_source(mapper.template_package, mapper.template)
        known = source + mapper.table + mapper.resource_type
        counter = iter(range(1_000_000))

        def canary() -> str:
            return f"cnry{next(counter):04d}x7q"

        for index, item in enumerate(self.get_samples()):
            values = {v for _, v in leaves(item) if isinstance(v, str) and len(v) >= 6 and v not in known}
            variants: list[tuple[str, dict[str, Any], set[str]]] = [(f"sample {index}", item, values)]
            everything = copy.deepcopy(item)
            planted: set[str] = set()
            for path, _value in leaves(item):
                token = canary()
                variants.append(
                    (f"sample {index}, {show(path)} = <canary>", with_value(item, path, token), {token})
                )
                everything = with_value(everything, path, token)
                planted.add(token)
                if path[0] not in keys:
                    variants.append(
                        (f"sample {index} without {show(path)}", without_value(item, path), values)
                    )
            variants.append((f"sample {index}, every value a canary", everything, planted))
            for where, variant, secrets in variants:
                result = self.map_item(variant)
                texts = list(result.logs)
                if result.error is not None:
                    texts += [str(result.error), json.dumps(result.error.to_dict())]
                if result.exception is not None:
                    texts.append(str(result.exception))
                leaked = sorted(secret for secret in secrets if any(secret in text for text in texts))
                assert not leaked, f"{where}: a record value appears in an error message or log line"

    def test_pipe_filter_is_valid(self) -> None:
        """The declared Pipe (filters, batch size, starting position) is one EventBridge Pipes accepts,
        and its filters let the samples' changes through."""
        from fhirpipes.pipes import InvalidPattern, matches_any, validate_filters

        mapper = self.get_mapper()
        filters = mapper.pipe_filters()
        assert filters, "the mapper's Pipe declares no filter"
        try:
            validate_filters(filters)
        except (InvalidPattern, TypeError) as exc:
            raise AssertionError(f"the Pipe filter is not valid: {exc}") from exc
        pipe = mapper.pipe
        assert 1 <= pipe.batch_size <= MAX_BATCH_SIZE, (
            f"Pipe batch size must be 1..{MAX_BATCH_SIZE} (DynamoDB streams)"
        )
        assert 0 <= pipe.batching_window_seconds <= MAX_BATCHING_WINDOW_SECONDS, (
            f"Pipe batching window must be 0..{MAX_BATCHING_WINDOW_SECONDS} seconds"
        )
        assert pipe.starting_position in ("TRIM_HORIZON", "LATEST"), "starting position: TRIM_HORIZON|LATEST"
        deletes = mapper.on_delete != "ignore"
        for index, item in enumerate(self.get_samples()):
            for name, raw in (("INSERT", self.record_for(item)), ("MODIFY", self.record_for(item, item))):
                assert matches_any(filters, raw), f"sample {index}: the Pipe filter drops its {name}"
            if deletes:
                assert matches_any(filters, self.record_for(None, item)), (
                    f"sample {index}: the mapper handles deletes, but the Pipe filter drops its REMOVE"
                )

    # ---------------------------------------------------------------- helpers for the checks

    def assert_refused_cleanly(self, result: Mapped, where: str) -> None:
        """The record mapped, or failed with a record error that is a refusal, not a broken template."""
        assert result.exception is None, f"{where}: {result.describe()}"
        if result.error is None:
            return
        error = result.error
        assert error.code not in BROKEN_CODES, f"{where}: the template broke: {result.describe()}"
        assert result.entity is None, f"{where}: an error event must carry no entity"
        if isinstance(error, RenderError):
            assert error.line is not None, f"{where}: the error names no template line ({result.describe()})"
        if isinstance(error, InvalidResourceError):
            assert error.path is not None or error.template is not None, f"{where}: {result.describe()}"


def _count(number: int, noun: str) -> str:
    """``1 event``, ``2 events``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"

"""Writing a new mapper plugin project: pyproject, mapper module, template, samples, tests, README.

The resource template starts with the resource's required elements, read from the fhir.resources
model of the chosen FHIR version (pydantic's required fields, and fhir.resources'
``element_required`` for required primitives), each filled from an item attribute of the same
name, so a freshly generated plugin passes the conformance kit with its generated samples.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.metadata
import importlib.util
import json
import keyword
import pkgutil
import re
import string
import sys
import typing
from importlib.resources import files
from pathlib import Path
from typing import Any

from fhirpipes.errors import FhirpipesError, PluginError
from fhirpipes.mapper import FHIR_VERSIONS
from fhirpipes.resource import MODEL_PACKAGES, model_class

TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
"""DynamoDB's rule for table names."""

PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
"""The core metadata specification's rule for a project name (what pip accepts)."""

ABSTRACT_RESOURCES = frozenset({"Resource", "DomainResource", "CanonicalResource", "MetadataResource"})
"""The FHIR specification's abstract resource types (the last two: R5's interfaces), which
fhir.resources models as classes like any other: no instance has one of these as resourceType."""


class ScaffoldError(FhirpipesError):
    """``fhirpipes new`` can't write the project; the message says why, in one line."""


@dataclasses.dataclass(frozen=True)
class Element:
    """One required element of the resource and how the template fills it."""

    key: str  # JSON name
    template: str  # the JSON value's template text
    attribute: str | None  # the item attribute it reads (None: a constant)
    sample: Any  # the attribute's value in the sample item
    dynamodb_type: str
    required: bool


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything ``fhirpipes new`` writes, before it writes it."""

    package: str
    entry_point: str
    distribution: str
    table: str
    key: str
    resource_type: str
    fhir_version: str
    elements: tuple[Element, ...]
    unfilled: tuple[str, ...]

    @property
    def template_name(self) -> str:
        return f"{self.resource_type.lower()}.json.j2"


def check_package_name(name: str) -> None:
    """Refuse a NAME that can't be the plugin's import package."""
    if not name.isidentifier() or not name.isascii():
        raise ScaffoldError(
            f"{name!r} is not a valid Python package name (letters, digits, _; not first a digit)"
        )
    if keyword.iskeyword(name):
        raise ScaffoldError(f"{name!r} is a Python keyword, not a usable package name")
    if name != name.lower():
        raise ScaffoldError(f"{name!r}: use a lowercase package name (PEP 8), e.g. {name.lower()!r}")
    if name in sys.stdlib_module_names or name == "fhirpipes":
        raise ScaffoldError(f"{name!r} would shadow an existing module; choose another package name")
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        found = None
    if found is not None:
        raise ScaffoldError(f"{name!r} is already an importable package here; choose another name")
    distribution = name.replace("_", "-")
    if not PROJECT_NAME.match(distribution):
        raise ScaffoldError(
            f"{name!r} gives the project name {distribution!r}, which pip refuses "
            "(it must start and end with a letter or digit)"
        )
    if name.startswith("fhirpipes_") and not PROJECT_NAME.match(name.removeprefix("fhirpipes_")):
        raise ScaffoldError(
            f"{name!r}: the entry-point name after fhirpipes_ must start and end with a letter or digit"
        )
    canonical = canonical_name(distribution)
    installed = {canonical_name(d.metadata["Name"] or "") for d in importlib.metadata.distributions()}
    if canonical in installed:
        raise ScaffoldError(f"a project named {canonical!r} is already installed here; choose another name")


def canonical_name(name: str) -> str:
    """A project name as pip compares them (the normalization of PEP 503: runs of -_. are one -)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def check_table(table: str) -> None:
    """Refuse a table name DynamoDB wouldn't accept."""
    if not TABLE_NAME.match(table):
        raise ScaffoldError(f"{table!r} is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)")


def resource_types(fhir_version: str) -> list[str]:
    """The resource types of ``fhir_version`` (names of the fhir.resources modules, best effort)."""
    package = importlib.import_module(MODEL_PACKAGES[fhir_version])
    return sorted(module.name for module in pkgutil.iter_modules(package.__path__) if not module.ispkg)


def check_resource(resource_type: str, fhir_version: str) -> None:
    """Refuse a TYPE that is not a resource of ``fhir_version``, suggesting the nearest ones."""
    if fhir_version not in FHIR_VERSIONS:
        raise ScaffoldError(f"unknown FHIR version {fhir_version!r} (known: {', '.join(FHIR_VERSIONS)})")
    if resource_type in ABSTRACT_RESOURCES:
        raise ScaffoldError(
            f"{resource_type!r} is an abstract FHIR type (no resource is one): choose a concrete resource type"
        )
    try:
        model_class(resource_type, fhir_version)
    except PluginError:
        near = difflib.get_close_matches(resource_type.lower(), resource_types(fhir_version), n=3)
        hint = ""
        if near:
            names = []
            for module in near:
                try:
                    names.append(model_class(_class_name(module, fhir_version), fhir_version).__name__)
                except PluginError:
                    continue
            hint = f" (did you mean {', '.join(names)}?)" if names else ""
        raise ScaffoldError(f"{resource_type!r} is not a FHIR {fhir_version} resource type{hint}") from None


def check_not_registered(entry_point: str, table: str) -> None:
    """Refuse an entry-point name or a table an installed plugin already has: the registry
    would refuse the second plugin at every cold start."""
    from fhirpipes.plugins import entry_points, load_registry

    installed = [ep.name for ep in entry_points()]
    if entry_point in installed:
        raise ScaffoldError(
            f"an installed plugin already has the entry-point name {entry_point!r}; choose another name"
        )
    if not installed:
        return
    try:
        registry = load_registry(only=installed)  # all of them, whatever FHIRPIPES_PLUGINS says
    except FhirpipesError as exc:  # a broken plugin: its own error says which
        raise ScaffoldError(f"can't check the installed plugins' tables: {exc}") from exc
    for info in registry.plugins:
        if any(mapper.table == table for mapper in info.mappers):
            raise ScaffoldError(
                f"the installed plugin {info.name!r} already maps table {table!r}; two mappers "
                "of one table each need a match (see Mapper.match)"
            )


def _class_name(module: str, fhir_version: str) -> str:
    loaded = importlib.import_module(f"{MODEL_PACKAGES[fhir_version]}.{module}")
    for name in dir(loaded):
        if name.lower() == module:
            return name
    return module


def plan(name: str, table: str, resource_type: str, *, fhir_version: str = "R4B", key: str = "id") -> Plan:
    """Check the arguments and work out the project (raises `ScaffoldError` with the reason)."""
    check_package_name(name)
    check_table(table)
    check_resource(resource_type, fhir_version)
    if not key.isidentifier():
        raise ScaffoldError(f"{key!r}: the key attribute must be a plain name")
    entry_point = name.removeprefix("fhirpipes_") or name
    check_not_registered(entry_point, table)
    elements, unfilled = required_elements(resource_type, fhir_version)
    return Plan(
        package=name,
        entry_point=entry_point,
        distribution=name.replace("_", "-"),
        table=table,
        key=key,
        resource_type=resource_type,
        fhir_version=fhir_version,
        elements=tuple(elements),
        unfilled=tuple(unfilled),
    )


def required_elements(resource_type: str, fhir_version: str) -> tuple[list[Element], list[str]]:
    """The resource's required elements with their template text; and the ones it can't fill."""
    cls = model_class(resource_type, fhir_version)
    elements: list[Element] = []
    unfilled: list[str] = []
    choices: dict[str, bool] = {}  # required choice elements (value[x]): group -> filled yet
    for field, info in cls.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        key = info.alias or field
        group = str(extra.get("one_of_many") or "")
        if group and extra.get("one_of_many_required"):
            if choices.get(group):
                continue
            element = _element(key, info.annotation, extra)
            choices[group] = element is not None
            if element is not None:
                elements.append(element)
            continue
        if not (info.is_required() or extra.get("element_required")):
            continue
        element = _element(key, info.annotation, extra)
        if element is None:
            unfilled.append(key)
        else:
            elements.append(element)
    unfilled += [f"{group}[x]" for group, filled in choices.items() if not filled]
    return elements, unfilled


def _type_text(annotation: Any) -> tuple[str, bool]:
    """(a name for the FHIR type, is it a list) from a fhir.resources field annotation."""
    text = repr(annotation)
    is_list = "List[" in text or typing.get_origin(annotation) is list
    for marker, fhir_type in (
        ("CodeableReferenceType", "CodeableReference"),
        ("CodeableConceptType", "CodeableConcept"),
        ("CodingType", "Coding"),
        ("ReferenceType", "Reference"),
        ("PeriodType", "Period"),
        ("MoneyType", "Money"),
        ("AttachmentType", "Attachment"),
        ("IdentifierType", "Identifier"),
        ("Code()", "code"),
        ("DateTime()", "dateTime"),
        ("Instant()", "instant"),
        ("Date()", "date"),
        ("Canonical()", "canonical"),
        ("Uri()", "uri"),
        ("Url", "uri"),
        ("Id()", "id"),
        ("String()", "string"),
        ("Markdown()", "string"),
        ("Integer", "integer"),
        ("PositiveInt", "integer"),
        ("UnsignedInt", "integer"),
        ("Decimal", "decimal"),
        ("bool", "boolean"),
    ):
        if marker in text:
            return fhir_type, is_list
    return "", is_list


def _element(key: str, annotation: Any, extra: dict[str, Any]) -> Element | None:
    fhir_type, is_list = _type_text(annotation)
    attribute = key
    sample: Any = "example"
    dynamodb = "S"
    if fhir_type == "code" and extra.get("enum_values"):
        codes = [code for code in extra["enum_values"] if code != "+"]
        value = f"{{{{ new.{attribute} | default({json.dumps(codes[0])}) }}}}"
        sample, required = codes[0], False
    elif fhir_type in ("code", "string", "id"):
        value, required = f"{{{{ new.{attribute} }}}}", True
        sample = "example-1" if fhir_type == "id" else "example"
    elif fhir_type in ("uri", "canonical"):
        value, required, sample = f"{{{{ new.{attribute} }}}}", True, "urn:example:1"
    elif fhir_type in ("dateTime", "instant"):
        value, required, sample = (
            f"{{{{ new.{attribute} | fhir_datetime }}}}",
            True,
            "2024-01-15T09:30:00+00:00",
        )
    elif fhir_type == "date":
        value, required, sample = f"{{{{ new.{attribute} | fhir_date }}}}", True, "2024-01-15"
    elif fhir_type == "boolean":
        value, required, sample, dynamodb = f"{{{{ new.{attribute} | default(true) }}}}", False, True, "BOOL"
    elif fhir_type in ("integer", "decimal"):
        value, required, sample, dynamodb = f"{{{{ new.{attribute} }}}}", True, 1, "N"
    elif fhir_type == "CodeableConcept":
        system = f"urn:example:{key}"
        value = f'{{"coding": [{{"system": "{system}", "code": {{{{ new.{attribute} }}}}}}]}}'
        required = True
    elif fhir_type == "CodeableReference":
        system = f"urn:example:{key}"
        value = f'{{"concept": {{"coding": [{{"system": "{system}", "code": {{{{ new.{attribute} }}}}}}]}}}}'
        required = True
    elif fhir_type == "Coding":
        value = f'{{"system": "urn:example:{key}", "code": {{{{ new.{attribute} }}}}}}'
        required = True
    elif fhir_type == "Reference":
        targets = [t for t in extra.get("enum_reference_types", []) if t != "Resource"] or ["Patient"]
        value = f'{{"reference": {{{{ "{targets[0]}/" ~ new.{attribute} }}}}}}'
        required, sample = True, "example-1"
    elif fhir_type == "Period":
        value = f'{{"start": {{{{ new.{attribute} | fhir_datetime }}}}}}'
        required, sample = True, "2024-01-15T09:30:00+00:00"
    elif fhir_type == "Money":
        value = f'{{"value": {{{{ new.{attribute} }}}}, "currency": "USD"}}'
        required, sample, dynamodb = True, 12.5, "N"
    elif fhir_type == "Identifier":
        value = f'{{"system": "urn:example:{key}", "value": {{{{ new.{attribute} }}}}}}'
        required = True
    elif fhir_type == "Attachment":
        value, required = f'{{"title": {{{{ new.{attribute} }}}}}}', True
    else:
        return None
    if is_list:
        value = f"[{value}]"
    return Element(key, value, attribute, sample, dynamodb, required)


def render_template(plan: Plan) -> str:
    """The resource template: resourceType, id from the key, the required elements."""
    lines = [
        f"{{#- FHIR {plan.fhir_version} {plan.resource_type} from a {plan.table} item "
        "(the item shape is in the README).",
        "    Every {{ expression }} renders as a JSON value; empty values and nulls are pruned.",
        "    A required attribute is read as new.x (a missing one is a record error naming this line);",
        "    an optional one as new.x | default(none). Filters: fhir_date, fhir_datetime, fhir_gender,",
        "    code_map, uuid5. Add elements below; `fhirpipes conformance` checks the result. -#}",
        "{",
        f'  "resourceType": "{plan.resource_type}",',
        f'  "id": {{{{ keys.{plan.key} }}}}' + ("," if plan.elements or plan.unfilled else ""),
    ]
    entries = [f'  "{element.key}": {element.template}' for element in plan.elements]
    entries += [
        f'  "{key}": null' for key in plan.unfilled
    ]  # TODO: fill in by hand (see `fhirpipes new` output)
    lines += [entry + ("," if index < len(entries) - 1 else "") for index, entry in enumerate(entries)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def samples(plan: Plan) -> list[dict[str, Any]]:
    """Sample items: a full one and, when some attributes are optional, a minimal one."""
    prefix = plan.resource_type.lower()
    full: dict[str, Any] = {plan.key: f"{prefix}-0001"}
    minimal: dict[str, Any] = {plan.key: f"{prefix}-0002"}
    for element in plan.elements:
        if element.attribute is None:
            continue
        full[element.attribute] = element.sample
        if element.required:
            minimal[element.attribute] = element.sample
    return [full, minimal] if minimal.keys() != full.keys() else [full]


def attribute_rows(plan: Plan) -> str:
    rows = [f"| `{plan.key}` | S (partition key) | yes | `{plan.resource_type}.id` |"]
    for element in plan.elements:
        if element.attribute is not None:
            required = "yes" if element.required else "no"
            rows.append(
                f"| `{element.attribute}` | {element.dynamodb_type} | {required} | "
                f"`{plan.resource_type}.{element.key}` |"
            )
    return "\n".join(rows)


def write(plan: Plan, directory: Path) -> list[Path]:
    """Write the project into ``directory`` (which must not exist, or be empty); returns the files."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ScaffoldError(f"{directory} exists and is not an empty directory; choose another --dir")
    from fhirpipes import __version__

    values = {
        "package": plan.package,
        "entry_point": plan.entry_point,
        "distribution": plan.distribution,
        "table": plan.table,
        "key": plan.key,
        "resource_type": plan.resource_type,
        "fhir_version": plan.fhir_version,
        "template": plan.template_name,
        "fhirpipes_version": __version__,
        "attribute_rows": attribute_rows(plan),
    }
    source = directory / "src" / plan.package
    contents = {
        directory / "pyproject.toml": _fill("pyproject.toml.tmpl", values),
        directory / "README.md": _fill("README.md.tmpl", values),
        source / "__init__.py": _fill("mapper.py.tmpl", values),
        source / "py.typed": "",
        source / plan.template_name: render_template(plan),
        source / "samples.json": json.dumps(samples(plan), indent=2) + "\n",
        directory / "tests" / f"test_{plan.package}.py": _fill("test_plugin.py.tmpl", values),
    }
    for path, text in contents.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(contents)


def _fill(name: str, values: dict[str, str]) -> str:
    text = files("fhirpipes.scaffold").joinpath("files", name).read_text(encoding="utf-8")
    return string.Template(text).substitute(values)

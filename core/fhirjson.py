"""The JSON value of a validated fhir.resources model, fast, with the FHIR rules fhir.resources skips.

It returns exactly what ``json.loads(model.model_dump_json())`` would (a differential test keeps
it so: element order, ``resourceType`` first, primitive extensions, decimals as int/float as
fhir.resources writes them), at a fraction of the cost: fhir.resources serialises through a
Python wrap-serializer per element, which is 43% of a naive mapper's time.

fhir.resources does not check required value-set bindings (it accepts gender "banana"), so the walk
also checks every required binding of the classes it walks, as generated from the official FHIR
definitions (`fhirpipes.bindings`, loaded per model module on first use). It also holds every primitive to
its datatype's regex, length and range and refuses control characters (`fhirpipes.primitives`), and checks
the error-severity invariants of the common datatypes (`fhirpipes.invariants`): fhir_core's own checks are
looser (ids of 255 characters, codes with tabs, uris with spaces) and it evaluates no invariant.

The FHIR type of each element comes from fhir_core's field annotation (``Annotated[str, Code()]``: the
marker's ``__visit_name__``; a bare ``bool``/``int``/``str`` by fhir_core's own table), found once per
model class, as everything else in `_plan`.
"""

from __future__ import annotations

import base64
import functools
import typing
import uuid
from decimal import Decimal
from typing import Any

from fhir_core.constraints import FHIR_PRIMITIVES_MAPS
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.utils import is_primitive_type
from pydantic_core import to_jsonable_python

from fhirpipes.bindings import Allowed, required_bindings
from fhirpipes.errors import ErrorCode
from fhirpipes.fhirversion import VERSION_OF_PACKAGE
from fhirpipes.invariants import Invariant, invariants
from fhirpipes.primitives import CONTROL_RULE, Check, checker

_Element = tuple[str, str, bool, "tuple[str, str] | None", "Allowed | None", "Check | None"]
"""(JSON key, model field, is primitive, (extension field, its JSON key) or None, required binding,
the check of its FHIR primitive type)."""


class ElementError(ValueError):
    """An element breaks a FHIR rule; ``path`` is its FHIR path below the resource, ``code`` an ErrorCode.

    The message names the rule, never the value.
    """

    code: str = ErrorCode.INVALID_RESOURCE

    def __init__(self, path: list[str], message: str) -> None:
        self.segments = path
        super().__init__(message)

    @property
    def path(self) -> str:
        return "".join(self.segments).lstrip(".")


class ValueSetError(ElementError):
    """A coded element holds a code outside its required value set."""

    code = ErrorCode.INVALID_CODE

    def __init__(self, path: list[str], element: str, allowed: Allowed) -> None:
        self.element = element
        self.allowed = allowed
        super().__init__(path, f"not a code of the required value set ({_describe(allowed)})")


class PrimitiveError(ElementError):
    """A primitive breaks its datatype's regex, length or range, or holds a control character."""

    def __init__(self, path: list[str], rule: str) -> None:
        self.rule = rule
        if rule == CONTROL_RULE:
            self.code = ErrorCode.CONTROL_CHARACTER
        super().__init__(path, rule)


class InvariantError(ElementError):
    """An element breaks an error-severity invariant of its datatype; ``key`` is the invariant's."""

    def __init__(self, path: list[str], key: str, human: str) -> None:
        self.key = key
        super().__init__(path, f"breaks FHIR invariant {key}: {human}")


_ELE_1 = "All FHIR elements must have a @value or children"


def fhir_type(annotation: Any) -> str | None:
    """The FHIR primitive type of a fhir_core field annotation (None for a complex type)."""
    if typing.get_origin(annotation) is typing.Annotated:
        for marker in annotation.__metadata__:
            name = getattr(marker, "__visit_name__", None)
            if isinstance(name, str):
                return name
    if typing.get_origin(annotation) is None:
        found = FHIR_PRIMITIVES_MAPS.get(annotation)
        return found if isinstance(found, str) else None
    for argument in typing.get_args(annotation):
        found = fhir_type(argument)
        if found is not None:
            return found
    return None


@functools.cache
def _plan(
    cls: type[FHIRAbstractModel],
) -> tuple[bool, tuple[_Element, ...], tuple[Invariant, ...] | None]:
    """Per model class: is it a resource, its elements in FHIR order with their required bindings and
    primitive checks, and the invariants of its datatype (None: no ele-1 either, for a resource and for
    a primitive's ``_element``, whose emptiness the walk already drops)."""
    fields = cls.model_fields
    aliases = cls.get_alias_mapping()
    bindings = required_bindings(cls)
    version = VERSION_OF_PACKAGE.get(cls.__module__.rpartition(".")[0], "")
    elements: list[_Element] = []
    for element in cls.elements_sequence():
        field = aliases[element]
        info = fields[field]
        ext_field = f"{field}__ext"
        extension = (ext_field, fields[ext_field].alias or ext_field) if ext_field in fields else None
        key = info.alias or field
        primitive = is_primitive_type(info)
        kind = fhir_type(info.annotation) if primitive else None
        check = checker(kind, version) if kind is not None else None
        elements.append((key, field, primitive, extension, bindings.get(key), check))
    is_resource = cls.has_resource_base()
    rules = (
        None if is_resource or cls.__name__ == "FHIRPrimitiveExtension" else invariants(cls.__name__, version)
    )
    return is_resource, tuple(elements), rules


def to_json_value(model: FHIRAbstractModel) -> dict[str, Any]:
    """The JSON value fhir.resources would write for ``model``; raises an `ElementError`."""
    is_resource, elements, rules = _plan(type(model))
    values = model.__dict__
    out: dict[str, Any] = {}
    if is_resource:
        out["resourceType"] = model.__resource_type__
    for key, field, primitive, extension_field, allowed, check in elements:
        value = values.get(field)
        if value is not None:
            if primitive:
                value = _primitive(value)
                if check is not None:
                    if type(value) is list:
                        _check_items(key, value, check)
                    else:
                        rule = check(value)
                        if rule is not None:
                            raise PrimitiveError([f".{key}"], rule)
            else:
                try:
                    value = _complex(value)
                except ElementError as exc:
                    exc.segments.insert(0, f".{key}")
                    raise
            if allowed is not None:
                _check(key, value, allowed)
            if not (isinstance(value, list) and not value):
                out[key] = value
        if extension_field is not None:
            # A primitive's extensions and id travel beside it as "_element", as fhir.resources writes them.
            ext_field, ext_key = extension_field
            extension = values.get(ext_field)
            if extension is not None:
                extension = _complex(extension)
                if extension:
                    out[ext_key] = extension
    comments = values.get("fhir_comments")
    if comments is not None:
        out["fhir_comments"] = comments
    if rules is not None:
        if not out:
            raise InvariantError([], "ele-1", _ELE_1)
        for invariant_key, human, broken in rules:
            if broken(out):
                raise InvariantError([], invariant_key, human)
    return out


def _check_items(key: str, values: list[Any], check: Check) -> None:
    for index, item in enumerate(values):
        if item is not None:
            rule = check(item)
            if rule is not None:
                raise PrimitiveError([f".{key}", f"[{index}]"], rule)


def _check(key: str, value: Any, allowed: Allowed) -> None:
    """Raise `ValueSetError` unless ``value`` (a code, Coding or CodeableConcept, or a list) is allowed."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not _allows(allowed, item):
                raise ValueSetError([f".{key}", f"[{index}]"], key, allowed)
    elif not _allows(allowed, value):
        raise ValueSetError([f".{key}"], key, allowed)


def _allows(allowed: Allowed, value: Any) -> bool:
    if isinstance(allowed, frozenset):
        return value in allowed
    # A Coding must be one of the value set's; a CodeableConcept must carry at least one such Coding.
    codings = [value] if "code" in value and "coding" not in value else value.get("coding", [])
    return any(coding.get("code") in allowed.get(coding.get("system"), ()) for coding in codings)


def _describe(allowed: Allowed) -> str:
    codes = (
        sorted(allowed) if isinstance(allowed, frozenset) else sorted(c for v in allowed.values() for c in v)
    )
    systems = "" if isinstance(allowed, frozenset) else f" of {', '.join(sorted(allowed))}"
    return ", ".join(codes) + systems if len(codes) <= 12 else f"{len(codes)} codes{systems}"


def _complex(value: Any) -> Any:
    if isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_complex(item))
            except ElementError as exc:
                exc.segments.insert(0, f"[{index}]")
                raise
        return items
    if isinstance(value, FHIRAbstractModel):
        return to_json_value(value)
    return to_jsonable_python(value)


def _primitive(value: Any) -> Any:
    # The branches of fhir_core's FHIRAbstractModel._serialize_primitive_value, then pydantic's JSON mode.
    kind = type(value)
    if kind is str or kind is bool or kind is int:
        return value
    if isinstance(value, list):
        return [_primitive(item) for item in value]
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        if (
            value.is_finite()
            and value == value.to_integral_value()
            and isinstance(exponent, int)
            and exponent >= 0
        ):
            return int(value)
        return float(value)
    if isinstance(value, uuid.UUID):
        return f"urn:uuid:{value}"
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return to_jsonable_python(value)

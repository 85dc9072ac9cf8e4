"""From a template's value to one validated FHIR resource: identify, validate, serialise, stamp.

fhir.resources models are imported lazily, one module per resource type, on first use: the
package is large and a Lambda pays at cold start for every import (see the README's figures).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fhirpipes import engine
from fhirpipes.conversions import uuid5
from fhirpipes.engine.runtime import Limits
from fhirpipes.engine.values import to_json
from fhirpipes.errors import ErrorCode, InvalidResourceError, PluginError
from fhirpipes.fhirversion import MODEL_PACKAGES as MODEL_PACKAGES
from fhirpipes.fhirversion import model_folder
from fhirpipes.mapper import VERSION_EXTENSION, Mapper
from fhirpipes.records import StreamRecord

if TYPE_CHECKING:
    from fhir_core.fhirabstractmodel import FHIRAbstractModel

LINEAGE_TAG_SYSTEM = "urn:fhirpipes:source-table"
"""``meta.tag`` system naming the source table; ``meta.source`` is ``<stream ARN>#<sequence number>``."""


@functools.cache
def model_class(resource_type: str, fhir_version: str) -> type[FHIRAbstractModel]:
    """The fhir.resources model of ``resource_type`` in ``fhir_version``; `PluginError` if there is none."""
    package = MODEL_PACKAGES.get(fhir_version)
    if package is None:
        raise PluginError(f"unknown FHIR version {fhir_version!r} (known: {', '.join(MODEL_PACKAGES)})")
    try:
        module = importlib.import_module(f"{package}.{resource_type.lower()}")
        cls = getattr(module, resource_type)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"{resource_type} is not a FHIR {fhir_version} resource type") from exc
    if not (isinstance(cls, type) and getattr(cls, "has_resource_base", lambda: False)()):
        raise PluginError(f"{resource_type} is not a FHIR {fhir_version} resource type")
    return cls


def has_resource_type(resource_type: str, fhir_version: str) -> bool:
    """Whether fhir.resources has a model for ``resource_type`` in ``fhir_version``, without importing
    it (the models cost a cold start ~100 ms): a look for its module file."""
    package = MODEL_PACKAGES.get(fhir_version)
    if package is None or not resource_type.isidentifier():
        return False
    spec = importlib.util.find_spec("fhir.resources")  # imports only the namespace package "fhir"
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(
        Path(location, model_folder(fhir_version), f"{resource_type.lower()}.py").is_file()
        for location in spec.submodule_search_locations
    )


def default_id(table: str, keys: Mapping[str, Any]) -> str:
    """The deterministic id of an item: UUIDv5 of its table and keys (INSERT, MODIFY, REMOVE agree)."""
    return uuid5(table, to_json(dict(sorted(keys.items()))))


def resource_id(record: StreamRecord, value: Mapping[str, Any]) -> Any:
    """The one rule for a resource's id, for PUT and DELETE alike: the template's, else `default_id`."""
    return value["id"] if "id" in value else default_id(record.table, record.keys)


def base_context(mapper: Mapper, record: StreamRecord, pipe: Mapping[str, Any]) -> dict[str, Any]:
    """The variables a template sees, but ``new`` (the README's "Mapper and template reference").

    The mapper's ``context`` hook runs here, once per record, even when a MODIFY renders both images.
    """
    context: dict[str, Any] = {
        "old": record.old,
        "keys": record.keys,
        "event_name": record.event_name,
        "table": record.table,
        "record": record.raw,
        "pipe": pipe,
        "ttl_delete": record.is_ttl_delete,
    }
    if mapper.context is not None:
        # A RecordError from the hook is this record's fault; anything else (a lookup timing
        # out) propagates and fails the batch, so Pipes retries it.
        context.update(mapper.context(record))
    return context


def resource_value(
    mapper: Mapper, context: Mapping[str, Any], image: Mapping[str, Any] | None, limits: Limits | None = None
) -> dict[str, Any]:
    """The template's value for ``image`` (as ``new``): the resource before validation, pruned."""
    template = engine.load(mapper.template_package, mapper.template)
    resource = template.render({**context, "new": image}, limits)
    if not isinstance(resource, dict):
        raise InvalidResourceError(
            "the template did not render a JSON object",
            template=mapper.template,
            code=ErrorCode.NOT_AN_OBJECT,
        )
    if resource.get("resourceType") != mapper.resource_type:
        raise InvalidResourceError(
            f"the template must render resourceType {mapper.resource_type!r}",
            template=mapper.template,
            path="resourceType",
            code=ErrorCode.WRONG_RESOURCE_TYPE,
        )
    return resource


def finish(
    mapper: Mapper, record: StreamRecord, value: Mapping[str, Any], image: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The validated resource of a template's value, with its id and lineage (``value`` is not changed);
    ``image`` is the item whose `Mapper.version_attribute` gives the source version (default ``new``)."""
    resource = dict(value) if "id" in value else {**value, "id": default_id(record.table, record.keys)}
    return stamp_lineage(validate(mapper, resource), record, source_version(mapper, record, image))


def source_version(
    mapper: Mapper, record: StreamRecord, image: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The ``meta.extension`` carrying the item's declared version, or None (no attribute declared or held)."""
    attribute = mapper.version_attribute
    if attribute is None:
        return None
    item = image if image is not None else (record.new if record.new is not None else record.old)
    where = "dynamodb.OldImage" if item is record.old and item is not record.new else "dynamodb.NewImage"
    found = None if item is None else item.get(attribute)
    if found is None:
        return None
    if isinstance(found, Decimal) and found.is_finite():
        # valueDecimal, not valueInteger: a version in milliseconds is beyond FHIR's 32-bit integer.
        number = int(found) if found == found.to_integral_value() else float(found)
        return {"url": VERSION_EXTENSION, "valueDecimal": number}
    if isinstance(found, str) and found.strip():
        return {"url": VERSION_EXTENSION, "valueString": found}
    raise InvalidResourceError(
        f"the version attribute {attribute!r} must hold a number or a string",
        path=f"{where}.{attribute}",
        code=ErrorCode.INVALID_RESOURCE,
    )


def stamp_lineage(
    entity: dict[str, Any], record: StreamRecord, version: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Record in ``meta`` which table and stream change the validated resource comes from.

    Done after validation, on the JSON value: a uri and a Coding of fixed shape can't make a
    resource invalid, and validating them per record would cost a Meta and a Coding model.
    ``meta`` keeps its FHIR place, right after ``id``. ``version``: the `source_version` extension.
    """
    tag = {"system": LINEAGE_TAG_SYSTEM, "code": record.table}
    source = f"{record.source_arn}#{record.sequence_number}" if record.sequence_number else None
    template_meta = entity.get("meta")
    if template_meta is None:  # the common case: nothing to merge
        meta: dict[str, Any] = {"source": source, "tag": [tag]} if source else {"tag": [tag]}
    else:
        merged = dict(template_meta, tag=[*template_meta.get("tag", []), tag])
        if source:
            merged["source"] = source
        meta = _meta_in_order(merged)
    if version is not None:  # a valid Extension of fixed shape, as the tag
        meta = _meta_in_order({**meta, "extension": [*meta.get("extension", []), version]})
    ordered = {"resourceType": entity["resourceType"], "id": entity["id"], "meta": meta}
    ordered.update((key, value) for key, value in entity.items() if key not in ordered)
    return ordered


_META_ORDER = ("id", "extension", "versionId", "lastUpdated", "source", "profile", "security", "tag")


def _meta_in_order(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        key: meta[key] for key in sorted(meta, key=lambda k: _META_ORDER.index(k) if k in _META_ORDER else 99)
    }


def validate(mapper: Mapper, resource: dict[str, Any]) -> dict[str, Any]:
    """Validate with fhir.resources, then FHIR's required value sets, primitive rules and datatype
    invariants (`fhirpipes.fhirjson`); return the model's JSON value."""
    cls = model_class(mapper.resource_type, mapper.fhir_version)
    try:
        entity: dict[str, Any] = _validation_machinery()[2](cls.model_validate(resource))
        return entity
    except Exception as exc:
        error = _invalid(mapper, exc)
    # Raised outside the except block: the error has no cause or context, whose text (pydantic's
    # above all) would quote the input (PHI).
    raise error


def _invalid(mapper: Mapper, exc: Exception) -> InvalidResourceError:
    ValidationError, ElementError, _ = _validation_machinery()
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        path = _fhir_path(mapper.resource_type, first["loc"])
        # pydantic's messages for built-in checks don't quote the input; custom ones may, so withhold those.
        message = first["msg"] if first["type"] not in ("value_error", "assertion_error") else first["type"]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return InvalidResourceError(
            f"not a valid FHIR {mapper.fhir_version} {mapper.resource_type}: {message}{more}",
            path=path,
            template=mapper.template,
        )
    if isinstance(exc, ElementError):  # a value set, primitive or invariant rule: the message names it
        return InvalidResourceError(
            f"{exc}",
            path=f"{mapper.resource_type}{'.' if exc.path else ''}{exc.path}",
            template=mapper.template,
            code=exc.code,
        )
    # Anything else here is about this resource, not a passing fault: retrying the batch
    # would block the shard behind a record that can never pass.
    return InvalidResourceError(
        f"the resource could not be validated ({type(exc).__name__})", template=mapper.template
    )


@functools.cache
def _validation_machinery() -> tuple[Any, Any, Any]:
    # Imported on first use, once: pydantic resolves names lazily, so a per-call import costs ~10 us.
    from pydantic import ValidationError

    from fhirpipes.fhirjson import ElementError, to_json_value

    return ValidationError, ElementError, to_json_value


def _fhir_path(resource_type: str, loc: tuple[Any, ...]) -> str:
    path = resource_type
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path

"""`Mapper`: what a plugin registers for one source table.

A mapper is plain frozen data, not a base class: the table it maps, the FHIR resource it
produces, the Jinja template that produces it, and a few optional parts (a `match` for
single-table designs, a `context` hook for lookups, a delete policy, the Pipe it needs).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args, overload

from fhirpipes.errors import PluginError
from fhirpipes.fhirversion import FHIR_VERSIONS as FHIR_VERSIONS
from fhirpipes.fhirversion import FhirVersion as FhirVersion

if TYPE_CHECKING:
    from fhirpipes.records import StreamRecord

DeletePolicy = Literal["delete", "ignore", "soft-delete"]
DELETE_POLICIES: tuple[str, ...] = get_args(DeletePolicy)

StartingPosition = Literal["TRIM_HORIZON", "LATEST"]
STARTING_POSITIONS: tuple[str, ...] = get_args(StartingPosition)
"""Where a Pipe starts reading a stream's shards (the local runner reads the same)."""

ContextHook = Callable[["StreamRecord"], Mapping[str, Any]]
"""Returns extra template variables for one record (e.g. the result of a lookup)."""

MatchHook = Callable[["StreamRecord"], bool]
"""Says whether this mapper takes a record of its table (single-table designs)."""


VERSION_EXTENSION = "urn:fhirpipes:source-version"
"""``meta.extension`` url of the version an item declares (`Mapper.version_attribute`); the FHIR store
sink orders a resource's states by it before their stream position."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class KeyPrefix:
    """A `match` for single-table designs: the key ``attribute`` is a string starting with ``prefix``.

    Unlike an arbitrary callable, it can also be expressed as a Pipe filter, so the declared
    filter of the mapper's Pipe includes it and the Pipe never invokes the Lambda for other items.
    """

    attribute: str
    prefix: str

    def __call__(self, record: StreamRecord) -> bool:
        value = record.keys.get(self.attribute)
        return isinstance(value, str) and value.startswith(self.prefix)

    def filter_pattern(self) -> dict[str, Any]:
        """The EventBridge pattern fragment that selects the same records."""
        return {"dynamodb": {"Keys": {self.attribute: {"S": [{"prefix": self.prefix}]}}}}


@dataclasses.dataclass(frozen=True)
class SampleFile(Sequence[Mapping[str, Any]]):
    """Sample items kept as package data (a JSON array of plain items), read on first use.

    ``Mapper(samples=SampleFile(__name__))`` ships ``samples.json`` beside the plugin's module;
    the conformance kit reads it, the Lambda's cold start never does.
    """

    package: str
    name: str = "samples.json"

    def _items(self) -> tuple[Mapping[str, Any], ...]:
        return _read_samples(self.package, self.name)

    @overload
    def __getitem__(self, index: int) -> Mapping[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Mapping[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> Mapping[str, Any] | Sequence[Mapping[str, Any]]:
        return self._items()[index]

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(self._items())


@functools.cache
def _read_samples(package: str, name: str) -> tuple[Mapping[str, Any], ...]:
    from importlib.resources import files

    try:
        items = json.loads(files(package).joinpath(name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PluginError(f"sample items {name!r} of package {package!r} can't be read: {exc}") from exc
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise PluginError(f"sample items {name!r} of package {package!r} must be a JSON array of objects")
    return tuple(items)


MAX_BATCH_SIZE = 10_000
"""A Pipe's largest batch from a DynamoDB stream source."""
MAX_BATCHING_WINDOW_SECONDS = 300
"""A Pipe's longest batching window."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PipeSpec:
    """What the mapper's EventBridge Pipe needs: one source of truth for the local runner and CloudFormation.

    ``filters`` are EventBridge event patterns (a record passes when any matches); ``None`` means
    the default derived by `Mapper.pipe_filters`: INSERT and MODIFY, plus REMOVE unless deletes
    are ignored, narrowed by a `KeyPrefix` match.
    """

    filters: tuple[Mapping[str, Any], ...] | None = None
    batch_size: int = 10
    batching_window_seconds: int = 0
    starting_position: StartingPosition = "TRIM_HORIZON"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Mapper:
    """Maps the items of one DynamoDB table (or one item type in it, with ``match``) to a FHIR resource.

    Args:
        table: source table name, as in the stream ARN (``.../table/<table>/stream/...``).
        resource_type: the FHIR resource type produced, e.g. ``"Patient"``.
        template: Jinja template name, looked up in ``template_package`` then in the shared
            ``fhirpipes.templates`` (where the macros live).
        template_package: the import package holding the template as package data.
        fhir_version: ``"R4B"`` (default; HealthLake speaks R4) or ``"R5"``.
        match: for single-table designs, which records of ``table`` this mapper takes.
        context: hook adding variables to the template context (lookups).
        on_delete: REMOVE gives a ``DELETE`` command (``"delete"``), nothing (``"ignore"``), or a
            ``PUT`` of the old image with ``active: false`` (``"soft-delete"``).
        skip_unchanged: a MODIFY whose old and new images render to the same resource yields nothing.
        source: the envelope's ``source`` (default ``"<ResourceType>Table"``, as the original).
        pipe: what the mapper's Pipe needs (filters, batch size, starting position).
        samples: sample items (plain items, as the table holds them) the conformance kit maps;
            `SampleFile` keeps them as package data, read only when the kit asks.
        version_attribute: an item attribute whose value orders the item's states (a number such
            as ``version``, or ISO text such as ``updatedAt``): stamped in ``meta.extension``
            (``urn:fhirpipes:source-version``), the FHIR store sink compares it before the stream
            position, so a backfill or a second stream can't roll a resource back either.
    """

    table: str
    resource_type: str
    template: str
    template_package: str = "fhirpipes.templates"
    fhir_version: FhirVersion = "R4B"
    match: MatchHook | None = None
    context: ContextHook | None = None
    on_delete: DeletePolicy = "delete"
    skip_unchanged: bool = True
    source: str | None = None
    pipe: PipeSpec = dataclasses.field(default_factory=PipeSpec)
    samples: Sequence[Mapping[str, Any]] = ()
    version_attribute: str | None = None

    def __post_init__(self) -> None:
        if not self.table or not isinstance(self.table, str):
            raise PluginError("Mapper.table must be a non-empty string")
        if not self.resource_type[:1].isupper() or not self.resource_type.isalnum():
            raise PluginError(f"Mapper for table {self.table!r}: resource_type must be a FHIR resource name")
        if self.fhir_version not in FHIR_VERSIONS:
            raise PluginError(
                f"Mapper for table {self.table!r}: fhir_version must be one of {', '.join(FHIR_VERSIONS)}"
            )
        if self.on_delete not in DELETE_POLICIES:
            raise PluginError(
                f"Mapper for table {self.table!r}: on_delete must be one of {', '.join(DELETE_POLICIES)}"
            )

    @property
    def envelope_source(self) -> str:
        """The envelope's ``source``: ``PatientTable`` for Patient, as in the original implementation."""
        return self.source or f"{self.resource_type}Table"

    @property
    def name(self) -> str:
        """A readable name for messages and listings: the table, plus the match if any."""
        if isinstance(self.match, KeyPrefix):
            return f"{self.table}[{self.match.attribute}^={self.match.prefix}]"
        return self.table if self.match is None else f"{self.table}[match]"

    def pipe_filters(self) -> list[dict[str, Any]]:
        """The EventBridge filter patterns of this mapper's Pipe (declared, or the default)."""
        if self.pipe.filters is not None:
            return [dict(pattern) for pattern in self.pipe.filters]
        events = ["INSERT", "MODIFY"] if self.on_delete == "ignore" else ["INSERT", "MODIFY", "REMOVE"]
        pattern: dict[str, Any] = {"eventName": events}
        if isinstance(self.match, KeyPrefix):
            pattern.update(self.match.filter_pattern())
        return [pattern]

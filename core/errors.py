"""The exceptions fhirpipes raises.

::

    FhirpipesError
    ├── PluginError               startup: bad or duplicate registration, misspelled hook, no mappers
    ├── ConfigurationError        startup: an environment variable with a value we can't use
    ├── BatchError                the whole batch: unreadable event, response too large for Pipes
    ├── DeployError               `fhirpipes package` / `template` can't build what was asked
    ├── fhirpipes.pipes: DeliveryError (a target refused a batch after retries),
    │   EnrichmentError (the local runner's enrichment kept failing)
    └── RecordError               one record; carries event_id, table, sequence_number; never a value
        ├── MalformedRecordError  not a stream record, bad AttributeValue JSON, ARN without a table
        ├── UnknownTableError     no mapper for the record's table (or no / several `match`es)
        ├── RenderError           the template failed; names the template and line
        └── InvalidResourceError  the rendered resource is not valid FHIR; names the FHIR path

A message names *where* something went wrong, never *what* the record held: records carry
PHI, and messages end up in logs, CLI output and error events. Callers always ``raise ... from``.
"""

from __future__ import annotations

from typing import Any


class FhirpipesError(Exception):
    """Base class of every error fhirpipes raises on purpose."""


class PluginError(FhirpipesError):
    """A plugin can't be loaded or registers something unusable (raised at cold start)."""


class ConfigurationError(FhirpipesError):
    """A ``FHIRPIPES_*`` setting has a value fhirpipes can't use."""


class BatchError(FhirpipesError):
    """The batch as a whole can't be processed (not the fault of one record)."""


class DeployError(FhirpipesError):
    """The package or template can't be built as asked; the message is one line saying why."""


class RecordError(FhirpipesError):
    """One record can't be mapped; the rest of the batch carries on.

    ``code`` is a stable, machine-readable name for the failure; ``path`` is where in the record
    or resource it happened (an attribute or FHIR path, never a value); ``template`` and ``line``
    point into the mapper's template.
    """

    code = "record-error"

    def __init__(
        self,
        message: str,
        *,
        event_id: str | None = None,
        table: str | None = None,
        sequence_number: str | None = None,
        path: str | None = None,
        template: str | None = None,
        line: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.event_id = event_id
        self.table = table
        self.sequence_number = sequence_number
        self.path = path
        self.template = template
        self.line = line
        if code is not None:
            self.code = code

    def locate(self, *, event_id: str | None, table: str | None, sequence_number: str | None) -> RecordError:
        """Fill in which record this was, where the raiser didn't know; returns ``self``."""
        self.event_id = self.event_id or event_id
        self.table = self.table or table
        self.sequence_number = self.sequence_number or sequence_number
        return self

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` object of an error event: code, message, path, template, line."""
        return {
            "code": self.code,
            "message": self.message,
            "path": self.path,
            "template": self.template,
            "line": self.line,
        }

    def __str__(self) -> str:
        where = [
            f"{name}={value}"
            for name, value in (
                ("table", self.table),
                ("eventID", self.event_id),
                ("sequenceNumber", self.sequence_number),
                ("template", self.template),
                ("line", self.line),
                ("path", self.path),
            )
            if value is not None
        ]
        return f"{self.message} [{', '.join(where)}]" if where else self.message


class MalformedRecordError(RecordError):
    """The record is not a DynamoDB stream record fhirpipes can read."""

    code = "malformed-record"


class UnknownTableError(RecordError):
    """No registered mapper takes this record (or more than one ``match`` does)."""

    code = "unknown-table"


class RenderError(RecordError):
    """The mapper's template failed for this record (undefined name, bad JSON, a filter refused)."""

    code = "render-failed"


class InvalidResourceError(RecordError):
    """The rendered resource is not valid FHIR for the mapper's resource type and version."""

    code = "invalid-resource"

"""The exceptions fhirpipes raises.

::

    FhirpipesError
    ├── PluginError               startup: bad or duplicate registration, misspelled hook, no mappers
    ├── ConfigurationError        startup: an environment variable with a value we can't use
    ├── BatchError                the whole batch: unreadable event, response too large for Pipes
    ├── DeployError               `fhirpipes package` / `template` can't build what was asked
    ├── ConversionError           (fhirpipes.conversions; also a ValueError) a filter or a plugin's
    │                             function can't convert a value; rendering turns it into a
    │                             RenderError with code conversion-failed
    ├── fhirpipes.pipes: DeliveryError (a target refused a batch after retries),
    │   EnrichmentError (the local runner's enrichment kept failing)
    ├── fhirpipes.backfill: SourceError (a ConfigurationError: the export or table can't be
    │   read), HealthLakeError (an import call failed), SparkJobError (partitions failed on Spark)
    └── RecordError               one record; carries event_id, table, sequence_number; never a value
        ├── MalformedRecordError  not a stream record, bad AttributeValue JSON, ARN without a table
        ├── UnknownTableError     no mapper for the record's table (or no / several `match`es)
        ├── RenderError           the template failed; names the template and line
        └── InvalidResourceError  the rendered resource is not valid FHIR; names the FHIR path

A message names *where* something went wrong, never *what* the record held: records carry
PHI, and messages end up in logs, CLI output and error events. Callers always ``raise ... from``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every ``code`` a record error can carry: stable, machine-readable, documented in the README."""

    RECORD_ERROR = "record-error"
    MALFORMED_RECORD = "malformed-record"
    UNKNOWN_TABLE = "unknown-table"
    REMOVE_NEEDS_OLD_IMAGE = "remove-needs-old-image"
    # the template, when it compiles
    TEMPLATE_MISSING = "template-missing"
    TEMPLATE_SYNTAX = "template-syntax"
    TEMPLATE_UNSUPPORTED = "template-unsupported"
    TEMPLATE_COMPILE = "template-compile"
    INVALID_JSON = "invalid-json"
    # the template, when it renders a record
    RENDER_FAILED = "render-failed"
    MISSING_VALUE = "missing-value"
    CONVERSION_FAILED = "conversion-failed"
    UNSAFE_TEMPLATE = "unsafe-template"
    NOT_JSON = "not-json"
    RENDER_BUDGET_EXCEEDED = "render-budget-exceeded"
    # the resource it rendered
    NOT_AN_OBJECT = "not-an-object"
    WRONG_RESOURCE_TYPE = "wrong-resource-type"
    INVALID_RESOURCE = "invalid-resource"
    INVALID_CODE = "invalid-code"
    CONTROL_CHARACTER = "control-character"
    # where it went (a backfill into a FHIR store)
    STORE_REFUSED = "store-refused"


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

    code: str = ErrorCode.RECORD_ERROR

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

    code: str = ErrorCode.MALFORMED_RECORD


class UnknownTableError(RecordError):
    """No registered mapper takes this record (or more than one ``match`` does)."""

    code: str = ErrorCode.UNKNOWN_TABLE


class RenderError(RecordError):
    """The mapper's template failed for this record (undefined name, bad JSON, a filter refused)."""

    code: str = ErrorCode.RENDER_FAILED


class InvalidResourceError(RecordError):
    """The rendered resource is not valid FHIR for the mapper's resource type and version."""

    code: str = ErrorCode.INVALID_RESOURCE

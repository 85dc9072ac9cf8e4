"""fhirpipes: one shared EventBridge Pipes enrichment Lambda that turns DynamoDB changes into FHIR.

The public API a plugin needs: `Mapper` (plus `KeyPrefix`, `PipeSpec` and `SampleFile`), `hookimpl`, and the
errors. The Lambda handler is ``fhirpipes.handler.handler``; the local Pipe is `fhirpipes.pipes`;
the plugin authors' kit is `fhirpipes.testing`. Kept small: this module is imported on every
cold start.
"""

from fhirpipes.errors import (
    BatchError,
    ConfigurationError,
    DeployError,
    ErrorCode,
    FhirpipesError,
    InvalidResourceError,
    MalformedRecordError,
    PluginError,
    RecordError,
    RenderError,
    UnknownTableError,
)
from fhirpipes.hookspecs import hookimpl
from fhirpipes.mapper import KeyPrefix, Mapper, PipeSpec, SampleFile

__version__ = "0.1.0"

__all__ = [
    "BatchError",
    "ConfigurationError",
    "DeployError",
    "ErrorCode",
    "FhirpipesError",
    "InvalidResourceError",
    "KeyPrefix",
    "MalformedRecordError",
    "Mapper",
    "PipeSpec",
    "PluginError",
    "RecordError",
    "RenderError",
    "SampleFile",
    "UnknownTableError",
    "__version__",
    "hookimpl",
]

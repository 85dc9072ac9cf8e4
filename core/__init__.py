"""fhirpipes: one shared EventBridge Pipes enrichment Lambda that turns DynamoDB changes into FHIR.

The public API, and all a plugin imports: `Mapper` (plus `KeyPrefix`, `PipeSpec` and
`SampleFile`) and `hookimpl` to register it; `StreamRecord`, what a mapper's ``context`` and
``match`` hooks receive; for the functions a ``context`` hook hands to its template,
`ConversionError` (raise it to refuse a value), `Missing` (what an absent attribute arrives as)
and `kind_of` (a value's type in words, for a message that must not quote the value); and the
errors. The Lambda handler is ``fhirpipes.handler.handler``; the local Pipe is `fhirpipes.pipes`;
the plugin authors' kit is `fhirpipes.testing`.

Kept small: this module is imported on every cold start (so it imports only modules the handler
imports anyway) and by every CLI command. The names of the rendering path (`StreamRecord`,
`ConversionError`, `Missing`, `kind_of`) load on first use: importing them here would double
the time ``import fhirpipes`` takes (57 ms to 107 ms measured), which every command pays. The
module ``__getattr__`` below is `fhirpipes.exports.lazy_exports` written out: importing that
module here would add one to the cold start.
"""

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    # Relative, so mypy resolves them however it names this folder; never executed (see TID251).
    from .conversions import ConversionError, kind_of  # noqa: TID251
    from .engine.runtime import Missing  # noqa: TID251
    from .records import StreamRecord  # noqa: TID251

__version__ = "0.1.0"

# name -> submodule that defines it, imported on first use
_EXPORTS: dict[str, str] = {
    "ConversionError": "conversions",
    "Missing": "engine.runtime",
    "StreamRecord": "records",
    "kind_of": "conversions",
}

__all__ = [
    "BatchError",
    "ConfigurationError",
    "ConversionError",
    "DeployError",
    "ErrorCode",
    "FhirpipesError",
    "InvalidResourceError",
    "KeyPrefix",
    "MalformedRecordError",
    "Mapper",
    "Missing",
    "PipeSpec",
    "PluginError",
    "RecordError",
    "RenderError",
    "SampleFile",
    "StreamRecord",
    "UnknownTableError",
    "__version__",
    "hookimpl",
    "kind_of",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # from now on a plain module global
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})

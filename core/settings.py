"""Configuration from ``FHIRPIPES_*`` environment variables, read once at cold start.

=============================  =========================================================
``FHIRPIPES_ON_ERROR``         ``emit`` (default): a record that can't be mapped becomes an
                               error event in the output; ``raise``: fail the batch so Pipes
                               retries it; ``drop``: log it and leave it out.
``FHIRPIPES_LOG_LEVEL``        DEBUG, INFO (default), WARNING, ERROR, CRITICAL (also read:
                               ``AWS_LAMBDA_LOG_LEVEL``, as Lambda's advanced logging sets it,
                               with Lambda's names: TRACE, WARN and FATAL are read as DEBUG,
                               WARNING and CRITICAL).
``FHIRPIPES_METRICS``          ``on``/``off``: the handler's EMF metrics lines on stdout
                               (`fhirpipes.metrics`); default on in Lambda
                               (``AWS_LAMBDA_FUNCTION_NAME`` set), off elsewhere.
``FHIRPIPES_PLUGINS``          comma-separated entry-point names to load (default: all).
``FHIRPIPES_SKIP_UNCHANGED``   ``true``/``false``: override every mapper's ``skip_unchanged``.
``FHIRPIPES_PIPE_NAMES``       JSON object, table -> Pipe name: the ``pipe`` template variable
                               (the local runner knows it; in Lambda it comes from here).
``FHIRPIPES_MAX_RESPONSE_BYTES``  the enrichment response limit, a positive whole number of
                               bytes (default Pipes' 6 MB).
``FHIRPIPES_FHIR_STORE_VERSION``  R4 (AWS HealthLake), R4B or R5: refuse at cold start a mapper
                               whose output that version may refuse (`fhirpipes.storeversion`).
``FHIRPIPES_RENDER_BUDGET``    per-record render bounds, ``name=value`` pairs separated by commas,
                               e.g. ``iterations=200000,seconds=5`` (names and defaults:
                               `fhirpipes.engine.runtime.Limits`).
=============================  =========================================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, NamedTuple, get_args

from fhirpipes.engine.runtime import Limits
from fhirpipes.errors import ConfigurationError
from fhirpipes.fhirversion import STORE_VERSIONS

OnError = Literal["emit", "raise", "drop"]
ON_ERROR_CHOICES: tuple[str, ...] = get_args(OnError)
"""What ``FHIRPIPES_ON_ERROR`` may say (the template's ``OnError`` parameter offers the same)."""
LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""What ``FHIRPIPES_LOG_LEVEL`` may say (the template's ``LogLevel`` parameter offers the same): Python's
names of Lambda's application log levels. CRITICAL is Lambda's FATAL: fhirpipes logs nothing at it, so
it keeps only the metrics lines; refusing it would fail the cold start of a function set to FATAL.
"""
LAMBDA_LOG_LEVELS: Mapping[str, str] = MappingProxyType(
    {"TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL"}
)
"""Lambda's names (``AWS_LAMBDA_LOG_LEVEL``; also accepted in ``FHIRPIPES_LOG_LEVEL``) of `LOG_LEVELS`
that Python's logging names otherwise; TRACE has no Python level, so it reads as DEBUG."""
PIPES_RESPONSE_LIMIT = 6 * 1024 * 1024
"""An enrichment's response limit in EventBridge Pipes (6 MB)."""
_ON, _OFF = ("on", "true", "1", "yes"), ("off", "false", "0", "no")


# A NamedTuple (immutable, cheap to define at cold start); change one with ``settings._replace(...)``.
class Settings(NamedTuple):
    """What the environment says; `Settings.from_env` reads it."""

    on_error: OnError = "emit"
    log_level: str = "INFO"
    skip_unchanged: bool | None = None
    pipe_names: Mapping[str, str] = MappingProxyType({})
    max_response_bytes: int = PIPES_RESPONSE_LIMIT
    render_budget: Limits = Limits()
    metrics: bool = False
    store_version: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Read and check the ``FHIRPIPES_*`` variables; a bad value is a `ConfigurationError`."""
        on_error = environ.get("FHIRPIPES_ON_ERROR", "emit").strip().lower() or "emit"
        if on_error not in ON_ERROR_CHOICES:
            raise ConfigurationError(f"FHIRPIPES_ON_ERROR must be one of {', '.join(ON_ERROR_CHOICES)}")
        level = (
            (environ.get("FHIRPIPES_LOG_LEVEL") or environ.get("AWS_LAMBDA_LOG_LEVEL") or "INFO")
            .strip()
            .upper()
        )
        level = LAMBDA_LOG_LEVELS.get(level, level)
        if level not in LOG_LEVELS:
            raise ConfigurationError(f"FHIRPIPES_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        skip = environ.get("FHIRPIPES_SKIP_UNCHANGED", "").strip().lower()
        if skip not in ("", "true", "false", "1", "0", "yes", "no"):
            raise ConfigurationError("FHIRPIPES_SKIP_UNCHANGED must be true or false")
        pipe_names: dict[str, str] = {}
        raw_names = environ.get("FHIRPIPES_PIPE_NAMES", "").strip()
        if raw_names:
            try:
                pipe_names = json.loads(raw_names)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(
                    "FHIRPIPES_PIPE_NAMES must be a JSON object: table -> pipe name"
                ) from exc
            if not isinstance(pipe_names, dict) or not all(isinstance(v, str) for v in pipe_names.values()):
                raise ConfigurationError("FHIRPIPES_PIPE_NAMES must be a JSON object: table -> pipe name")
        try:
            limit = int(environ.get("FHIRPIPES_MAX_RESPONSE_BYTES", PIPES_RESPONSE_LIMIT))
        except ValueError as exc:
            raise ConfigurationError("FHIRPIPES_MAX_RESPONSE_BYTES must be a whole number") from exc
        if limit <= 0:
            raise ConfigurationError("FHIRPIPES_MAX_RESPONSE_BYTES must be a positive whole number")
        return cls(
            on_error=on_error,  # type: ignore[arg-type]
            log_level=level,
            skip_unchanged=None if not skip else skip in ("true", "1", "yes"),
            pipe_names=pipe_names,
            max_response_bytes=limit,
            render_budget=render_budget(environ.get("FHIRPIPES_RENDER_BUDGET", "")),
            metrics=_switch(
                environ, "FHIRPIPES_METRICS", default=bool(environ.get("AWS_LAMBDA_FUNCTION_NAME"))
            ),
            store_version=_store_version(environ.get("FHIRPIPES_FHIR_STORE_VERSION", "")),
        )


def _switch(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    value = environ.get(name, "").strip().lower()
    if not value:
        return default
    if value not in _ON + _OFF:
        raise ConfigurationError(f"{name} must be on or off")
    return value in _ON


def render_budget(text: str) -> Limits:
    """``FHIRPIPES_RENDER_BUDGET``: ``name=value`` pairs over the defaults of `Limits`."""
    changes: dict[str, float | int] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        name, _, number = pair.partition("=")
        name = name.strip()
        if name not in Limits._fields:
            raise ConfigurationError(
                f"FHIRPIPES_RENDER_BUDGET: unknown name {name!r} (known: {', '.join(Limits._fields)})"
            )
        kind = float if name == "seconds" else int
        try:
            parsed = kind(number.strip())
        except ValueError:
            parsed = 0
        if parsed <= 0:
            raise ConfigurationError(f"FHIRPIPES_RENDER_BUDGET: {name} must be a positive number")
        changes[name] = parsed
    return Limits()._replace(**changes)  # type: ignore[arg-type]


def _store_version(text: str) -> str | None:
    """``FHIRPIPES_FHIR_STORE_VERSION``: the FHIR version of the store (R4 for HealthLake), or unset."""
    value = text.strip().upper()
    if not value:
        return None
    if value not in STORE_VERSIONS:
        raise ConfigurationError(f"FHIRPIPES_FHIR_STORE_VERSION must be one of {', '.join(STORE_VERSIONS)}")
    return value

"""The sink's configuration, from ``FHIRPIPES_*`` environment variables, read once per cold start.

==================================  ===========================================================
``FHIRPIPES_FHIR_URL``              the FHIR base URL (required), e.g. HealthLake's
                                    ``https://healthlake.<region>.amazonaws.com/datastore/<id>/r4/``
``FHIRPIPES_FHIR_AUTH``             ``none`` (default), ``sigv4`` (HealthLake: the function role's
                                    credentials, service ``healthlake``) or ``secret:<ARN>`` (a Secrets
                                    Manager secret holding a bearer token, JSON ``{"token": ...}``,
                                    or OAuth client credentials: `fhirpipes.sink.auth.SecretBearer`)
``FHIRPIPES_FHIR_GUARD``            ``version`` (default): never overwrite a newer source state (a
                                    read, then a write conditional on the version read); ``none``:
                                    write blindly (one request per event)
``FHIRPIPES_FHIR_TIMEOUT``          seconds per request (default 10)
``FHIRPIPES_FHIR_CONCURRENCY``      resources delivered at once (default 4; one resource's events
                                    are always sent one after another, in order)
``FHIRPIPES_FHIR_BUNDLE_SIZE``      above 1: deliver in ``batch`` Bundles of up to that many
                                    entries (HealthLake takes at most 160); 1 (default): one
                                    request per read or write
``FHIRPIPES_SINK_ERROR_QUEUE``      an SQS queue URL: error events and refused resources go there
                                    whole (as well as a log line without values); unset: log only
==================================  ===========================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

from fhirpipes.errors import ConfigurationError

Guard = Literal["version", "none"]
_HEALTHLAKE_HOST = re.compile(r"^healthlake(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com$")


class SinkSettings(NamedTuple):
    """What the environment says; `SinkSettings.from_env` reads and checks it."""

    fhir_url: str
    auth: str = "none"
    guard: Guard = "version"
    timeout: float = 10.0
    concurrency: int = 4
    error_queue: str | None = None
    region: str | None = None
    bundle_size: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> SinkSettings:
        """Read and check the sink's variables; a bad value is a `ConfigurationError`."""
        url = environ.get("FHIRPIPES_FHIR_URL", "").strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError("FHIRPIPES_FHIR_URL must be the FHIR server's base URL (http or https)")
        if not url.endswith("/"):
            url += "/"  # so that relative references join under the base, not beside it
        auth = environ.get("FHIRPIPES_FHIR_AUTH", "none").strip() or "none"
        if auth not in ("none", "sigv4") and not (auth.startswith("secret:") and len(auth) > 7):
            raise ConfigurationError("FHIRPIPES_FHIR_AUTH must be none, sigv4 or secret:<secret ARN or name>")
        guard = environ.get("FHIRPIPES_FHIR_GUARD", "version").strip().lower() or "version"
        if guard not in ("version", "none"):
            raise ConfigurationError("FHIRPIPES_FHIR_GUARD must be version or none")
        timeout = _number(environ, "FHIRPIPES_FHIR_TIMEOUT", "10", float)
        concurrency = int(_number(environ, "FHIRPIPES_FHIR_CONCURRENCY", "4", int))
        bundle_size = int(_number(environ, "FHIRPIPES_FHIR_BUNDLE_SIZE", "1", int))
        queue = environ.get("FHIRPIPES_SINK_ERROR_QUEUE", "").strip() or None
        region = None
        if auth == "sigv4":
            match = _HEALTHLAKE_HOST.match(parts.hostname or "")
            region = (
                (match and match.group(1)) or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
            )
            if not region:
                raise ConfigurationError(
                    "FHIRPIPES_FHIR_AUTH=sigv4 needs a region: a HealthLake URL names it, else set AWS_REGION"
                )
        return cls(url, auth, guard, timeout, concurrency, queue, region, bundle_size)  # type: ignore[arg-type]


def _number(environ: Mapping[str, str], name: str, default: str, kind: type[float] | type[int]) -> float:
    try:
        value = kind(environ.get(name, default).strip() or default)
    except ValueError:
        raise ConfigurationError(f"{name} must be a positive number") from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be a positive number")
    return value

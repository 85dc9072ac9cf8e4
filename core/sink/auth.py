"""How the sink proves who it is to the FHIR server: nothing, SigV4 (HealthLake) or a bearer token.

botocore and boto3 are on the Lambda runtime; they are imported on first use, so the ``none``
mode (a local server) never pays for them.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Protocol

from fhirpipes.errors import ConfigurationError

SECRET_TTL_SECONDS = 300.0
"""How long a bearer token read from Secrets Manager is reused (a rotated secret is re-read on 401 too)."""


class Auth(Protocol):
    """Adds credentials to one request's headers (called again for each retry)."""

    def headers(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        """The headers to send, credentials added."""

    def refresh(self) -> bool:
        """Forget cached credentials after a 401; whether a retry may now succeed."""


class NoAuth:
    """A server that asks for nothing (a local test server)."""

    def headers(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` unchanged."""
        return headers

    def refresh(self) -> bool:
        """Nothing to refresh."""
        return False


class SigV4:
    """AWS Signature Version 4 with botocore's `SigV4Auth`, with the function role's credentials."""

    def __init__(self, region: str, service: str = "healthlake", credentials: Any = None) -> None:
        from botocore.auth import SigV4Auth  # lazy: only this mode needs botocore
        from botocore.session import Session

        self._credentials = credentials or Session().get_credentials()
        if self._credentials is None:
            raise ConfigurationError("FHIRPIPES_FHIR_AUTH=sigv4 found no AWS credentials")
        self._signer_class = SigV4Auth
        self.region, self.service = region, service

    def headers(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` with ``Authorization``, ``X-Amz-Date`` (and ``X-Amz-Security-Token``) added."""
        from botocore.awsrequest import AWSRequest

        # Frozen per request: the role's credentials rotate, and one signature must use one set.
        frozen = self._credentials.get_frozen_credentials()
        request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
        self._signer_class(frozen, self.service, self.region).add_auth(request)
        return dict(request.headers.items())

    def refresh(self) -> bool:
        """botocore refreshes the role's credentials itself; a 401 won't be fixed by retrying here."""
        return False


class SecretBearer:
    """A bearer token kept in Secrets Manager (the secret string, or its JSON ``token``/``access_token``)."""

    def __init__(self, secret_id: str, client: Any = None) -> None:
        self.secret_id = secret_id
        self._client = client
        self._token: str | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def headers(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` with ``Authorization: Bearer <token>``."""
        return {**headers, "Authorization": f"Bearer {self._current()}"}

    def refresh(self) -> bool:
        """Read the secret again on the next request (it may have been rotated)."""
        with self._lock:
            stale = self._token is not None
            self._token = None
        return stale

    def _current(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() - self._read_at > SECRET_TTL_SECONDS:
                self._token = self._read()
                self._read_at = time.monotonic()
            return self._token

    def _read(self) -> str:
        if self._client is None:
            import boto3  # lazy: only this mode needs it

            self._client = boto3.client("secretsmanager")
        try:
            text = self._client.get_secret_value(SecretId=self.secret_id)["SecretString"]
        except Exception as exc:
            # The type only: the message names the secret, not its value, but keep to the rule.
            raise ConfigurationError(
                f"FHIRPIPES_FHIR_AUTH: the secret could not be read ({type(exc).__name__})"
            ) from None
        token = text.strip()
        if token.startswith("{"):
            try:
                data = json.loads(token)
            except json.JSONDecodeError:
                data = None
            token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise ConfigurationError(
                'FHIRPIPES_FHIR_AUTH: the secret must hold a bearer token, or JSON {"token": ...}'
            )
        return token


def auth_for(setting: str, region: str | None = None) -> Auth:
    """The `Auth` of a ``FHIRPIPES_FHIR_AUTH`` value (already checked by `SinkSettings`)."""
    if setting == "sigv4":
        return SigV4(region or "")
    if setting.startswith("secret:"):
        return SecretBearer(setting[len("secret:") :])
    return NoAuth()

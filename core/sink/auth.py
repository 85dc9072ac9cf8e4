"""How the sink proves who it is to the FHIR server: nothing, SigV4 (HealthLake) or a bearer token.

botocore and boto3 are on the Lambda runtime; they are imported on first use, so the ``none``
mode (a local server) never pays for them.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from fhirpipes.errors import ConfigurationError
from fhirpipes.sink.errors import DeliveryError

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
    """A bearer token from a Secrets Manager secret, which holds one of:

    - the token itself, or JSON ``{"token": ...}`` (or ``access_token``): used as is, re-read
      every `SECRET_TTL_SECONDS` and after a 401;
    - OAuth 2.0 client credentials, JSON ``{"token_url", "client_id", "client_secret", "scope"?}``:
      the sink asks ``token_url`` for an access token (``client_secret_basic``) and uses it until a
      minute before it expires, or a 401. (SMART backend services' signed JWT assertion needs an
      asymmetric-key library on the Lambda: a later step.)
    """

    def __init__(self, secret_id: str, client: Any = None, timeout: float = 10.0) -> None:
        self.secret_id = secret_id
        self._client = client
        self._timeout = timeout
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def headers(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` with ``Authorization: Bearer <token>``."""
        return {**headers, "Authorization": f"Bearer {self._current()}"}

    def refresh(self) -> bool:
        """Forget the token (and the secret: it may have been rotated); whether there was one."""
        with self._lock:
            stale = self._token is not None
            self._token = None
        return stale

    def _current(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                self._token, lifetime = self._obtain()
                self._expires = time.monotonic() + lifetime
            return self._token

    def _obtain(self) -> tuple[str, float]:
        text = self._secret().strip()
        data = None
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                data = None
        if isinstance(data, dict) and all(isinstance(data.get(k), str) for k in CLIENT_CREDENTIALS):
            return client_credentials_token(data, self._timeout)
        token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else text
        if not isinstance(token, str) or not token or token.startswith("{"):
            raise ConfigurationError(
                'FHIRPIPES_FHIR_AUTH: the secret must hold a bearer token, JSON {"token": ...}, '
                'or client credentials {"token_url", "client_id", "client_secret"}'
            )
        return token, SECRET_TTL_SECONDS

    def _secret(self) -> str:
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
        return str(text)


CLIENT_CREDENTIALS = ("token_url", "client_id", "client_secret")


def client_credentials_token(data: Mapping[str, Any], timeout: float) -> tuple[str, float]:
    """An access token and its lifetime in seconds, by OAuth 2.0's client credentials grant."""
    form = {"grant_type": "client_credentials"}
    if isinstance(data.get("scope"), str):
        form["scope"] = data["scope"]
    pair = f"{quote(data['client_id'], safe='')}:{quote(data['client_secret'], safe='')}"
    request = urllib.request.Request(
        data["token_url"],
        data=urlencode(form).encode(),
        method="POST",
        headers={
            "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code >= 500 or exc.code == 429:
            raise DeliveryError(f"the token endpoint answered HTTP {exc.code}") from None
        raise ConfigurationError(
            f"FHIRPIPES_FHIR_AUTH: the token endpoint refused the client credentials (HTTP {exc.code})"
        ) from None
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"the token endpoint could not be reached ({type(exc).__name__})") from None
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise ConfigurationError("FHIRPIPES_FHIR_AUTH: the token endpoint gave no access_token")
    expires_in = body.get("expires_in")
    lifetime = float(expires_in) if isinstance(expires_in, (int, float)) else SECRET_TTL_SECONDS
    return token, max(1.0, lifetime - 60.0)  # a minute early: a token mustn't expire in flight


def auth_for(setting: str, region: str | None = None, timeout: float = 10.0) -> Auth:
    """The `Auth` of a ``FHIRPIPES_FHIR_AUTH`` value (already checked by `SinkSettings`)."""
    if setting == "sigv4":
        return SigV4(region or "")
    if setting.startswith("secret:"):
        return SecretBearer(setting[len("secret:") :], timeout=timeout)
    return NoAuth()

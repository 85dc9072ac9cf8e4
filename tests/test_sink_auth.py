"""The sink's authentication (`fhirpipes.sink.auth`): SigV4 offline (against AWS's published test
vector and an independent implementation), bearer tokens from Secrets Manager."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from urllib.parse import quote, urlsplit

import pytest
from builders import HEALTHLAKE

from fhirpipes.errors import ConfigurationError
from fhirpipes.sink.auth import SecretBearer, SigV4, auth_for

# --- SigV4, offline --------------------------------------------------------------------------------


class Credentials:
    def __init__(self, access_key: str, secret_key: str, token: str | None = None) -> None:
        self.access_key, self.secret_key, self.token = access_key, secret_key, token

    def get_frozen_credentials(self) -> Credentials:
        return self


@pytest.fixture
def fixed_time(monkeypatch: pytest.MonkeyPatch) -> datetime.datetime:
    import botocore.auth

    now = datetime.datetime(2015, 8, 30, 12, 36, 0)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *args, **kwargs: now)
    return now


def test_sigv4_matches_aws_published_vector(fixed_time: datetime.datetime) -> None:
    # aws-sig-v4-test-suite, "get-vanilla"
    signer = SigV4(
        "us-east-1", "service", Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    )
    headers = signer.headers("GET", "https://example.amazonaws.com/", None, {"Host": "example.amazonaws.com"})
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def independent_sigv4(
    method: str, url: str, body: bytes, headers: dict[str, str], secret: str, region: str, service: str
) -> str:
    """SigV4 from the specification, sharing no code with botocore: the signature of ``headers``."""
    parts = urlsplit(url)
    names = sorted(name.lower() for name in headers if name.lower() != "authorization")
    values = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    canonical = "\n".join(
        [
            method,
            quote(parts.path, safe="/-_.~"),
            parts.query,
            "".join(f"{name}:{values[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    stamp = values["x-amz-date"]
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (stamp[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_sigv4_signs_a_healthlake_put_as_the_specification_says(fixed_time: datetime.datetime) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    signer = SigV4("eu-west-1", credentials=Credentials("AKIDEXAMPLE", secret, "session-token"))
    url = HEALTHLAKE + "Patient/a%3Ab"
    body = json.dumps({"resourceType": "Patient", "id": "a:b"}).encode()
    sent = {
        "Host": urlsplit(url).netloc,
        "Accept": "application/fhir+json",
        "Content-Type": "application/fhir+json",
        "If-Match": 'W/"3"',
    }
    headers = signer.headers("PUT", url, body, sent)
    assert headers["X-Amz-Security-Token"] == "session-token"
    authorization = headers["Authorization"]
    assert authorization.startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/healthlake/aws4_request, "
    )
    assert "SignedHeaders=accept;content-type;host;if-match;x-amz-date;x-amz-security-token," in authorization
    expected = independent_sigv4("PUT", url, body, headers, secret, "eu-west-1", "healthlake")
    assert authorization.endswith(f"Signature={expected}")


# --- bearer tokens from Secrets Manager ----------------------------------------------------------


class FakeSecrets:
    def __init__(self, *values: str) -> None:
        self.values, self.reads = list(values), 0

    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        self.reads += 1
        return {"SecretString": self.values[min(self.reads, len(self.values)) - 1]}


def test_a_secret_gives_a_bearer_token_read_once_and_again_after_a_401() -> None:
    secrets = FakeSecrets('{"token": "t1"}', "t2")
    auth = SecretBearer("arn:aws:secretsmanager:eu-west-1:1:secret:fhir", client=secrets)
    assert auth.headers("GET", "u", None, {})["Authorization"] == "Bearer t1"
    assert auth.headers("GET", "u", None, {})["Authorization"] == "Bearer t1"
    assert secrets.reads == 1
    assert auth.refresh() is True
    assert auth.headers("GET", "u", None, {})["Authorization"] == "Bearer t2"


def test_a_secret_without_a_token_is_a_configuration_error_that_quotes_nothing() -> None:
    auth = SecretBearer("s", client=FakeSecrets('{"password": "hunter2"}'))
    with pytest.raises(ConfigurationError) as info:
        auth.headers("GET", "u", None, {})
    assert "hunter2" not in str(info.value) and info.value.__cause__ is None


def test_auth_for_names_the_modes() -> None:
    assert type(auth_for("secret:arn:x")).__name__ == "SecretBearer"
    assert type(auth_for("none")).__name__ == "NoAuth"

"""The sink's parts without a server: settings, the source-version rule, SigV4 (offline, against
AWS's published test vector and an independent implementation), bearer secrets, Retry-After."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhirpipes.errors import ConfigurationError
from fhirpipes.sink.auth import SecretBearer, SigV4, auth_for
from fhirpipes.sink.destination import issues_of
from fhirpipes.sink.settings import SinkSettings
from fhirpipes.sink.transport import retry_after
from fhirpipes.sink.version import NEWER, OLDER, SAME, UNKNOWN, VERSION_EXTENSION, compare, version_of

ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/Patients/stream/2026-01-01T00:00:00.000"
HEALTHLAKE = "https://healthlake.eu-west-1.amazonaws.com/datastore/0123456789abcdef0123456789abcdef/r4/"


# --- settings ---------------------------------------------------------------------------------


def test_settings_read_and_defaults() -> None:
    settings = SinkSettings.from_env({"FHIRPIPES_FHIR_URL": "http://127.0.0.1:8080/fhir"})
    assert settings == SinkSettings("http://127.0.0.1:8080/fhir/")
    assert (settings.auth, settings.guard, settings.concurrency, settings.error_queue) == (
        "none",
        "version",
        4,
        None,
    )


def test_sigv4_takes_the_region_from_a_healthlake_url() -> None:
    settings = SinkSettings.from_env({"FHIRPIPES_FHIR_URL": HEALTHLAKE, "FHIRPIPES_FHIR_AUTH": "sigv4"})
    assert settings.region == "eu-west-1"
    other = {"FHIRPIPES_FHIR_URL": "https://fhir.example.org/r4", "FHIRPIPES_FHIR_AUTH": "sigv4"}
    assert SinkSettings.from_env({**other, "AWS_REGION": "us-east-2"}).region == "us-east-2"
    with pytest.raises(ConfigurationError, match="needs a region"):
        SinkSettings.from_env(other)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FHIRPIPES_FHIR_URL", "ftp://x", "FHIRPIPES_FHIR_URL must be"),
        ("FHIRPIPES_FHIR_AUTH", "basic", "FHIRPIPES_FHIR_AUTH must be"),
        ("FHIRPIPES_FHIR_AUTH", "secret:", "FHIRPIPES_FHIR_AUTH must be"),
        ("FHIRPIPES_FHIR_GUARD", "maybe", "FHIRPIPES_FHIR_GUARD must be"),
        ("FHIRPIPES_FHIR_TIMEOUT", "0", "FHIRPIPES_FHIR_TIMEOUT must be"),
        ("FHIRPIPES_FHIR_CONCURRENCY", "two", "FHIRPIPES_FHIR_CONCURRENCY must be"),
    ],
)
def test_bad_settings_say_which(name: str, value: str, message: str) -> None:
    environ = {"FHIRPIPES_FHIR_URL": "http://127.0.0.1/r4/", name: value}
    with pytest.raises(ConfigurationError, match=message):
        SinkSettings.from_env(environ)


# --- the source-version rule ---------------------------------------------------------------------


def at(sequence: int, arn: str = ARN, declared: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": f"{arn}#{sequence}"}
    if declared is not None:
        meta["extension"] = [{"url": VERSION_EXTENSION, **declared}]
    return {"resourceType": "Patient", "id": "a", "meta": meta}


def test_sequence_numbers_order_one_stream_as_numbers() -> None:
    assert compare(version_of(at(10)), version_of(at(9))) == NEWER  # not as text: "10" < "9"
    assert compare(version_of(at(9)), version_of(at(10))) == OLDER
    assert compare(version_of(at(9)), version_of(at(9))) == SAME


def test_a_later_stream_of_the_same_table_is_newer() -> None:
    later = ARN.replace("2026-01-01", "2026-06-01")
    assert compare(version_of(at(1, later)), version_of(at(10**30))) == NEWER


def test_other_tables_and_missing_versions_are_unknown() -> None:
    other = ARN.replace("table/Patients", "table/People")
    assert compare(version_of(at(1, other)), version_of(at(2))) == UNKNOWN
    assert compare(version_of({"resourceType": "Patient", "id": "a"}), version_of(at(2))) == UNKNOWN
    assert compare(version_of(at(2)), version_of({"meta": {"source": "http://elsewhere"}})) == UNKNOWN


def test_a_declared_version_comes_before_the_stream_position() -> None:
    newer, older = at(1, declared={"valueInteger": 10}), at(5, declared={"valueInteger": 9})
    assert compare(version_of(newer), version_of(older)) == NEWER
    assert (
        compare(
            version_of(at(1, declared={"valueDecimal": 2.5})), version_of(at(2, declared={"valueInteger": 3}))
        )
        == OLDER
    )
    stamp = {"valueInstant": "2026-03-01T10:00:00Z"}
    assert (
        compare(version_of(at(1, declared=stamp)), version_of(at(2, declared=stamp))) == OLDER
    )  # equal: position
    other = ARN.replace("table/Patients", "table/Backfill")
    assert compare(version_of(at(1, other, stamp)), version_of(at(2, declared=stamp))) == SAME


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


# --- small parsers -------------------------------------------------------------------------------


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after("7") == 7.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: now
    assert retry_after("soon") is None and retry_after(None) is None


def test_operation_outcome_issues_keep_where_and_drop_text() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "Smith is not allowed",
                "details": {"text": "Smith", "coding": [{"system": "s", "code": "X1", "display": "Smith"}]},
                "expression": ["Patient.name[0].family"],
                "location": ["/f:Patient/f:name[1]"],
            },
            "not an issue",
        ],
    }
    issues = issues_of(outcome)
    assert issues == (
        {
            "severity": "error",
            "code": "invalid",
            "expression": ["Patient.name[0].family"],
            "location": ["/f:Patient/f:name[1]"],
            "details": ["X1"],
        },
    )
    assert "Smith" not in json.dumps(issues)
    assert issues_of({"resourceType": "Patient"}) == ()


@given(
    st.tuples(
        st.sampled_from(["2026-01-01T00:00:00.000", "2026-06-01T00:00:00.000"]), st.integers(0, 10**40)
    ),
    st.tuples(
        st.sampled_from(["2026-01-01T00:00:00.000", "2026-06-01T00:00:00.000"]), st.integers(0, 10**40)
    ),
)
def test_stream_positions_compare_as_a_total_order(a: tuple[str, int], b: tuple[str, int]) -> None:
    def version(position: tuple[str, int]) -> Any:
        return version_of(at(position[1], ARN.replace("2026-01-01T00:00:00.000", position[0])))

    forward, backward = compare(version(a), version(b)), compare(version(b), version(a))
    assert (forward, backward) in ((NEWER, OLDER), (OLDER, NEWER), (SAME, SAME))
    assert (forward == SAME) == (a == b)
    assert (forward == NEWER) == (a > b)


def test_the_handler_without_a_url_fails_with_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import fhirpipes.sink as sink

    monkeypatch.delenv("FHIRPIPES_FHIR_URL", raising=False)
    sink._sink.cache_clear()
    try:
        with pytest.raises(
            ConfigurationError, match=r"^FHIRPIPES_FHIR_URL must be the FHIR server's base URL"
        ):
            sink.handler([], None)
    finally:
        sink._sink.cache_clear()

"""The sink's settings (`fhirpipes.sink.settings`): read from the environment, refused by name."""

from __future__ import annotations

import pytest
from builders import HEALTHLAKE

from fhirpipes.errors import ConfigurationError
from fhirpipes.sink.settings import SinkSettings


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

"""`fhirpipes.settings`: the ``FHIRPIPES_*`` variables, each value checked at cold start."""

from __future__ import annotations

import pytest

from fhirpipes import ConfigurationError
from fhirpipes.fhirversion import STORE_VERSIONS
from fhirpipes.settings import LAMBDA_LOG_LEVELS, LOG_LEVELS, ON_ERROR_CHOICES, PIPES_RESPONSE_LIMIT, Settings


@pytest.mark.parametrize("value", ["-1", "0", "-6291456", "1.5", "6MB", " "])
def test_the_response_limit_must_be_a_positive_whole_number(value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^FHIRPIPES_MAX_RESPONSE_BYTES must be a") as caught:
        Settings.from_env({"FHIRPIPES_MAX_RESPONSE_BYTES": value})
    if value.strip():
        assert value not in str(caught.value)  # where and why, never the value


def test_the_response_limit_defaults_to_pipes_and_takes_a_smaller_one() -> None:
    assert Settings.from_env({}).max_response_bytes == PIPES_RESPONSE_LIMIT == 6 * 1024 * 1024
    assert Settings.from_env({"FHIRPIPES_MAX_RESPONSE_BYTES": "1"}).max_response_bytes == 1


def test_every_log_level_and_lambdas_names_for_them_are_accepted() -> None:
    for level in LOG_LEVELS:
        assert Settings.from_env({"FHIRPIPES_LOG_LEVEL": level.lower()}).log_level == level
    for lambda_name, level in LAMBDA_LOG_LEVELS.items():
        assert level in LOG_LEVELS
        assert Settings.from_env({"FHIRPIPES_LOG_LEVEL": lambda_name}).log_level == level


@pytest.mark.parametrize("value", ["NOTSET", "VERBOSE", "5"])
def test_another_log_level_is_refused_with_the_list(value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"DEBUG, INFO, WARNING, ERROR, CRITICAL$"):
        Settings.from_env({"FHIRPIPES_LOG_LEVEL": value})


def test_every_on_error_choice_is_accepted_and_another_refused() -> None:
    assert ON_ERROR_CHOICES == ("emit", "raise", "drop")
    for choice in ON_ERROR_CHOICES:
        assert Settings.from_env({"FHIRPIPES_ON_ERROR": choice.upper()}).on_error == choice
    with pytest.raises(ConfigurationError, match=r"emit, raise, drop$"):
        Settings.from_env({"FHIRPIPES_ON_ERROR": "retry"})


def test_the_store_versions_are_fhirversions() -> None:
    for version in STORE_VERSIONS:
        assert Settings.from_env({"FHIRPIPES_FHIR_STORE_VERSION": version}).store_version == version
    with pytest.raises(ConfigurationError, match=r"R4, R4B, R5$"):
        Settings.from_env({"FHIRPIPES_FHIR_STORE_VERSION": "STU3"})

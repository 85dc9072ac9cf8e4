"""The response as the Lambda runtime sends it: `encode_response` and `response_size` against the
runtime's own marshaller (awslambdaric), on both of its encodings (python3.11 and python3.12+)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from awslambdaric.lambda_runtime_marshaller import LambdaMarshaller
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirpipes.response import encode_response, response_size, within
from fhirpipes.testing.stream import make_record

RUNTIMES = ["AWS_Lambda_python3.11", "AWS_Lambda_python3.12", None]


@pytest.fixture(params=RUNTIMES, ids=["py3.11", "py3.12", "local"])
def runtime(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str | None]:
    if request.param is None:
        monkeypatch.delenv("AWS_EXECUTION_ENV", raising=False)
    else:
        monkeypatch.setenv("AWS_EXECUTION_ENV", request.param)
    yield request.param


def sent_by_runtime(value: Any) -> bytes:
    """What awslambdaric posts: ``marshal_response`` (built per call: it reads the environment
    when constructed), then UTF-8 as ``post_invocation_result`` encodes a str."""
    text, content_type = LambdaMarshaller().marshal_response(value)
    assert content_type == "application/json"
    return text.encode("utf-8")  # type: ignore[no-any-return]


def assert_same_as_runtime(value: Any) -> None:
    try:
        expected = sent_by_runtime(value)
    except UnicodeEncodeError:  # a lone surrogate on python3.12+: the runtime fails to post
        with pytest.raises(UnicodeEncodeError):
            encode_response(value)
        with pytest.raises(UnicodeEncodeError):
            response_size(value)
        return
    assert encode_response(value) == expected
    assert response_size(value) == len(expected)


# Every code point, lone surrogates included (they reach an error event's raw record when a
# Pipe's JSON holds "\ud800"), with the awkward ones made likely: controls, DEL, quotes,
# backslashes, non-ASCII of each UTF-8 length, astral.
CHARACTERS = st.one_of(
    st.characters(codec=None, categories=None),
    st.sampled_from(
        ['"', "\\", "\x00", "\x1f", "\x7f", "\n", "\t", "é", "\u2028", "☃", "\ud800", "\udfff", "𝄞"]
    ),
)
TEXT = st.text(CHARACTERS, max_size=20)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(),  # NaN and the infinities included: the runtime allows them
    st.decimals(),  # NaN, sNaN, infinities and exponents included
    TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=30,
)


@given(VALUES)
@settings(max_examples=300, deadline=None)
@pytest.mark.slow  # hypothesis: 300 values
def test_equals_the_runtimes_marshaller_on_any_json_value(value: Any) -> None:
    for environment in RUNTIMES:
        with pytest.MonkeyPatch.context() as patch:
            if environment is None:
                patch.delenv("AWS_EXECUTION_ENV", raising=False)
            else:
                patch.setenv("AWS_EXECUTION_ENV", environment)
            assert_same_as_runtime(value)
            assert_same_as_runtime([{"version": "1.0", "details": {"record": value}}])


def test_handler_output_counts_what_the_runtime_sends(runtime: str | None) -> None:
    from fhirpipes.handler import handler

    samples = json.loads((Path(__file__).parents[1] / "plugins/patient/samples.json").read_text())
    item = dict(samples[1], lastName="Grüßé 𝄞 \x7f", id="p-1")
    events = handler([make_record("Patients", new=item), {"eventID": "bad", "eventName": "INSERT"}])
    assert [event["details"]["command"] for event in events] == ["PUT", "ERROR"]
    assert_same_as_runtime(events)
    # compact JSON (what the dispatcher counted before) is shorter than what is sent
    assert response_size(events) > len(json.dumps(events, separators=(",", ":"), ensure_ascii=False).encode())


def test_escaping_and_separators_on_python_3_11(runtime: str | None) -> None:
    value = {"a": ["é", "𝄞", "\x7f", Decimal("1E+2"), Decimal("NaN"), 1e-05]}
    if runtime == "AWS_Lambda_python3.12":
        expected = '{"a": ["é", "𝄞", "\x7f", 1E+2, NaN, 1e-05]}'.encode()
    else:
        expected = b'{"a": ["\\u00e9", "\\ud834\\udd1e", "\\u007f", 1E+2, NaN, 1e-05]}'
    assert encode_response(value) == expected
    assert response_size(value) == len(expected)


def test_values_beyond_json_take_the_exact_route(runtime: str | None) -> None:
    # simplejson writes bytes as UTF-8 text; the standard encoder can't, so this is sized exactly
    assert_same_as_runtime([{"raw": b"caf\xc3\xa9"}, Decimal("7")])


def test_what_the_runtime_cannot_encode_raises_as_it_does(runtime: str | None) -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode_response([{1, 2}])
    with pytest.raises(TypeError, match="not JSON serializable"):
        response_size([{1, 2}])


@pytest.mark.slow
def test_import_loads_no_encoder() -> None:
    code = (
        "import sys, fhirpipes.response as r\n"
        "r.response_size([{'a': 1}])\n"
        "print(sorted(m for m in ('simplejson', 'orjson', 'awslambdaric') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@settings(max_examples=300, deadline=None, database=None)
@given(events=st.lists(VALUES, max_size=5))
@pytest.mark.slow  # hypothesis: 300 responses
def test_the_fast_bound_never_says_a_response_fits_when_it_does_not(events: Any) -> None:
    from fhirpipes.response import _upper_bound

    try:
        exact = response_size(events)
    except (TypeError, ValueError, RecursionError):
        return
    bound = _upper_bound(events)
    assert bound is None or bound >= exact
    assert within(events, exact) and not within(events, exact - 1)

"""Shared by the record tests: hostile record shapes (hypothesis strategies) and PHI checks."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from fhirpipes.testing.stream import stream_arn


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception reachable through ``__cause__`` and ``__context__``."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        pending += [current.__cause__, current.__context__]
    return seen


def assert_nothing_quotes(exc: BaseException, *secrets: str) -> None:
    """No secret in the text, repr, args or path of ``exc`` or anything in its chain."""
    for link in exception_chain(exc):
        told = [str(link), repr(link), *map(str, link.args), str(getattr(link, "path", ""))]
        for secret in secrets:
            assert not any(secret in text for text in told), (secret, type(link).__name__)


def nested(levels: int, kind: str = "M", leaf: Any = None) -> dict[str, Any]:
    """An AttributeValue whose innermost value sits at ``levels`` (1: the leaf itself)."""
    value: dict[str, Any] = {"S": "leaf"} if leaf is None else leaf
    for _ in range(levels - 1):
        value = {"M": {"k": value}} if kind == "M" else {"L": [value]}
    return value


def frames() -> int:
    """How many frames deep the caller runs."""
    frame, count = sys._getframe(1), 0
    while frame is not None:
        frame, count = frame.f_back, count + 1
    return count


@contextlib.contextmanager
def lambda_stack() -> Iterator[None]:
    """Run with the stack a Lambda's handler has: Python's default limit of 1000 frames, a few used.

    Hypothesis raises the recursion limit while a test runs, which would hide a RecursionError
    that a Lambda meets; and a batch nested deeper than this can't reach a handler at all,
    since the runtime's JSON parser stops at the same limit.
    """
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(frames() + 990)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def deep_json(levels: int) -> Any:
    """Plain JSON nested ``levels`` deep (lists and objects in turn), as json.loads can still read it."""
    value: Any = "leaf"
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
"""Arbitrary JSON values (no NaN or infinity: JSON has neither)."""

_type_keys = st.sampled_from(["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"]) | st.text(
    max_size=4
)
_well_typed = st.one_of(
    st.text(max_size=12).map(lambda s: {"S": s}),
    st.from_regex(r"-?[0-9]{1,4}(\.[0-9]{1,3})?", fullmatch=True).map(lambda n: {"N": n}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
)
attribute_values = st.recursive(
    _well_typed | st.builds(lambda key, raw: {key: raw}, _type_keys, json_values),
    lambda children: st.one_of(
        st.builds(lambda key, raw: {key: raw}, st.sampled_from(["M", "L"]), st.lists(children, max_size=3)),
        st.builds(
            lambda key, raw: {key: raw},
            st.sampled_from(["M", "L"]),
            st.dictionaries(st.text(max_size=6), children, max_size=3),
        ),
        # around DynamoDB's limit of 32 levels, and far beyond it (450 maps: 900 JSON levels,
        # about as deep as a JSON parser with Python's default recursion limit reads)
        st.sampled_from([31, 32, 33, 40, 331, 450]).flatmap(
            lambda n: st.sampled_from([nested(n, "M"), nested(n, "L")])
        ),
    ),
    max_leaves=10,
)
"""AttributeValues of every type, well or badly typed, with unknown type keys and deep nesting."""

PATIENT_ATTRIBUTES = (
    "id", "firstName", "middleName", "lastName", "prefix", "suffix", "gender", "birthDate",
    "phone", "mobilePhone", "email", "mrn", "active", "address", "npi", "qualifications",
)  # fmt: skip
"""Attribute names the built-in mappers read, so arbitrary values reach their templates."""

images = (
    st.dictionaries(st.sampled_from(PATIENT_ATTRIBUTES) | st.text(max_size=8), attribute_values, max_size=6)
    | json_values
)
_fields = {
    "eventID": st.text(max_size=8) | json_values,
    "eventName": st.sampled_from(["INSERT", "MODIFY", "REMOVE"]) | json_values,
    "eventSourceARN": st.sampled_from([stream_arn("Patients"), stream_arn("Practitioners"), stream_arn("X")])
    | json_values,
    "dynamodb": st.fixed_dictionaries(
        {},
        optional={
            "Keys": images,
            "NewImage": images,
            "OldImage": images,
            "SequenceNumber": st.text(max_size=8) | json_values,
            "ApproximateCreationDateTime": json_values,
        },
    )
    | json_values,
    "userIdentity": json_values | st.just({"type": "Service", "principalId": "dynamodb.amazonaws.com"}),
    "deep": st.sampled_from([40, 300, 900]).map(deep_json),
}
record_shaped = st.fixed_dictionaries({}, optional=_fields)
"""Objects shaped like stream records, with arbitrary values in every field."""

"""The source-version rule (`fhirpipes.sink.version`): which of two states of a resource is newer."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fhirpipes.sink.version import NEWER, OLDER, SAME, UNKNOWN, VERSION_EXTENSION, compare, version_of

ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/Patients/stream/2026-01-01T00:00:00.000"


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

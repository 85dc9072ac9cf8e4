"""The source-version rule for backfilled states (`fhirpipes.sink.version`): a snapshot's state
never replaces the stream's, the stream's replaces a snapshot's, later snapshots replace earlier."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhirpipes.sink.version import (
    NEWER,
    NO_VERSION,
    OLDER,
    SAME,
    UNKNOWN,
    VERSION_EXTENSION,
    compare,
    version_of,
)

TABLE = "arn:aws:dynamodb:eu-west-1:123456789012:table/Patients"
STREAM = f"{TABLE}/stream/2026-01-01T00:00:00.000"
EXPORT = f"{TABLE}/export/01764547200000-a1b2c3d4"
SCAN = f"{TABLE}/scan"
OTHER_TABLE = "arn:aws:dynamodb:eu-west-1:123456789012:table/People"


def state(source: str, declared: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": source}
    if declared is not None:
        meta["extension"] = [{"url": VERSION_EXTENSION, **declared}]
    return {"resourceType": "Patient", "id": "a", "meta": meta}


def order(incoming: dict[str, Any], current: dict[str, Any]) -> str:
    return compare(version_of(incoming), version_of(current))


def streamed(sequence: int, declared: dict[str, Any] | None = None) -> dict[str, Any]:
    return state(f"{STREAM}#{sequence}", declared)


def exported(
    time: str = "2026-12-01T00:00:00.000Z", declared: dict[str, Any] | None = None
) -> dict[str, Any]:
    return state(f"{EXPORT}#{time}", declared)


def scanned(time: str = "2026-12-01T00:00:00.000Z", declared: dict[str, Any] | None = None) -> dict[str, Any]:
    return state(f"{SCAN}#{time}", declared)


def test_an_export_and_a_scan_name_their_table_and_time() -> None:
    export, scan = version_of(exported()), version_of(scanned("2026-12-01T08:30:00.125Z"))
    assert (export.table, export.sequence, export.label) == (TABLE, None, None)
    assert export.snapshot is not None and export.snapshot.isoformat() == "2026-12-01T00:00:00+00:00"
    assert scan.table == TABLE
    assert scan.snapshot is not None and scan.snapshot.isoformat() == "2026-12-01T08:30:00.125000+00:00"
    assert version_of(streamed(5)).snapshot is None


@pytest.mark.parametrize("snapshot", [exported(), scanned()], ids=["export", "scan"])
def test_a_snapshot_state_never_replaces_the_streams(snapshot: dict[str, Any]) -> None:
    # Even a stream state from long before the snapshot: the stream also carries what came after.
    assert order(snapshot, streamed(1)) == OLDER
    assert order(snapshot, streamed(10**30)) == OLDER


@pytest.mark.parametrize("snapshot", [exported(), scanned()], ids=["export", "scan"])
def test_a_stream_state_replaces_a_snapshots(snapshot: dict[str, Any]) -> None:
    assert order(streamed(1), snapshot) == NEWER


def test_two_snapshots_the_later_is_newer_the_same_time_is_a_rerun() -> None:
    early, late = "2026-12-01T00:00:00.000Z", "2026-12-01T00:00:00.001Z"
    assert order(exported(late), exported(early)) == NEWER
    assert order(exported(early), exported(late)) == OLDER
    assert order(exported(early), exported(early)) == SAME
    # An export and a scan of one table compare by their times too.
    assert order(scanned(late), exported(early)) == NEWER
    assert order(exported(early), scanned(early)) == SAME
    # By time, not as text: another export id, a coarser fraction of a second.
    assert (
        order(state(f"{TABLE}/export/zzzz#2026-12-01T00:00:00Z"), exported("2026-12-01T00:00:00.5Z")) == OLDER
    )


def test_a_declared_version_still_decides_first() -> None:
    newer, older = {"valueDecimal": 7}, {"valueDecimal": 6}
    assert order(exported(declared=newer), streamed(9, older)) == NEWER
    assert order(streamed(9, older), exported(declared=newer)) == OLDER
    assert order(exported("2026-01-01T00:00:00.000Z", newer), exported(declared=older)) == NEWER
    # Equal declared versions: the hand-over rule decides.
    assert order(exported(declared=newer), streamed(9, newer)) == OLDER
    assert order(streamed(9, newer), exported(declared=newer)) == NEWER
    # Only one of them declares one: the hand-over rule decides.
    assert order(exported(declared=newer), streamed(9)) == OLDER


def test_snapshots_of_other_tables_are_unknown() -> None:
    assert order(state(f"{OTHER_TABLE}/export/x#2026-12-01T00:00:00.000Z"), streamed(1)) == UNKNOWN
    assert order(streamed(1), state(f"{OTHER_TABLE}/scan#2026-12-01T00:00:00.000Z")) == UNKNOWN
    assert order(state(f"{OTHER_TABLE}/scan#2026-12-01T00:00:00.000Z"), scanned()) == UNKNOWN
    # ... unless declared versions tell.
    stamp = {"valueString": "v3"}
    assert (
        order(state(f"{OTHER_TABLE}/scan#2026-12-01T00:00:00.000Z", stamp), scanned(declared=stamp)) == SAME
    )


MALFORMED = [
    f"{EXPORT}",  # no '#'
    f"{EXPORT}#",  # no time
    f"{EXPORT}#2026-12-01",  # a date, not a time
    f"{EXPORT}#2026-13-01T00:00:00.000Z",  # no such month
    f"{EXPORT}#2026-12-01T25:00:00.000Z",  # no such hour
    f"{EXPORT}#2026-12-01T00:00:00.000",  # no zone: not comparable
    f"{EXPORT}#2026-12-01T00:00:00.000+01:00",  # not UTC's Z
    f"{EXPORT}#1764547200000",  # a number
    f"{TABLE}/export/#2026-12-01T00:00:00.000Z",  # "/export/" without an id
    f"{TABLE}/export#2026-12-01T00:00:00.000Z",
    f"{TABLE}/export/a/b#2026-12-01T00:00:00.000Z",
    f"{TABLE}/scanned#2026-12-01T00:00:00.000Z",
    f"{TABLE}#2026-12-01T00:00:00.000Z",  # the table itself
    "arn:aws:dynamodb:eu-west-1:123456789012:table//scan#2026-12-01T00:00:00.000Z",  # no table name
    "https://example.org/scan#2026-12-01T00:00:00.000Z",
    "#2026-12-01T00:00:00.000Z",
    "",
]


@pytest.mark.parametrize("source", MALFORMED)
def test_a_malformed_source_is_no_snapshot(source: str) -> None:
    malformed = state(source)
    assert version_of(malformed) == NO_VERSION
    for other in (streamed(1), exported(), scanned(), malformed):
        assert order(malformed, other) == UNKNOWN
        assert order(other, malformed) == UNKNOWN


@pytest.mark.parametrize("source", [None, 7, ["a#b"], {"x": "y"}])
def test_a_source_of_another_type_is_no_version(source: Any) -> None:
    assert version_of({"meta": {"source": source}}) == NO_VERSION


_TIMES = st.sampled_from(["2026-12-01T00:00:00.000Z", "2026-12-01T00:00:00.001Z", "2027-01-01T00:00:00.000Z"])
_STATES = st.one_of(
    st.tuples(st.just("stream"), st.integers(0, 10**30)),
    st.tuples(st.sampled_from(["export", "scan"]), _TIMES),
)


def _resource(kind: str, where: Any) -> dict[str, Any]:
    if kind == "stream":
        return streamed(where)
    return exported(where) if kind == "export" else scanned(where)


def _rank(kind: str, where: Any) -> tuple[int, Any]:
    """The order the rule promises: every snapshot before every stream state, each by its own position."""
    return (1, where) if kind == "stream" else (0, where)


@given(_STATES, _STATES)
def test_one_tables_states_compare_as_a_total_order(a: tuple[str, Any], b: tuple[str, Any]) -> None:
    forward, backward = order(_resource(*a), _resource(*b)), order(_resource(*b), _resource(*a))
    assert (forward, backward) in ((NEWER, OLDER), (OLDER, NEWER), (SAME, SAME))
    assert forward == (NEWER if _rank(*a) > _rank(*b) else OLDER if _rank(*a) < _rank(*b) else SAME)


# --- stream positions ----------------------------------------------------------------------------

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

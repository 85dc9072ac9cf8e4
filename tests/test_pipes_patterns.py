"""EventBridge Pipes filters: event patterns, every operator, DynamoDB rules, invalid patterns."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirpipes.pipes import (
    MAX_FILTERS,
    MAX_PATTERN_LENGTH,
    InvalidPattern,
    compile_pattern,
    matches,
    matches_any,
    validate_filters,
    validate_pattern,
)

EC2_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "111122223333",
    "time": "2017-12-22T18:43:48Z",
    "region": "us-west-1",
    "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
    "detail": {"instance-id": "i-1234567890abcdef0", "state": "terminated"},
}


def case(pattern: dict[str, Any], event: Any, expected: bool, case_id: str) -> Any:
    return pytest.param(pattern, event, expected, id=case_id)


OPERATOR_CASES = [
    # exact values, AND across fields, OR within a list
    case({"source": ["aws.ec2"]}, EC2_EVENT, True, "exact-string"),
    case({"source": ["aws.EC2"]}, EC2_EVENT, False, "exact-string-is-case-sensitive"),
    case({"source": ["aws.s3", "aws.ec2"]}, EC2_EVENT, True, "value-list-is-or"),
    case({"source": ["aws.ec2"], "region": ["us-east-1"]}, EC2_EVENT, False, "fields-are-and"),
    case(
        {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
        EC2_EVENT,
        True,
        "all-fields-match",
    ),
    case({"detail": {"state": ["terminated"]}}, EC2_EVENT, True, "nested-object"),
    case({"detail": {"state": ["running"]}}, EC2_EVENT, False, "nested-object-other-value"),
    case({"detail": {"state": ["terminated"]}}, {"detail": "terminated"}, False, "nested-into-a-string"),
    case({"nope": ["x"]}, EC2_EVENT, False, "missing-field"),
    case({"n": [5]}, {"n": 5}, True, "exact-number"),
    case({"n": [5]}, {"n": 5.0}, True, "exact-number-compares-numerically"),
    case({"n": [301.8]}, {"n": 3.018e2}, True, "exact-float-exponent"),
    case({"n": [5]}, {"n": "5"}, False, "exact-number-vs-string"),
    case({"n": ["5"]}, {"n": 5}, False, "exact-string-vs-number"),
    case({"b": [True]}, {"b": True}, True, "exact-true"),
    case({"b": [False]}, {"b": True}, False, "exact-false-vs-true"),
    case({"b": [True]}, {"b": 1}, False, "true-is-not-one"),
    case({"b": [1]}, {"b": True}, False, "one-is-not-true"),
    case({"v": [None]}, {"v": None}, True, "null"),
    case({"v": [None]}, {"v": ""}, False, "null-is-not-empty-string"),
    case({"v": [None]}, {}, False, "null-is-not-missing"),
    case({"v": [""]}, {"v": ""}, True, "empty-string"),
    case({"v": [""]}, {"v": None}, False, "empty-string-is-not-null"),
    case({"v": [""]}, {}, False, "empty-string-is-not-missing"),
    # arrays in the event
    case({"resources": ["arn:x", EC2_EVENT["resources"][0]]}, EC2_EVENT, True, "array-intersection"),
    case({"resources": ["arn:x"]}, EC2_EVENT, False, "array-no-intersection"),
    case({"v": ["b"]}, {"v": [["a"], ["b", "c"]]}, True, "nested-arrays-flattened"),
    case({"v": ["a"]}, {"v": []}, False, "empty-array-matches-no-value"),
    case(
        {"employees": {"firstName": ["Anna"]}},
        {"employees": [{"firstName": "John"}, {"firstName": "Anna"}]},
        True,
        "array-of-objects",
    ),
    case(
        {"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}},
        {
            "employees": [
                {"firstName": "Anna", "lastName": "Smith"},
                {"firstName": "Peter", "lastName": "Jones"},
            ]
        },
        False,
        "array-of-objects-fields-from-one-element",
    ),
    case(
        {"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}},
        {"employees": [[{"firstName": "John"}], [{"firstName": "Anna", "lastName": "Smith"}]]},
        True,
        "multi-level-array-of-objects",
    ),
    # prefix
    case({"time": [{"prefix": "2017-12-22"}]}, EC2_EVENT, True, "prefix"),
    case({"time": [{"prefix": "2018"}]}, EC2_EVENT, False, "prefix-no-match"),
    case({"v": [{"prefix": ""}]}, {"v": "anything"}, True, "prefix-empty"),
    case({"v": [{"prefix": "1"}]}, {"v": 12}, False, "prefix-only-strings"),
    case(
        {"v": [{"prefix": {"equals-ignore-case": "EventB"}}]},
        {"v": "eventbridge"},
        True,
        "prefix-ignore-case",
    ),
    case(
        {"v": [{"prefix": {"equals-ignore-case": "EventB"}}]}, {"v": "lambda"}, False, "prefix-ignore-case-no"
    ),
    # suffix
    case({"FileName": [{"suffix": ".png"}]}, {"FileName": "scan.png"}, True, "suffix"),
    case({"FileName": [{"suffix": ".png"}]}, {"FileName": "scan.PNG"}, False, "suffix-is-case-sensitive"),
    case(
        {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}, {"FileName": "a.PNG"}, True, "suffix-ic"
    ),
    case(
        {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]},
        {"FileName": "a.gif"},
        False,
        "suffix-ic-no",
    ),
    # equals-ignore-case
    case({"name": [{"equals-ignore-case": "alice"}]}, {"name": "ALICE"}, True, "equals-ignore-case"),
    case({"name": [{"equals-ignore-case": "alice"}]}, {"name": "alicia"}, False, "equals-ignore-case-no"),
    case({"name": [{"equals-ignore-case": "1"}]}, {"name": 1}, False, "equals-ignore-case-only-strings"),
    # wildcard
    case({"v": [{"wildcard": "Simple*Service"}]}, {"v": "Simple Queue Service"}, True, "wildcard"),
    case({"v": [{"wildcard": "Simple*Service"}]}, {"v": "Simple Queue"}, False, "wildcard-no-match"),
    case({"v": [{"wildcard": "*"}]}, {"v": ""}, True, "wildcard-star-matches-empty"),
    case({"v": [{"wildcard": "a*b*c"}]}, {"v": "a-bb-c"}, True, "wildcard-several-stars"),
    case({"v": [{"wildcard": "a*b*c"}]}, {"v": "acb"}, False, "wildcard-order-matters"),
    case({"v": [{"wildcard": "*/lib/*"}]}, {"v": "/usr/lib/x"}, True, "wildcard-contains"),
    case({"v": [{"wildcard": "a\\*b"}]}, {"v": "a*b"}, True, "wildcard-escaped-star"),
    case({"v": [{"wildcard": "a\\*b"}]}, {"v": "axxb"}, False, "wildcard-escaped-star-is-literal"),
    case({"v": [{"wildcard": "a\\\\*"}]}, {"v": "a\\bc"}, True, "wildcard-escaped-backslash"),
    case({"v": [{"wildcard": "abc"}]}, {"v": "abc"}, True, "wildcard-without-star"),
    case({"v": [{"wildcard": "1*"}]}, {"v": 12}, False, "wildcard-only-strings"),
    # anything-but
    case({"detail": {"state": [{"anything-but": "initializing"}]}}, EC2_EVENT, True, "anything-but"),
    case({"detail": {"state": [{"anything-but": "terminated"}]}}, EC2_EVENT, False, "anything-but-equal"),
    case({"v": [{"anything-but": "x"}]}, {}, False, "anything-but-missing-field"),
    case({"v": [{"anything-but": "x"}]}, {"v": None}, True, "anything-but-null"),
    case({"v": [{"anything-but": "x"}]}, {"v": []}, False, "anything-but-empty-array"),
    case({"v": [{"anything-but": ["stopped", "overloaded"]}]}, {"v": "running"}, True, "anything-but-list"),
    case(
        {"v": [{"anything-but": ["stopped", "overloaded"]}]}, {"v": "stopped"}, False, "anything-but-list-no"
    ),
    case({"v": [{"anything-but": 123}]}, {"v": 124}, True, "anything-but-number"),
    case({"v": [{"anything-but": 123}]}, {"v": 123.0}, False, "anything-but-number-numerically"),
    case({"v": [{"anything-but": [100, 200]}]}, {"v": 200}, False, "anything-but-number-list"),
    case({"v": [{"anything-but": "a"}]}, {"v": ["a", "b"]}, True, "anything-but-any-array-element"),
    case({"v": [{"anything-but": "a"}]}, {"v": ["a", "a"]}, False, "anything-but-array-all-excluded"),
    case(
        {"Region": [{"anything-but": {"prefix": "us-"}}]},
        {"Region": "eu-west-1"},
        True,
        "anything-but-prefix",
    ),
    case(
        {"Region": [{"anything-but": {"prefix": "us-"}}]},
        {"Region": "us-east-1"},
        False,
        "anything-but-pfx-no",
    ),
    case({"F": [{"anything-but": {"suffix": ".png"}}]}, {"F": "a.gif"}, True, "anything-but-suffix"),
    case({"F": [{"anything-but": {"suffix": ".png"}}]}, {"F": "a.png"}, False, "anything-but-suffix-no"),
    case(
        {"s": [{"anything-but": {"equals-ignore-case": "initializing"}}]},
        {"s": "running"},
        True,
        "anything-but-ignore-case",
    ),
    case(
        {"s": [{"anything-but": {"equals-ignore-case": ["initializing", "stopped"]}}]},
        {"s": "STOPPED"},
        False,
        "anything-but-ignore-case-list",
    ),
    case(
        {"P": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"P": "/usr/bin/x"}, True, "anything-but-wildcard"
    ),
    case(
        {"P": [{"anything-but": {"wildcard": "*/lib/*"}}]},
        {"P": "/usr/lib/x"},
        False,
        "anything-but-wildcard-no",
    ),
    # numeric
    case({"c": [{"numeric": [">", 0, "<=", 5]}]}, {"c": 5}, True, "numeric-range-upper-inclusive"),
    case({"c": [{"numeric": [">", 0, "<=", 5]}]}, {"c": 0}, False, "numeric-range-lower-exclusive"),
    case({"c": [{"numeric": [">=", 0, "<", 5]}]}, {"c": 0}, True, "numeric-range-lower-inclusive"),
    case({"c": [{"numeric": [">=", 0, "<", 5]}]}, {"c": 5}, False, "numeric-range-upper-exclusive"),
    case({"c": [{"numeric": ["<", 10]}]}, {"c": -3.5}, True, "numeric-less-than"),
    case({"c": [{"numeric": [">", 10]}]}, {"c": 10.000001}, True, "numeric-greater-than"),
    case({"c": [{"numeric": ["=", 3.018e2]}]}, {"c": 301.8}, True, "numeric-equals"),
    case({"c": [{"numeric": ["=", 3]}]}, {"c": 3.0}, True, "numeric-equals-int-float"),
    case({"c": [{"numeric": ["=", 3]}]}, {"c": "3"}, False, "numeric-never-matches-strings"),
    case({"c": [{"numeric": [">", 0]}]}, {"c": True}, False, "numeric-never-matches-booleans"),
    case({"c": [{"numeric": [">", 0]}]}, {"c": 6e9}, False, "numeric-event-value-out-of-range"),
    case({"c": [{"numeric": [">", 0]}]}, {"c": Decimal("7.5")}, True, "numeric-decimal"),
    case({"c": [{"numeric": [">", 0]}]}, {"c": [-1, 2]}, True, "numeric-any-array-element"),
    case({"c": [{"numeric": [">", 0]}]}, {}, False, "numeric-missing"),
    # exists
    case({"detail": {"state": [{"exists": True}]}}, EC2_EVENT, True, "exists-true"),
    case({"detail": {"c-count": [{"exists": True}]}}, EC2_EVENT, False, "exists-true-missing"),
    case({"detail": {"c-count": [{"exists": False}]}}, EC2_EVENT, True, "exists-false-missing"),
    case({"detail": {"state": [{"exists": False}]}}, EC2_EVENT, False, "exists-false-present"),
    case({"v": [{"exists": True}]}, {"v": None}, True, "exists-true-null-value"),
    case({"v": [{"exists": True}]}, {"v": ""}, True, "exists-true-empty-string"),
    case({"v": [{"exists": False}]}, {"v": {"c1": 100}}, True, "exists-false-object-is-not-a-leaf"),
    case({"v": [{"exists": True}]}, {"v": {"c1": 100}}, False, "exists-true-object-is-not-a-leaf"),
    case({"v": [{"exists": True}]}, {"v": []}, False, "exists-true-empty-array"),
    case({"v": [{"exists": False}]}, {"v": []}, True, "exists-false-empty-array"),
    case({"v": [{"exists": True}]}, {"v": ["x"]}, True, "exists-true-array"),
    case({"a": {"b": [{"exists": False}]}}, {}, True, "exists-false-under-missing-object"),
    case({"a": {"b": ["x"]}}, {}, False, "value-under-missing-object"),
    case({"v": ["x", {"exists": False}]}, {}, True, "exists-false-or-value"),
    # cidr
    case({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.0.255"}, True, "cidr-v4"),
    case({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.1.0"}, False, "cidr-v4-outside"),
    case({"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db8::1"}, True, "cidr-v6"),
    case({"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": "::ffff:10.0.0.1"}, False, "cidr-other-family"),
    case({"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": "not-an-ip"}, False, "cidr-not-an-address"),
    # $or
    case(
        {
            "source": ["aws.cloudwatch"],
            "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}],
        },
        {"source": "aws.cloudwatch", "namespace": "AWS/EC2"},
        True,
        "or-second-branch",
    ),
    case(
        {
            "source": ["aws.cloudwatch"],
            "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}],
        },
        {"source": "aws.cloudwatch", "namespace": "AWS/ES"},
        False,
        "or-no-branch",
    ),
    case(
        {"$or": [{"a": ["1"]}, {"b": ["2"], "$or": [{"c": ["3"]}, {"d": ["4"]}]}]},
        {"b": "2", "d": "4"},
        True,
        "or-nested-with-and",
    ),
    case(
        {"$or": [{"a": ["1"]}, {"b": ["2"], "$or": [{"c": ["3"]}, {"d": ["4"]}]}]},
        {"b": "2"},
        False,
        "or-nested-with-and-incomplete",
    ),
    case(
        {"detail": {"$or": [{"source": ["x"]}, {"detail-type": ["y"]}]}},
        {"detail": {"detail-type": "y"}},
        True,
        "or-inside-nested-object",
    ),
    # the event itself
    case({"a": [{"exists": False}]}, "not an object", True, "non-object-event-is-empty"),
    case({"a": ["x"]}, ["x"], False, "array-event"),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), OPERATOR_CASES)
def test_operator(pattern: dict[str, Any], event: Any, expected: bool) -> None:
    assert matches(pattern, event) is expected
    assert matches(json.dumps(pattern), event) is expected  # the same as JSON text


# --- DynamoDB stream records, as a Pipe receives them ------------------------------------------


STREAM_ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/patients/stream/2024-05-27T12:00:00.000"


def stream_record(
    event_name: str,
    *,
    new_image: dict[str, Any] | None = None,
    old_image: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A DynamoDB stream record as EventBridge Pipes delivers it."""
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": 1716812345,
        "Keys": {"pk": {"S": "Patient#123"}, "sk": {"S": "v#1"}},
        "SequenceNumber": "4421584500000000017450439091",
        "SizeBytes": 142,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new_image is not None:
        dynamodb["NewImage"] = new_image
    if old_image is not None:
        dynamodb["OldImage"] = old_image
    return {
        "eventID": "7de3041dd709b024af6f29e4fa13d34c",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": dynamodb,
        "eventSourceARN": STREAM_ARN,
    }


IMAGE = {
    "pk": {"S": "Patient#123"},
    "sk": {"S": "v#1"},
    "family": {"S": "Chalmers"},
    "age": {"N": "42"},
    "active": {"BOOL": True},
    "deceased": {"NULL": True},
    "tags": {"L": []},
    "names": {"L": [{"S": "Peter"}, {"S": "James"}]},
}
INSERT = stream_record("INSERT", new_image=IMAGE)
MODIFY = stream_record("MODIFY", new_image=IMAGE, old_image={**IMAGE, "family": {"S": "Chalmer"}})
REMOVE = stream_record("REMOVE", old_image=IMAGE)

INSERT_OR_MODIFY = {"eventName": ["INSERT", "MODIFY"]}

DYNAMODB_CASES = [
    case(INSERT_OR_MODIFY, INSERT, True, "event-name-insert"),
    case(INSERT_OR_MODIFY, MODIFY, True, "event-name-modify"),
    case(INSERT_OR_MODIFY, REMOVE, False, "event-name-remove"),
    case({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "Patient#"}]}}}}, INSERT, True, "key-prefix"),
    case({"dynamodb": {"NewImage": {"family": {"S": ["Chalmers"]}}}}, INSERT, True, "type-key-drill-down"),
    case({"dynamodb": {"NewImage": {"family": ["Chalmers"]}}}, INSERT, False, "attribute-is-an-object"),
    case({"dynamodb": {"NewImage": {"age": {"N": ["42"]}}}}, INSERT, True, "number-attribute-as-string"),
    case({"dynamodb": {"NewImage": {"age": {"N": [42]}}}}, INSERT, False, "number-attribute-is-not-a-number"),
    case(
        {"dynamodb": {"NewImage": {"age": {"N": [{"numeric": [">", 5]}]}}}},
        INSERT,
        False,
        "numeric-never-matches-N",
    ),
    case({"dynamodb": {"NewImage": {"active": {"BOOL": [True]}}}}, INSERT, True, "bool-attribute"),
    case({"dynamodb": {"NewImage": {"deceased": {"NULL": [True]}}}}, INSERT, True, "null-attribute"),
    case(
        {"dynamodb": {"NewImage": {"tags": {"L": [{"exists": False}]}}}},
        INSERT,
        True,
        "empty-list-not-exists",
    ),
    case(
        {"dynamodb": {"NewImage": {"tags": {"L": [{"exists": True}]}}}}, INSERT, False, "empty-list-no-exists"
    ),
    case({"dynamodb": {"NewImage": {"names": {"L": {"S": ["James"]}}}}}, INSERT, True, "list-of-attributes"),
    case(
        {"dynamodb": {"OldImage": {"family": {"S": [{"exists": False}]}}}},
        INSERT,
        True,
        "insert-no-old-image",
    ),
    case(
        {"dynamodb": {"OldImage": {"family": {"S": [{"anything-but": "x"}]}}}},
        INSERT,
        False,
        "anything-but-needs-a-value",
    ),
    case(
        {"dynamodb": {"NewImage": {"family": {"S": [{"anything-but": "x"}]}}}},
        INSERT,
        True,
        "anything-but-on-a-value",
    ),
    case(
        {"eventName": ["MODIFY"], "dynamodb": {"OldImage": {"family": {"S": ["Chalmer"]}}}},
        MODIFY,
        True,
        "old-image-on-modify",
    ),
    case({"dynamodb": {"NewImage": {"missing": {"S": ["x"]}}}}, INSERT, False, "missing-attribute"),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), DYNAMODB_CASES)
def test_dynamodb_record(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(json.dumps(pattern), event) is expected


def test_duplicate_key_last_one_wins() -> None:
    text = '{"detail": {"location": [{"prefix": "us-"}], "location": [{"anything-but": "us-east"}]}}'
    assert matches(text, {"detail": {"location": "eu-west"}})
    assert not matches(text, {"detail": {"location": "us-east"}})


# --- several filters ----------------------------------------------------------------------------

FILTER_CASES = [
    pytest.param([], REMOVE, True, id="no-filters-everything-passes"),
    pytest.param(None, REMOVE, True, id="none-everything-passes"),
    pytest.param([INSERT_OR_MODIFY], INSERT, True, id="one-filter-matches"),
    pytest.param([INSERT_OR_MODIFY], REMOVE, False, id="one-filter-rejects"),
    pytest.param([{"eventName": ["INSERT"]}, {"eventName": ["REMOVE"]}], REMOVE, True, id="second-matches"),
    pytest.param([{"eventName": ["INSERT"]}, {"eventName": ["MODIFY"]}], REMOVE, False, id="none-matches"),
    pytest.param(
        [{"Pattern": json.dumps({"eventName": ["REMOVE"]})}], REMOVE, True, id="filter-criteria-entry"
    ),
    pytest.param([json.dumps({"eventName": ["REMOVE"]})] * MAX_FILTERS, REMOVE, True, id="five-filters"),
]


@pytest.mark.parametrize(("patterns", "event", "expected"), FILTER_CASES)
def test_matches_any(patterns: list[Any] | None, event: dict[str, Any], expected: bool) -> None:
    validate_filters(patterns)
    assert matches_any(patterns, event) is expected


def test_more_than_five_filters_are_refused() -> None:
    with pytest.raises(InvalidPattern, match="6 filters given; a pipe accepts at most 5"):
        matches_any([INSERT_OR_MODIFY] * 6, INSERT)


def test_invalid_filter_names_its_index() -> None:
    with pytest.raises(InvalidPattern) as raised:
        validate_filters([INSERT_OR_MODIFY, {"eventName": "INSERT"}])
    assert raised.value.where == "Filters[1] $.eventName"
    assert "must be an object or an array" in raised.value.reason


def test_a_lone_pattern_is_not_a_list_of_filters() -> None:
    with pytest.raises(TypeError, match="not a single pattern"):
        matches_any(json.dumps(INSERT_OR_MODIFY), INSERT)


# --- invalid patterns ---------------------------------------------------------------------------


def bad(pattern: Any, reason: str, case_id: str, where: str | None = None) -> Any:
    text = pattern if isinstance(pattern, str) else json.dumps(pattern)
    return pytest.param(text, reason, where, id=case_id)


INVALID_CASES = [
    bad("{not json", "not valid JSON", "not-json"),
    bad('{"a": [NaN]}', "not valid JSON", "nan-is-not-json"),
    bad([{"a": ["x"]}], "Filter is not an object (the pattern is a JSON array)", "top-level-array", "$"),
    bad('"text"', "Filter is not an object", "top-level-string"),
    bad({}, "Empty objects are not allowed", "empty-pattern"),
    bad({"a": {}}, "Empty objects are not allowed", "empty-nested-object", "$.a"),
    bad(
        {"a": "x"},
        '"a" must be an object or an array; pattern values are always arrays',
        "leaf-string",
        "$.a",
    ),
    bad({"a": 5}, "not a bare number", "leaf-number"),
    bad({"a": None}, "not a bare null", "leaf-null"),
    bad({"a": []}, "Empty arrays are not allowed", "empty-array", "$.a"),
    bad({"a": [["x"]]}, "a match value must be a string, number", "array-in-values", "$.a[0]"),
    bad(
        {"a": ["x", {"contains": "y"}]},
        'Unrecognized match type "contains"',
        "unknown-operator",
        "$.a[1].contains",
    ),
    bad({"a": [{}]}, "Match expression name not found", "empty-operator-object"),
    bad(
        {"a": [{"prefix": "x", "suffix": "y"}]},
        'Only one key allowed in match expression, found "prefix"',
        "two-ops",
    ),
    bad(
        {"a": [{"prefix": 5}]},
        "prefix match pattern must be a string, not 5",
        "prefix-number",
        "$.a[0].prefix",
    ),
    bad({"a": [{"suffix": True}]}, "suffix match pattern must be a string, not true", "suffix-boolean"),
    bad(
        {"a": [{"prefix": {"equals-ignore-case": 1}}]},
        "prefix match pattern must be a string",
        "prefix-ic-number",
    ),
    bad({"a": [{"prefix": {"wildcard": "x"}}]}, "prefix match pattern must be a string", "prefix-object"),
    bad(
        {"a": [{"equals-ignore-case": ["x"]}]},
        "equals-ignore-case match pattern must be a string",
        "eic-list",
    ),
    bad(
        {"a": [{"wildcard": "a**b"}]}, "Consecutive wildcard characters at position 1", "wildcard-double-star"
    ),
    bad({"a": [{"wildcard": "a\\b"}]}, "Invalid escape at position 1", "wildcard-bad-escape"),
    bad({"a": [{"wildcard": "a\\"}]}, "Invalid escape", "wildcard-trailing-backslash"),
    bad({"a": [{"wildcard": 3}]}, "wildcard match pattern must be a string", "wildcard-number"),
    bad(
        {"a": [{"exists": "true"}]},
        'exists match pattern must be either true or false, not "true"',
        "exists-str",
    ),
    bad({"a": [{"exists": 1}]}, "exists match pattern must be either true or false", "exists-number"),
    bad({"a": [{"numeric": "> 5"}]}, "Value of numeric must be an array", "numeric-not-array"),
    bad({"a": [{"numeric": []}]}, "numeric expression is empty", "numeric-empty"),
    bad(
        {"a": [{"numeric": [">", "5"]}]},
        'Value of ">" must be numeric, not "5"',
        "numeric-string",
        "$.a[0].numeric[1]",
    ),
    bad({"a": [{"numeric": [">", True]}]}, 'Value of ">" must be numeric, not true', "numeric-boolean"),
    bad({"a": [{"numeric": [">"]}]}, '">" must be followed by a number', "numeric-no-operand"),
    bad(
        {"a": [{"numeric": ["~", 5]}]}, 'Unrecognized numeric range operator "~"', "numeric-unknown-operator"
    ),
    bad({"a": [{"numeric": [5]}]}, "Unrecognized numeric range operator 5", "numeric-operand-first"),
    bad(
        {"a": [{"numeric": [">", 5, "<", 1]}]},
        "numeric range out of order: lower bound 5 must be less than upper bound 1",
        "numeric-out-of-order",
        "$.a[0].numeric",
    ),
    bad({"a": [{"numeric": [">=", 5, "<=", 5]}]}, "numeric range out of order", "numeric-empty-range"),
    bad({"a": [{"numeric": [">", 1, ">", 2]}]}, 'Bad numeric range operator ">"', "numeric-two-lower-bounds"),
    bad(
        {"a": [{"numeric": ["<", 1, ">", 0]}]},
        "Too many terms in numeric range expression",
        "numeric-upper-first",
    ),
    bad(
        {"a": [{"numeric": ["=", 3, "<", 5]}]},
        "Too many elements in numeric expression",
        "numeric-equals-plus",
    ),
    bad({"a": [{"numeric": [">", 0, "<", 5, "<", 6]}]}, "Too many terms", "numeric-too-many-terms"),
    bad(
        {"a": [{"numeric": [">", 5000000001]}]}, "numeric value 5000000001 is out of range", "numeric-too-big"
    ),
    bad(
        {"a": [{"numeric": ["<", -5.1e9]}]},
        "out of range: must be between -5.0e9 and 5.0e9",
        "numeric-too-small",
    ),
    bad({"a": [{"anything-but": True}]}, "anything-but takes strings or numbers", "anything-but-boolean"),
    bad({"a": [{"anything-but": None}]}, "anything-but takes strings or numbers", "anything-but-null"),
    bad({"a": [{"anything-but": []}]}, "anything-but list is empty", "anything-but-empty-list"),
    bad(
        {"a": [{"anything-but": ["a", 1]}]},
        "anything-but list mixes strings and numbers",
        "anything-but-mixed",
    ),
    bad(
        {"a": [{"anything-but": [["a"]]}]},
        "anything-but takes strings or numbers",
        "anything-but-nested-list",
    ),
    bad({"a": [{"anything-but": 6e9}]}, "out of range", "anything-but-number-out-of-range"),
    bad(
        {"a": [{"anything-but": {"prefix": ""}}]},
        "anything-but prefix must be a non-empty string",
        "ab-empty-prefix",
    ),
    bad(
        {"a": [{"anything-but": {"suffix": 1}}]},
        "anything-but suffix must be a non-empty string",
        "ab-suffix-number",
    ),
    bad(
        {"a": [{"anything-but": {"numeric": [">", 1]}}]},
        'Unsupported anything-but pattern "numeric"',
        "ab-numeric",
    ),
    bad(
        {"a": [{"anything-but": {"prefix": "a", "suffix": "b"}}]}, "exactly one operator", "ab-two-operators"
    ),
    bad({"a": [{"anything-but": {"wildcard": "a**"}}]}, "Consecutive wildcard", "ab-wildcard-double-star"),
    bad(
        {"a": [{"anything-but": {"equals-ignore-case": [1]}}]},
        "equals-ignore-case match pattern",
        "ab-eic-num",
    ),
    bad(
        {"a": [{"cidr": "10.0.0.0/33"}]}, '"10.0.0.0/33" is not an IPv4 or IPv6 CIDR block', "cidr-bad-prefix"
    ),
    bad({"a": [{"cidr": 10}]}, "cidr match pattern must be a string", "cidr-number"),
    bad({"$or": {"a": ["x"]}}, "$or must be an array of at least 2 objects", "or-object"),
    bad({"$or": [{"a": ["x"]}]}, "$or must be an array of at least 2 objects", "or-one-branch"),
    bad(
        {"$or": [{"a": ["x"]}, "b"]},
        "only objects are allowed in a $or array, not a string",
        "or-string",
        "$.$or[1]",
    ),
    bad({"$or": [{"a": ["x"]}, {}]}, "Empty objects are not allowed", "or-empty-branch"),
    bad(
        {"$or": [{"prefix": ["x"]}, {"b": ["y"]}]},
        '"prefix" is an operator name and cannot be a field name inside $or',
        "or-operator-as-field",
        "$.$or[0].prefix",
    ),
    bad({"a": {"b c": "x"}}, '"b c" must be an object or an array', "path-quotes-odd-keys", '$.a["b c"]'),
    bad("{" + '"a":["' + "x" * MAX_PATTERN_LENGTH + '"]}', "the maximum is 4096", "too-long"),
]


@pytest.mark.parametrize(("text", "reason", "where"), INVALID_CASES)
def test_invalid_pattern(text: str, reason: str, where: str | None) -> None:
    with pytest.raises(InvalidPattern) as raised:
        validate_pattern(text)
    assert reason in raised.value.reason
    if where is not None:
        assert raised.value.where == where
    assert (
        str(raised.value)
        == f"Event pattern is not valid. Reason: {raised.value.reason} (at {raised.value.where})"
    )
    with pytest.raises(InvalidPattern):
        matches(text, {"a": "x"})  # matching validates first


def test_invalid_pattern_is_a_value_error() -> None:
    assert issubclass(InvalidPattern, ValueError)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        pytest.param({"a": {"x", "y"}}, "pattern has no JSON form", id="set-value"),
        pytest.param({"a": [float("nan")]}, "pattern has no JSON form", id="nan-value"),
        pytest.param(5, "pattern must be JSON text or an object, not int", id="not-a-pattern"),
    ],
)
def test_pattern_that_is_not_json(pattern: Any, reason: str) -> None:
    with pytest.raises(InvalidPattern, match=re.escape(reason)):
        validate_pattern(pattern)


def test_length_limit_is_inclusive() -> None:
    head, tail = '{"a":["', '"]}'
    text = head + "x" * (MAX_PATTERN_LENGTH - len(head) - len(tail)) + tail
    assert len(text) == MAX_PATTERN_LENGTH
    validate_pattern(text)


def test_compiled_once_per_text() -> None:
    text = '{"eventName": ["INSERT"]}'
    assert compile_pattern(text) is compile_pattern(text)
    assert compile_pattern({"eventName": ["INSERT"]}) is compile_pattern('{"eventName":["INSERT"]}')
    assert compile_pattern(text).matches(INSERT)


# --- properties ---------------------------------------------------------------------------------

SHORT_TEXT = st.text(max_size=40)


@settings(database=None)
@given(SHORT_TEXT, SHORT_TEXT)
def test_exact_string_matches_iff_equal(wanted: str, value: str) -> None:
    assert matches({"f": [wanted]}, {"f": value}) is (wanted == value)


@settings(database=None)
@given(SHORT_TEXT, SHORT_TEXT)
def test_prefix_and_suffix_agree_with_str(affix: str, value: str) -> None:
    assert matches({"f": [{"prefix": affix}]}, {"f": value}) is value.startswith(affix)
    assert matches({"f": [{"suffix": affix}]}, {"f": value}) is value.endswith(affix)
    if affix:  # an empty anything-but prefix is refused
        assert matches({"f": [{"anything-but": {"prefix": affix}}]}, {"f": value}) is not value.startswith(
            affix
        )


@settings(database=None)
@given(
    st.text(alphabet="ab*", max_size=12).filter(lambda w: "**" not in w), st.text(alphabet="ab", max_size=12)
)
def test_wildcard_agrees_with_a_regular_expression(wildcard: str, value: str) -> None:
    regex = ".*".join(re.escape(piece) for piece in wildcard.split("*"))
    expected = re.fullmatch(regex, value, re.DOTALL) is not None
    assert matches({"f": [{"wildcard": wildcard}]}, {"f": value}) is expected
    assert matches({"f": [{"anything-but": {"wildcard": wildcard}}]}, {"f": value}) is not expected


@settings(database=None)
@given(st.integers(-10, 10), st.integers(-10, 10), st.floats(-20, 20, allow_nan=False))
def test_numeric_range_agrees_with_comparisons(low: int, high: int, value: float) -> None:
    pattern = {"f": [{"numeric": [">", low, "<=", high]}]}
    if low >= high:
        with pytest.raises(InvalidPattern, match="out of order"):
            validate_pattern(pattern)
    else:
        assert matches(pattern, {"f": value}) is (low < value <= high)

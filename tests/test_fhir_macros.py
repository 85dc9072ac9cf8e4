"""The shared macros (templates/_macros/fhir.j2): each gives null when its data parts are blank.

A macro's constant parts (use, type, system, rank) must never make an element on their own:
empty, NULL and whitespace-only data parts are no data.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from fhirpipes.engine import from_string

EMPTY = ["", None, "   ", "\t\n"]


def call(macro: str, **values: Any) -> Any:
    """The macro's value for ``values`` (passed through the context, as record data is)."""
    arguments = ", ".join(f"{name}={name}" for name in values)
    template = from_string(
        '{% import "_macros/fhir.j2" as fhir %}{"result": [' + f"{{{{ fhir.{macro}({arguments}) }}}}" + "]}"
    )
    rendered = template.render(values)
    return None if rendered is None else rendered["result"][0]


@pytest.mark.parametrize("empty", EMPTY)
def test_human_name_is_null_when_no_name_part_has_a_value(empty: Any) -> None:
    assert call("human_name", family=empty, given=[empty, empty], use="official", text=empty) is None
    assert call("human_name", family=empty, given=[], prefix=["Dr."], use="official") is None


@pytest.mark.parametrize("empty", EMPTY)
def test_human_name_keeps_the_parts_that_have_a_value(empty: Any) -> None:
    assert call("human_name", family=empty, given=[empty, "Ada"], use="official") == {
        "use": "official",
        "given": ["Ada"],
    }
    assert call("human_name", family="Lovelace", given=[empty], use="usual") == {
        "use": "usual",
        "family": "Lovelace",
    }


@pytest.mark.parametrize("empty", EMPTY)
def test_address_is_null_when_every_part_is_blank(empty: Any) -> None:
    blank = {name: empty for name in ("city", "state", "postal_code", "country", "district")}
    assert call("address", line=[empty, empty], use="home", type="physical", **blank) is None


@pytest.mark.parametrize("part", ["city", "state", "postal_code", "country", "district"])
def test_address_with_one_part_is_an_address(part: str) -> None:
    others = {name: "  " for name in ("city", "state", "postal_code", "country", "district") if name != part}
    key = "postalCode" if part == "postal_code" else part
    assert call("address", line=[" "], use="home", **{part: "X1", **others}) == {"use": "home", key: "X1"}
    assert call("address", line=["", "1 Main St"], use="work") == {"use": "work", "line": ["1 Main St"]}


@pytest.mark.parametrize("empty", EMPTY)
def test_contact_point_is_null_without_a_value(empty: Any) -> None:
    assert call("contact_point", system="phone", value=empty, use="home", rank=1) is None
    assert call("contact_point", system="phone", value="+1 555", use="home") == {
        "system": "phone",
        "value": "+1 555",
        "use": "home",
    }


@pytest.mark.parametrize("empty", EMPTY)
def test_identifier_is_null_without_a_value_and_has_no_type_without_a_type_code(empty: Any) -> None:
    assert call("identifier", system="urn:x", value=empty, use="usual", type_code="MR") is None
    assert call("identifier", system="urn:x", value="42-a", use="usual", type_code=empty) == {
        "use": "usual",
        "system": "urn:x",
        "value": "42-a",
    }


@pytest.mark.parametrize("empty", EMPTY)
def test_coding_is_null_without_a_code(empty: Any) -> None:
    assert call("coding", system="urn:x", code=empty, display="Shown") is None
    assert call("coding", system="urn:x", code="A1", display=empty) == {"system": "urn:x", "code": "A1"}


@pytest.mark.parametrize("wrong", [Decimal(7), True, {"a": "b"}])
def test_a_value_of_the_wrong_type_is_passed_through_never_turned_into_text(wrong: Any) -> None:
    # Validation then refuses it as a record error; "7", "True" or a repr would pass unnoticed.
    coding = call("coding", system="urn:x", code=wrong)
    assert coding["code"] == (7 if isinstance(wrong, Decimal) else wrong)
    assert call("contact_point", system="phone", value=wrong)["value"] is not None

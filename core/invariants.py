"""The error-severity invariants of FHIR's common datatypes, checked in Python on every validated resource.

fhir.resources evaluates no invariant, and a FHIRPath engine per record would cost more than the mapping:
these are the datatypes' constraints a template can break, written out by hand from the official R4B and
R5 expressions (quoted beside each; the conformance kit evaluates every one of them, and each resource's
own, with a FHIRPath engine: `fhirpipes.testing.invariants`). Each check takes the element's JSON value
(as `fhirpipes.fhirjson` writes it) and returns True when the element breaks the invariant.

Comparisons follow FHIR's meaning of partial values: a Period breaks per-1 only when its start is surely
after its end (R5's ``start.lowBoundary() <= end.highBoundary()``; R4B's ``start <= end`` is unknown, not
false, at differing precisions), and a Range breaks rng-2 only when low and high have the same unit.

Not checked here (the kit does): the constraints of rarely templated types (ElementDefinition,
DataRequirement, TriggerDefinition, Expression, SampledData, RatioRange, Dosage, Availability), ref-1 (a
``#`` reference must name a contained resource: it needs the root resource) and Narrative's htmlChecks().
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

Invariant = tuple[str, str, Callable[[dict[str, Any]], bool]]
"""(key, human text from the definition, check: True when the element breaks it)."""

UCUM = "http://unitsofmeasure.org"


def _instant(text: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:  # a leap second (":60") or any form fromisoformat can't read: no verdict
        return None


def after(start: Any, end: Any) -> bool:
    """Whether FHIR date/dateTime ``start`` is surely after ``end`` (both as written in JSON).

    Two values with times compare as instants; otherwise their dates compare at the precision both have
    ("2020-05" is not after "2020", "2021" is after "2020-12-31").
    """
    if not isinstance(start, str) or not isinstance(end, str):
        return False
    if len(start) == len(end) <= 10:  # the same date precision: the text orders as the dates do
        return start > end
    if "T" in start and "T" in end:
        first, second = _instant(start), _instant(end)
        if first is None or second is None or (first.tzinfo is None) != (second.tzinfo is None):
            return False
        return first > second
    common = min(len(start.split("T")[0]), len(end.split("T")[0]))
    return start[:common] > end[:common]


def _quantity_gt(low: Any, high: Any) -> bool:
    if not isinstance(low, dict) or not isinstance(high, dict):
        return False
    if "value" not in low or "value" not in high:
        return False
    unit = ("system", "code") if "code" in low or "code" in high else ("unit",)
    if any(low.get(key) != high.get(key) for key in unit):
        return False  # not comparable without unit conversion: no verdict
    return bool(low["value"] > high["value"])


PER_1 = (
    "per-1",
    "If present, start SHALL have a lower value than end",
    lambda e: after(e.get("start"), e.get("end")),
)
QTY_3 = ("qty-3", "If a code for the unit is present, the system SHALL also be present",
         lambda e: "code" in e and "system" not in e)  # fmt: skip


def _ucum_expression(e: dict[str, Any]) -> bool:
    # (code.exists() or value.empty()) and (system.empty() or system = %ucum), broken when false
    return ("code" not in e and "value" in e) or ("system" in e and e["system"] != UCUM)


_COMMON: dict[str, tuple[Invariant, ...]] = {
    # start.hasValue().not() or end.hasValue().not() or (start <= end)
    "Period": (PER_1,),
    # code.empty() or system.exists()
    "Quantity": (QTY_3,),
    # value.empty() or system.exists()
    "ContactPoint": (("cpt-2", "A system is required if a value is provided.",
                      lambda e: "value" in e and "system" not in e),),
    # data.empty() or contentType.exists()
    "Attachment": (("att-1", "If the Attachment has data, it SHALL have a contentType",
                    lambda e: "data" in e and "contentType" not in e),),
    # low.empty() or high.empty() or (low <= high)
    "Range": (("rng-2", "If present, low SHALL have a lower value than high",
               lambda e: _quantity_gt(e.get("low"), e.get("high"))),),
    # (numerator.exists() and denominator.exists()) or (numerator.empty() and denominator.empty() and
    # extension.exists())
    "Ratio": (("rat-1", "Numerator and denominator SHALL both be present, or both are absent. If both are "
               "absent, there SHALL be some extension present",
               lambda e: ("numerator" in e) != ("denominator" in e)
               or ("numerator" not in e and "extension" not in e)),),
    "Age": (QTY_3, ("age-1", "There SHALL be a code if there is a value and it SHALL be an expression of "
                    "time.  If system is present, it SHALL be UCUM.  If value is present, it SHALL be positive.",
                    lambda e: _ucum_expression(e) or ("value" in e and not e["value"] > 0))),
    "Count": (QTY_3, ("cnt-3", "There SHALL be a code with a value of \"1\" if there is a value. If system is "
                      "present, it SHALL be UCUM.  If present, the value SHALL be a whole number.",
                      lambda e: _ucum_expression(e) or e.get("code", "1") != "1"
                      or ("value" in e and "." in str(e["value"])))),
    "Distance": (QTY_3, ("dis-1", "There SHALL be a code if there is a value and it SHALL be an expression of "
                         "length.  If system is present, it SHALL be UCUM.", _ucum_expression)),
    # value.exists() implies ((system = %ucum) and code.exists())  (R4B and R5)
    "Duration": (QTY_3, ("drt-1", "There SHALL be a code if there is a value and it SHALL be an expression of "
                         "time.  If system is present, it SHALL be UCUM.",
                         lambda e: "value" in e and (e.get("system") != UCUM or "code" not in e))),
    "TimingRepeat": (
        ("tim-1", "if there's a duration, there needs to be duration units",
         lambda e: "duration" in e and "durationUnit" not in e),
        ("tim-2", "if there's a period, there needs to be period units",
         lambda e: "period" in e and "periodUnit" not in e),
        ("tim-4", "duration SHALL be a non-negative value", lambda e: e.get("duration", 0) < 0),
        ("tim-5", "period SHALL be a non-negative value", lambda e: e.get("period", 0) < 0),
        ("tim-6", "If there's a periodMax, there must be a period", lambda e: "periodMax" in e and "period" not in e),
        ("tim-7", "If there's a durationMax, there must be a duration",
         lambda e: "durationMax" in e and "duration" not in e),
        ("tim-8", "If there's a countMax, there must be a count", lambda e: "countMax" in e and "count" not in e),
        # offset.empty() or (when.exists() and ((when in ('C' | 'CM' | 'CD' | 'CV')).not()))
        ("tim-9", "If there's an offset, there must be a when (and not C, CM, CD, CV)",
         lambda e: "offset" in e and (not e.get("when") or any(w in ("C", "CM", "CD", "CV") for w in e["when"]))),
        ("tim-10", "If there's a timeOfDay, there cannot be a when, or vice versa",
         lambda e: "timeOfDay" in e and "when" in e),
    ),
}  # fmt: skip

_R5: dict[str, tuple[Invariant, ...]] = {
    # reference.exists() or identifier.exists() or display.exists() or extension.exists()
    "Reference": (("ref-2", "At least one of reference, identifier and display SHALL be present (unless an "
                   "extension is provided).",
                   lambda e: not ({"reference", "identifier", "display", "extension"} & e.keys())),),
}  # fmt: skip

BY_VERSION = {"R4B": _COMMON, "R5": {**_COMMON, **_R5}}


def invariants(class_name: str, version: str) -> tuple[Invariant, ...]:
    """The invariants checked on elements of the fhir.resources class ``class_name`` in ``version``."""
    return BY_VERSION.get(version, {}).get(class_name, ())

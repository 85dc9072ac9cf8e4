"""Whether a MODIFY changes anything FHIR shows: the rule behind ``skip_unchanged``.

Documented meaning: a MODIFY whose old and new images give the same resource yields nothing.
Deciding it by building both resources would cost a MODIFY twice an INSERT, so it is decided in
the cheapest step that is certain:

1. the template reads only some attributes of ``new`` (the compiler lists them): if the two
   images agree on all of them, both renders are the same, so nothing changed (no render at all);
2. otherwise both images are rendered; equal values (same types too) give equal resources;
3. different values usually show: where they differ only in strings (or in elements present on
   one side), and the validated new resource carries those strings as rendered, the old resource
   would carry its own (fhir.resources keeps string primitives verbatim), so they differ;
4. anything else (a number, a boolean, a string validation may have coerced) is settled by
   validating the old value too and comparing the two resources.

Steps 1 to 3 are exact shortcuts of step 4; a differential test against building both resources
keeps them so. One deliberate difference: an item that doesn't map and whose MODIFY touches no
attribute the template reads is skipped (its failure was reported when it became unmappable).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhirpipes.engine.runtime import NA, same


def reads_agree(reads: frozenset[str], new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Both images hold the same value (or both lack it) for every attribute the template reads."""
    return all(same(new.get(name, NA), old.get(name, NA)) for name in reads)


def certainly_shows(before: Any, after: Any, validated: Any) -> bool:
    """Whether ``before`` and ``after`` (two template values) differ in a way ``validated`` (the
    validated resource of ``after``) is certain to show; False means "not certain", not "same"."""
    finder = _Differences()
    return finder.walk(before, after, validated) and finder.found


def _identical(a: Any, b: Any) -> bool:
    """For ``a == b``: whether the types agree too (repr tells 1, True, 1.0 and Decimal('1') apart)."""
    return type(a) is type(b) and repr(a) == repr(b)


class _Differences:
    def __init__(self) -> None:
        self.found = False

    def walk(self, before: Any, after: Any, validated: Any) -> bool:
        """False when unsure; sets ``found`` when a difference certainly shows."""
        if before == after:  # equal here, unless types differ (1 and True): then unsure
            return _identical(before, after)
        if type(before) is str and type(after) is str:
            if type(validated) is str and validated == after:
                self.found = True
                return True
            return False
        if type(before) is dict and type(after) is dict:
            out = validated if type(validated) is dict else {}
            for key in before.keys() | after.keys():
                if key in before and key in after:
                    if not self.walk(before[key], after[key], out.get(key, NA)):
                        return False
                elif key in after and key not in out:
                    return False
                else:
                    self.found = True  # an element on one side only: validation adds and drops none
            return True
        if type(before) is list and type(after) is list:
            out_list = validated if type(validated) is list else []
            for index in range(max(len(before), len(after))):
                if index < len(before) and index < len(after):
                    out_item = out_list[index] if index < len(out_list) else NA
                    if not self.walk(before[index], after[index], out_item):
                        return False
                elif index < len(after) and index >= len(out_list):
                    return False
                else:
                    self.found = True
            return True
        return False

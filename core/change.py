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
    """Whether ``before`` and ``after`` (two template values) differ somewhere ``validated`` (the
    validated resource of ``after``) is certain to show; False means "not certain", not "same".

    One certain difference settles it, so equal parts aren't examined, and a difference that
    validation could hide (a number, a boolean, a coerced string) is just not counted.
    """
    if before == after:
        return False
    if type(before) is str and type(after) is str:
        return type(validated) is str and validated == after  # kept verbatim: a string-typed element
    if type(before) is dict and type(after) is dict:
        out = validated if type(validated) is dict else {}
        for key, member in after.items():
            if key not in before:
                if key in out:
                    return True  # an element only the new resource has
            elif member != before[key] and certainly_shows(before[key], member, out.get(key, NA)):
                return True
        # An element only the old resource has (validation adds and drops none).
        return any(key not in after for key in before)
    if type(before) is list and type(after) is list:
        out_list = validated if type(validated) is list else []
        if len(before) > len(after):
            return True
        for index, item in enumerate(after):
            if index >= len(before):
                if index < len(out_list):
                    return True
            elif item != before[index] and certainly_shows(
                before[index], item, out_list[index] if index < len(out_list) else NA
            ):
                return True
    return False

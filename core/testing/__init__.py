"""The plugin authors' kit: conformance checks, stream-record builders and golden files.

``MapperConformanceTests`` is the base class a plugin's test module subclasses;
``make_record``/``make_batch`` build DynamoDB stream records from plain items; ``golden`` compares
a mapper's output with reviewed expected files. ``fhirpipes conformance`` runs the same checks on
installed plugins, without pytest (``run_checks``). Names load on first use: the pytest plugin (`fhirpipes.testing.fixtures`)
imports this package in every test run, and must register assertion rewriting for the kit
before the kit is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhirpipes.exports import lazy_exports

if TYPE_CHECKING:
    from .conformance import HOSTILE_STRINGS, MapperConformanceTests  # noqa: TID251 -- relative: only for type checkers
    from .runner import CheckResult, CheckSkipped, run_checks  # noqa: TID251
    from .stream import attribute_value, attribute_values, make_batch, make_record  # noqa: TID251

_EXPORTS: dict[str, str] = {
    "HOSTILE_STRINGS": "conformance",
    "CheckResult": "runner",
    "CheckSkipped": "runner",
    "MapperConformanceTests": "conformance",
    "attribute_value": "stream",
    "attribute_values": "stream",
    "make_batch": "stream",
    "make_record": "stream",
    "run_checks": "runner",
}

__all__ = [  # noqa: RUF022 -- plain sorted() order, the same as sorted(_EXPORTS)
    "CheckResult",
    "CheckSkipped",
    "HOSTILE_STRINGS",
    "MapperConformanceTests",
    "attribute_value",
    "attribute_values",
    "make_batch",
    "make_record",
    "run_checks",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

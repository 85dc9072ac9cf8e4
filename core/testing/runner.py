"""Running the conformance checks without pytest: what ``fhirpipes conformance`` does.

`run_checks` runs the ``test_*`` methods of a `fhirpipes.testing.MapperConformanceTests`
subclass in-process, one fresh instance per check as pytest makes them, and yields a
`CheckResult` for each: so the kit works where pytest isn't installed (a CI job, an image with
only the plugin). A check skips itself by raising `CheckSkipped`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fhirpipes.testing.conformance import MapperConformanceTests


class CheckSkipped(Exception):
    """A check does not apply to this mapper (raised instead of pytest's skip outside pytest)."""


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``passed``, ``failed`` or ``skipped``, with a message for the last two."""

    check: str
    status: str
    message: str = ""


def checks_of(cls: type[MapperConformanceTests]) -> list[str]:
    """The check methods of ``cls``, base class first, in definition order."""
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if name.startswith("test_") and callable(value) and name not in names:
                names.append(name)
    return names


def run_checks(
    cls: type[MapperConformanceTests], only: Callable[[str], bool] | None = None
) -> Iterator[CheckResult]:
    """Run the checks of ``cls`` without pytest, one fresh instance per check (as pytest does)."""
    if not __debug__:
        raise RuntimeError("the conformance checks are assertions: don't run Python with -O")
    # The flag makes `MapperConformanceTests.skip` raise CheckSkipped even when pytest is imported.
    programmatic = type(cls.__name__, (cls,), {"_kit_programmatic": True, "__module__": cls.__module__})
    for name in checks_of(cls):
        if only is not None and not only(name):
            continue
        try:
            getattr(programmatic(), name)()
        except CheckSkipped as exc:
            yield CheckResult(name, "skipped", str(exc))
        except AssertionError as exc:
            yield CheckResult(name, "failed", str(exc) or "assertion failed")
        except Exception as exc:
            yield CheckResult(name, "failed", f"{type(exc).__name__}: {exc}")
        else:
            yield CheckResult(name, "passed")

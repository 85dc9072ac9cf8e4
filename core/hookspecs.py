"""The hooks a fhirpipes plugin can implement (pluggy project name ``fhirpipes``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from fhirpipes.mapper import Mapper

hookspec = pluggy.HookspecMarker("fhirpipes")
hookimpl = pluggy.HookimplMarker("fhirpipes")


@hookspec
def register_mappers(register: Callable[[Mapper], None]) -> None:
    """Call ``register(mapper)`` once for each source table (or item type) this plugin maps.

    A callback rather than a first-result hook: the core builds its table -> mapper registry once
    per cold start, refuses two plugins claiming one table (naming both), and can list everything.
    """

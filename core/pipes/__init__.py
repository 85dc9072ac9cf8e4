"""Run EventBridge Pipes locally, faithfully.

Filters (EventBridge event patterns, `fhirpipes.pipes.patterns`), input templates
(`fhirpipes.pipes.input_template`), and the runner that reads a real DynamoDB stream API and
delivers to a target (`runner`, `streams`, `checkpoint`, `targets`, `embedded`), with the delivery
guarantees of `runner` (`appendfile`, `deadletter`, `retry`). Names load on first use, so ``import fhirpipes.pipes``
stays cheap; to add one, list it in ``_EXPORTS`` with the submodule that defines it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhirpipes.exports import lazy_exports

if TYPE_CHECKING:
    # Relative, so mypy resolves them however it names this folder (core.pipes or fhirpipes.pipes);
    # never executed, so the double-import TID251 guards against can't happen.
    from .checkpoint import Checkpoints  # noqa: TID251
    from .deadletter import DeadLetters  # noqa: TID251
    from .embedded import EmbeddedAws  # noqa: TID251
    from .input_template import (  # noqa: TID251
        MAX_INPUT_TEMPLATE_LENGTH,
        InvalidInputTemplate,
        PipeContext,
        render_input_template,
        render_input_template_batch,
        validate_input_template,
    )
    from .patterns import (  # noqa: TID251
        MAX_FILTERS,
        MAX_PATTERN_LENGTH,
        CompiledPattern,
        InvalidPattern,
        compile_pattern,
        matches,
        matches_any,
        validate_filters,
        validate_pattern,
    )
    from .runner import Counters, EnrichmentError, PipeDefinition, Runner, RunResult  # noqa: TID251
    from .streams import StreamReader, normalise_record  # noqa: TID251
    from .targets import Delivery, DeliveryError, Target, deliver, parse_target  # noqa: TID251

# name -> submodule (relative to this package) that defines it
_EXPORTS: dict[str, str] = {
    "Checkpoints": "checkpoint",
    "CompiledPattern": "patterns",
    "Counters": "runner",
    "DeadLetters": "deadletter",
    "Delivery": "targets",
    "DeliveryError": "targets",
    "EmbeddedAws": "embedded",
    "EnrichmentError": "runner",
    "InvalidInputTemplate": "input_template",
    "InvalidPattern": "patterns",
    "MAX_FILTERS": "patterns",
    "MAX_INPUT_TEMPLATE_LENGTH": "input_template",
    "MAX_PATTERN_LENGTH": "patterns",
    "PipeContext": "input_template",
    "PipeDefinition": "runner",
    "RunResult": "runner",
    "Runner": "runner",
    "StreamReader": "streams",
    "Target": "targets",
    "compile_pattern": "patterns",
    "deliver": "targets",
    "matches": "patterns",
    "matches_any": "patterns",
    "normalise_record": "streams",
    "parse_target": "targets",
    "render_input_template": "input_template",
    "render_input_template_batch": "input_template",
    "validate_filters": "patterns",
    "validate_input_template": "input_template",
    "validate_pattern": "patterns",
}

__all__ = [  # noqa: RUF022 -- plain sorted() order, the same as sorted(_EXPORTS)
    "Checkpoints",
    "CompiledPattern",
    "Counters",
    "DeadLetters",
    "Delivery",
    "DeliveryError",
    "EmbeddedAws",
    "EnrichmentError",
    "InvalidInputTemplate",
    "InvalidPattern",
    "MAX_FILTERS",
    "MAX_INPUT_TEMPLATE_LENGTH",
    "MAX_PATTERN_LENGTH",
    "PipeContext",
    "PipeDefinition",
    "RunResult",
    "Runner",
    "StreamReader",
    "Target",
    "compile_pattern",
    "deliver",
    "matches",
    "matches_any",
    "normalise_record",
    "parse_target",
    "render_input_template",
    "render_input_template_batch",
    "validate_filters",
    "validate_input_template",
    "validate_pattern",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

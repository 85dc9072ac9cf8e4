"""The names of the function's CloudWatch metrics: one contract for the emitter and the stack's alarms.

The handler writes them in CloudWatch's Embedded Metric Format (log lines, no API call); the
template (`fhirpipes.deploy.cloudformation`) alarms on them. Both import the names from here,
so a rename can't leave an alarm watching a metric nobody writes.

Every metric is a ``Count``, summed per batch, in namespace `NAMESPACE`, with the single
dimension `TABLE_DIMENSION` = the source table's name (as in the stream ARN).
"""

from __future__ import annotations

NAMESPACE = "fhirpipes"
TABLE_DIMENSION = "Table"

RECORDS_MAPPED = "RecordsMapped"
"""Records that gave an event (PUT or DELETE)."""
RECORDS_SKIPPED = "RecordsSkipped"
"""Records that gave nothing by design (an unchanged MODIFY, an ignored REMOVE, no matching mapper)."""
RECORDS_FAILED = "RecordsFailed"
"""Records that could not be mapped (an error event, or the batch failed with ``raise``)."""
RECORDS_DROPPED = "RecordsDropped"
"""Failed records left out (``FHIRPIPES_ON_ERROR=drop``)."""

RECORD_METRICS: tuple[str, ...] = (RECORDS_MAPPED, RECORDS_SKIPPED, RECORDS_FAILED, RECORDS_DROPPED)

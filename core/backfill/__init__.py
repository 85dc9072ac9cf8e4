"""Backfill: the items a table already holds, through the same mappers as its stream's INSERTs.

A DynamoDB export (`fhirpipes.backfill.sources`) or a parallel Scan is cut into partitions (an
export's data files, a scan's segments); each partition is read, item by item, as the INSERT the
Lambda would get for that item (`fhirpipes.backfill.items`), mapped by the very dispatcher the
Lambda runs, and written (`fhirpipes.backfill.work`) to NDJSON files per resource type or into a
FHIR store through the sink. The per-partition function is plain Python: the local engine runs it
in a process pool (`fhirpipes.backfill.local`), the Spark engine on Spark
(`fhirpipes.backfill.spark`); a state folder (`fhirpipes.backfill.state`) makes a rerun continue.
"""

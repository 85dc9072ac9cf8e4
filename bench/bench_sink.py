"""The FHIR store sink against a real FHIR server on 127.0.0.1 (Medplum's router, in memory):
resources per second and requests per resource, with and without the stale-write guard and Bundles.

Wall time over loopback on a shared machine: the request counts are exact, the rates the order of
magnitude only. Needs `make fhir-server`.

    python bench/bench_sink.py [--records 400]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from medplum import medplum  # the test FHIR server: started here, stopped at the end

from fhirpipes.dispatch import Dispatcher
from fhirpipes.sink import Sink, SinkSettings
from fhirpipes.testing.stream import make_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=400)
    count = parser.parse_args().records
    # The default settings, whatever the environment says.
    dispatcher = Dispatcher.from_env({}, plugins=["patient"])

    def events(tag: str) -> list[dict[str, object]]:
        records = [
            make_record(
                "Patients",
                {
                    "id": f"{tag}-{index}",
                    "firstName": "A",
                    "lastName": f"L{index}",
                    "birthDate": "07-13-1991",
                },
                sequence_number=f"{1000 + index:021d}",
            )
            for index in range(count)
        ]
        return dispatcher.map_batch(records)

    print(f"{count} Patients per run; a fresh resource id per row")
    with medplum() as url:
        for concurrency, bundle in ((1, 1), (4, 1), (1, 20), (1, 100)):
            for guard in ("none", "version"):
                sink = Sink(SinkSettings(url, guard=guard, concurrency=concurrency, bundle_size=bundle))
                batch = events(f"{guard}-{concurrency}-{bundle}")
                for label in ("new", "replayed"):
                    before, started = sink.client.requests, time.perf_counter()
                    answer = sink.deliver(batch)
                    elapsed = time.perf_counter() - started
                    assert answer == {"batchItemFailures": []}, answer
                    print(
                        f"bundle {bundle:3}  concurrency {concurrency}  guard {guard:7}  {label:8}  "
                        f"{count / elapsed:7.0f} resources/s  {(sink.client.requests - before) / count:.2f} requests/resource"
                    )
                sink.client.close()


if __name__ == "__main__":
    main()

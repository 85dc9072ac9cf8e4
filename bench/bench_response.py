"""`fhirpipes.response.response_size` on a 5 MB response against the Lambda runtime's own encoding.

The response is the handler's output for rich Patient INSERTs (one in four with a non-ASCII
family name), grown to about 5 MB as the runtime counts it. Timed, interleaved, CPU time, median:
awslambdaric's ``LambdaMarshaller().marshal_response`` plus the UTF-8 encoding it posts (what
``encode_response`` reproduces), ``response_size``, and compact ``orjson.dumps`` (the dispatcher's
count before, ~8% short), under python3.11's encoding (ASCII) and python3.12's (UTF-8).

    python bench/bench_response.py [--megabytes 5] [--rounds 15]
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))
from records import rich_item, stream_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    import orjson
    from awslambdaric.lambda_runtime_marshaller import LambdaMarshaller

    from fhirpipes import logs
    from fhirpipes.handler import handler
    from fhirpipes.response import response_size

    logs.configure("WARNING", io.StringIO())
    one = handler([stream_record(0, rich_item(0))])
    count = int(args.megabytes * 1e6 / response_size(one))
    records = []
    for index in range(count):
        item = rich_item(index)
        if index % 4 == 0:
            item["lastName"] = f"Nguyễn-Øster {index}"
        records.append(stream_record(index, item))
    events = handler(records)

    def runtime() -> int:
        return len(LambdaMarshaller().marshal_response(events)[0].encode("utf-8"))

    ways: dict[str, Callable[[], int]] = {
        "awslambdaric marshal_response + UTF-8": runtime,
        "fhirpipes.response.response_size": lambda: response_size(events),
        "orjson.dumps, compact (undercounts)": lambda: len(orjson.dumps(events)),
    }
    for environment in ("AWS_Lambda_python3.11", "AWS_Lambda_python3.12"):
        os.environ["AWS_EXECUTION_ENV"] = environment
        sizes = {name: way() for name, way in ways.items()}
        assert sizes["fhirpipes.response.response_size"] == sizes["awslambdaric marshal_response + UTF-8"]
        samples: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, way in ways.items():
                gc.collect()
                start = time.process_time()
                way()
                samples[name].append(time.process_time() - start)
        ms = {name: statistics.median(values) * 1e3 for name, values in samples.items()}
        base = ms["awslambdaric marshal_response + UTF-8"]
        size = sizes["awslambdaric marshal_response + UTF-8"]
        print(
            f"{environment}: {len(events)} events, {size / 1e6:.2f} MB sent; CPU ms, median of {args.rounds}"
        )
        for name, value in ms.items():
            off = sizes[name] / size - 1
            print(f"  {name:<40} {value:7.1f} ms  {value / base:5.2f}x   size {off:+.1%}")
    del os.environ["AWS_EXECUTION_ENV"]


if __name__ == "__main__":
    main()

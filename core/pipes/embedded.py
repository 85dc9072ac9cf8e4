"""The embedded DynamoDB (with Streams, CloudWatch Logs and SQS): moto's server mode, in process.

Started on 127.0.0.1 and a port the OS picks (no race between choosing a free port and binding
it), stopped on exit; no Docker, no Java, no account. It runs in a daemon thread of this process,
so a crash can't leave a server behind. Every service moto emulates answers on the one endpoint.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Any

from fhirpipes.errors import ConfigurationError
from fhirpipes.pipes.aws import AwsConfig

HOST = "127.0.0.1"


class EmbeddedAws:
    """moto's server on 127.0.0.1; use as a context manager or call `start` and `stop`.

    ``ready_seconds`` is how long `start` took, from the import of moto to the first answered call.
    """

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: Any = None
        self.endpoint_url: str | None = None
        self.ready_seconds: float | None = None

    @property
    def config(self) -> AwsConfig:
        """Client settings for this server (dummy credentials, ``us-east-1``)."""
        if self.endpoint_url is None:
            raise ConfigurationError("the embedded server is not running")
        return AwsConfig.embedded(self.endpoint_url)

    def start(self) -> EmbeddedAws:
        """Start the server and wait until it answers; returns ``self``."""
        began = time.perf_counter()
        try:
            from moto.server import ThreadedMotoServer  # lazy: heavy, and only the local Pipe needs it
        except ImportError as exc:
            raise ConfigurationError(
                "the embedded DynamoDB needs moto's server mode: pip install 'fhirpipes[local]'"
            ) from exc
        # werkzeug logs every request (with the path) to stderr: keep the user's terminal quiet.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address=HOST, port=self._port, verbose=False)
        server.start()
        self._server = server
        host, port = server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self.config.client("dynamodb").list_tables(Limit=1)
        self.ready_seconds = time.perf_counter() - began
        return self

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        self.endpoint_url = None

    def __enter__(self) -> EmbeddedAws:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def create_stream_table(client: Any, table: str, key: str = "id") -> str:
    """Create ``table`` (string partition key ``key``) with a NEW_AND_OLD_IMAGES stream, unless it
    exists; returns its stream ARN."""
    existing = client.list_tables()["TableNames"]
    if table not in existing:
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    description = client.describe_table(TableName=table)["Table"]
    arn = description.get("LatestStreamArn")
    if not arn:
        raise ConfigurationError(f"table {table!r} exists without a stream")
    return str(arn)

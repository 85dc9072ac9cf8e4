"""The embedded DynamoDB (with Streams, CloudWatch Logs and SQS): moto's server mode, in a child process.

Started on 127.0.0.1 and a port the OS picks (the child binds port 0 and reports the port, so
there is no race between choosing a free port and binding it), stopped on exit; no Docker, no
Java, no account. Every service moto emulates answers on the one endpoint.

Why a child process and not moto's threaded server in this one: moto builds boto3 sessions
while it serves, and boto3 reads ``AWS_PROFILE`` and ``~/.aws/config`` from the environment;
in process, a user's profile settings would leak into (or break) the emulator. The child gets an
environment with no AWS variables and no AWS files. It can't outlive us: it runs until its
standard input closes, which the OS does when this process ends, however it ends; it is in its
own session, so the Ctrl-C meant for the runner doesn't kill the database under the batch in hand.
"""

from __future__ import annotations

import importlib.util
import os
import selectors
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import IO, Any

from fhirpipes.errors import ConfigurationError
from fhirpipes.extras import install_command
from fhirpipes.pipes.aws import EMBEDDED_REGION, AwsConfig

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 5.0


def child_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the server process: ours without AWS settings, with dummy credentials."""
    base = dict(os.environ if environ is None else environ)
    clean = {key: value for key, value in base.items() if not key.startswith("AWS_")}
    clean.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_ACCESS_KEY_ID="embedded",
        AWS_SECRET_ACCESS_KEY="embedded",
        AWS_DEFAULT_REGION=EMBEDDED_REGION,
    )
    return clean


class EmbeddedAws:
    """moto's server on 127.0.0.1; use as a context manager or call `start` and `stop`.

    ``ready_seconds`` is how long `start` took, from launching the server to its first answered call.
    """

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None
        self.endpoint_url: str | None = None
        self.ready_seconds: float | None = None

    @property
    def config(self) -> AwsConfig:
        """Client settings for this server (dummy credentials, ``us-east-1``)."""
        if self.endpoint_url is None:
            raise ConfigurationError("the embedded server is not running")
        return AwsConfig.embedded(self.endpoint_url)

    @property
    def pid(self) -> int | None:
        """The server process's id, while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> EmbeddedAws:
        """Start the server and wait until it answers; returns ``self``."""
        began = time.perf_counter()
        for module in ("moto", "boto3"):  # here, not in the child: the CLI names the extra to install
            if importlib.util.find_spec(module) is None:
                raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- lives as long as the server
        self._process = subprocess.Popen(
            [sys.executable, "-m", "fhirpipes.pipes.embedded", HOST, str(self._port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=child_environment(),
            text=True,
            start_new_session=True,
        )
        try:
            port = self._read_port(self._process)
            self.endpoint_url = f"http://{HOST}:{port}"
            self.config.client("dynamodb").list_tables(Limit=1)
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.perf_counter() - began
        return self

    def _read_port(self, process: subprocess.Popen[str]) -> int:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(START_TIMEOUT_SECONDS)
        line = process.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            raise ConfigurationError(
                "the embedded DynamoDB did not start"
                + (f" in {START_TIMEOUT_SECONDS:.0f} s" if not ready else "")
                + f": {self._failure_reason()} (it needs moto's server mode: {install_command('local')})"
            )
        return int(line)

    def _failure_reason(self) -> str:
        if self._stderr is None:
            return "no output"
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def stop(self) -> None:
        """Stop the server and wait for its process to end (idempotent)."""
        process, self._process = self._process, None
        self.endpoint_url = None
        if process is not None:
            try:
                if process.stdin is not None:
                    process.stdin.close()  # the server's signal to stop
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            finally:
                if process.stdout is not None:
                    process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

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
    if table not in client.list_tables()["TableNames"]:
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    arn = client.describe_table(TableName=table)["Table"].get("LatestStreamArn")
    if not arn:
        raise ConfigurationError(f"table {table!r} exists without a stream")
    return str(arn)


def serve(host: str, port: int) -> None:
    """The child process: serve until standard input closes."""
    import logging
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    # werkzeug logs every request (with its path) to stderr: keep it quiet.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    try:
        sys.stdin.read()  # returns when the parent closes the pipe, or ends
    finally:
        server.stop()


if __name__ == "__main__":  # pragma: no cover - run as the child by EmbeddedAws.start
    serve(sys.argv[1], int(sys.argv[2]))

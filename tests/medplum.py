"""A real FHIR server for the tests: tests/fhir_server/server.mjs (Medplum's FHIR router, in memory)
as a node subprocess on 127.0.0.1, started and stopped by the test (``make fhir-server`` installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parent / "fhir_server"
START_TIMEOUT = 30.0


def node_command(script: str) -> list[str]:
    """How to run one of tests/fhir_server's scripts (skips the test if node or the packages are missing)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (SERVER / "node_modules" / ".installed").is_file():
        pytest.skip("Medplum's packages are not installed: run `make fhir-server`")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    # Medplum's core uses the global WebSocket: a flag on Node 20-21, built in from 22.
    flags = ["--experimental-websocket"] if int(version.lstrip("v").split(".")[0]) < 22 else []
    return [node, *flags, str(SERVER / script)]


@contextmanager
def medplum() -> Iterator[str]:
    """The server's FHIR base URL for the block (skips the test if node or the packages are missing)."""
    process = subprocess.Popen(
        [*node_command("server.mjs"), "0"],
        cwd=SERVER,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(START_TIMEOUT)
        if not line or not line[0].startswith("listening "):
            process.kill()
            _, err = process.communicate(timeout=10)
            raise RuntimeError(f"the test FHIR server did not start: {err.strip()[-500:]}")
        yield f"http://127.0.0.1:{int(line[0].split()[1])}/r4/"
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


class MedplumValidator:
    """Medplum's ``validateResource`` (R4 4.0.1 StructureDefinitions) in one node process, for many
    resources: a validator that shares no code with fhir.resources (tests/fhir_server/validate.mjs)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            node_command("validate.mjs"),
            cwd=SERVER,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        assert self._read() == "ready"

    def _read(self) -> object:
        import json

        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the Medplum validator stopped")
        return json.loads(line)

    def errors(self, resource: object) -> list[str]:
        """The validator's error issues for ``resource``, as ``path: code`` (never a value)."""
        import json

        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(resource) + "\n")
        self.process.stdin.flush()
        found = self._read()
        assert isinstance(found, list)
        return [str(issue) for issue in found]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # end of input: the script ends
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

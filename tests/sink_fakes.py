"""For the sink's tests: a small FHIR server of our own, for what a real one won't do on demand
(410, 429 with Retry-After, 5xx, dropped connections, a write racing ours), and a fake clock."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BASE = "/fhir/"


class FakeClock:
    """A monotonic clock that moves only when the sink sleeps; ``sleeps`` lists what it asked for."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class LambdaContext:
    """What the sink reads from Lambda's context: the time left."""

    def __init__(self, clock: FakeClock, seconds: float = 60.0) -> None:
        self._clock, self._end = clock, clock.now + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self._end - self._clock.now) * 1000)


class FakeFhir:
    """Resources by ``<type>/<id>``, numbered versions, If-Match, 410 after a delete, and faults.

    ``fault(method, path, *actions)`` queues what the next requests to that address get instead
    of an answer: ``(status, headers, body)``, or ``"drop"`` (the connection closes unanswered).
    ``before_write`` runs before each PUT or DELETE is applied (to race the sink).
    """

    def __init__(self) -> None:
        self.store: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.versions: dict[str, int] = {}
        self.history: dict[str, list[dict[str, Any] | None]] = {}  # oldest first; None: a delete
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.faults: dict[tuple[str, str], list[Any]] = {}
        self.before_write: Callable[[str, str], None] | None = None
        self.lock = threading.RLock()
        self.url = ""
        self.tokens: list[str] = []  # issued at POST token (OAuth client credentials)
        self.token_requests: list[tuple[dict[str, str], str]] = []
        self.require_token = False  # then every FHIR request needs the newest token

    def fault(self, method: str, path: str, *actions: Any) -> None:
        self.faults.setdefault((method, path), []).extend(actions)

    def put(self, path: str, resource: dict[str, Any]) -> dict[str, Any]:
        """Store a new version of ``path`` (as another writer would)."""
        with self.lock:
            version = self.versions.get(path, 0) + 1
            self.versions[path] = version
            stored = {**resource, "meta": {**resource.get("meta", {}), "versionId": str(version)}}
            self.store[path] = stored
            self.deleted.discard(path)
            self.history.setdefault(path, []).append(stored)
            return stored

    def sent(self, method: str | None = None) -> list[tuple[str, str]]:
        """The (method, path) of every request so far (of ``method`` only, if given)."""
        return [(m, p) for m, p, _ in self.requests if method is None or m == method]

    def handle(self, method: str, path: str, headers: dict[str, str], body: Any) -> Any:
        if method == "POST" and path == "token":
            with self.lock:
                self.token_requests.append((headers, body))
                self.tokens.append(f"token-{len(self.tokens) + 1}")
                return 200, {}, {"access_token": self.tokens[-1], "token_type": "Bearer", "expires_in": 3600}
        if (
            self.require_token
            and headers.get("authorization") != f"Bearer {self.tokens[-1] if self.tokens else ''}"
        ):
            with self.lock:
                self.requests.append((method, path, headers))
            return 401, {}, _outcome("login")
        if method == "POST" and path == "":
            return self._batch(headers, body)
        with self.lock:
            self.requests.append((method, path, headers))
            queued = self.faults.get((method, path))
            if queued:
                return queued.pop(0)
        if method in ("PUT", "DELETE") and self.before_write is not None:
            self.before_write(method, path)
        with self.lock:
            current = self.store.get(path)
            match = headers.get("if-match")
            if match is not None and (current is None or match != f'W/"{current["meta"]["versionId"]}"'):
                return 412, {}, _outcome("conflict")
            if method == "GET" and "/_history" in path:
                versions = self.history.get(path.split("/_history")[0])
                if not versions:
                    return 404, {}, _outcome("not-found")
                entries = [
                    {"resource": v} if v is not None else {"request": {"method": "DELETE"}}
                    for v in reversed(versions)
                ]
                return 200, {}, {"resourceType": "Bundle", "type": "history", "entry": entries}
            if method == "GET":
                if current is not None:
                    return 200, {"ETag": f'W/"{current["meta"]["versionId"]}"'}, current
                return (410 if path in self.deleted else 404), {}, _outcome("not-found")
            if method == "PUT":
                created = current is None
                stored = self.put(path, body)
                return (201 if created else 200), {"ETag": f'W/"{stored["meta"]["versionId"]}"'}, stored
            if method == "DELETE":
                if current is None:
                    return 404, {}, _outcome("not-found")
                del self.store[path]
                self.deleted.add(path)
                self.history[path].append(None)
                return 204, {}, None
        return 405, {}, _outcome("not-supported")

    def _batch(self, headers: dict[str, str], bundle: Any) -> Any:
        """A ``batch`` Bundle: each entry as its own request, its answer in the same place."""
        with self.lock:
            self.requests.append(("POST", "", headers))
            queued = self.faults.get(("POST", ""))
            if queued:
                return queued.pop(0)
        answers = []
        for entry in bundle["entry"]:
            request = entry["request"]
            inner = {"if-match": request["ifMatch"]} if "ifMatch" in request else {}
            answer = self.handle(request["method"], request["url"], inner, entry.get("resource"))
            status, _, body = (500, {}, _outcome("exception")) if answer == "drop" else answer
            reply: dict[str, Any] = {"response": {"status": str(status)}}
            if 200 <= status < 300 and body is not None:
                reply["resource"] = body
            elif body is not None:
                reply["response"]["outcome"] = body
            answers.append(reply)
        return 200, {}, {"resourceType": "Bundle", "type": "batch-response", "entry": answers}


def _outcome(code: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code}]}


def refusal(expression: str, diagnostics: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    """A 422 as a validating server gives it (its diagnostics quote the value, as many do)."""
    issue = {
        "severity": "error",
        "code": "value",
        "expression": [expression],
        "diagnostics": diagnostics,
        "details": {"coding": [{"code": "MSG_BAD_FORMAT"}], "text": diagnostics},
    }
    return 422, {}, {"resourceType": "OperationOutcome", "issue": [issue]}


@contextmanager
def serving(fake: FakeFhir) -> Iterator[FakeFhir]:
    """``fake`` on 127.0.0.1 (a free port) for the block; ``fake.url`` is its FHIR base."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the sink's client expects

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path[len(BASE) :] if self.path.startswith(BASE) else self.path
            headers = {name.lower(): value for name, value in self.headers.items()}
            if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                parsed: Any = raw.decode()
            else:
                parsed = json.loads(raw) if raw else None
            answer = fake.handle(self.command, path, headers, parsed)
            if answer == "drop":
                self.close_connection = True
                return
            status, extra, body = answer
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_DELETE = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}{BASE}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

"""`o3video serve` on raw sockets: a refused request never lets its body through as a second
request, deep JSON is a 400, clients that leave or idle cost no traceback and no thread.

Everything runs against a real server on 127.0.0.1 (port 0), with the scripted model of
``test_serve``.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_serve import ScriptedBackend, call, start

from o3video.models.card import VideoSettings
from o3video.serve import ServeServer, ensure_examples
from o3video.serve.job import AskOptions

EXAMPLE = "synth_000000"

FOUR_FRAMES = AskOptions(video=VideoSettings(max_frames=4))


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_examples(tmp_path_factory.mktemp("examples"), n=1)


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture
def server(examples: Path, backend: ScriptedBackend) -> Iterator[ServeServer]:
    srv = start(
        backend, examples_dir=examples, options=AskOptions(video=VideoSettings(max_frames=4))
    )
    yield srv
    srv.shutdown()
    srv.server_close()


def hidden_ask(port: int) -> bytes:
    """A complete, valid question request: what a smuggled second request would be."""
    body = json.dumps({"video": {"example": EXAMPLE}, "question": "What moves?"}).encode()
    head = (
        f"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-O3video: 1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def exchange(port: int, data: bytes, timeout_s: float = 20.0) -> bytes:
    """Send ``data`` on one connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        received = b""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                return received
            received += chunk
        raise AssertionError(f"the server kept the connection open; got {received[:300]!r}")


def outer(port: int, target: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    ("variant", "status"),
    [
        ("no custom header, text/plain", 403),
        ("text/plain with the header", 415),
        ("no Content-Length", 411),
        ("chunked body", 411),
        ("POST to no route", 404),
        ("over the size limit", 413),
        ("not JSON, then a pipelined request", 400),
        ("another Host", 403),
        ("chunked and a Content-Length", 400),
        ("two Content-Lengths", 400),
    ],
)
def test_a_refused_request_never_carries_a_second_one(
    server: ServeServer, backend: ScriptedBackend, variant: str, status: int
) -> None:
    port = int(server.server_address[1])
    second = hidden_ask(port)
    plain = {"Content-Type": "text/plain", "Content-Length": str(len(second))}
    header = {"X-O3video": "1"}
    json_type = {**header, "Content-Type": "application/json"}
    data = {
        "no custom header, text/plain": outer(port, "/api/ask", plain, second),
        "text/plain with the header": outer(port, "/api/ask", {**plain, **header}, second),
        "no Content-Length": outer(
            port, "/api/ask", {**header, "Content-Type": "application/json"}, second
        ),
        "chunked body": outer(
            port,
            "/api/ask",
            {**header, "Content-Type": "text/plain", "Transfer-Encoding": "chunked"},
            chunked(second),
        ),
        "POST to no route": outer(port, "/nowhere", {**plain, **header}, second),
        "over the size limit": outer(
            port,
            "/api/ask",
            {**header, "Content-Type": "application/json", "Content-Length": "70000"},
            second,
        ),
        "not JSON, then a pipelined request": outer(
            port,
            "/api/ask",
            {**header, "Content-Type": "application/json", "Content-Length": "3"},
            b"{{{" + second,
        ),
        "another Host": outer(port, "/api/ask", plain, second).replace(
            b"Host: 127.0.0.1", b"Host: evil.example", 1
        ),
        "chunked and a Content-Length": outer(
            port,
            "/api/ask",
            {**json_type, "Transfer-Encoding": "chunked", "Content-Length": "4"},
            chunked(b"{}{}" + second),
        ),
        "two Content-Lengths": outer(
            port, "/api/ask", {**json_type, "Content-Length": "4"}, b"{}{}" + second
        ).replace(b"Content-Length: 4", b"Content-Length: 4\r\nContent-Length: 5", 1),
    }[variant]
    reply = exchange(port, data)
    assert reply.count(b"HTTP/1.1 ") == 1, reply
    head = reply.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(f"http/1.1 {status} ".encode()), reply
    assert b"connection: close" in head
    assert backend.requests == []  # the model never ran


def test_an_accepted_request_keeps_its_connection(server: ServeServer) -> None:
    """Control: two well-framed GETs on one connection both get answers (keep-alive)."""
    port = int(server.server_address[1])
    get = f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    last = get.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    assert exchange(port, get + last).count(b"HTTP/1.1 200 ") == 2


def test_deep_json_body_is_a_400(server: ServeServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    status, _, data = call(
        server, "POST", "/api/ask", b"[" * 65536, {"Content-Type": "application/json"}
    )
    assert status == 400
    assert "nested deeper than" in json.loads(data)["error"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_clients_that_leave_early_leave_no_traceback(
    server: ServeServer, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    port = int(server.server_address[1])
    target = f"/video/example/{EXAMPLE}"  # ~300 KB: more than the socket buffers hold
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    for _ in range(20):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sock.sendall(request)
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
        time.sleep(0.01)
        # Close with a reset while the server is still writing: its writes fail.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    assert call(server, "GET", "/api/info")[0] == 200  # still serving
    time.sleep(0.5)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Traceback" not in capfd.readouterr().err


def test_idle_connections_cost_no_thread_and_are_closed(
    server: ServeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import o3video.serve.app as serve_app

    monkeypatch.setattr(serve_app, "REQUEST_HEAD_TIMEOUT_S", 1.0)
    port = int(server.server_address[1])
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(60)]
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow.sendall(b"GET / HTTP/1.1\r\nHost: 127.0")  # a request head that never ends
    try:
        time.sleep(0.3)
        assert threading.active_count() - before < 5
        assert call(server, "GET", "/api/info")[0] == 200  # others are still served
        for sock in [*idle, slow]:  # each is closed once the head deadline passes
            assert sock.recv(1024) == b""
    finally:
        for sock in [*idle, slow]:
            sock.close()


class CountingBackend(ScriptedBackend):
    """The scripted model, counting the pieces of text it was asked for."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.pieces = 0

    def stream(self, request: Any, params: Any) -> Iterator[str]:
        for piece in super().stream(request, params):
            self.pieces += 1
            yield piece


def test_a_client_that_leaves_stops_its_model(examples: Path) -> None:
    gate = threading.Event()
    backend = CountingBackend(gate=gate, hold_at=12, step=6)
    srv = start(
        backend, examples_dir=examples, options=AskOptions(video=VideoSettings(max_frames=4))
    )
    try:
        host, port = srv.server_address[:2]
        conn = http.client.HTTPConnection(str(host), int(port), timeout=30)
        body = json.dumps({"video": {"example": EXAMPLE}, "question": "What moves?"})
        conn.request(
            "POST", "/api/ask", body, {"Content-Type": "application/json", "X-O3video": "1"}
        )
        resp = conn.getresponse()
        assert json.loads(resp.readline())["type"] == "start"
        resp.close()
        conn.close()  # the page went away while the model writes
        time.sleep(0.5)
        gate.set()
        deadline = time.monotonic() + 20
        while json.loads(call(srv, "GET", "/api/info")[2])["queue"]["busy"]:
            assert time.monotonic() < deadline, "the model never stopped"
            time.sleep(0.1)
        assert backend.pieces <= 4 < len(backend.texts[0]) // 6  # stopped, not run to the end
    finally:
        gate.set()
        srv.shutdown()
        srv.server_close()

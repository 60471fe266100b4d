"""OpenAIBackend against a scripted OpenAI-compatible server on 127.0.0.1 (no network).

``FakeServer`` is reused by ``test_curate.py`` (a fake teacher and verifier).
"""

from __future__ import annotations

import base64
import email.utils
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from PIL import Image

from o3video.models import Backend, BackendError, OpenAIBackend, Request, SamplingParams
from o3video.models.openai import retry_after_s, to_openai_messages
from o3video.prompts import build_messages
from o3video.video import sample_frames


@dataclass
class Reply:
    """What the fake server answers: a status, a JSON body (or raw bytes), headers, a delay."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def chat(*texts: str | None, reverse: bool = False) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` body with one choice per text."""
    choices = [
        {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
        for i, t in enumerate(texts)
    ]
    return {"object": "chat.completion", "choices": choices[::-1] if reverse else choices}


@dataclass
class Call:
    body: dict[str, Any]
    headers: dict[str, str]


class FakeServer:
    """A ThreadingHTTPServer on 127.0.0.1:0 answering ``POST /v1/chat/completions`` with
    ``respond(call, number)`` (number counts from 0). Records every call."""

    def __init__(self, respond: Callable[[Call, int], Reply]) -> None:
        self.respond = respond
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                call = Call(json.loads(raw), dict(self.headers.items()))
                with server.lock:
                    number = len(server.calls)
                    server.calls.append(call)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = (
                        server.respond(call, number)
                        if self.path == "/v1/chat/completions"
                        else Reply(404, {"error": {"message": f"no route {self.path}"}})
                    )
                    time.sleep(reply.delay_s)
                finally:  # before answering: the client frees its slot only once answered
                    with server.lock:
                        server.in_flight -= 1
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body)
                payload = data.encode() if isinstance(data, str) else data
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[Call, int], Reply]], FakeServer]]:
    servers: list[FakeServer] = []

    def start(respond: Callable[[Call, int], Reply]) -> FakeServer:
        servers.append(FakeServer(respond).__enter__())
        return servers[-1]

    yield start
    for s in servers:
        s.__exit__()


def backend(url: str, **kw: Any) -> tuple[OpenAIBackend, list[float]]:
    """A backend whose sleeps are recorded, not slept; deterministic jitter."""
    import random

    sleeps: list[float] = []
    kw = {"timeout_s": 2.0, "backoff_s": 0.1, "sleep": sleeps.append, "rng": random.Random(0)} | kw
    return OpenAIBackend(url, "teacher-x", **kw), sleeps


def frames_request() -> Request:
    frames = [np.full((56, 84, 3), 40 * i, np.uint8) for i in range(3)]
    clip = sample_frames(frames, times_s=[0.0, 0.5, 1.0], num_frames=3)
    return Request(build_messages(clip, "What moves?", "free_form", "frames"))


def test_body_has_images_as_data_urls_labels_in_place_and_schema(serve: Any) -> None:
    server = serve(lambda call, n: Reply(body=chat("ok")))
    schema = {"title": "qa", "type": "object", "properties": {"a": {"type": "string"}}}
    params = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=64, json_schema=schema)
    be, _ = backend(server.url)
    assert isinstance(be, Backend)
    assert be.generate([frames_request()], params) == [["ok"]]
    body = server.calls[0].body
    assert body["model"] == "teacher-x"
    assert (body["n"], body["temperature"], body["top_p"], body["max_tokens"]) == (1, 0.7, 0.9, 64)
    assert "seed" not in body and "stop" not in body
    without_title = {k: v for k, v in schema.items() if k != "title"}
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "qa", "schema": without_title, "strict": True},
    }
    system, user = body["messages"]
    assert system["role"] == "system" and system["content"][0]["type"] == "text"
    kinds = [p["type"] for p in user["content"]]
    assert kinds[:6] == ["text", "image_url", "text", "text", "image_url", "text"]
    assert [user["content"][i]["text"] for i in (0, 3, 6)] == [
        "Frame 1 at 0.0s: ",
        "Frame 2 at 0.5s: ",
        "Frame 3 at 1.0s: ",
    ]
    assert user["content"][-1]["text"] == "What moves?"
    url = user["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert (image.format, image.size) == ("JPEG", (84, 56))


def test_png_seed_and_stop_are_sent(serve: Any) -> None:
    server = serve(lambda call, n: Reply(body=chat("ok")))
    be, _ = backend(server.url, image_format="png")
    req = Request.user(Image.new("RGB", (8, 8)), "Is this a dog?")
    be.generate([req], SamplingParams(seed=7, stop=["\n"]))
    body = server.calls[0].body
    assert (body["seed"], body["stop"]) == (7, ["\n"])
    assert body["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png")


def test_n_completions_in_choice_order_and_topped_up(serve: Any) -> None:
    server = serve(lambda call, n: Reply(body=chat("a", "b", "c", reverse=True)))
    be, _ = backend(server.url)
    assert be.generate([Request.user("hi")], SamplingParams(n=3)) == [["a", "b", "c"]]
    assert server.calls[0].body["n"] == 3
    # A server that ignores n (one choice per call) is asked again for the rest.
    stingy = serve(lambda call, n: Reply(body=chat(f"t{n}")))
    be, _ = backend(stingy.url)
    assert be.generate([Request.user("hi")], SamplingParams(n=3)) == [["t0", "t1", "t2"]]
    assert [c.body["n"] for c in stingy.calls] == [3, 2, 1]


def test_null_content_is_empty_text(serve: Any) -> None:
    server = serve(lambda call, n: Reply(body=chat(None)))
    be, _ = backend(server.url)
    assert be.generate([Request.user("hi")], SamplingParams()) == [[""]]


def test_429_is_retried_after_retry_after(serve: Any) -> None:
    def respond(call: Call, n: int) -> Reply:
        if n == 0:
            return Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "2"})
        return Reply(body=chat("done"))

    server = serve(respond)
    be, sleeps = backend(server.url)
    assert be.generate([Request.user("hi")], SamplingParams()) == [["done"]]
    assert len(server.calls) == 2
    assert sleeps == [2.0]


def test_500_until_retries_run_out(serve: Any) -> None:
    server = serve(lambda call, n: Reply(500, {"error": {"message": "engine dead"}}))
    be, sleeps = backend(server.url, max_retries=2)
    with pytest.raises(BackendError) as err:
        be.generate([Request.user("hi")], SamplingParams())
    assert len(server.calls) == 3
    # exponential backoff 0.1 · 2^k, jitter factor in [0.5, 1.5)
    assert 0.05 <= sleeps[0] < 0.15 and 0.1 <= sleeps[1] < 0.3
    e = err.value
    assert (e.status, e.request_index, e.endpoint) == (500, 0, f"{server.url}/chat/completions")
    assert "engine dead" in str(e) and "gave up after 3 tries" in str(e)
    assert str(e).startswith("openai:teacher-x at http://127.0.0.1:")


def test_400_fails_at_once_with_the_server_message(serve: Any) -> None:
    def respond(call: Call, n: int) -> Reply:
        if call.body["messages"][0]["content"][0]["text"] == "big":
            return Reply(400, {"error": {"message": "image too large"}})
        return Reply(body=chat("fine"))

    server = serve(respond)
    be, sleeps = backend(server.url)
    with pytest.raises(BackendError, match=r"request 1: HTTP 400: image too large") as err:
        be.generate([Request.user("ok"), Request.user("big")], SamplingParams())
    assert err.value.status == 400 and sleeps == []
    assert len(server.calls) == 2


def test_timeout_is_retried(serve: Any) -> None:
    server = serve(
        lambda call, n: Reply(body=chat("late" if n == 0 else "on time"), delay_s=1.0 * (n == 0))
    )
    be, sleeps = backend(server.url, timeout_s=0.3)
    assert be.generate([Request.user("hi")], SamplingParams()) == [["on time"]]
    assert len(server.calls) == 2 and len(sleeps) == 1


def test_connection_refused_is_retried_then_fails() -> None:
    probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()  # nothing listens there now
    be, sleeps = backend(f"http://127.0.0.1:{port}/v1", max_retries=1)
    with pytest.raises(BackendError, match="gave up after 2 tries"):
        be.generate([Request.user("hi")], SamplingParams())
    assert len(sleeps) == 1


def test_api_key_from_the_environment(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(lambda call, n: Reply(body=chat("ok")))
    monkeypatch.setenv("O3_TEST_KEY", "sekrit")
    be, _ = backend(server.url, api_key_env="O3_TEST_KEY")
    be.generate([Request.user("hi")], SamplingParams())
    monkeypatch.delenv("O3_TEST_KEY")
    be, _ = backend(server.url, api_key_env="O3_TEST_KEY")
    be.generate([Request.user("hi")], SamplingParams())
    assert server.calls[0].headers["Authorization"] == "Bearer sekrit"
    assert "Authorization" not in server.calls[1].headers


def test_concurrency_is_bounded_and_order_kept(serve: Any) -> None:
    def respond(call: Call, n: int) -> Reply:
        text = call.body["messages"][0]["content"][0]["text"]
        return Reply(body=chat(text.upper()), delay_s=0.05)

    server = serve(respond)
    be, _ = backend(server.url, max_concurrency=2)
    words = [f"w{i}" for i in range(8)]
    # Two threads share the backend: the bound holds across calls.
    results: list[list[list[str]]] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                be.generate([Request.user(w) for w in words], SamplingParams())
            )
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [[[w.upper()] for w in words]] * 2
    assert server.max_in_flight <= 2


def test_unreadable_replies_raise_backend_error(serve: Any) -> None:
    server = serve(lambda call, n: Reply(body=b"<html>proxy error</html>"))
    be, _ = backend(server.url)
    with pytest.raises(BackendError, match="not JSON"):
        be.generate([Request.user("hi")], SamplingParams())
    server = serve(lambda call, n: Reply(body={"choices": []}))
    be, _ = backend(server.url)
    with pytest.raises(BackendError, match="no choices"):
        be.generate([Request.user("hi")], SamplingParams())


def test_a_video_item_cannot_be_sent(serve: Any) -> None:
    server = serve(lambda call, n: Reply(body=chat("ok")))
    be, _ = backend(server.url)
    video = Request([{"role": "user", "content": [{"type": "video", "video": np.zeros(1)}]}])
    with pytest.raises(BackendError, match=r"request 0: cannot convert .*show a video as frames"):
        be.generate([video], SamplingParams())
    assert server.calls == []
    with pytest.raises(ValueError, match="item 0"):
        to_openai_messages(video.messages)


def test_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert retry_after_s("1.5") == 1.5
    assert retry_after_s(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert retry_after_s("garbage") is None


def test_sampling_params_are_checked() -> None:
    with pytest.raises(ValueError, match="n must be >= 1"):
        SamplingParams(n=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0.0)
    assert SamplingParams(stop=["x"]).stop == ("x",)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [200, 400])
def test_a_deeply_nested_reply_is_an_error_not_a_recursion(serve: Any, status: int) -> None:
    server = serve(lambda call, n: Reply(status, b"[" * 100_000))
    be, _ = backend(server.url, max_retries=0)
    with pytest.raises(BackendError) as err:
        be.generate([Request.user("hi")], SamplingParams())
    assert ("not JSON" in str(err.value)) if status == 200 else ("HTTP 400" in str(err.value))

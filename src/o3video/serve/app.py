"""The HTTP side of ``o3video serve``: a Starlette app on uvicorn, its checks and routes.

Routes (everything the page uses; nothing else is served):

========  ===========================  ==================================================
GET       ``/``                        the page (``static/index.html``)
GET       ``/api/info``                model, task presets, examples, limits, queue state
POST      ``/api/upload?name=FILE``    the raw video bytes → ``{"id", "filename", ...}``
DELETE    ``/api/upload/ID``           forget an upload now
POST      ``/api/ask``                 JSON request → a stream of JSON lines (:mod:`.job`)
GET       ``/video/upload/ID``         an upload, with HTTP ranges (the player seeks)
GET       ``/video/example/ID``        an example video, with HTTP ranges
GET       ``/download/ID/answer.json`` an answer's files (``report.html`` too)
========  ===========================  ==================================================

Checks: on a loopback address the ``Host`` header must name loopback (a web page elsewhere
cannot reach the server through DNS rebinding); every POST and DELETE must carry the header
``X-O3video: 1`` and, when the browser sends an ``Origin``, come from the page's own origin
(another site's page cannot ask or upload: a custom header needs a CORS preflight, which is
never granted).

The connection: HTTP is parsed by uvicorn's h11 protocol, which frames every body by its
``Content-Length`` or chunks, so a body is never read as a request. Every refusal (4xx, 5xx)
also says ``Connection: close`` and the connection is closed after it: nothing a refused
request carried is read again. A connection must send a whole request head within
:data:`REQUEST_HEAD_TIMEOUT_S` (idle and slow clients are closed) and each part of a body
within :data:`BODY_TIMEOUT_S`; an idle connection costs a socket, not a thread. Request bodies
are limited (``--max-upload-mb``; :data:`MAX_JSON_BYTES` and :data:`~o3video.safejson.MAX_DEPTH`
for a question). One question runs at a time (:class:`~o3video.serve.state.ModelQueue`), each in
its own thread, its events handed to the connection's stream; a client that leaves stops its
model at the next event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from o3video import safejson
from o3video.families import ModelFamily, get_family
from o3video.models.base import Backend
from o3video.serve.job import (
    PAGE_TASKS,
    VOTES,
    AskOptions,
    AskRequest,
    Event,
    Job,
    parse_ask_request,
)
from o3video.serve.state import (
    VIDEO_SUFFIXES,
    Limits,
    ModelQueue,
    RequestError,
    Workspace,
    load_examples,
)

logger = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_JSON_BYTES = 64 * 1024
"""The largest question request (HTTP 413 beyond it)."""
REQUEST_HEAD_TIMEOUT_S = 10.0
"""A new connection sends its request line and headers within this, or is closed."""
BODY_TIMEOUT_S = 30.0
"""Each part of a request body arrives within this of the last, or the request fails (408)."""
KEEP_ALIVE_S = 5
"""An idle connection between requests is closed after this."""
SHUTDOWN_GRACE_S = 5
"""At shutdown, running requests are given this long before they are cancelled."""
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_PAGE_POLICY = (
    "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)


class ClientGone(Exception):
    """The browser closed the connection: the request stops (and with it the model)."""


def page_html() -> str:
    """The page, from the package data."""
    return resources.files("o3video.serve").joinpath("static/index.html").read_text("utf-8")


class App:
    """The server's state: the model (one request at a time), the workspace, the examples."""

    def __init__(
        self,
        backend: Backend,
        family: ModelFamily,
        limits: Limits,
        options: AskOptions,
        examples_dir: str | Path | None,
        workdir_parent: str | Path | None = None,
    ) -> None:
        self.limits = limits
        self.workspace = Workspace(limits, workdir_parent)
        self.examples = {e.id: e for e in load_examples(examples_dir)}
        self.queue = ModelQueue(limits.max_waiting)
        self.job = Job(backend, family, options, self.workspace, self.examples, limits)
        self.page = page_html()

    def info(self) -> dict[str, Any]:
        limits = self.limits
        return {
            "model": self.job.backend.name,
            "family": self.job.family.name,
            "tasks": list(PAGE_TASKS),
            "votes": list(VOTES),
            "examples": [
                {"id": e.id, "title": e.title, "question": e.question}
                for e in self.examples.values()
            ],
            "limits": {
                "max_upload_bytes": limits.max_upload_bytes,
                "max_duration_s": limits.max_duration_s,
                "max_samples": limits.max_samples,
            },
            "queue": self.queue.state(),
        }

    def close(self) -> None:
        self.workspace.close()


# -- responses ---------------------------------------------------------------------------


def refusal(status: int, message: str) -> JSONResponse:
    """A refused request: ``{"error": message}``, and the connection is closed after it."""
    return JSONResponse({"error": message}, status, headers={**_NO_STORE, "Connection": "close"})


def _json(value: object) -> JSONResponse:
    return JSONResponse(value, headers=_NO_STORE)


def _media_type(path: Path) -> str:
    if path.suffix == ".json":
        return "application/json; charset=utf-8"
    if path.suffix == ".html":
        return "text/html; charset=utf-8"
    return VIDEO_SUFFIXES.get(path.suffix.lower(), "application/octet-stream")


def _file(path: Path, *, attachment: bool = False) -> FileResponse:
    """``path`` whole or the byte ranges asked (``206``); the player seeks with them."""
    return FileResponse(
        path,
        media_type=_media_type(path),
        headers=_NO_STORE,
        filename=path.name if attachment else None,
    )


class _EventStream(StreamingResponse):
    """The answer stream; ``gone`` is set when it ends for any reason (the client left, the
    server stops), so the model's thread stops at its next event."""

    def __init__(self, events: AsyncIterator[bytes], gone: threading.Event) -> None:
        super().__init__(
            events,
            media_type="application/x-ndjson; charset=utf-8",
            headers={**_NO_STORE, "Connection": "close"},
        )
        self.gone = gone

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.gone.set()


# -- the checks --------------------------------------------------------------------------


class Guard:
    """ASGI middleware: the ``Host`` check on every request, the custom header and
    ``Origin`` checks on every POST and DELETE, before any route runs."""

    def __init__(self, app: Callable[..., Any], bound_host: str) -> None:
        self.app = app
        self.bound_host = bound_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            try:
                self.check_host(request)
                if request.method not in ("GET", "HEAD"):
                    self.check_origin(request)
            except RequestError as e:
                await refusal(e.status, str(e))(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def check_host(self, request: Request) -> None:
        if self.bound_host not in LOOPBACK:
            return  # served on purpose beyond this machine: any name may reach it
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in LOOPBACK:
            raise RequestError(403, f"this server answers only to localhost, not {host[:80]!r}")

    @staticmethod
    def check_origin(request: Request) -> None:
        if request.headers.get("x-o3video") != "1":
            raise RequestError(403, "requests must come from the o3video page (X-O3video: 1)")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"http://{request.headers.get('host', '')}":
            raise RequestError(403, f"requests from {origin[:80]!r} are not allowed")


def _length(request: Request) -> int:
    raw = request.headers.get("content-length")
    if raw is None:
        raise RequestError(411, "the request needs a Content-Length")
    if not raw.isdigit():
        raise RequestError(400, f"bad Content-Length {raw[:40]!r}")
    return int(raw)


async def _read_body(request: Request, length: int, sink: Callable[[bytes], None]) -> None:
    """Hand the ``length`` bytes of the body to ``sink`` as they come; :class:`ClientGone`
    when the client leaves, 408 when it stalls for :data:`BODY_TIMEOUT_S`."""
    got = 0
    more = True
    while more:
        try:
            message = await asyncio.wait_for(request.receive(), BODY_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise RequestError(408, f"the request body stalled after {got} bytes") from None
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        got += len(chunk)
        if got > length:
            raise RequestError(400, f"the body is longer than its Content-Length {length}")
        if chunk:
            sink(chunk)
    if got < length:
        raise RequestError(400, f"the upload ended after {got} of {length} bytes")


# -- the routes --------------------------------------------------------------------------


def build_app(app: App, bound_host: str) -> Guard:
    """The ASGI application serving ``app`` (checks, then routes)."""

    async def page(request: Request) -> Response:
        headers = {**_NO_STORE, "Content-Security-Policy": _PAGE_POLICY}
        return Response(app.page, media_type="text/html; charset=utf-8", headers=headers)

    async def info(request: Request) -> Response:
        return _json(app.info())

    async def upload(request: Request) -> Response:
        filename = request.query_params.get("name", "upload")
        length = _length(request)
        name, upload_id, path = app.workspace.begin_upload(filename, length)
        try:
            with app.workspace.open_new(path) as out:

                def write(chunk: bytes) -> None:
                    out.write(chunk)

                await _read_body(request, length, write)
            saved = await run_in_threadpool(app.workspace.finish_upload, upload_id, path, name)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return _json(saved.to_json())

    async def delete_upload(request: Request) -> Response:
        return _json({"deleted": app.workspace.delete_upload(request.path_params["id"])})

    async def ask(request: Request) -> Response:
        length = _length(request)
        if length > MAX_JSON_BYTES:
            raise RequestError(413, f"the request is over {MAX_JSON_BYTES} bytes")
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise RequestError(415, "the request must be JSON (Content-Type: application/json)")
        chunks: list[bytes] = []
        await _read_body(request, length, chunks.append)
        try:
            payload = safejson.loads(b"".join(chunks))
        except ValueError as e:
            raise RequestError(400, f"the request is not JSON: {e}") from None
        parsed = parse_ask_request(payload, app.limits)
        app.job.resolve(parsed)  # an unknown id is an HTTP error, before the stream starts
        ticket = app.queue.join()  # 503 when too many wait
        gone = threading.Event()
        return _EventStream(_run_job(app, parsed, ticket, gone), gone)

    async def video(request: Request) -> Response:
        kind, video_id = request.path_params["kind"], request.path_params["id"]
        if kind == "example":
            example = app.examples.get(video_id)
            if example is None:
                raise RequestError(404, f"no example {video_id[:80]!r}")
            return _file(example.path)
        if kind != "upload":
            raise RequestError(404, f"nothing at GET {request.scope['path'][:100]}")
        return _file(app.workspace.upload(video_id).path)

    async def download(request: Request) -> Response:
        path = app.workspace.result_file(request.path_params["id"], request.path_params["name"])
        return _file(path, attachment=True)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestError)
        return refusal(exc.status, str(exc))

    async def not_found(request: Request, exc: Exception) -> Response:
        return refusal(404, f"nothing at {request.method} {request.scope['path'][:100]}")

    async def client_gone(request: Request, exc: Exception) -> Response:
        logger.info(
            "%s went away during %s %s", request.client, request.method, request.scope["path"]
        )
        return refusal(400, "the client went away")

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/api/info", info, methods=["GET"]),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/upload/{id}", delete_upload, methods=["DELETE"]),
        Route("/api/ask", ask, methods=["POST"]),
        Route("/video/{kind}/{id}", video, methods=["GET"]),
        Route("/download/{id}/{name}", download, methods=["GET"]),
    ]
    starlette = Starlette(
        routes=routes,
        exception_handlers={
            RequestError: refused,
            HTTPException: not_found,  # no route, or not this method: 404 as before
            ClientGone: client_gone,
        },
    )
    return Guard(starlette, bound_host)


def _run_job(
    app: App, request: AskRequest, ticket: int, gone: threading.Event
) -> AsyncIterator[bytes]:
    """Run ``request`` in its own thread (it holds queue ``ticket`` until it ends) and yield
    its events as JSON lines. The thread is started here, before the stream is read, so the
    ticket is always given back; when ``gone`` is set, the thread stops at its next event."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[Event | None] = asyncio.Queue()
    held = request.video_id if request.kind == "upload" else None
    if held:
        app.workspace.hold(held, True)

    def put(event: Event | None) -> None:
        try:
            loop.call_soon_threadsafe(events.put_nowait, event)
        except RuntimeError:  # the loop is closed: the server stopped
            gone.set()

    def emit(event: Event) -> None:
        if gone.is_set():
            raise ClientGone()
        put(event)

    def work() -> None:
        try:
            first = True
            while not app.queue.wait_turn(ticket, 0.0 if first else 1.0):
                emit({"type": "queued", "position": app.queue.position(ticket)})
                first = False
            app.job.run(request, emit)
        except ClientGone:
            logger.info("the page went away; the request stopped")
        except Exception as e:  # a bug or a backend's own error: the page must hear of it
            logger.exception("ask failed")
            if not gone.is_set():
                put({"type": "error", "message": f"{type(e).__name__}: {e}"})
        finally:
            app.queue.leave(ticket)
            if held:
                app.workspace.hold(held, False)
            put(None)

    threading.Thread(target=work, name="o3video-ask", daemon=True).start()

    async def stream() -> AsyncIterator[bytes]:
        try:
            while (event := await events.get()) is not None:
                yield (json.dumps(event, ensure_ascii=False) + "\n").encode()
        finally:
            gone.set()

    return stream()


# -- the server --------------------------------------------------------------------------


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for each request head: a connection that
    sends nothing, or its headers a byte at a time, is closed after
    :data:`REQUEST_HEAD_TIMEOUT_S` (uvicorn's own keep-alive timer is armed only after a
    response, and any byte received disarms it)."""

    _head_timer: asyncio.TimerHandle | None = None
    _armed_cycle: object = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._disarm_on_request()

    def on_response_complete(self) -> None:
        self._arm()  # before a pipelined request is parsed (a new cycle disarms it)
        super().on_response_complete()
        self._disarm_on_request()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._armed_cycle = self.cycle
        self._head_timer = self.loop.call_later(REQUEST_HEAD_TIMEOUT_S, self._head_timeout)

    def _disarm_on_request(self) -> None:
        if self._head_timer is not None and self.cycle is not self._armed_cycle:
            self._head_timer.cancel()  # a whole request head arrived in time
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.cycle is self._armed_cycle:
            self.timeout_keep_alive_handler()


class ServeServer:
    """A uvicorn server holding an :class:`App` on a socket bound at construction.

    :meth:`serve_forever` serves until :meth:`shutdown` (from another thread) or a signal;
    :meth:`server_close` closes the socket and deletes the workspace. ``url`` is where the
    page is, ``server_address`` the bound address."""

    def __init__(self, sock: socket.socket, app: App) -> None:
        self.app = app
        self.socket = sock
        self.server_address: tuple[Any, ...] = sock.getsockname()
        config = uvicorn.Config(
            build_app(app, str(self.server_address[0])),
            http=_Protocol,
            ws="none",
            lifespan="off",
            loop="asyncio",
            interface="asgi3",
            log_config=None,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        self._server = uvicorn.Server(config)
        self._stopped = threading.Event()
        self._running = False

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/"

    def serve_forever(self) -> None:
        self._running = True
        self._stopped.clear()
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._running = False
            self._stopped.set()

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop serving (running requests get :data:`SHUTDOWN_GRACE_S`) and wait for it."""
        self._server.should_exit = True
        if self._running:
            self._stopped.wait(timeout_s)

    def server_close(self) -> None:
        self.socket.close()
        self.app.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def make_server(
    backend: Backend,
    family: ModelFamily | str | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    limits: Limits | None = None,
    examples_dir: str | Path | None = None,
    options: AskOptions | None = None,
    workdir_parent: str | Path | None = None,
) -> ServeServer:
    """A server for ``backend`` on ``host:port`` (port 0: any free port), bound but not yet
    serving: call ``serve_forever()`` (in a thread, for tests), then ``shutdown()`` and
    ``server_close()``, which deletes the uploads. ``OSError`` when it cannot listen there.

    ``family`` is used when the backend does not say its own (a served model); default
    Qwen2.5-VL. ``examples_dir`` holds ``videos/*.mp4`` (see
    :func:`o3video.serve.state.ensure_examples`); ``None``: no examples.
    """
    fam = getattr(backend, "family", None) or family or "qwen2_5_vl"
    app = App(
        backend,
        get_family(fam) if isinstance(fam, str) else fam,
        limits or Limits(),
        options or AskOptions(),
        examples_dir,
        workdir_parent,
    )
    try:
        return ServeServer(_listen(host, port), app)
    except BaseException:
        app.close()
        raise

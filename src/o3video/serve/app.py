"""The HTTP side of ``o3video serve``: routes, checks, file responses and the answer stream.

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
"""

from __future__ import annotations

import json
import logging
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from o3video.families import ModelFamily, get_family
from o3video.models.base import Backend
from o3video.serve.job import PAGE_TASKS, VOTES, AskOptions, Event, Job, parse_ask_request
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
_MAX_JSON_BYTES = 64 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_VIDEO_ROUTE = re.compile(r"/video/(upload|example)/([^/]+)")
_DOWNLOAD_ROUTE = re.compile(r"/download/([^/]+)/([^/]+)")
_UPLOAD_ROUTE = re.compile(r"/api/upload/([^/]+)")


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
        self.job = Job(backend, family, options, self.workspace, self.examples)
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


class ServeServer(ThreadingHTTPServer):
    """A threading HTTP server holding an :class:`App`; :meth:`server_close` also deletes
    the workspace. ``url`` is where the page is."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/"

    def server_close(self) -> None:
        super().server_close()
        self.app.close()


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
    """A server for ``backend`` on ``host:port`` (port 0: any free port), not yet serving:
    call ``serve_forever()`` (in a thread, for tests), then ``shutdown()`` and
    ``server_close()``, which deletes the uploads.

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
        return ServeServer((host, port), app)
    except BaseException:
        app.close()
        raise


class Handler(BaseHTTPRequestHandler):
    """One HTTP request (a thread each); the state is ``self.server.app``."""

    server: ServeServer
    protocol_version = "HTTP/1.1"
    server_version = "o3video-serve"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    @property
    def app(self) -> App:
        return self.server.app

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        route = url.path
        try:
            self._check_host()
            if method != "GET":
                self._check_origin()
            if method == "GET" and route == "/":
                self._send_bytes(200, self.app.page.encode(), "text/html; charset=utf-8")
            elif method == "GET" and route == "/api/info":
                self._send_json(200, self.app.info())
            elif method == "POST" and route == "/api/upload":
                self._upload(parse_qs(url.query).get("name", ["upload"])[0])
            elif method == "POST" and route == "/api/ask":
                self._ask()
            elif method == "DELETE" and (m := _UPLOAD_ROUTE.fullmatch(route)):
                self._send_json(200, {"deleted": self.app.workspace.delete_upload(m[1])})
            elif method == "GET" and (m := _VIDEO_ROUTE.fullmatch(route)):
                self._send_file(self._video_path(m[1], m[2]))
            elif method == "GET" and (m := _DOWNLOAD_ROUTE.fullmatch(route)):
                self._send_file(self.app.workspace.result_file(m[1], m[2]), attachment=True)
            else:
                raise RequestError(404, f"nothing at {method} {route[:100]}")
        except RequestError as e:
            if e.status == 413:
                self.close_connection = True  # the body was not read
            self._send_json(e.status, {"error": str(e)})
        except ClientGone:
            logger.info("%s went away during %s %s", self.address_string(), method, route)
            self.close_connection = True

    # -- checks --------------------------------------------------------------------------

    def _check_host(self) -> None:
        bound = str(self.server.server_address[0])
        if bound not in LOOPBACK:
            return  # served on purpose beyond this machine: any name may reach it
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in LOOPBACK:
            raise RequestError(403, f"this server answers only to localhost, not {host[:80]!r}")

    def _check_origin(self) -> None:
        if self.headers.get("X-O3video") != "1":
            raise RequestError(403, "requests must come from the o3video page (X-O3video: 1)")
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host', '')}":
            raise RequestError(403, f"requests from {origin[:80]!r} are not allowed")

    def _length(self) -> int:
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise RequestError(411, "the request needs a Content-Length")
        try:
            length = int(raw)
        except ValueError:
            raise RequestError(400, f"bad Content-Length {raw[:40]!r}") from None
        if length < 0:
            raise RequestError(400, f"bad Content-Length {raw[:40]!r}")
        return length

    # -- routes --------------------------------------------------------------------------

    def _upload(self, filename: str) -> None:
        upload = self.app.workspace.save_upload(filename, self.rfile, self._length())
        self._send_json(200, upload.to_json())

    def _video_path(self, kind: str, video_id: str) -> Path:
        if kind == "example":
            example = self.app.examples.get(video_id)
            if example is None:
                raise RequestError(404, f"no example {video_id[:80]!r}")
            return example.path
        return self.app.workspace.upload(video_id).path

    def _ask(self) -> None:
        length = self._length()
        if length > _MAX_JSON_BYTES:
            self.close_connection = True
            raise RequestError(413, f"the request is over {_MAX_JSON_BYTES} bytes")
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            raise RequestError(415, "the request must be JSON (Content-Type: application/json)")
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError as e:
            raise RequestError(400, f"the request is not JSON: {e}") from None
        app = self.app
        request = parse_ask_request(payload, app.limits)
        app.job.resolve(request)  # an unknown id is an HTTP error, before the stream starts
        held = request.video_id if request.kind == "upload" else None
        ticket = app.queue.join()
        if held:
            app.workspace.hold(held, True)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            first = True
            while not app.queue.wait_turn(ticket, 0.0 if first else 1.0):
                self._emit({"type": "queued", "position": app.queue.position(ticket)})
                first = False
            try:
                app.job.run(request, self._emit)
            except ClientGone:
                raise
            except Exception as e:  # a bug or a backend's own error: the page must hear of it
                logger.exception("ask failed")
                self._emit({"type": "error", "message": f"{type(e).__name__}: {e}"})
        finally:
            app.queue.leave(ticket)
            if held:
                app.workspace.hold(held, False)

    def _emit(self, event: Event) -> None:
        line = json.dumps(event, ensure_ascii=False) + "\n"
        try:
            self.wfile.write(line.encode())
            self.wfile.flush()
        except OSError as e:
            raise ClientGone() from e

    # -- responses -----------------------------------------------------------------------

    def _headers(self, status: int, content_type: str, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        if content_type.startswith("text/html"):
            self.send_header(
                "Content-Security-Policy",
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                "img-src 'self' data:; media-src 'self'; connect-src 'self'; "
                "frame-ancestors 'none'",
            )

    def _send_bytes(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self._headers(status, content_type, len(body))
            self.end_headers()
            self.wfile.write(body)
        except OSError as e:
            raise ClientGone() from e

    def _send_json(self, status: int, value: object) -> None:
        body = json.dumps(value, ensure_ascii=False).encode()
        self._send_bytes(status, body, "application/json; charset=utf-8")

    def _send_file(self, path: Path, *, attachment: bool = False) -> None:
        """``path`` whole or the one byte range asked (``206``); the player seeks with them."""
        size = path.stat().st_size
        kind = VIDEO_SUFFIXES.get(path.suffix.lower(), "application/octet-stream")
        if path.suffix == ".json":
            kind = "application/json; charset=utf-8"
        elif path.suffix == ".html":
            kind = "text/html; charset=utf-8"
        start, end, status = 0, size - 1, 200
        asked = self.headers.get("Range")
        if asked and (m := _RANGE.fullmatch(asked.strip())) and (m[1] or m[2]):
            if m[1]:
                start, end = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
            else:
                start = max(0, size - int(m[2]))
            if start > end or start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        try:
            self._headers(status, kind, end - start + 1)
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            if attachment:
                self.send_header("Content-Disposition", f'attachment; filename="{path.name}"')
            self.end_headers()
            with path.open("rb") as f:
                f.seek(start)
                left = end - start + 1
                while left > 0:
                    chunk = f.read(min(1 << 16, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
        except OSError as e:
            raise ClientGone() from e

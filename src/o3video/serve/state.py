"""What the web server keeps between requests: limits, examples, uploads and the model queue.

- :class:`Limits` — what one request may ask for (upload size, video duration, samples).
- :class:`Example` and :func:`ensure_examples` — the example videos, made once with
  :func:`o3video.data.synthetic.synthesize` into a cache folder. The browser names an example
  by its id (the file's stem) from the list the server built at start; never by path.
- :class:`Workspace` — a private temporary folder (mode 0700) holding the uploads and the
  results; uploads are named by a random id the server chose. Old entries are evicted beyond
  a cap and the whole folder is deleted by :meth:`Workspace.close`.
- :class:`ModelQueue` — one request at a time per model, first come first served, with the
  positions the page shows while a request waits.

>>> Limits(max_upload_bytes=1).max_upload_mb
9.5367431640625e-07
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from o3video.data.world import WorldConfig
from o3video.errors import O3VideoError, VideoDecodeError
from o3video.video import MAX_SOURCE_PIXELS, probe_video

logger = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""The only ids the server accepts from the browser: no dots, no slashes, no paths."""
VIDEO_SUFFIXES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    ".ts": "video/mp2t",
}
DEFAULT_QUESTION = "What happens in the video? Show where and when."
_CHUNK = 1 << 16


class Readable(Protocol):
    """What an upload is read from (a socket's file, a ``BytesIO``)."""

    def read(self, size: int, /) -> bytes: ...


class RequestError(O3VideoError):
    """A request the server refuses: ``status`` is the HTTP status, the message is shown."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class Limits:
    """What one request may ask for.

    - ``max_upload_bytes``: the largest upload (HTTP 413 beyond it).
    - ``max_duration_s``: the longest video (by its headers, :func:`probe_video`).
    - ``max_samples``: the most samples a vote may draw.
    - ``max_waiting``: requests that may wait for the model; more are told to come back (503).
    - ``max_question_chars``: the longest question.
    - ``max_source_pixels``: the largest frame (width × height) of a video, checked from its
      headers before anything is decoded (:data:`o3video.video.MAX_SOURCE_PIXELS`).
    - ``keep_uploads`` / ``keep_results``: how many are kept before the oldest is deleted.
    """

    max_upload_bytes: int = 200 * 1024 * 1024
    max_duration_s: float = 600.0
    max_samples: int = 8
    max_waiting: int = 8
    max_question_chars: int = 2000
    max_source_pixels: int = MAX_SOURCE_PIXELS
    keep_uploads: int = 8
    keep_results: int = 16

    @property
    def max_upload_mb(self) -> float:
        return self.max_upload_bytes / (1024 * 1024)


@dataclass(frozen=True)
class Example:
    """An example video: ``id`` (what the browser sends), its ``path`` (server side only),
    a ``title`` and a suggested ``question``."""

    id: str
    path: Path
    title: str
    question: str


def ensure_examples(
    folder: str | os.PathLike[str], n: int = 3, seed: int = 0, world: WorldConfig | None = None
) -> Path:
    """``folder`` with at least one example video in ``folder/videos``; when it has none,
    ``n`` synthetic videos (moving shapes, seconds to make; of ``world``, default the
    default world) are written there first."""
    out = Path(folder).expanduser()
    if not any((out / "videos").glob("*.mp4")):
        from o3video.data.synthetic import synthesize

        logger.info("making %d example videos in %s", n, out)
        synthesize(out, n, seed=seed, config=world, workers=1)
    return out


def load_examples(folder: str | os.PathLike[str] | None) -> list[Example]:
    """The example videos of ``folder`` (``videos/*.mp4``, questions from ``vstar.json``
    when there is one), in name order; none for ``None`` or a folder without videos."""
    if folder is None:
        return []
    root = Path(folder).expanduser()
    questions: dict[str, str] = {}
    index = root / "vstar.json"
    if index.is_file():
        try:
            items = json.loads(index.read_text(encoding="utf-8"))
            questions = {str(it["vid"]): str(it["question"]) for it in items}
        except (ValueError, KeyError, TypeError) as e:
            logger.warning("%s: no example questions (%s)", index, e)
    examples = []
    for path in sorted((root / "videos").glob("*")):
        if path.suffix.lower() in VIDEO_SUFFIXES and ID_PATTERN.fullmatch(path.stem):
            question = questions.get(path.stem, DEFAULT_QUESTION)
            examples.append(Example(path.stem, path.resolve(), path.stem, question))
    return examples


@dataclass(frozen=True)
class Upload:
    """A video a person uploaded: the server's ``id``, the ``path`` it was saved to, the
    ``filename`` the browser gave (shown, never opened), its ``duration_s`` and size."""

    id: str
    path: Path
    filename: str
    duration_s: float
    source_wh: tuple[int, int]
    fps: float

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "filename": self.filename,
            "duration_s": self.duration_s,
            "source_wh": list(self.source_wh),
            "fps": self.fps,
        }


def clean_filename(name: str) -> str:
    """The browser's file name, for display: last path part, no control characters, short.

    >>> clean_filename("../../etc/passwd"), clean_filename("a\\x00b.mp4")
    ('passwd', 'ab.mp4')
    """
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(c for c in base if c.isprintable())
    return base[:200] or "upload"


class Workspace:
    """The server's private temporary folder: ``uploads/`` and ``results/<id>/``.

    Created with mode 0700 (``tempfile.mkdtemp``), so other users cannot read what was
    uploaded. :meth:`close` deletes it; it is safe to call twice.
    """

    def __init__(self, limits: Limits, parent: str | os.PathLike[str] | None = None) -> None:
        self.limits = limits
        self.root = Path(tempfile.mkdtemp(prefix="o3video-serve-", dir=parent))
        os.chmod(self.root, 0o700)
        self.uploads_dir = self.root / "uploads"
        self.results_dir = self.root / "results"
        self.uploads_dir.mkdir(mode=0o700)
        self.results_dir.mkdir(mode=0o700)
        self._uploads: OrderedDict[str, Upload] = OrderedDict()
        self._results: deque[str] = deque()
        self._in_use: dict[str, int] = {}
        self._lock = threading.Lock()

    def save_upload(self, filename: str, body: Readable, length: int) -> Upload:
        """Copy ``length`` bytes of ``body`` into the folder and check it is a video.

        :class:`RequestError` 413 when ``length`` is over the limit (nothing is read), 400
        when it is not a readable video, is too long or its frames too large (the file is
        deleted again). The server does the same in three steps: :meth:`begin_upload`,
        writing the body as it comes to :meth:`open_new`, :meth:`finish_upload`.
        """
        name, upload_id, path = self.begin_upload(filename, length)
        try:
            _copy(body, self.open_new(path), length)
            return self.finish_upload(upload_id, path, name)
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    def begin_upload(self, filename: str, length: int) -> tuple[str, str, Path]:
        """The shown name, a new id and the path for an upload of ``length`` bytes named
        ``filename`` by the browser; :class:`RequestError` 413 when it is too large."""
        name = clean_filename(filename)
        limit = self.limits.max_upload_bytes
        if length > limit:
            raise RequestError(
                413,
                f'"{name}" is {length / 2**20:.1f} MB; this server takes uploads up to '
                f"{self.limits.max_upload_mb:g} MB (--max-upload-mb)",
            )
        upload_id = secrets.token_hex(8)
        suffix = Path(name).suffix.lower()
        path = self.uploads_dir / (upload_id + (suffix if suffix in VIDEO_SUFFIXES else ".bin"))
        return name, upload_id, path

    @staticmethod
    def open_new(path: Path) -> BinaryIO:
        """``path`` created for writing, readable by this user only (it must not exist)."""
        return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")

    def finish_upload(self, upload_id: str, path: Path, name: str) -> Upload:
        """Check the written upload is a video within the limits (its headers only: frames
        over ``max_source_pixels`` are refused before any is decoded) and keep it; else
        :class:`RequestError` 400 and the file is deleted."""
        try:
            try:
                info = probe_video(path, self.limits.max_source_pixels)
            except VideoDecodeError as e:
                reason = e.reason.replace(str(path), name)  # our path is not theirs to see
                raise RequestError(400, f'"{name}" is not a readable video ({reason})') from e
            if info.duration_s > self.limits.max_duration_s:
                raise RequestError(
                    400,
                    f'"{name}" is {info.duration_s:.1f} s long; this server takes videos up to '
                    f"{self.limits.max_duration_s:g} s (--max-duration-s)",
                )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        upload = Upload(upload_id, path, name, info.duration_s, info.source_wh, info.fps)
        with self._lock:
            self._uploads[upload_id] = upload
            self._evict_uploads()
        logger.info("upload %s: %s (%.1f s)", upload_id, name, info.duration_s)
        return upload

    def upload(self, upload_id: str) -> Upload:
        """The upload named ``upload_id``; :class:`RequestError` 404 for any other string."""
        with self._lock:
            found = self._uploads.get(upload_id) if ID_PATTERN.fullmatch(upload_id) else None
        if found is None:
            raise RequestError(404, f"no upload {upload_id[:80]!r} (uploads are kept a while)")
        return found

    def delete_upload(self, upload_id: str) -> bool:
        """Forget and delete an upload (not while a request uses it); whether it existed."""
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None or self._in_use.get(upload_id):
                return upload is not None
            del self._uploads[upload_id]
        upload.path.unlink(missing_ok=True)
        return True

    def hold(self, upload_id: str, held: bool) -> None:
        """Mark an upload in use by a request (not evicted meanwhile), or release it."""
        with self._lock:
            count = self._in_use.get(upload_id, 0) + (1 if held else -1)
            if count > 0:
                self._in_use[upload_id] = count
            else:
                self._in_use.pop(upload_id, None)

    def new_result_dir(self) -> tuple[str, Path]:
        """A fresh ``results/<id>`` folder for one answer's files (the oldest evicted)."""
        result_id = secrets.token_hex(8)
        path = self.results_dir / result_id
        path.mkdir(mode=0o700)
        with self._lock:
            self._results.append(result_id)
            while len(self._results) > self.limits.keep_results:
                shutil.rmtree(self.results_dir / self._results.popleft(), ignore_errors=True)
        return result_id, path

    def result_file(self, result_id: str, name: str) -> Path:
        """``answer.json`` or ``report.html`` of a result; :class:`RequestError` 404 else."""
        path = self.results_dir / result_id / name
        ok = ID_PATTERN.fullmatch(result_id) and name in ("answer.json", "report.html")
        if not ok or not path.is_file():
            raise RequestError(404, "no such result file (results are kept a while)")
        return path

    def close(self) -> None:
        """Delete the folder and everything in it."""
        with self._lock:
            self._uploads.clear()
            self._results.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def _evict_uploads(self) -> None:
        # Called with the lock held: the oldest uploads that no request is using go first.
        for old in list(self._uploads):
            if len(self._uploads) <= self.limits.keep_uploads:
                break
            if not self._in_use.get(old):
                self._uploads.pop(old).path.unlink(missing_ok=True)


def _copy(body: Readable, out: BinaryIO, length: int) -> None:
    with out:
        left = length
        while left > 0:
            chunk = body.read(min(_CHUNK, left))
            if not chunk:
                raise RequestError(400, f"the upload ended after {length - left} of {length} bytes")
            out.write(chunk)
            left -= len(chunk)


class QueueFull(RequestError):
    """Too many requests already wait for the model."""


class ModelQueue:
    """One request at a time per model, in arrival order.

    :meth:`join` gives a ticket (:class:`QueueFull` when ``max_waiting`` already wait);
    :meth:`wait_turn` waits until the ticket is first; :meth:`leave` gives the model to the
    next. :meth:`position` is how many tickets are ahead (0: this one runs).
    """

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._tickets: deque[int] = deque()
        self._next = 0
        self._cond = threading.Condition()

    def join(self) -> int:
        with self._cond:
            if len(self._tickets) > self.max_waiting:
                raise QueueFull(
                    503, f"the model is busy and {len(self._tickets) - 1} requests wait; try later"
                )
            ticket = self._next
            self._next += 1
            self._tickets.append(ticket)
            return ticket

    def position(self, ticket: int) -> int:
        with self._cond:
            return self._tickets.index(ticket)

    def wait_turn(self, ticket: int, timeout_s: float) -> bool:
        """Whether ``ticket`` is first, after waiting at most ``timeout_s``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._tickets[0] == ticket, timeout_s)

    def leave(self, ticket: int) -> None:
        with self._cond:
            self._tickets.remove(ticket)
            self._cond.notify_all()

    def state(self) -> dict[str, int | bool]:
        """``busy`` (a request runs) and ``waiting`` (requests queued behind it)."""
        with self._cond:
            n = len(self._tickets)
        return {"busy": n > 0, "waiting": max(0, n - 1)}

"""Curation of new spatio-temporal training data (SPEC §4): videos in, checked STGR records out.

:func:`curate` runs the steps of :mod:`o3video.data.curate_steps` on each video — a teacher
proposes a question, an answer, key frames with boxes and a grounded reasoning
(:func:`~o3video.data.curate_steps.annotate`); boxes covering more than 80% of the frame or
degenerate are dropped (:func:`~o3video.data.curate_steps.filter_boxes`); a verifier confirms
each box's object on its crop (:func:`~o3video.data.curate_steps.verify_boxes`); the reasoning
must match the annotations one to one (:func:`~o3video.data.curate_steps.check_consistency`)
— and turns what survives into a ``temporal-spatial free-form QA`` record
(:func:`to_stgr_record`) that passes :func:`o3video.data.record_from_dict`.

Output folder ``out_dir``:

- ``curate.jsonl``: one line per finished video, written as it finishes (a full line, flushed
  and synced): ``video`` (its path relative to the media root, the key), ``status``
  (``kept``, ``rejected`` or ``failed``), ``step``/``reason``/``detail`` of a rejection,
  ``drops``, ``record`` of a kept video, ``error`` of a failed one. A re-run skips the
  videos already kept or rejected and retries the failed ones (a decode error, a backend
  still down after its retries); a line cut by a crash is discarded. The last line of a
  video is its state.
- ``keyframes/<video path without suffix>/<frame index>.jpg``: key frames at the video's own
  resolution; the records' key-frame paths are relative to ``out_dir``.
- ``stgr_curated.json``: the kept records, in the order the videos were given;
  ``curate_report.json``: counts of kept, rejected (per step and reason), failed, and of the
  boxes dropped per step and reason.

To check the result with ``o3video data check``: ``--media-root MEDIA --source-root
"curated=.:/abs/path/to/out_dir"`` (videos under the media root, key frames under out_dir).

>>> report = curate(videos, "media", "out", teacher, verifier)    # doctest: +SKIP
>>> report.kept, report.rejections                                  # doctest: +SKIP
(41, {'filter': {'no_boxes_left': 3}, 'consistency': {'wrong_box': 6}})
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from o3video.data import record_from_dict
from o3video.data.curate_steps import (
    VERIFIER_PARAMS,
    check_consistency,
    filter_boxes,
    replace_spans,
    verify_boxes,
)
from o3video.data.curate_teacher import (
    GRID,
    TEACHER_MAX_PIXELS,
    TEACHER_PARAMS,
    Candidate,
    Drop,
    Rejection,
    annotate,
)
from o3video.errors import DataError, O3VideoError, VideoDecodeError
from o3video.evidence import format_claim, parse_trace
from o3video.jsonl import read_lines
from o3video.models.base import Backend, SamplingParams
from o3video.video import sample_frames

logger = logging.getLogger(__name__)

TASK = "temporal-spatial free-form QA"
SOURCE = "curated"
KEY_FRAME_DIR = "keyframes"
JOURNAL_FILE = "curate.jsonl"
RECORDS_FILE = "stgr_curated.json"
REPORT_FILE = "curate_report.json"
Progress = Callable[[int, int, dict[str, Any]], None]
"""``progress(done, total, entry)`` after each video of this run (``entry``: its journal line)."""


@dataclass(frozen=True)
class CurateConfig:
    """The knobs of the steps: frames shown to the teacher (``num_frames``, ``max_pixels``),
    the box filter (``max_area_frac``, ``min_side_frac``), the consistency IoU (``min_iou``),
    the records' ``source``, the sampling of teacher and verifier, and ``workers`` (videos
    in flight at once; backends bound their own concurrency)."""

    num_frames: int = 16
    max_pixels: int = TEACHER_MAX_PIXELS
    max_area_frac: float = 0.8
    min_side_frac: float = 0.01
    min_iou: float = 0.9
    source: str = SOURCE
    teacher_params: SamplingParams = TEACHER_PARAMS
    verifier_params: SamplingParams = VERIFIER_PARAMS
    workers: int = 1


@dataclass(frozen=True)
class CurateReport:
    """The outcome of the videos a :func:`curate` call was given (this run's and earlier
    runs' results together): ``total`` videos, ``skipped`` (finished by an earlier run),
    ``kept``/``rejected``/``failed``, rejections and drops counted per step then reason,
    errors per exception type."""

    out_dir: Path
    total: int
    skipped: int
    kept: int
    rejected: int
    failed: int
    rejections: dict[str, dict[str, int]]
    drops: dict[str, dict[str, int]]
    errors: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


def to_stgr_record(
    candidate: Candidate,
    video_path: str,
    out_dir: str | os.PathLike[str],
    *,
    source: str = SOURCE,
    video_file: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """The STGR ``temporal-spatial free-form QA`` record of a checked candidate (SPEC §4).

    ``video_path`` is the video relative to its media root. Key frames are written as JPEGs
    under ``out_dir/keyframes/`` — the exact frame decoded at the video's resolution from
    ``video_file`` (default: the clip's source); for in-memory frames (no source), the frame
    as shown. ``key_items`` and the reasoning's boxes are normalized 0–1; ``image_size`` is
    the source size; ``duration`` the video's. Raises ``ValueError`` for a candidate that
    did not pass :func:`~o3video.data.curate_steps.check_consistency`, ``DataError`` if the
    record does not validate, ``VideoDecodeError`` if a key frame cannot be decoded.
    """
    if not candidate.checked:
        raise ValueError(f"{video_path}: the candidate has not passed check_consistency")
    clip, out = candidate.clip, Path(out_dir)
    video = video_file if video_file is not None else clip.source
    stem = PurePosixPath(video_path).with_suffix("").as_posix().lstrip("/")
    key_frames, key_items = [], {}
    for kf in candidate.key_frames:
        idx = clip.frame_indices[kf.frame] if clip.frame_indices is not None else kf.frame
        rel = f"{KEY_FRAME_DIR}/{stem}/{idx:06d}.jpg"
        image = (
            key_frame_image(video, kf.time_s, clip.fps, clip.source_wh)
            if video is not None
            else Image.fromarray(clip.frames[kf.frame])
        )
        _save_jpeg(image, out / rel)
        key_frames.append({"path": rel, "time": kf.time_s, "idx": idx})
        objects: dict[str, list[list[float]]] = {}
        for obj in kf.objects:
            objects.setdefault(obj.name, []).append(_rel1(obj.box))
        key_items[str(idx)] = objects
    record = {
        "id": video_path,
        "task": TASK,
        "source": source,
        "video_path": video_path,
        "image_size": list(clip.source_wh),
        "duration": clip.duration_s,
        "question": candidate.question,
        "answer": candidate.answer,
        "reasoning_process": _rel1_reasoning(candidate.reasoning),
        "key_frames": key_frames,
        "key_items": key_items,
    }
    parsed, issues = record_from_dict(record, 0)
    if parsed is None:
        errors = [i for i in issues if i.severity == "error"]
        first = errors[0]
        raise DataError(
            f"{video_path}: the curated record does not validate: {first.field}: {first.message}",
            path=video_path,
            field=first.field,
            issues=tuple(errors),
        )
    return record


def _rel1(box: Sequence[float]) -> list[float]:
    return [round(v / GRID, 4) for v in box]


def _rel1_reasoning(reasoning: str) -> str:
    """A canonical reasoning (0–1000 boxes) with its claims' boxes normalized 0–1."""
    trace = parse_trace(f"<think>{reasoning}</think>")
    head = len("<think>")
    edits = [
        (
            (c.span[0] - head, c.span[1] - head),
            format_claim(c.name, [_rel1(b) for b in c.boxes], c.t_s, decimals=1),
        )
        for c in trace.claims
    ]
    return replace_spans(reasoning, edits)


def key_frame_image(
    video: str | os.PathLike[str], t_s: float, fps: float, source_wh: tuple[int, int]
) -> Image.Image:
    """The frame of ``video`` at ``t_s`` (a frame's true time) at the video's resolution."""
    half = 0.25 / fps if fps > 0 else 1e-3
    w, h = source_wh
    clip = sample_frames(
        video,
        num_frames=1,
        start_s=max(0.0, t_s - half),
        end_s=t_s + half,
        factor=1,
        min_pixels=1,
        max_pixels=w * h,
    )
    if abs(clip.times_s[0] - t_s) > 1e-3:
        raise VideoDecodeError(
            os.fspath(video), f"the frame at {t_s:.4f} s decodes at {clip.times_s[0]:.4f} s"
        )
    return Image.fromarray(clip.frames[0])


def _save_jpeg(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    image.convert("RGB").save(tmp, format="JPEG", quality=92)
    os.replace(tmp, path)


def curate_video(
    video_file: str | os.PathLike[str],
    video_path: str,
    out_dir: str | os.PathLike[str],
    teacher: Backend,
    verifier: Backend,
    config: CurateConfig | None = None,
) -> dict[str, Any]:
    """All steps on one video; its journal entry (see the module docstring). A
    :class:`~o3video.errors.O3VideoError` (unreadable video, backend down) makes a
    ``failed`` entry; any other exception propagates."""
    cfg = config or CurateConfig()
    entry: dict[str, Any] = {"video": video_path, "status": "failed", "drops": []}
    drops: list[Drop] = []
    start = time.perf_counter()
    try:
        result: Candidate | Rejection = annotate(
            video_file,
            teacher,
            num_frames=cfg.num_frames,
            max_pixels=cfg.max_pixels,
            params=cfg.teacher_params,
        )
        if isinstance(result, Candidate):
            result, dropped = filter_boxes(
                result, max_area_frac=cfg.max_area_frac, min_side_frac=cfg.min_side_frac
            )
            drops += dropped
        if isinstance(result, Candidate):
            result, dropped = verify_boxes(result, verifier, params=cfg.verifier_params)
            drops += dropped
        if isinstance(result, Candidate):
            result = check_consistency(result, min_iou=cfg.min_iou, dropped=drops)
        if isinstance(result, Candidate):
            entry["record"] = to_stgr_record(
                result, video_path, out_dir, source=cfg.source, video_file=video_file
            )
            entry["status"] = "kept"
        else:
            entry.update(status="rejected", **result.to_dict())
    except O3VideoError as e:
        logger.warning("%s: %s: %s", video_path, type(e).__name__, e)
        entry["error"] = {"type": type(e).__name__, "message": str(e)}
    entry["drops"] = [d.to_dict() for d in drops]
    entry["seconds"] = round(time.perf_counter() - start, 3)
    return entry


class _Journal:
    """``curate.jsonl``: read back the finished entries, append new ones durably."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if resume and path.exists():
            self._read()
        elif path.exists():
            path.write_bytes(b"")
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def _read(self) -> None:
        for n, line in read_lines(self.path):
            try:
                entry = json.loads(line)
                self.entries[entry["video"]] = entry
            except (ValueError, KeyError, TypeError):
                logger.warning("%s: line %d is not an entry; ignored", self.path, n)

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())
            self.entries[entry["video"]] = entry

    def close(self) -> None:
        self._file.close()


def video_keys(
    videos: Sequence[str | os.PathLike[str]], media_root: str | os.PathLike[str]
) -> list[tuple[Path, str]]:
    """``(file, path relative to media_root)`` of each video, duplicates removed (in order).
    A relative path is taken relative to ``media_root``; ``DataError`` for a video outside it.
    """
    root = Path(os.path.abspath(media_root))
    out: dict[str, Path] = {}
    for video in videos:
        path = Path(video)
        file = Path(os.path.normpath(path if path.is_absolute() else root / path))
        try:
            key = file.relative_to(root).as_posix()
        except ValueError:
            raise DataError(f"{video}: not under the media root {root}", path=str(video)) from None
        if key in out:
            logger.warning("%s: listed twice; curated once", key)
        out.setdefault(key, file)
    return [(file, key) for key, file in out.items()]


def curate(
    videos: Sequence[str | os.PathLike[str]],
    media_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    teacher: Backend,
    verifier: Backend,
    *,
    config: CurateConfig | None = None,
    resume: bool = True,
    progress: Progress | None = None,
) -> CurateReport:
    """Curate ``videos`` (relative to ``media_root``, or absolute under it) into ``out_dir``.

    With ``resume`` the videos kept or rejected by an earlier run are skipped (no backend
    call) and the failed ones retried; without it the journal starts empty. Videos run
    ``config.workers`` at a time; a failed video is recorded and the run goes on; any other
    exception stops the run after the videos in flight are recorded. See the module
    docstring for the files written.
    """
    cfg = config or CurateConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = video_keys(videos, media_root)
    journal = _Journal(out / JOURNAL_FILE, resume)
    finished = {k for k, e in journal.entries.items() if e.get("status") in ("kept", "rejected")}
    todo = [(file, key) for file, key in items if key not in finished]
    skipped = len(items) - len(todo)
    if skipped:
        logger.info("%s: %d of %d videos finished earlier; skipped", out, skipped, len(items))
    crash: BaseException | None = None
    workers = max(1, cfg.workers)
    queue, done = iter(todo), 0
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="curate") as pool:
            running: set[Future[dict[str, Any]]] = set()
            while True:
                # At most 2 videos a worker queued; none queued once something crashed.
                while crash is None and len(running) < 2 * workers:
                    item = next(queue, None)
                    if item is None:
                        break
                    running.add(pool.submit(curate_video, *item, out, teacher, verifier, cfg))
                if not running:
                    break
                finished_now, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished_now:
                    if future.cancelled():
                        continue
                    try:
                        entry = future.result()
                    except BaseException as e:  # record what is in flight, then re-raise
                        crash = crash or e
                        for queued in running:
                            queued.cancel()  # only those not started yet
                        continue
                    journal.write(entry)
                    done += 1
                    if progress is not None:
                        progress(done, len(todo), entry)
    finally:
        journal.close()
    if crash is not None:
        raise crash
    return _finish(out, items, journal.entries, skipped)


def _finish(
    out: Path, items: list[tuple[Path, str]], entries: dict[str, dict[str, Any]], skipped: int
) -> CurateReport:
    """Write ``stgr_curated.json`` and ``curate_report.json``; the report."""
    mine = [entries[key] for _, key in items if key in entries]
    status = Counter(e["status"] for e in mine)
    rejections: dict[str, Counter[str]] = {}
    drops: dict[str, Counter[str]] = {}
    for e in mine:
        if e["status"] == "rejected":
            rejections.setdefault(e["step"], Counter())[e["reason"]] += 1
        for d in e.get("drops", []):
            drops.setdefault(d["step"], Counter())[d["reason"]] += 1
    report = CurateReport(
        out_dir=out,
        total=len(items),
        skipped=skipped,
        kept=status["kept"],
        rejected=status["rejected"],
        failed=status["failed"],
        rejections={s: dict(c.most_common()) for s, c in rejections.items()},
        drops={s: dict(c.most_common()) for s, c in drops.items()},
        errors=dict(Counter(e["error"]["type"] for e in mine if e.get("error")).most_common()),
    )
    records = [e["record"] for e in mine if e["status"] == "kept"]
    _write_json(out / RECORDS_FILE, records)
    _write_json(out / REPORT_FILE, report.to_dict())
    logger.info(
        "%s: %d kept, %d rejected, %d failed of %d videos",
        out,
        report.kept,
        report.rejected,
        report.failed,
        report.total,
    )
    return report


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)

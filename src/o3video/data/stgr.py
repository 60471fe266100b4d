"""STGR data (SPEC §4): typed records, where their media live, and a validating loader.

A file is a JSON list of records (JSON Lines is read too). Each entry becomes one frozen
record of its task — :class:`VisualQARecord`, :class:`TemporalQARecord`,
:class:`TemporalMCQRecord`, :class:`SpatioTemporalRecord`, :class:`VideoMCQRecord`,
:class:`VideoFreeFormRecord` — with the answer parsed (span, letter, box) and the key frames
joined with their ``key_items`` boxes, or is skipped with every :class:`Issue` that made it
unusable. Nothing is dropped silently: :func:`load_stgr` raises (``strict=True``) or returns
and reports the skipped records (``report_path``, and a logged summary).

Box spaces of the raw data (what ``examples.to_example`` converts from): ``key_items``
and the ``reasoning_process`` of video tasks are normalized 0–1 (SPEC §4); the answer of
``visual QA`` is in pixels of the original image (``image_size``). The reasoning of
``visual QA`` is ambiguous: SPEC §4 says 0–1, but the published SFT code rescales the whole
visual-QA text (reasoning included) from ``image_size`` pixels, so the released TreeVGR
traces are in pixels. :func:`~o3video.data.validate.reasoning_box_space` tells them apart
per record — a trace whose every coordinate is <= 1 is normalized (in pixels every box
would be smaller than a pixel) — and the record keeps the answer (``reasoning_box_space``).

Memory: :func:`iter_stgr` reads the file's text once (1–4 bytes a character; the bytes
and the text coexist while decoding) and decodes one entry at a time with
``json.JSONDecoder.raw_decode``: each entry is parsed once, into one dict that lives until
its record is built — the list of all raw dicts never exists. A caller that keeps nothing
holds ~2× the file size at peak; :func:`load_stgr` adds the records it keeps, which share
their strings with the parsed dicts. Measured (``benchmarks/data_validate.py``): 37k
records with reasoning (51 MB) +190 MB peak RSS, without (18 MB) +100 MB.

>>> data = load_stgr("stgr_rl.json", media_root="data/videos")   # doctest: +SKIP
>>> len(data), len(data.skipped), data.records[0].task                # doctest: +SKIP
(37231, 0, 'temporal-spatial free-form QA')
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from o3video.boxes import WH, XYXY
from o3video.data.validate import (
    Checker,
    Issue,
    MediaChecker,
    MediaLayout,
    SourceRoot,
    check_time_range,
    parse_box_answer,
    parse_letter_answer,
    parse_span_answer,
    parse_temporal_mcq_answer,
    reasoning_box_space,
)
from o3video.errors import DataError
from o3video.prompts import Task, task_for_stgr

logger = logging.getLogger(__name__)

StgrTask = Literal[
    "visual QA",
    "temporal QA",
    "temporal QA (MCQ)",
    "temporal-spatial free-form QA",
    "General video QA MCQ",
    "General video QA Free-form",
]
STGR_TASK_NAMES: tuple[str, ...] = get_args(StgrTask)


@dataclass(frozen=True)
class KeyFrame:
    """An annotated frame: its JPEG ``path`` (relative to the source's key-frame root), true
    time ``time_s``, ``idx`` (its ``key_items`` key) and ``objects``: name → boxes,
    normalized 0–1 ``xyxy`` (``{}`` when ``key_items`` held only nulls for it)."""

    path: str
    time_s: float
    idx: int
    objects: Mapping[str, tuple[XYXY, ...]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class BaseRecord:
    """Fields of every STGR record. ``index`` is the 0-based position in its file;
    ``reasoning`` is ``reasoning_process`` (SFT data only); ``id`` the file's ``id`` (as a
    string); ``image_size`` is ``[W, H]`` of the original image or frames; ``duration_s``
    the video's duration when the record (an optional ``duration`` field, seconds) or the
    decoded file told it."""

    index: int
    task: StgrTask
    question: str
    answer: str
    source: str
    reasoning: str | None = None
    id: str | None = None
    image_size: WH | None = None
    duration_s: float | None = None

    @property
    def prompt_task(self) -> Task:
        """The prompt :data:`~o3video.prompts.Task` this record trains."""
        return task_for_stgr(self.task)


@dataclass(frozen=True, kw_only=True)
class VisualQARecord(BaseRecord):
    """``visual QA``: one image; the answer box ``answer_box`` in original image pixels;
    ``reasoning_box_space`` says how the reasoning's boxes are written (module docstring)."""

    image_path: str
    image_size: WH
    answer_box: XYXY
    answer_object: str | None = None
    reasoning_box_space: Literal["source_px", "rel1"] = "source_px"


@dataclass(frozen=True, kw_only=True)
class VideoRecord(BaseRecord):
    """A record about a video at ``video_path`` (relative to its source's media root)."""

    video_path: str


@dataclass(frozen=True, kw_only=True)
class TemporalQARecord(VideoRecord):
    """``temporal QA``: the answer ``"[s, e]"`` parsed into ``span_s``."""

    span_s: tuple[float, float]


@dataclass(frozen=True, kw_only=True)
class TemporalMCQRecord(VideoRecord):
    """``temporal QA (MCQ)``: the answer ``"LETTER\\n[s, e]"`` as ``letter`` and ``span_s``."""

    letter: str
    span_s: tuple[float, float]


@dataclass(frozen=True, kw_only=True)
class SpatioTemporalRecord(VideoRecord):
    """``temporal-spatial free-form QA``: free-text answer, annotated ``key_frames``."""

    key_frames: tuple[KeyFrame, ...]


@dataclass(frozen=True, kw_only=True)
class VideoMCQRecord(VideoRecord):
    """``General video QA MCQ``: the answer is the option ``letter``."""

    letter: str


@dataclass(frozen=True, kw_only=True)
class VideoFreeFormRecord(VideoRecord):
    """``General video QA Free-form``: a free-text answer."""


Record = (
    VisualQARecord
    | TemporalQARecord
    | TemporalMCQRecord
    | SpatioTemporalRecord
    | VideoMCQRecord
    | VideoFreeFormRecord
)


def record_from_dict(raw: Any, index: int) -> tuple[Record | None, list[Issue]]:
    """Check one raw entry; the record (``None`` if any error) and all its issues.

    >>> rec, issues = record_from_dict({"task": "General video QA MCQ", "question": "Q?",
    ...     "answer": "B", "source": "videor1_mcq", "video_path": "a.mp4"}, 7)
    >>> rec.letter, issues
    ('B', [])
    >>> print(record_from_dict({"task": "temporal QA", "question": 5}, 2)[1][0])
    record 2, question: 'question' must be a string, got an int 5 [wrong_type]
    """
    c = Checker(index)
    if not isinstance(raw, dict):
        c.error("<record>", "not_an_object", f"a record must be a JSON object, got {raw!r:.40}")
        return None, c.issues
    task = c.text(raw, "task")
    if task is not None and task not in STGR_TASK_NAMES:
        c.error("task", "unknown_task", f"unknown task {task!r}; known: {STGR_TASK_NAMES}")
        task = None
    common: dict[str, Any] = {
        "index": index,
        "task": task,
        "question": c.text(raw, "question"),
        "answer": c.text(raw, "answer"),
        "source": c.text(raw, "source"),
        "reasoning": c.get(raw, "reasoning_process", str, required=False),
    }
    rid = c.get(raw, "id", (str, int), required=False)
    common["id"] = None if rid is None else str(rid)
    if raw.get("image_size") is not None:
        common["image_size"] = c.wh(raw["image_size"], "image_size")
    if raw.get("duration") is not None:
        common["duration_s"] = c.time(raw["duration"], "duration")
    record = _task_record(c, raw, common) if task is not None else None
    if record is not None:
        check_times(c, record, record.duration_s)
    return (record if c.ok else None), c.issues


def _task_record(c: Checker, raw: dict[str, Any], common: dict[str, Any]) -> Record | None:
    task, answer, reasoning = common["task"], common["answer"], common["reasoning"]
    if task == "visual QA":
        return _visual_qa(c, raw, common)
    video_path = c.text(raw, "video_path")
    if reasoning is not None:
        c.reasoning(reasoning, wh=(1, 1))
    if task != "temporal-spatial free-form QA":
        for key in ("key_frames", "key_items"):
            if raw.get(key):
                c.warn(key, "ignored_field", f"{task!r} records do not use {key!r}")
    parsed: dict[str, Any] = {}
    if answer is not None and task in ("temporal QA", "temporal QA (MCQ)"):
        if task == "temporal QA":
            span = parse_span_answer(answer)
            want = '"[start, end]"'
        else:
            got = parse_temporal_mcq_answer(answer)
            span = got[1] if got else None
            parsed["letter"], want = (got[0] if got else None), '"LETTER\\n[start, end]"'
        if span is None:
            c.error("answer", "bad_answer", f"{task!r} answers are {want}, got {answer!r:.60}")
        elif span[0] < 0 or span[1] < span[0]:
            c.error("answer", "bad_time", f"span {list(span)} must have 0 <= start <= end")
        parsed["span_s"] = span
    elif answer is not None and task == "General video QA MCQ":
        parsed["letter"] = parse_letter_answer(answer)
        if parsed["letter"] is None:
            c.error("answer", "bad_answer", f"MCQ answers are one letter, got {answer!r:.60}")
    elif task == "temporal-spatial free-form QA":
        parsed["key_frames"] = _key_frames(c, raw)
    if not c.ok or video_path is None:
        return None
    cls: type[VideoRecord] = {
        "temporal QA": TemporalQARecord,
        "temporal QA (MCQ)": TemporalMCQRecord,
        "temporal-spatial free-form QA": SpatioTemporalRecord,
        "General video QA MCQ": VideoMCQRecord,
        "General video QA Free-form": VideoFreeFormRecord,
    }[task]
    return cls(**common, video_path=video_path, **parsed)  # type: ignore[return-value]


def _visual_qa(c: Checker, raw: dict[str, Any], common: dict[str, Any]) -> Record | None:
    image_path = c.text(raw, "image_path")
    wh = common.get("image_size")
    if "image_size" not in common:
        c.error("image_size", "missing_field", "visual QA needs image_size [W, H] for its boxes")
    if raw.get("key_frames"):
        c.warn("key_frames", "ignored_field", "'visual QA' records do not use 'key_frames'")
    found = None
    if common["answer"] is not None:
        found = parse_box_answer(common["answer"])
        if found is None:
            msg = f"visual QA answers hold <box>[x1,y1,x2,y2]</box>, got {common['answer']!r:.60}"
            c.error("answer", "bad_answer", msg)
        elif wh is not None and c.box_values(found[1], "answer", wh=wh) is None:
            found = None
    space: Literal["rel1", "source_px"] = "source_px"
    if wh is not None and common["reasoning"] is not None:
        space = reasoning_box_space(common["reasoning"])
        c.reasoning(common["reasoning"], wh=(1, 1) if space == "rel1" else wh, timed=False)
    if not c.ok or found is None or image_path is None:
        return None
    return VisualQARecord(
        **common,
        image_path=image_path,
        answer_object=found[0],
        answer_box=found[1],
        reasoning_box_space=space,
    )


def _key_frames(c: Checker, raw: dict[str, Any]) -> tuple[KeyFrame, ...]:
    frames = c.get(raw, "key_frames", list)
    items = c.get(raw, "key_items", dict)
    if frames is None or items is None:
        return ()
    if not frames:
        c.error("key_frames", "missing_field", "a spatio-temporal record needs key frames")
    boxes: dict[str, dict[str, tuple[XYXY, ...]]] = {}
    for key, objects in items.items():
        f = f"key_items.{key}"
        if objects is None:
            c.warn(f, "null_key_item", "null: read as a key frame without boxes")
            objects = {}
        if not isinstance(objects, dict):
            c.error(f, "wrong_type", f"must map object names to boxes, got {objects!r:.40}")
            continue
        boxes[key] = {}
        for name, obj_boxes in objects.items():
            if obj_boxes is None:
                c.warn(f"{f}.{name}", "null_key_item", "null: read as no boxes")
                continue
            if not isinstance(obj_boxes, list) or not all(isinstance(b, list) for b in obj_boxes):
                msg = f"must be a list of boxes [[x1,y1,x2,y2], ...], got {obj_boxes!r:.40}"
                c.error(f"{f}.{name}", "wrong_type", msg)
                continue
            got = [c.box(b, f"{f}.{name}[{j}]", wh=(1, 1)) for j, b in enumerate(obj_boxes)]
            boxes[key][name] = tuple(b for b in got if b is not None)
    out: list[KeyFrame] = []
    seen: set[int] = set()
    for i, kf in enumerate(frames):
        f = f"key_frames[{i}]"
        if not isinstance(kf, dict):
            c.error(f, "wrong_type", f"a key frame must be an object, got {kf!r:.40}")
            continue
        path = c.get(kf, "path", str, field=f"{f}.path")
        t = c.time(kf["time"], f"{f}.time") if "time" in kf else None
        if "time" not in kf:
            c.error(f"{f}.time", "missing_field", "required field 'time' is missing")
        idx = c.get(kf, "idx", int, field=f"{f}.idx")
        if idx is None:
            continue
        if idx in seen:
            c.error(f"{f}.idx", "duplicate_key_frame", f"a second key frame with idx {idx}")
        seen.add(idx)
        if str(idx) not in items:
            c.error(f"{f}.idx", "key_mismatch", f"key_items has no entry {str(idx)!r}")
        if path is not None and t is not None:
            out.append(KeyFrame(path, t, idx, boxes.get(str(idx), {})))
    known = {str(kf.get("idx")) for kf in frames if isinstance(kf, dict)}
    for key in items:
        if key not in known:
            c.error(f"key_items.{key}", "key_mismatch", f"no key frame has idx {key}")
    return tuple(out)


def check_times(c: Checker, record: Record, duration_s: float | None) -> None:
    """Errors for answer spans and key-frame times past the end of the video."""
    if duration_s is None:
        return
    if isinstance(record, (TemporalQARecord, TemporalMCQRecord)):
        check_time_range(c, record.span_s[1], "answer", duration_s)
    if isinstance(record, SpatioTemporalRecord):
        for i, kf in enumerate(record.key_frames):
            check_time_range(c, kf.time_s, f"key_frames[{i}].time", duration_s)


def check_record_media(
    record: Record, layout: MediaLayout, media: MediaChecker
) -> tuple[Record, list[Issue]]:
    """Check the record's media files: the record (with ``duration_s`` from the decoded
    video, if decoded) and its issues (missing or undecodable files, times past the end)."""
    c = Checker(record.index)
    if isinstance(record, VisualQARecord):
        files = [("image_path", record.image_path, False)]
    else:
        files = [("video_path", record.video_path, False)]
    if isinstance(record, SpatioTemporalRecord):
        files += [(f"key_frames[{i}].path", k.path, True) for i, k in enumerate(record.key_frames)]
    for fld, relpath, key_frame in files:
        path = layout.path(record.source, relpath, key_frame=key_frame)
        is_video = not key_frame and isinstance(record, VideoRecord)
        kind, msg, duration_s = media.check(path, is_video)
        if kind is not None:
            root = str(layout.root(record.source, key_frame=key_frame))
            c.error(fld, kind, msg, path=str(path), root=root)
        elif duration_s is not None:
            record = replace(record, duration_s=duration_s)
            check_times(c, record, duration_s)
    return record, c.issues


@dataclass(frozen=True)
class Checked:
    """One entry of a file after checking: its ``record`` (``None`` if unusable) and issues.
    ``task``, ``source`` and ``id`` are read from the raw entry, for reports."""

    index: int
    record: Record | None
    issues: tuple[Issue, ...]
    task: str | None = None
    source: str | None = None
    id: str | None = None


def iter_stgr(
    path: str | os.PathLike[str],
    media_root: str | os.PathLike[str] | None = None,
    *,
    check_media: bool | None = None,
    decode_media: bool = False,
    source_roots: Mapping[str, str | SourceRoot] | None = None,
) -> Iterator[Checked]:
    """Check every entry of an STGR file, lazily, in file order.

    ``check_media`` (default: whether ``media_root`` is given) looks for each video, image
    and key-frame file under ``media_root`` (see :class:`~o3video.data.validate.MediaLayout`
    and ``source_roots``); ``decode_media`` also decodes them (videos: header and first
    frame, which gives the duration to check times against); media are checked for the
    records whose fields are usable. Raises :class:`DataError` for an unreadable file or
    malformed JSON (naming the line and column), never for a record.
    """
    path = Path(path)
    if check_media is None:
        check_media = media_root is not None
    if (check_media or decode_media) and media_root is None:
        raise ValueError("checking media needs media_root")
    layout = MediaLayout(media_root or ".", source_roots)
    media = MediaChecker(decode=decode_media)
    for index, raw in _entries(path):
        record, issues = record_from_dict(raw, index)
        if record is not None and (check_media or decode_media):
            record, more = check_record_media(record, layout, media)
            issues += more
            if any(i.severity == "error" for i in more):
                record = None
        meta = raw if isinstance(raw, dict) else {}
        task, source, rid = (meta.get(k) for k in ("task", "source", "id"))
        yield Checked(
            index,
            record,
            tuple(issues),
            task=task if isinstance(task, str) else None,
            source=source if isinstance(source, str) else None,
            id=None if rid is None else str(rid),
        )


_WS = re.compile(r"[ \t\n\r]*")


def _skip_ws(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m else pos


def _entries(path: Path) -> Iterator[tuple[int, Any]]:
    """``(index, value)`` of each entry of a JSON list, or of a JSON Lines file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read: {e}", path=str(path)) from e
    decoder, index = json.JSONDecoder(), 0
    pos = _skip_ws(text, 0)
    try:
        if not text.startswith("[", pos):  # JSON Lines: values one after another
            while pos < len(text):
                value, pos = decoder.raw_decode(text, pos)
                yield index, value
                index += 1
                pos = _skip_ws(text, pos)
            return
        pos = _skip_ws(text, pos + 1)
        if text.startswith("]", pos):
            pos += 1
        else:
            while True:
                value, pos = decoder.raw_decode(text, pos)
                yield index, value
                index += 1
                pos = _skip_ws(text, pos)
                if text.startswith(",", pos):
                    pos = _skip_ws(text, pos + 1)
                elif text.startswith("]", pos):
                    pos += 1
                    break
                else:
                    raise json.JSONDecodeError("Expecting ',' delimiter or ']'", text, pos)
        pos = _skip_ws(text, pos)
        if pos < len(text):
            raise json.JSONDecodeError("Extra data after the list", text, pos)
    except json.JSONDecodeError as e:
        msg = (
            f"{path}: malformed JSON at line {e.lineno}, column {e.colno} (record {index}): {e.msg}"
        )
        raise DataError(msg, path=str(path), index=index) from e


@dataclass(frozen=True)
class StgrData:
    """What :func:`load_stgr` read: the usable ``records`` (in file order), every ``issue``
    (errors of skipped records and warnings of kept ones), the ``skipped`` entries and the
    ``total`` number of entries. ``total == len(records) + len(skipped)``."""

    path: str
    records: tuple[Record, ...]
    skipped: tuple[Checked, ...]
    issues: tuple[Issue, ...]
    total: int

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def report(self) -> dict[str, Any]:
        """A JSON-ready account: counts, then every skipped entry with why, then warnings."""
        return {
            "file": self.path,
            "total": self.total,
            "valid": len(self.records),
            "skipped": len(self.skipped),
            "issue_counts": dict(Counter(f"{i.severity}:{i.kind}" for i in self.issues)),
            "skipped_records": [
                {
                    "index": s.index,
                    "id": s.id,
                    "task": s.task,
                    "source": s.source,
                    "issues": [i.to_dict() for i in s.issues],
                }
                for s in self.skipped
            ],
            "warnings": [i.to_dict() for i in self.issues if i.severity == "warning"],
        }


def load_stgr(
    path: str | os.PathLike[str],
    media_root: str | os.PathLike[str] | None = None,
    *,
    strict: bool = False,
    check_media: bool | None = None,
    decode_media: bool = False,
    source_roots: Mapping[str, str | SourceRoot] | None = None,
    report_path: str | os.PathLike[str] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> StgrData:
    """Read and check an STGR file (see :func:`iter_stgr` for the media options).

    Every entry is checked and every issue kept. ``strict=True`` raises :class:`DataError`
    if any entry is unusable, naming the first one's index and field and summarising all.
    Otherwise unusable entries are skipped: ``report_path`` receives the JSON of
    :meth:`StgrData.report`, and a summary is logged. ``on_progress(n)`` is called every
    1,000 entries.

    >>> data = load_stgr("stgr_sft.json", report_path="skipped.json")   # doctest: +SKIP
    >>> data.total == len(data) + len(data.skipped)                       # doctest: +SKIP
    True
    """
    kept: list[Record] = []
    skipped: list[Checked] = []
    issues: list[Issue] = []
    total = 0
    checked = iter_stgr(
        path,
        media_root,
        check_media=check_media,
        decode_media=decode_media,
        source_roots=source_roots,
    )
    for entry in checked:
        total += 1
        issues += entry.issues
        if entry.record is None:
            skipped.append(entry)
        else:
            kept.append(entry.record)
        if on_progress is not None and total % 1000 == 0:
            on_progress(total)
    data = StgrData(str(path), tuple(kept), tuple(skipped), tuple(issues), total)
    if strict and skipped:
        raise _strict_error(data)
    if report_path is not None:
        Path(report_path).write_text(json.dumps(data.report(), indent=1), encoding="utf-8")
    if skipped:
        kinds = Counter(i.kind for s in skipped for i in s.issues if i.severity == "error")
        where = f"report: {report_path}" if report_path else "see StgrData.skipped"
        logger.warning(
            "%s: skipped %d of %d records (%s); first: %s; %s",
            path,
            len(skipped),
            total,
            ", ".join(f"{k} {n}" for k, n in kinds.most_common()),
            next(i for i in skipped[0].issues if i.severity == "error"),
            where,
        )
    return data


STRICT_LISTED = 20
"""How many issues a strict-mode :class:`DataError` message lists."""


def _strict_error(data: StgrData) -> DataError:
    errors = [i for s in data.skipped for i in s.issues if i.severity == "error"]
    first = errors[0]
    lines = [
        f"{data.path}: {len(data.skipped)} of {data.total} records are unusable "
        f"({len(errors)} errors); first: record {first.index}, field {first.field!r}: "
        f"{first.message} [{first.kind}]"
    ]
    lines += [f"  {i}" for i in errors[:STRICT_LISTED]]
    if len(errors) > STRICT_LISTED:
        lines.append(f"  ... and {len(errors) - STRICT_LISTED} more")
    return DataError(
        "\n".join(lines),
        path=data.path,
        index=first.index,
        field=first.field,
        issues=tuple(errors),
    )

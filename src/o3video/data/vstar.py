"""V-STaR items (SPEC §7): the schema of ``V_STaR_test.json``, and its validation.

An item is one video question with its three chains' ground truth: ``question``/``answer``
(What), ``temporal_question`` and ``timestamps`` ``[start, end]`` in seconds (When), and
``spatial_question``, ``spatial_question_2`` and ``bboxes`` (Where): boxes in pixels of the
original ``width`` × ``height`` frames, at whole-second ``timestamp`` s inside the span, in
increasing time order. :func:`item_from_dict` turns one raw entry into a frozen
:class:`VStarItem` or reports every :class:`~o3video.data.validate.Issue` (record index and
field, as for STGR); :func:`load_vstar` reads a file (:mod:`o3video.data.load` does the
reading, the strict mode and the report).

A box entry is ``{"timestamp": 3, "frame_index": 90, "xmin": …, "ymin": …, "xmax": …,
"ymax": …}`` (SPEC §7); the form the V-STaR README shows, ``{"3_90": {"xmin": …, …}}``, is
read too. Extra fields (``chain``, ``object``, model outputs) are ignored.

Errors (the item cannot be scored): a field missing or of the wrong type, ``fps``, ``width``,
``height`` or ``frame_count`` not > 0, a span that is reversed, negative or past the end of
the video (``frame_count / fps``, plus :data:`~o3video.data.validate.DURATION_SLACK_S`),
no boxes, a box outside the frame or with unordered corners, a box time that is not a whole
second or lies outside ``[ceil(start), floor(end)]``, boxes out of time order or two at one
second. A ``frame_index`` outside ``[0, frame_count)`` is a warning (scoring keys boxes by
second, not frame).

Videos: ``<media_root>/<vid>.mp4`` (the official ``videos/`` folder as the root) or
``<media_root>/videos/<vid>.mp4`` (the dataset's folder, or a synthetic corpus, as the root).

>>> item, issues = item_from_dict({
...     "vid": "v1", "domain": "synthetic", "fps": 10.0, "width": 224, "height": 224,
...     "frame_count": 80, "question": "Which shape stops?", "answer": "the red circle",
...     "temporal_question": "When does the red circle stop?", "timestamps": [1.5, 3.2],
...     "spatial_question": "Where is it?", "spatial_question_2": "Where is it stopped?",
...     "bboxes": [{"timestamp": 2, "frame_index": 20, "xmin": 10, "ymin": 20, "xmax": 50,
...                 "ymax": 60}]}, 0)
>>> item.span_s, item.boxes[0].xyxy, item.duration_s, issues
((1.5, 3.2), (10.0, 20.0, 50.0, 60.0), 8.0, [])
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from o3video.boxes import WH, XYXY
from o3video.data.load import Checked, CheckedFile, collect, json_entries
from o3video.data.media import MediaChecker
from o3video.data.validate import Checker, Issue, check_time_range

VSTAR_TEXT_FIELDS = (
    "domain",
    "question",
    "answer",
    "temporal_question",
    "spatial_question",
    "spatial_question_2",
)
_README_KEY = re.compile(r"(\d+(?:\.\d+)?)_(\d+)")


@dataclass(frozen=True)
class VStarBox:
    """A ground-truth box: whole second ``timestamp_s``, the ``frame_index`` it was drawn
    on, and ``xyxy`` in original pixels."""

    timestamp_s: int
    frame_index: int
    xyxy: XYXY


@dataclass(frozen=True, kw_only=True)
class VStarItem:
    """One V-STaR item (module docstring); ``index`` is its 0-based position in its file,
    ``span_s`` its ``timestamps``, ``boxes`` its ``bboxes`` in time order."""

    index: int
    vid: str
    domain: str
    fps: float
    width: int
    height: int
    frame_count: int
    question: str
    answer: str
    temporal_question: str
    span_s: tuple[float, float]
    spatial_question: str
    spatial_question_2: str
    boxes: tuple[VStarBox, ...]

    @property
    def frame_wh(self) -> WH:
        return (self.width, self.height)

    @property
    def duration_s(self) -> float:
        """``frame_count / fps``: the duration the official evaluation tells the model."""
        return self.frame_count / self.fps


@dataclass(frozen=True)
class VStarData(CheckedFile[VStarItem]):
    """What :func:`load_vstar` read (see :class:`~o3video.data.load.CheckedFile`)."""


def is_vstar_file(path: str | os.PathLike[str]) -> bool:
    """Whether a file holds V-STaR items rather than STGR records: its first entry has
    ``vid`` and ``temporal_question``. Raises :class:`~o3video.errors.DataError` where the
    file or its first entry cannot be read."""
    first = next((value for _, value in json_entries(Path(path))), None)
    return isinstance(first, dict) and "vid" in first and "temporal_question" in first


def _whole(c: Checker, raw: dict[str, Any], key: str) -> int | None:
    """A required count or size ``> 0``: an int, or a float with no fraction (``640.0``, as
    some exports write them)."""
    value = c.positive(raw, key, (int, float))
    if value is None:
        return None
    if isinstance(value, float) and not value.is_integer():
        c.error(key, "bad_value", f"{key!r} must be a whole number, got {value!r}")
        return None
    return int(value)


SCORING_OPTIONAL_FIELDS = ("temporal_question", "spatial_question", "spatial_question_2")
"""Fields scoring never reads (nor does the official ``eval.py``): ``item_from_dict(...,
for_scoring=True)`` lets a results file lack them."""


def item_from_dict(
    raw: Any, index: int, *, for_scoring: bool = False
) -> tuple[VStarItem | None, list[Issue]]:
    """Check one raw entry; the item (``None`` if any error) and all its issues.
    ``width``, ``height`` and ``frame_count`` may be written as whole floats (``640.0``).
    ``for_scoring``: :data:`SCORING_OPTIONAL_FIELDS` may be missing (read as ``""``).

    >>> print(item_from_dict({"vid": "a", "fps": 0}, 4)[1][0])
    record 4, fps: 'fps' must be a finite number > 0, got 0 [bad_value]
    """
    c = Checker(index)
    if not isinstance(raw, dict):
        c.error("<record>", "not_an_object", f"an item must be a JSON object, got {raw!r:.40}")
        return None, c.issues
    vid = c.get(raw, "vid", (str, int))
    if isinstance(vid, str) and not vid.strip():
        c.error("vid", "missing_field", "'vid' is empty")
    fps = c.positive(raw, "fps", (int, float))
    width, height = _whole(c, raw, "width"), _whole(c, raw, "height")
    frame_count = _whole(c, raw, "frame_count")
    texts = {
        key: c.text(raw, key, required=not (for_scoring and key in SCORING_OPTIONAL_FIELDS))
        for key in VSTAR_TEXT_FIELDS
    }
    if for_scoring:
        texts.update({k: texts[k] or "" for k in SCORING_OPTIONAL_FIELDS})
    duration_s = frame_count / fps if fps and frame_count else None
    span = _span(c, raw.get("timestamps"), duration_s)
    wh = (width, height) if width and height else None
    boxes = _boxes(c, raw.get("bboxes"), span, wh, frame_count)
    if not c.ok or span is None or width is None or height is None or frame_count is None:
        return None, c.issues
    item = VStarItem(
        index=index,
        vid=str(vid),
        fps=float(fps),
        width=width,
        height=height,
        frame_count=frame_count,
        span_s=span,
        boxes=boxes,
        **texts,  # type: ignore[arg-type]  # all str when c.ok
    )
    return item, c.issues


def _span(c: Checker, value: Any, duration_s: float | None) -> tuple[float, float] | None:
    if value is None:
        c.error("timestamps", "missing_field", "required field 'timestamps' is missing or null")
        return None
    if not isinstance(value, list) or len(value) != 2:
        c.error("timestamps", "wrong_type", f"must be [start, end] in seconds, got {value!r:.40}")
        return None
    start, end = c.time(value[0], "timestamps[0]"), c.time(value[1], "timestamps[1]")
    if start is None or end is None:
        return None
    if end < start:
        c.error("timestamps", "bad_time", f"span [{start:g}, {end:g}] ends before it starts")
        return None
    check_time_range(c, end, "timestamps[1]", duration_s)
    return (start, end)


def _boxes(
    c: Checker,
    value: Any,
    span: tuple[float, float] | None,
    wh: tuple[int, int] | None,
    frame_count: int | None,
) -> tuple[VStarBox, ...]:
    if value is None or value == []:
        c.error("bboxes", "missing_field", "required field 'bboxes' is missing, null or empty")
        return ()
    if not isinstance(value, list):
        c.error("bboxes", "wrong_type", f"must be a list of boxes, got {value!r:.40}")
        return ()
    out: list[VStarBox] = []
    for j, entry in enumerate(value):
        f = f"bboxes[{j}]"
        if isinstance(entry, dict) and len(entry) == 1:  # the README form {"T_F": {...}}
            ((key, inner),) = entry.items()
            m = _README_KEY.fullmatch(str(key))
            if m and isinstance(inner, dict):
                sec = float(m[1])
                entry = {**inner, "timestamp": int(sec) if sec.is_integer() else sec}
                entry["frame_index"] = int(m[2])
        if not isinstance(entry, dict):
            c.error(f, "wrong_type", f"a box must be an object, got {entry!r:.40}")
            continue
        stamp, t = entry.get("timestamp"), None
        if stamp is None:
            msg = "required field 'timestamp' is missing or null"
            c.error(f"{f}.timestamp", "missing_field", msg)
        elif (t := c.time(stamp, f"{f}.timestamp")) is not None and not t.is_integer():
            c.error(f"{f}.timestamp", "bad_time", f"must be a whole second, got {t:g}")
            t = None
        elif t is not None and span is not None and not math.ceil(span[0]) <= t <= span[1]:
            msg = f"{t:g} s is outside the whole seconds of the span [{span[0]:g}, {span[1]:g}]"
            c.error(f"{f}.timestamp", "time_out_of_range", msg)
        k = c.get(entry, "frame_index", int, field=f"{f}.frame_index")
        if k is not None and frame_count and not 0 <= k < frame_count:
            msg = f"frame {k} is outside the video's {frame_count} frames"
            c.warn(f"{f}.frame_index", "time_out_of_range", msg)
        corners = [entry.get(key) for key in ("xmin", "ymin", "xmax", "ymax")]
        if any(v is None for v in corners):
            c.error(f, "missing_field", "a box needs xmin, ymin, xmax and ymax")
            continue
        xyxy = c.box(corners, f, wh=wh) if wh is not None else None
        if t is not None and k is not None and xyxy is not None:
            out.append(VStarBox(int(t), k, xyxy))
    stamps = [b.timestamp_s for b in out]
    if c.ok and stamps != sorted(set(stamps)):
        j = next(j for j in range(1, len(stamps)) if stamps[j] <= stamps[j - 1])
        msg = f"{stamps[j]} s follows {stamps[j - 1]} s: boxes must be in increasing time order"
        c.error(f"bboxes[{j}].timestamp", "unordered_boxes", msg)
    return tuple(out)


def vstar_video_path(media_root: str | os.PathLike[str], vid: str) -> Path:
    """The video of ``vid``: the first of ``<root>/<vid>.mp4`` and
    ``<root>/videos/<vid>.mp4`` that exists, else the first."""
    name = vid if vid.endswith(".mp4") else f"{vid}.mp4"
    paths = [Path(media_root) / name, Path(media_root) / "videos" / name]
    return next((p for p in paths if p.is_file()), paths[0])


def iter_vstar(
    path: str | os.PathLike[str],
    media_root: str | os.PathLike[str] | None = None,
    *,
    decode_media: bool = False,
) -> Iterator[Checked[VStarItem]]:
    """Check every item of a V-STaR file, lazily, in file order; with ``media_root`` also
    its video (:func:`vstar_video_path`), which ``decode_media`` decodes (and checks the
    span against its duration). Raises :class:`~o3video.errors.DataError` for an unreadable
    file or malformed JSON, never for an item."""
    if decode_media and media_root is None:
        raise ValueError("checking media needs media_root")
    media = MediaChecker(decode=decode_media)
    for index, raw in json_entries(Path(path)):
        item, issues = item_from_dict(raw, index)
        if item is not None and media_root is not None:
            c = Checker(index)
            video = vstar_video_path(media_root, item.vid)
            kind, msg, duration_s = media.check(video, True)
            if kind == "missing_media":
                msg += f" (nor {Path(media_root) / 'videos' / video.name})"
            if kind is not None:
                c.error("vid", kind, msg, path=str(video), root=str(video.parent))
            else:
                check_time_range(c, item.span_s[1], "timestamps[1]", duration_s)
            issues += c.issues
            item = item if c.ok else None
        meta = raw if isinstance(raw, dict) else {}
        domain, vid = meta.get("domain"), meta.get("vid")
        yield Checked(
            index,
            item,
            tuple(issues),
            source=domain if isinstance(domain, str) else None,
            id=None if vid is None else str(vid),
        )


def load_vstar(
    path: str | os.PathLike[str],
    media_root: str | os.PathLike[str] | None = None,
    *,
    strict: bool = False,
    decode_media: bool = False,
    report_path: str | os.PathLike[str] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> VStarData:
    """Read and check a V-STaR file (``V_STaR_test.json`` or a synthetic ``vstar.json``).

    As :func:`~o3video.data.load.load_stgr`: ``strict=True`` raises
    :class:`~o3video.errors.DataError` naming the first unusable item's index and field;
    otherwise unusable items are skipped, reported (``report_path``) and logged.

    >>> data = load_vstar("V_STaR_test.json", "V-STaR", decode_media=True)  # doctest: +SKIP
    >>> data.total == len(data) + len(data.skipped)                           # doctest: +SKIP
    True
    """
    checked = iter_vstar(path, media_root, decode_media=decode_media)
    return collect(
        VStarData, path, checked, strict=strict, report_path=report_path, on_progress=on_progress
    )

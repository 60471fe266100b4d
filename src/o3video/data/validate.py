"""Checks of record fields (STGR, SPEC §4; V-STaR, SPEC §7): every problem becomes an
:class:`Issue`, never an exception, so that one pass over a file reports all of them.

An issue is an ``error`` (the record cannot be used: the loader skips it, or refuses the file
in strict mode) or a ``warning`` (usable as it is, but a person should know). Its ``field``
is a path into the record: ``answer``, ``key_frames[2].time``, ``key_items.3.dog[0]``.

Conventions checked here:

- Boxes are ``[x1, y1, x2, y2]`` with ``x1 < x2`` and ``y1 < y2``, inside ``[0, W] × [0, H]``
  (``W = H = 1`` for normalized boxes) within :data:`BOX_TOLERANCE` of the side (0.001 of
  a normalized side, 0.64 px of a 640 px side): annotation round-off is not an error.
- Times are finite seconds ``>= 0``, and at most the video duration plus
  :data:`DURATION_SLACK_S` when the duration is known.
- A reasoning trace must convert cleanly: no ``<think>``/``<answer>`` tags of its own (the
  target wraps it), every ``<box>`` 4 numbers, in range. Anything else that
  :func:`o3video.evidence.parse_trace` finds (a claim without a time, a loose box, ...) is a
  ``trace_problem`` warning.

>>> c = Checker(3)
>>> c.box([0.5, 0.1, 0.2, 0.5], "key_items.0.dog[0]", wh=(1, 1)) is None
True
>>> print(c.issues[0])
record 3, key_items.0.dog[0]: x1 0.5 must be < x2 0.2 [box_unordered]
>>> parse_span_answer("[2.5, 7]"), parse_letter_answer(" B ")
((2.5, 7.0), 'B')
>>> parse_temporal_mcq_answer("C\\n[1, 2]")
('C', (1.0, 2.0))
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from o3video.boxes import XYXY
from o3video.evidence import parse_trace

Severity = Literal["error", "warning"]
IssueKind = Literal[
    "not_an_object",  # a list entry that is not a JSON object
    "missing_field",  # a required field absent, null or empty
    "wrong_type",  # a field of the wrong JSON type (``question: 5``, ``key_frames: "x"``)
    "unknown_task",  # ``task`` is none of the six STGR tasks
    "bad_answer",  # the answer does not have its task's format
    "bad_box",  # a box that is not 4 finite numbers
    "box_out_of_range",  # a box outside the image / the unit square
    "box_unordered",  # x1 >= x2 or y1 >= y2
    "bad_time",  # a time that is negative, not finite, or a span that ends before it starts
    "time_out_of_range",  # a time past the end of the video
    "key_mismatch",  # a key frame without key_items, or key_items without a key frame
    "duplicate_key_frame",  # two key frames with one idx
    "null_key_item",  # a null in key_items (warning: read as no boxes)
    "ignored_field",  # a field this task does not use (warning)
    "trace_problem",  # reasoning_process: a malformation parse_trace reports (warning)
    "unusable_trace",  # reasoning_process that cannot become a training target
    "missing_media",  # a video, image or key-frame file that does not exist
    "undecodable_media",  # a media file that exists but does not decode
    "bad_value",  # a number outside its allowed range (``fps: 0``, ``width: -3``)
    "unordered_boxes",  # V-STaR bboxes not in increasing time order, or two at one second
]
ISSUE_KINDS: tuple[str, ...] = get_args(IssueKind)

BOX_TOLERANCE = 1e-3
"""How far (as a fraction of the side) a box may reach outside its image."""
DURATION_SLACK_S = 0.5
"""How far past the known video duration a time may lie (annotation round-off)."""

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_SPAN = re.compile(rf"\s*\[\s*({_NUM})\s*,\s*({_NUM})\s*\]\s*")
_LETTER = re.compile(r"\s*([A-Z])\s*")
_TEMPORAL_MCQ = re.compile(rf"\s*([A-Z])\s*\n{_SPAN.pattern}")
_BOX_TAG = re.compile(r"<box>(.*?)</box>", re.S)
# 4 comma-separated numbers, in brackets or bare (the (?(1)…) closes a bracket if opened).
_BOX_BODY = re.compile(
    rf"\s*(\[)?\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*(?(1)\])\s*"
)
_OBJ_TAG = re.compile(r"<obj>(.*?)</obj>", re.S)
_SECTION_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


@dataclass(frozen=True)
class Issue:
    """One problem of one record: where (``index``, ``field``), what (``kind``, ``message``)
    and how bad (``severity``). ``path`` is the media file concerned, ``root`` the media
    directory it was looked up in (for a person to act on), both ``None`` for other issues."""

    index: int
    field: str
    kind: IssueKind
    message: str
    severity: Severity = "error"
    path: str | None = None
    root: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``None`` entries left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        return f"record {self.index}, {self.field}: {self.message} [{self.kind}]"


class Checker:
    """Collects the issues of one record while its fields are read.

    Each reader returns the checked value, or ``None`` after recording why it is unusable.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        self.issues: list[Issue] = []

    @property
    def ok(self) -> bool:
        """True while no error (warnings allowed) has been recorded."""
        return not any(i.severity == "error" for i in self.issues)

    def error(self, field: str, kind: IssueKind, message: str, **where: str) -> None:
        self.issues.append(Issue(self.index, field, kind, message, "error", **where))

    def warn(self, field: str, kind: IssueKind, message: str, **where: str) -> None:
        self.issues.append(Issue(self.index, field, kind, message, "warning", **where))

    def get(
        self,
        raw: Mapping[str, Any],
        key: str,
        types: type | tuple[type, ...],
        *,
        required: bool = True,
        field: str | None = None,
    ) -> Any:
        """``raw[key]`` if it has one of ``types``; absent or null is ``None`` (an error if
        ``required``); bool never counts as a number."""
        field = field or key
        value = raw.get(key)
        if value is None:
            if required:
                self.error(field, "missing_field", f"required field {key!r} is missing or null")
            return None
        allowed = _as_tuple(types)
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            names = " or ".join(_json_name(t) for t in allowed)
            got = _json_name(type(value))
            self.error(field, "wrong_type", f"{key!r} must be {names}, got {got} {_short(value)}")
            return None
        return value

    def text(self, raw: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
        """A string field; a blank string counts as missing."""
        value = self.get(raw, key, str, required=required)
        if value is not None and not value.strip():
            if required:
                self.error(key, "missing_field", f"{key!r} is empty")
            return None
        return value

    def number(self, value: Any, field: str, *, kind: IssueKind = "wrong_type") -> float | None:
        """A finite JSON number (not a bool)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            got = _json_name(type(value))
            self.error(field, "wrong_type", f"must be a number, got {got} {_short(value)}")
            return None
        if not math.isfinite(value):
            self.error(field, kind, f"must be finite, got {value!r}")
            return None
        return float(value)

    def positive(
        self, raw: Mapping[str, Any], key: str, types: type | tuple[type, ...] = int
    ) -> Any:
        """A required field of ``types`` (default: an int) that must be ``> 0``."""
        value = self.get(raw, key, types)
        if value is not None and not (math.isfinite(value) and value > 0):
            self.error(key, "bad_value", f"{key!r} must be a finite number > 0, got {value!r}")
            return None
        return value

    def time(self, value: Any, field: str) -> float | None:
        """Seconds: a finite number ``>= 0``."""
        t = self.number(value, field, kind="bad_time")
        if t is not None and t < 0:
            self.error(field, "bad_time", f"a time must be >= 0 s, got {t}")
            return None
        return t

    def wh(self, value: Any, field: str) -> tuple[int, int] | None:
        """An image size ``[W, H]`` of two positive integers."""
        ok = isinstance(value, list) and len(value) == 2
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        if not ok:
            self.error(
                field, "wrong_type", f"must be [W, H], two positive ints, got {_short(value)}"
            )
            return None
        return (value[0], value[1])

    def box(self, value: Any, field: str, *, wh: tuple[float, float]) -> XYXY | None:
        """A box ``[x1, y1, x2, y2]`` inside ``[0, W] × [0, H]`` with ordered corners."""
        if not isinstance(value, list) or len(value) != 4:
            self.error(field, "bad_box", f"a box must be a list of 4 numbers, got {_short(value)}")
            return None
        nums = [v for v in value if not isinstance(v, bool) and isinstance(v, (int, float))]
        if len(nums) != 4 or not all(math.isfinite(v) for v in nums):
            self.error(field, "bad_box", f"a box must be 4 finite numbers, got {_short(value)}")
            return None
        x1, y1, x2, y2 = (float(v) for v in nums)
        return self.box_values((x1, y1, x2, y2), field, wh=wh)

    def box_values(self, xyxy: XYXY, field: str, *, wh: tuple[float, float]) -> XYXY | None:
        """The range and corner-order checks of :meth:`box` on parsed numbers."""
        problem = _box_problem(xyxy, wh)
        if problem is None:
            return xyxy
        self.error(field, *problem)
        return None

    def reasoning(self, text: str, *, wh: tuple[float, float], timed: bool = True) -> None:
        """Check a ``reasoning_process`` whose boxes are in a space of size ``wh``.

        Unusable (errors): section tags inside it, a ``<box>`` that is not 4 numbers or lies
        outside ``wh``. Warnings: unordered boxes and whatever else ``parse_trace`` reports
        (but a claim without a time only where claims are ``timed``: not on an image).
        """
        field = "reasoning_process"
        tags = [t for t in _SECTION_TAGS if t in text]
        if tags:
            msg = f"contains {', '.join(tags)}; the training target adds these tags itself"
            self.error(field, "unusable_trace", msg)
        for k, (start, _end, xyxy) in enumerate(box_spans(text)):
            if xyxy is None:
                msg = f"<box> {k} at character {start} is not 4 numbers: {_short(text[start:_end])}"
                self.error(field, "unusable_trace", msg)
                continue
            problem = _box_problem(xyxy, wh)
            if problem is not None:
                kind, msg = problem
                report = self.warn if kind == "box_unordered" else self.error  # convertible
                report(field, kind, f"<box> {k} at character {start}: {msg}")
        # Parse as the target will read: wrapped in <think>, with an (empty) answer.
        trace = parse_trace(f"<think>{text}</think><answer></answer>")
        for p in trace.problems:
            if p.kind == "bad_box" or (tags and p.kind in ("nested_tag", "unbalanced_tag")):
                continue  # reported above as errors
            if p.kind == "claim_without_time" and not timed:
                continue
            a, b = max(0, p.span[0] - 7), max(0, p.span[1] - 7)
            self.warn(field, "trace_problem", f"{p.kind} at characters {a}-{b}: {p.message}")


def box_spans(text: str) -> list[tuple[int, int, XYXY | None]]:
    """``(start, end, box)`` of the content of every ``<box>…</box>`` in ``text``; ``box`` is
    ``None`` when the content is not 4 comma-separated numbers (brackets optional).

    >>> box_spans("<obj>a</obj><box>[0.1, 0.2,0.3,0.4]</box> <box>x</box>")
    [(17, 35, (0.1, 0.2, 0.3, 0.4)), (47, 48, None)]
    """
    return [(m.start(1), m.end(1), parse_box_text(m.group(1))) for m in _BOX_TAG.finditer(text)]


def reasoning_box_space(text: str) -> Literal["rel1", "source_px"]:
    """How the boxes of a visual-QA reasoning are written: ``"rel1"`` when it has boxes and
    every coordinate is in ``[0, 1]`` (in pixels each would be under a pixel), else
    ``"source_px"`` (the published TreeVGR traces: pixels of the original image).

    >>> reasoning_box_space("<box>[0.1,0.2,0.5,0.9]</box>")
    'rel1'
    >>> reasoning_box_space("<box>[0,0,1,64]</box>")
    'source_px'
    """
    boxes = [b for _, _, b in box_spans(text) if b is not None]
    limit = 1 + BOX_TOLERANCE
    if boxes and all(-BOX_TOLERANCE <= v <= limit for b in boxes for v in b):
        return "rel1"
    return "source_px"


def parse_box_text(content: str) -> XYXY | None:
    """The box written between ``<box>`` and ``</box>``: 4 finite numbers, ``[]`` optional.

    >>> parse_box_text(" [374, 67,420,224] "), parse_box_text("1,2,3")
    ((374.0, 67.0, 420.0, 224.0), None)
    """
    m = _BOX_BODY.fullmatch(content)
    if m is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in m.group(2, 3, 4, 5))
    return (x1, y1, x2, y2) if all(math.isfinite(v) for v in (x1, y1, x2, y2)) else None


def parse_span_answer(answer: str) -> tuple[float, float] | None:
    """A temporal-QA answer ``"[start, end]"`` (seconds); ``None`` for any other text."""
    m = _SPAN.fullmatch(answer)
    return (float(m.group(1)), float(m.group(2))) if m else None


def parse_letter_answer(answer: str) -> str | None:
    """A multiple-choice answer: one capital letter (whitespace around allowed)."""
    m = _LETTER.fullmatch(answer)
    return m.group(1) if m else None


def parse_temporal_mcq_answer(answer: str) -> tuple[str, tuple[float, float]] | None:
    """A temporal-MCQ answer ``"LETTER\\n[start, end]"``; ``None`` for any other text."""
    m = _TEMPORAL_MCQ.fullmatch(answer)
    return (m.group(1), (float(m.group(2)), float(m.group(3)))) if m else None


def parse_box_answer(answer: str) -> tuple[str | None, XYXY] | None:
    """A visual-QA answer ``<obj>NAME</obj><box>[x1,y1,x2,y2]</box>``: the object name (if
    any) and the first box; ``None`` when there is no readable box.

    >>> parse_box_answer("<obj>cup</obj><box>[64,48,320,240]</box>")
    ('cup', (64.0, 48.0, 320.0, 240.0))
    """
    spans = box_spans(answer)
    if not spans or spans[0][2] is None:
        return None
    m = _OBJ_TAG.search(answer)
    return (m.group(1).strip() if m else None), spans[0][2]


def check_time_range(c: Checker, t_s: float, field: str, duration_s: float | None) -> None:
    """An error if ``t_s`` lies past ``duration_s`` (plus :data:`DURATION_SLACK_S`)."""
    if duration_s is not None and t_s > duration_s + DURATION_SLACK_S:
        msg = f"{t_s:g} s is past the end of the video ({duration_s:.3f} s)"
        c.error(field, "time_out_of_range", msg)


def _box_problem(xyxy: XYXY, wh: tuple[float, float]) -> tuple[IssueKind, str] | None:
    """Why a box is out of ``[0, W] × [0, H]`` (with :data:`BOX_TOLERANCE`) or has
    unordered corners; ``None`` for a good box."""
    x1, y1, x2, y2 = xyxy
    w, h = wh
    tx, ty = BOX_TOLERANCE * w, BOX_TOLERANCE * h
    if min(x1, x2) < -tx or min(y1, y2) < -ty or max(x1, x2) > w + tx or max(y1, y2) > h + ty:
        where = "the unit square [0, 1]" if wh == (1, 1) else f"the {w:g}x{h:g} image"
        return "box_out_of_range", f"box {_fmt(xyxy)} is outside {where}"
    if not x1 < x2:
        return "box_unordered", f"x1 {x1:g} must be < x2 {x2:g}"
    if not y1 < y2:
        return "box_unordered", f"y1 {y1:g} must be < y2 {y2:g}"
    return None


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


_JSON_NAMES = {str: "a string", int: "an int", float: "a float", list: "a list", dict: "an object"}


def _json_name(t: type) -> str:
    if t is bool:
        return "a bool"
    if t is type(None):
        return "null"
    return _JSON_NAMES.get(t, t.__name__)


def _short(value: Any, n: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= n else text[:n] + "…"


def _fmt(xyxy: XYXY) -> str:
    return "[" + ", ".join(f"{v:g}" for v in xyxy) + "]"

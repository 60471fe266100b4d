"""Parsers of V-STaR model answers (SPEC §7), in two flavours.

``default`` parsers are robust and never raise: times as two numbers, ``mm:ss``,
``From <t>a</t>s to <t>b</t>s`` or a ``"[a, b]"`` string; boxes as JSON keyed by seconds
(fenced in a ```json block or not, single quotes tolerated), each second holding one box, several
boxes or ``{"bbox_2d": [...]}`` dicts. Seconds are numbers, so ``"3.0"`` and ``"3"`` are one second.

``official_*`` functions reproduce ``eval.py`` of V-STaR-Bench/V-STaR (commit 18a1c853): a time
answer must be a list or tuple of exactly two ``int``/``float`` (a string is ``ast.literal_eval``-ed
first); a reversed span scores 0; a box answer is looked up by ``str(timestamp)`` of the ground
truth, so ``"3.0"`` never matches ``"3"``; any malformed box scores 0.

>>> parse_time_answer("From <t>1:05</t>s to <t>70</t>s")
(65.0, 70.0)
>>> parse_box_answer('```json\\n{"3.0": [1, 2, 3, 4]}\\n```')
{3.0: ((1.0, 2.0, 3.0, 4.0),)}
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from o3video.boxes import XYXY
from o3video.evidence import parse_span
from o3video.safejson import check_depth

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_CLOCK = re.compile(r"(?<![\d.:])(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)(?![\d:])")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_SECOND_KEY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:s|sec|secs|second|seconds)?\s*", re.I)
_BOX_KEYS = ("bbox_2d", "bbox", "box")
_TIME_KEYS = ("timestamp", "time", "second", "t")


def _real(value: Any) -> float | None:
    """A finite float from a JSON number or a numeric string; ``None`` otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def _clock_to_seconds(m: re.Match[str]) -> str:
    hours = int(m.group(1)) if m.group(1) else 0
    return f"{hours * 3600 + int(m.group(2)) * 60 + float(m.group(3)):g}"


def parse_time_answer(value: Any) -> tuple[float, float] | None:
    """A ``(start_s, end_s)`` span from a model's When answer, or ``None`` (never raises).

    Accepts ``[a, b]`` (numbers or numeric strings) and text: the first ``From <t>a</t>s to
    <t>b</t>s``, else the first two numbers of the ``<answer>`` (or of the whole text) after
    ``mm:ss`` / ``h:mm:ss`` became seconds. The span is returned as written (reversed spans
    score 0 later).

    >>> parse_time_answer([3, "7.5"]), parse_time_answer("between 0:12 and 0:20")
    ((3.0, 7.5), (12.0, 20.0))
    >>> parse_time_answer("around 5 s") is None
    True
    """
    if isinstance(value, list | tuple):
        if len(value) != 2:
            return None
        start, end = _real(value[0]), _real(value[1])
        return None if start is None or end is None else (start, end)
    if not isinstance(value, str):
        return None
    span = parse_span(value)
    if span is not None:
        return span
    m = _ANSWER.search(value)
    text = _CLOCK.sub(_clock_to_seconds, m.group(1) if m else value)
    numbers = [float(x) for x in _NUMBER.findall(text)]
    return (numbers[0], numbers[1]) if len(numbers) >= 2 else None


def _load_json_text(text: str) -> Any:
    m = _FENCE.search(text)
    body = m.group(1) if m else text
    candidates = [body.strip()]
    start, end = body.find("{"), body.rfind("}")
    if 0 <= start < end:
        candidates.append(body[start : end + 1])
    for candidate in candidates:
        try:
            check_depth(candidate)  # json.loads recurses: 1,000 nested "[" raise RecursionError
        except ValueError:
            continue
        try:
            return json.loads(candidate)
        except ValueError:
            pass
        try:  # single-quoted Python dicts, as some models write
            return ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    return None


def _second(key: Any) -> float | None:
    if isinstance(key, str):
        m = _SECOND_KEY.fullmatch(key)
        return float(m.group(1)) if m else None
    return _real(key)


def _boxes_of(value: Any, depth: int = 0) -> list[XYXY]:
    """Every box in one second's value: ``[x1,y1,x2,y2]``, a list of them, bbox dicts."""
    if depth > 3:
        return []
    if isinstance(value, dict):
        inner = next((value[k] for k in _BOX_KEYS if k in value), None)
        return [] if inner is None else _boxes_of(inner, depth + 1)
    if not isinstance(value, list | tuple):
        return []
    if len(value) == 4 and not any(isinstance(v, list | tuple | dict) for v in value):
        xs = [_real(v) for v in value]
        if all(x is not None for x in xs):
            return [(xs[0], xs[1], xs[2], xs[3])]  # type: ignore[list-item]
        return []
    return [box for v in value for box in _boxes_of(v, depth + 1)]


def parse_box_answer(value: Any) -> dict[float, tuple[XYXY, ...]]:
    """Boxes per second from a model's Where answer; ``{}`` when nothing parses (never raises).

    ``value`` is the JSON text the model wrote or what a runner already decoded: a dict keyed
    by seconds (``"3"``, ``"3.0"``, ``"3s"``, ``3``) or a list of ``{"timestamp": t,
    "bbox_2d": [...]}`` entries. Boxes of one second from several places are merged.

    >>> parse_box_answer({"3": {"bbox_2d": [0, 0, 2, 2]}, "4s": [[0, 0, 1, 1], [1, 1, 2, 2]]})
    {3.0: ((0.0, 0.0, 2.0, 2.0),), 4.0: ((0.0, 0.0, 1.0, 1.0), (1.0, 1.0, 2.0, 2.0))}
    """
    if isinstance(value, str):
        value = _load_json_text(value)
    pairs: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        for entry in value:
            if isinstance(entry, dict):
                key = next((entry[k] for k in _TIME_KEYS if k in entry), None)
                pairs.append((key, entry))
    out: dict[float, list[XYXY]] = {}
    for key, val in pairs:
        t_s = _second(key)
        boxes = _boxes_of(val) if t_s is not None else []
        if boxes:
            out.setdefault(t_s, []).extend(boxes)  # type: ignore[arg-type]
    return {t_s: tuple(boxes) for t_s, boxes in out.items()}


# --- the official script's behaviour ----------------------------------------------------------


def official_time_answer(value: Any) -> tuple[float, float] | None:
    """The span ``calculate_temporal_iou`` of the official ``eval.py`` accepts, else ``None``.

    Falsy → none; a string is ``ast.literal_eval``-ed (so ``"[3, 5]"`` and ``"3, 5"`` work,
    ``"From 3 to 5"`` does not); then exactly two ``int``/``float`` are needed (``bool`` passes,
    as ``isinstance(True, int)``; numeric strings do not).

    >>> official_time_answer("[3, 5]"), official_time_answer(["3", "5"])
    ((3.0, 5.0), None)
    """
    if not value:
        return None
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    if not all(isinstance(x, int | float) for x in value):
        return None
    return (float(value[0]), float(value[1]))


def official_temporal_iou(gt_span: Sequence[float], pred: tuple[float, float] | None) -> float:
    """The official formula: no check of order, so a reversed span has no overlap → 0.

    >>> official_temporal_iou((4, 8), (10, 5))
    0.0
    """
    if pred is None:
        return 0.0
    (gs, ge), (ps, pe) = gt_span, pred
    inter = max(0.0, min(ge, pe) - max(gs, ps))
    union = max(ge, pe) - min(gs, ps)
    return inter / union if union > 0 else 0.0


def _official_box_iou(gt: XYXY, pred: Any) -> float:
    """``compute_iou``: corners as given (not ordered); anything but 4 values → 0."""
    if not isinstance(pred, list | tuple) or len(pred) != 4:
        return 0.0
    px1, py1, px2, py2 = pred
    x1, y1 = max(gt[0], px1), max(gt[1], py1)
    x2, y2 = min(gt[2], px2), min(gt[3], py2)
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    union = (gt[2] - gt[0]) * (gt[3] - gt[1]) + (px2 - px1) * (py2 - py1) - inter
    return float(inter / union) if union > 0 else 0.0


def official_best_iou(gt: XYXY, pred: Any) -> float:
    """``calculate_bbox_iou``: one box or a list of boxes, best IoU; any error → 0.

    >>> official_best_iou((0, 0, 2, 2), [[0, 0, 1, 1], [0, 0, 2, 2]])
    1.0
    >>> official_best_iou((0, 0, 2, 2), {"bbox_2d": [0, 0, 2, 2]})  # dicts are not read
    0.0
    """
    try:
        if not pred:
            return 0.0
        if isinstance(pred[0], int | float) and len(pred) == 4:
            pred = [pred]
        return max(_official_box_iou(gt, p) for p in pred)
    except Exception:  # the official script swallows every error here (bare except) → 0
        return 0.0

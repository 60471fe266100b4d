"""Parsers of V-STaR model answers (SPEC §7), in two flavours.

``default`` parsers are robust and never raise: times as two numbers, ``mm:ss``,
``From <t>a</t>s to <t>b</t>s`` or a ``"[a, b]"`` string; boxes as JSON keyed by seconds
(fenced in a ```json block or not, single quotes tolerated), a list of ``[second, box]`` pairs or of
one-key dicts, each second holding one box, several boxes or ``{"bbox_2d": [...]}`` dicts. Seconds
are numbers, so ``"3.0"`` and ``"3"`` are one second. They are
:mod:`o3video.protocols.readers`' readers,
which read the answer part of a reply only (never the ``<think>``).

``reference_*`` functions reproduce how the reference pipeline (Open-o3 Video's
``eval/test/test_vstar_multi_images.py``) turns each reply into the value it writes in the
results file: :func:`reference_timestamps` (``answer_temporal``), :func:`reference_boxes`
(``answer_spatial``) and :func:`reference_answer_text` (``answer_vqa``).

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
from collections.abc import Sequence
from typing import Any

from o3video.boxes import XYXY
from o3video.protocols.readers import (
    read_boxes_by_second,
    read_span,
    reference_answer_text,
    reference_boxes,
    reference_timestamps,
)


def parse_time_answer(value: Any) -> tuple[float, float] | None:
    """A ``(start_s, end_s)`` span from a model's When answer, or ``None`` (never raises):
    :func:`o3video.protocols.readers.read_span`.

    >>> parse_time_answer([3, "7.5"]), parse_time_answer("between 0:12 and 0:20")
    ((3.0, 7.5), (12.0, 20.0))
    """
    return read_span(value)


def parse_box_answer(value: Any) -> dict[float, tuple[XYXY, ...]]:
    """Boxes per second from a model's Where answer, ``{}`` when nothing parses (never
    raises): :func:`o3video.protocols.readers.read_boxes_by_second`.

    >>> parse_box_answer({"3": {"bbox_2d": [0, 0, 2, 2]}, "4s": [[0, 0, 1, 1], [1, 1, 2, 2]]})
    {3.0: ((0.0, 0.0, 2.0, 2.0),), 4.0: ((0.0, 0.0, 1.0, 1.0), (1.0, 1.0, 2.0, 2.0))}
    """
    return read_boxes_by_second(value)


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


__all__ = [
    "official_best_iou",
    "official_temporal_iou",
    "official_time_answer",
    "parse_box_answer",
    "parse_time_answer",
    "reference_answer_text",
    "reference_boxes",
    "reference_timestamps",
]

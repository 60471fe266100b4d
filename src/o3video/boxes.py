"""Box geometry and the box spaces of SPEC §2.

Inside the project a box is float ``xyxy`` in **original video pixels** (``source_px``) with
the original frame size beside it. Models speak other spaces:

- ``frame_px``: pixels of the resized frame the model was shown (Qwen2.5-VL);
- ``rel1000``: a relative 0–1000 grid (Qwen2-VL, Qwen3-VL);
- ``rel1``: relative 0–1 (the STGR ``key_items`` and ``reasoning_process`` fields).

Conversion goes through ``rel1``; it needs ``source_wh`` for ``source_px`` and ``frame_wh``
for ``frame_px``. Coordinates are continuous (a box covering a whole 1280×720 frame is
``(0, 0, 1280, 720)``), no ``+1`` pixel convention.

>>> convert_xyxy((0, 0, 640, 360), "source_px", "frame_px", source_wh=(1280, 720),
...              frame_wh=(420, 224))
(0.0, 0.0, 210.0, 112.0)
>>> iou((0, 0, 10, 10), (5, 0, 15, 10))
0.3333333333333333
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from o3video.errors import BoxSpaceError

XYXY = tuple[float, float, float, float]
WH = tuple[int, int]
BoxSpace = Literal["source_px", "frame_px", "rel1000", "rel1"]
BOX_SPACES: tuple[str, ...] = get_args(BoxSpace)


def as_xyxy(values: Sequence[float]) -> XYXY:
    """Four numbers as a float tuple; raises ``ValueError`` for any other length."""
    if len(values) != 4:
        raise ValueError(f"a box needs 4 numbers, got {len(values)}: {list(values)!r}")
    x1, y1, x2, y2 = (float(v) for v in values)
    return (x1, y1, x2, y2)


def order_xyxy(xyxy: Sequence[float]) -> XYXY:
    """Swap corners so that ``x1 <= x2`` and ``y1 <= y2``."""
    x1, y1, x2, y2 = as_xyxy(xyxy)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def clamp_xyxy(xyxy: Sequence[float], wh: tuple[float, float]) -> XYXY:
    """Order the corners, then clamp the box into ``[0, W] × [0, H]``."""
    w, h = float(wh[0]), float(wh[1])
    x1, y1, x2, y2 = order_xyxy(xyxy)
    return (
        min(max(x1, 0.0), w),
        min(max(y1, 0.0), h),
        min(max(x2, 0.0), w),
        min(max(y2, 0.0), h),
    )


def area(xyxy: Sequence[float]) -> float:
    """Area of a box with ordered corners; 0 for a degenerate or inverted box."""
    x1, y1, x2, y2 = as_xyxy(xyxy)
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def intersection(a: Sequence[float], b: Sequence[float]) -> float:
    """Area of the overlap of two boxes given with ordered corners."""
    ax1, ay1, ax2, ay2 = as_xyxy(a)
    bx1, by1, bx2, by2 = as_xyxy(b)
    return max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes in the same space.

    Corners are ordered first, so ``(10, 10, 0, 0)`` is the same box as ``(0, 0, 10, 10)``.
    Two empty boxes have IoU 0 (nothing was found), as has any non-finite input.

    >>> iou((0, 0, 2, 2), (1, 1, 3, 3))
    0.14285714285714285
    """
    a, b = order_xyxy(a), order_xyxy(b)
    if not all(math.isfinite(v) for v in (*a, *b)):
        return 0.0
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def _need(wh: WH | None, name: str, space: str) -> tuple[float, float]:
    if wh is None:
        raise BoxSpaceError(f"converting a box in space {space!r} needs {name}")
    w, h = float(wh[0]), float(wh[1])
    if not (w > 0 and h > 0):
        raise BoxSpaceError(f"{name} must be positive, got {tuple(wh)!r}")
    return w, h


def _check_space(space: str) -> None:
    if space not in BOX_SPACES:
        raise BoxSpaceError(f"unknown box space {space!r}; known: {', '.join(BOX_SPACES)}")


def _scale_of(space: str, source_wh: WH | None, frame_wh: WH | None) -> tuple[float, float]:
    """Width and height of ``space``'s coordinate frame: rel1 = scale × 1."""
    _check_space(space)
    if space == "rel1":
        return 1.0, 1.0
    if space == "rel1000":
        return 1000.0, 1000.0
    if space == "source_px":
        return _need(source_wh, "source_wh", space)
    return _need(frame_wh, "frame_wh", space)


def convert_xyxy(
    xyxy: Sequence[float],
    src: BoxSpace,
    dst: BoxSpace,
    *,
    source_wh: WH | None = None,
    frame_wh: WH | None = None,
) -> XYXY:
    """Convert a box between spaces. Only the sizes the two spaces need must be given.

    The box is converted as written (no clamping or ordering): callers that score or draw
    a box clamp it in the destination space with :func:`clamp_xyxy`.

    >>> convert_xyxy((500, 0, 1000, 1000), "rel1000", "source_px", source_wh=(1280, 720))
    (640.0, 0.0, 1280.0, 720.0)
    """
    x1, y1, x2, y2 = as_xyxy(xyxy)
    sw, sh = _scale_of(src, source_wh, frame_wh)
    dw, dh = _scale_of(dst, source_wh, frame_wh)
    fx, fy = dw / sw, dh / sh
    return (x1 * fx, y1 * fy, x2 * fx, y2 * fy)


@dataclass(frozen=True)
class Box:
    """A box in a named space. ``xyxy`` are floats as written (not clamped)."""

    xyxy: XYXY
    space: BoxSpace = "source_px"

    def __post_init__(self) -> None:
        _check_space(self.space)
        object.__setattr__(self, "xyxy", as_xyxy(self.xyxy))

    def to(
        self, space: BoxSpace, *, source_wh: WH | None = None, frame_wh: WH | None = None
    ) -> Box:
        """The same box in another space."""
        if space == self.space:
            return self
        xyxy = convert_xyxy(self.xyxy, self.space, space, source_wh=source_wh, frame_wh=frame_wh)
        return Box(xyxy, space)


# --- time intervals -------------------------------------------------------------------------

Interval = tuple[float, float]


def interval_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Temporal IoU of two ``(start_s, end_s)`` spans.

    A reversed span (end < start) or a non-finite number gives 0, as in V-STaR's scoring: the
    span is invalid, not silently flipped. A zero-length span inside the other gives 0 too.

    >>> interval_iou((0, 10), (5, 15))
    0.3333333333333333
    """
    (s1, e1), (s2, e2) = (float(a[0]), float(a[1])), (float(b[0]), float(b[1]))
    if not all(math.isfinite(v) for v in (s1, e1, s2, e2)) or e1 < s1 or e2 < s2:
        return 0.0
    inter = max(0.0, min(e1, e2) - max(s1, s2))
    union = max(e1, e2) - min(s1, s2)
    return inter / union if union > 0 else 0.0


def interval_hull(intervals: Iterable[Sequence[float]]) -> Interval:
    """The smallest span covering every interval; ``ValueError`` for an empty input."""
    spans = [(float(s), float(e)) for s, e in intervals]
    if not spans:
        raise ValueError("interval_hull of no intervals")
    return (min(min(s, e) for s, e in spans), max(max(s, e) for s, e in spans))


def interval_union(intervals: Iterable[Sequence[float]]) -> list[Interval]:
    """Merge overlapping or touching spans; returns sorted disjoint spans.

    >>> interval_union([(5, 7), (0, 2), (1, 3)])
    [(0.0, 3.0), (5.0, 7.0)]
    """
    spans = sorted((min(float(s), float(e)), max(float(s), float(e))) for s, e in intervals)
    merged: list[Interval] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged

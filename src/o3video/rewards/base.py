"""What every reward shares: the task kinds, the completion's text, the per-item contract
(:func:`score_items`) and the column helpers (:mod:`o3video.rewards` says the contract)."""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from o3video.boxes import XYXY, as_xyxy, clamp_xyxy

logger = logging.getLogger(__name__)

STRICT_ENV = "O3VIDEO_STRICT_REWARDS"
"""Set to ``1`` (the test suite does) and an exception inside a reward is raised, not
counted: a reward that raises on some reply is a bug, and tests must see it."""


class RewardErrors:
    """Exceptions raised inside rewards, counted per reward name (thread-safe).

    Outside strict mode (:data:`STRICT_ENV`) a reward that raises scores that item 0, the
    first exception of each reward is logged as a warning with its traceback, and the counts
    wait for :meth:`drain` — training logs them as ``rewards/<name>/errors`` every step."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._warned: set[str] = set()

    def record(self, name: str, index: int, error: BaseException) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1
            first = name not in self._warned
            self._warned.add(name)
        if first:
            logger.warning(
                "reward %s raised on item %d (scored 0; further errors are counted in "
                "rewards/%s/errors): %s: %s",
                name, index, name, type(error).__name__, error,
                exc_info=(type(error), error, error.__traceback__),
            )  # fmt: skip

    def drain(self) -> dict[str, int]:
        """The counts since the last drain, then zero."""
        with self._lock:
            counts, self._counts = self._counts, {}
        return counts


REWARD_ERRORS = RewardErrors()
"""The process's reward error counts (see :class:`RewardErrors`)."""


def strict_rewards() -> bool:
    """Whether an exception inside a reward is raised (:data:`STRICT_ENV` is ``1``)."""
    return os.environ.get(STRICT_ENV) == "1"


RewardFn = Callable[..., list[float]]
"""TRL's reward signature: ``f(completions, **columns) -> list[float]``."""

RewardKind = Literal[
    "spatio_temporal", "temporal", "temporal_mcq", "spatial", "mcq", "free_form", "vstar"
]
"""What a task asks of the rewards (SPEC §5): which answer score and which grounding."""

REWARD_KINDS: dict[str, RewardKind] = {
    # STGR task names (the ``task`` column of the RL examples) ...
    "temporal-spatial free-form QA": "spatio_temporal",
    "General video QA Free-form": "free_form",
    "General video QA MCQ": "mcq",
    "temporal QA": "temporal",
    "temporal QA (MCQ)": "temporal_mcq",
    "visual QA": "spatial",
    # V-STaR's five prompt forms on training items (``generation`` says which, SPEC §7).
    "V-STaR protocol": "vstar",
    # ... and the prompt task names of o3video.prompts, for data built without STGR names.
    # ("free_form" cannot tell spatio-temporal from general free-form: it is general.)
    "free_form": "free_form",
    "mcq": "mcq",
    "temporal": "temporal",
    "temporal_mcq": "temporal_mcq",
    "spatial_image": "spatial",
}
"""Task name → :data:`RewardKind`."""


def reward_kind(task: object) -> RewardKind | None:
    """The :data:`RewardKind` of a task name; ``None`` for anything unknown."""
    return REWARD_KINDS.get(task) if isinstance(task, str) else None


def completion_text(completion: object) -> str | None:
    """The text of one TRL completion: a string, or a list of message dicts whose
    ``content`` is a string or a list of ``{"type": "text", "text": ...}`` parts (their
    texts are joined). ``None`` when it is neither.

    >>> completion_text([{"role": "assistant", "content": [{"type": "text", "text": "hi"}]}])
    'hi'
    """
    if isinstance(completion, str):
        return completion
    if not isinstance(completion, Sequence) or isinstance(completion, (bytes, bytearray)):
        return None
    parts: list[str] = []
    for message in completion:
        if not isinstance(message, Mapping):
            return None
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, Sequence):
            for part in content:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    parts.append(part["text"])
        else:
            return None
    return "".join(parts)


def _column(columns: Mapping[str, Any], i: int, n: int, name: str) -> Any:
    return column_at(columns, name, i, n)


def column_at(columns: Mapping[str, Any], name: str, i: int, n: int) -> Any:
    """Item ``i`` of column ``name`` when it is a list of ``n`` values, else ``None``."""
    values = columns.get(name)
    if isinstance(values, (list, tuple)) and len(values) == n:
        return values[i]
    return None


ItemScore = Callable[[str, RewardKind, Callable[[str], Any]], float]
"""Scores one item: ``(text, kind, get)`` where ``get(name)`` reads that item's column."""


def score_items(
    name: str,
    completions: object,
    columns: Mapping[str, Any],
    kinds: frozenset[RewardKind],
    score: ItemScore,
) -> list[float]:
    """Apply ``score`` to every completion whose task is one of ``kinds``, under the
    contract of this module: 0.0 for other tasks and unreadable items, results clipped to
    ``[0, 1]``. ``completions`` that is not a list gives ``[]``. An exception inside
    ``score`` is a bug: raised in strict mode, else that item scores 0.0 and the exception
    is counted in :data:`REWARD_ERRORS` (never a silent 0)."""
    if not isinstance(completions, (list, tuple)):
        logger.debug("%s: completions is a %s, not a list", name, type(completions).__name__)
        return []
    n = len(completions)
    out: list[float] = []
    for i, completion in enumerate(completions):
        value = 0.0
        try:
            text = completion_text(completion)
            kind = reward_kind(column_at(columns, "task", i, n))
            if text is not None and kind is not None and kind in kinds:
                value = float(score(text, kind, functools.partial(_column, columns, i, n)))
        except Exception as e:  # a bug: raised in tests, counted and warned in training
            if strict_rewards():
                raise
            REWARD_ERRORS.record(name, i, e)
            value = 0.0
        out.append(min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0)
    return out


def box_extent(get: Callable[[str], Any]) -> tuple[float, float] | None:
    """Width and height of the item's ``box_space`` (to clamp boxes in); ``None`` if unknown.

    ``frame_px`` → ``frame_wh``, ``source_px`` → ``source_wh``, ``rel1000`` → 1000 × 1000,
    ``rel1`` → 1 × 1.
    """
    space = get("box_space")
    if space == "rel1000":
        return (1000.0, 1000.0)
    if space == "rel1":
        return (1.0, 1.0)
    if space not in ("frame_px", "source_px"):
        return None
    wh = get("frame_wh" if space == "frame_px" else "source_wh")
    if isinstance(wh, (list, tuple)) and len(wh) == 2:
        w, h = as_seconds(wh[0]), as_seconds(wh[1])  # finite numbers, not bools
        if w is not None and h is not None and w > 0 and h > 0:
            return (w, h)
    return None


def to_box(values: object, extent: tuple[float, float] | None) -> XYXY | None:
    """Four finite numbers as a box clamped to ``extent`` (when known); ``None`` otherwise."""
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    xyxy = as_xyxy(values)
    if not all(math.isfinite(v) for v in xyxy):
        return None
    return clamp_xyxy(xyxy, extent) if extent is not None else xyxy


def as_seconds(value: object) -> float | None:
    """A finite number of seconds, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None

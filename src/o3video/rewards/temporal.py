"""Temporal rewards r_t (SPEC §5): are the times cited in ``<think>`` the right ones?

- :func:`temporal_interval_reward` (interval supervision; temporal grounding and temporal
  MCQ): the fraction of ``<t>`` values in ``<think>`` (bare and claim times) that fall in the
  ground-truth span ``answer_span_s`` (ends included). No time, or a reversed span: 0.
- :func:`make_temporal_point_reward` (point supervision with adaptive temporal proximity;
  spatio-temporal tasks and V-STaR's prompt forms, whose key frames are the item's
  ground-truth seconds): for each time t in ``<think>``, d = min over ``key_times_s`` of
  |t − t_kf|, scored exp(−d² / 2σ²); the mean over times. No time or no key frame: 0.

σ follows training progress p ∈ [0, 1] (:func:`sigma_at`): ``adaptive`` anneals it from 4 s
to 1 s — dense, coarse reward early, precise reward late; ``fixed`` keeps one σ (the
ablations use 1 s and 4 s). Progress reaches the reward, first match wins:

1. ``progress_fn()`` given to :func:`make_temporal_point_reward` (the registry passes it);
2. a ``progress`` column (a number, or a list whose first entry is one);
3. TRL's ``trainer_state`` kwarg (GRPOTrainer passes its ``TrainerState`` to every reward
   function): ``global_step / max_steps`` when ``max_steps > 0``;
4. otherwise p = 0 (logged at debug level).

>>> temporal_interval_reward(["<think><t>2</t>s <t>9</t>s</think><answer>x</answer>"],
...                          task=["temporal QA"], answer_span_s=[[1.0, 5.0]])
[0.5]
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

from o3video.evidence import parse_trace
from o3video.rewards.base import RewardFn, RewardKind, as_seconds, score_items

logger = logging.getLogger(__name__)

SigmaSchedule = Literal["adaptive", "fixed"]
SIGMA_SCHEDULES: tuple[str, ...] = get_args(SigmaSchedule)
SIGMA_MAX_S = 4.0
"""σ of the adaptive schedule at p = 0 (SPEC §5)."""
SIGMA_MIN_S = 1.0
"""σ of the adaptive schedule from p = 0.75 on, and the default fixed σ."""
ANNEAL_END = 0.75
"""Progress where the adaptive σ stops shrinking: 4 · (1 − 0.75) = 1, continuous."""


def sigma_at(
    progress: float, schedule: SigmaSchedule = "adaptive", sigma: float | None = None
) -> float:
    """σ (seconds) at training progress ``progress`` (clipped to [0, 1]).

    ``adaptive``: 4 · (1 − p) while p < 0.75, then 1 (``sigma`` must be ``None``).
    ``fixed``: ``sigma`` (default 1.0) at every p.

    >>> [sigma_at(p) for p in (0.0, 0.5, 0.75, 1.0)]
    [4.0, 2.0, 1.0, 1.0]
    >>> sigma_at(0.2, "fixed", 4.0)
    4.0
    """
    if schedule == "fixed":
        value = SIGMA_MIN_S if sigma is None else float(sigma)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"sigma must be a positive number of seconds, got {sigma!r}")
        return value
    if schedule != "adaptive":
        raise ValueError(f"unknown sigma schedule {schedule!r}; known: {SIGMA_SCHEDULES}")
    if sigma is not None:
        raise ValueError("the adaptive schedule sets sigma itself; use schedule='fixed'")
    p = min(1.0, max(0.0, float(progress))) if math.isfinite(progress) else 0.0
    return SIGMA_MAX_S * (1.0 - p) if p < ANNEAL_END else SIGMA_MIN_S


def proximity(t_s: float, key_times_s: list[float], sigma_s: float) -> float:
    """exp(−d² / 2σ²) with d the distance from ``t_s`` to the nearest key time.

    >>> round(proximity(3.0, [1.0, 10.0], 2.0), 4)  # d = 2, σ = 2: exp(-1/2)
    0.6065
    """
    d = min(abs(t_s - k) for k in key_times_s)
    return math.exp(-(d * d) / (2.0 * sigma_s * sigma_s))


def _number(value: object) -> float | None:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return as_seconds(value)


@functools.lru_cache(maxsize=1)
def _warn_no_progress() -> None:
    logger.warning(
        "temporal_point: no training progress (progress_fn, progress or trainer_state); "
        "annealed sigma uses p = 0 (its start value)"
    )


def resolve_progress(
    columns: Mapping[str, Any], progress_fn: Callable[[], float] | None = None
) -> float:
    """Training progress in [0, 1] from the sources listed in the module docstring.

    >>> from types import SimpleNamespace
    >>> resolve_progress({"trainer_state": SimpleNamespace(global_step=30, max_steps=120)})
    0.25
    """
    p: float | None = None
    try:
        if progress_fn is not None:
            p = _number(progress_fn())
        if p is None:
            p = _number(columns.get("progress"))
        state = columns.get("trainer_state")
        if p is None and state is not None:
            step = as_seconds(getattr(state, "global_step", None))
            total = as_seconds(getattr(state, "max_steps", None))
            if step is not None and total is not None and total > 0:
                p = step / total
    except Exception as e:  # a broken progress source must not kill the step
        logger.debug("progress unreadable, using 0: %s: %s", type(e).__name__, e)
        p = None
    if p is None:
        _warn_no_progress()
        return 0.0
    return min(1.0, max(0.0, p))


def think_times(text: str) -> tuple[float, ...]:
    """Every time cited in the ``<think>`` of ``text`` (bare and claim times)."""
    return parse_trace(text).think_times_s


def _interval(text: str, kind: RewardKind, get: Callable[[str], Any]) -> float:
    span = get("answer_span_s")
    if not isinstance(span, (list, tuple)) or len(span) != 2:
        return 0.0
    start, end = as_seconds(span[0]), as_seconds(span[1])
    times = think_times(text)
    if start is None or end is None or end < start or not times:
        return 0.0
    return sum(start <= t <= end for t in times) / len(times)


def temporal_interval_reward(completions: list[Any], **columns: Any) -> list[float]:
    """r_t by interval supervision (temporal grounding, temporal MCQ); others 0.0.

    >>> temporal_interval_reward(["<think><t>3</t>s</think><answer>B</answer>"],
    ...                          task=["General video QA MCQ"], answer_span_s=[[1, 5]])
    [0.0]
    """
    kinds: frozenset[RewardKind] = frozenset({"temporal", "temporal_mcq"})
    return score_items("temporal_interval", completions, columns, kinds, _interval)


def make_temporal_point_reward(
    schedule: SigmaSchedule = "adaptive",
    sigma: float | None = None,
    progress_fn: Callable[[], float] | None = None,
) -> RewardFn:
    """The point-supervision reward (spatio-temporal tasks and V-STaR's prompt forms; others
    0.0) with its σ schedule.

    Options are checked here (``ValueError``), not at scoring time.

    >>> r = make_temporal_point_reward("fixed", 1.0)
    >>> r(["<think><t>5</t>s</think><answer>x</answer>"],
    ...   task=["temporal-spatial free-form QA"], key_times_s=[[5.0, 20.0]])
    [1.0]
    """
    sigma_at(0.0, schedule, sigma)  # validate the options now

    def temporal_point(completions: list[Any], **columns: Any) -> list[float]:
        sigma_s = sigma_at(resolve_progress(columns, progress_fn), schedule, sigma)

        def score(text: str, kind: RewardKind, get: Callable[[str], Any]) -> float:
            keys = get("key_times_s")
            if not isinstance(keys, (list, tuple)):
                return 0.0
            key_times = [as_seconds(k) for k in keys]
            times = think_times(text)
            if not key_times or None in key_times or not times:
                return 0.0
            valid = [k for k in key_times if k is not None]
            return sum(proximity(t, valid, sigma_s) for t in times) / len(times)

        kinds: frozenset[RewardKind] = frozenset({"spatio_temporal", "vstar"})
        return score_items("temporal_point", completions, columns, kinds, score)

    return temporal_point


temporal_point_reward: RewardFn = make_temporal_point_reward()
"""The default point reward: adaptive σ, progress from ``progress`` or ``trainer_state``."""

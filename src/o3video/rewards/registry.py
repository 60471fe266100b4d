"""The rewards of SPEC §5 by name, with their options and weights, for TRL's GRPOTrainer.

SPEC §5: r = r_acc + r_fmt + r_t + r_s, weights configurable, default 1. A spec maps reward
names to a weight, or to a dict of options with an optional ``weight``:

>>> funcs, weights = build_rewards({"answer": 1.0, "format": 0.5,
...     "spatial": {"weight": 1.0, "gate": "paper", "tau_s": 3.0},
...     "temporal_point": {"schedule": "adaptive"}}, progress_fn=lambda: 0.0)
>>> [f.__name__ for f in funcs], weights
(['answer', 'format', 'spatial', 'temporal_point'], [1.0, 0.5, 1.0, 1.0])

Each function's ``__name__`` is its registry name, so TRL logs ``rewards/<name>`` apart;
pass ``funcs`` as ``reward_funcs`` and ``weights`` as ``GRPOConfig.reward_weights``. Every
reward gives 0.0 to the tasks it does not apply to: ``answer`` and ``format`` apply to all,
``temporal_interval`` to temporal grounding and temporal MCQ, ``temporal_point`` to
spatio-temporal and V-STaR protocol, ``spatial`` to those and visual QA.

Options: ``answer``: ``vstar_what`` (``rouge`` | ``exact`` | ``parts`` | ``none``: how a V-STaR
What answer is scored, :func:`o3video.rewards.answer.make_answer_reward`); ``temporal_point``:
``schedule`` (``adaptive`` | ``fixed``), ``sigma`` (fixed σ, s),
``progress`` (``columns``: read training progress from the ``progress`` / TRL
``trainer_state`` columns); ``spatial``: ``gate`` (``paper`` | ``legacy`` | ``none``),
``tau_s``, ``visual_qa`` (``max`` | ``mean``: the visual-QA rule). ``progress_fn``
(training progress in [0, 1]) goes to ``temporal_point``; an
annealed σ without ``progress_fn`` and without ``progress: columns`` is refused (σ would
never anneal). Unknown names or options raise ``ValueError`` listing the known ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from o3video.rewards.answer import make_answer_reward
from o3video.rewards.base import RewardFn
from o3video.rewards.fmt import format_reward
from o3video.rewards.spatial import make_spatial_reward
from o3video.rewards.temporal import make_temporal_point_reward, temporal_interval_reward

ProgressFn = Callable[[], float]


def _answer(progress_fn: ProgressFn | None, vstar_what: Any = "rouge") -> RewardFn:
    return make_answer_reward(vstar_what)


def _format(progress_fn: ProgressFn | None) -> RewardFn:
    return format_reward


def _temporal_interval(progress_fn: ProgressFn | None) -> RewardFn:
    return temporal_interval_reward


def _temporal_point(
    progress_fn: ProgressFn | None,
    schedule: Any = "adaptive",
    sigma: float | None = None,
    progress: Any = None,
) -> RewardFn:
    reward = make_temporal_point_reward(schedule, sigma, progress_fn)  # checks the options
    if progress not in (None, "columns"):
        raise ValueError(f"progress must be 'columns' or absent, got {progress!r}")
    if schedule != "fixed" and progress_fn is None and progress != "columns":
        raise ValueError(
            f"temporal_point anneals sigma ({schedule!r}) with training progress, but no "
            "progress source is given (progress_fn): sigma would stay at its start value. "
            "Pass progress_fn, use schedule='fixed' with sigma, or progress='columns' to read "
            "it from the trainer_state / progress columns"
        )
    return reward


def _spatial(
    progress_fn: ProgressFn | None,
    gate: Any = "paper",
    tau_s: float | None = None,
    visual_qa: Any = "max",
) -> RewardFn:
    return make_spatial_reward(gate, tau_s, visual_qa)


REWARDS: dict[str, tuple[Callable[..., RewardFn], tuple[str, ...]]] = {
    "answer": (_answer, ("vstar_what",)),
    "format": (_format, ()),
    "temporal_interval": (_temporal_interval, ()),
    "temporal_point": (_temporal_point, ("schedule", "sigma", "progress")),
    "spatial": (_spatial, ("gate", "tau_s", "visual_qa")),
}
"""Registry name → (factory, the options it takes)."""


def make_reward(name: str, *, progress_fn: ProgressFn | None = None, **options: Any) -> RewardFn:
    """The reward called ``name`` with ``options``; its ``__name__`` is ``name``.

    >>> make_reward("spatial", gate="legacy").__name__
    'spatial'
    """
    return _make(name, options, progress_fn)


def _make(name: str, options: Mapping[str, Any], progress_fn: ProgressFn | None) -> RewardFn:
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; known: {', '.join(REWARDS)}")
    factory, known = REWARDS[name]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for reward {name!r}; "
            f"known: {', '.join(known) or 'none'}"
        )
    try:
        inner = factory(progress_fn, **options)
    except TypeError as e:  # e.g. a list where a number belongs
        raise ValueError(f"bad options {dict(options)!r} for reward {name!r}: {e}") from e

    def reward(completions: list[Any], **columns: Any) -> list[float]:
        return inner(completions, **columns)

    reward.__name__ = reward.__qualname__ = name
    reward.__doc__ = inner.__doc__
    return reward


def _weight(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"weight of reward {name!r} must be a finite number, got {value!r}")
    return float(value)


def build_rewards(
    spec: Mapping[str, float | Mapping[str, Any]], *, progress_fn: ProgressFn | None = None
) -> tuple[list[RewardFn], list[float]]:
    """The reward functions and weights of ``spec`` (see the module docstring), in its order.

    >>> build_rewards({"format": 1})[1]
    [1.0]
    """
    funcs: list[RewardFn] = []
    weights: list[float] = []
    for name, entry in spec.items():
        if isinstance(entry, Mapping):
            options = dict(entry)
            weight = _weight(name, options.pop("weight", 1.0))
        else:
            options, weight = {}, _weight(name, entry)
        funcs.append(_make(name, options, progress_fn))
        weights.append(weight)
    return funcs, weights

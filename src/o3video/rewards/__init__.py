"""RL rewards of SPEC §5, each a pure function with TRL's reward signature.

Every reward is ``f(completions, **columns) -> list[float]``: ``completions`` are strings
(text prompts) or lists of message dicts (conversational prompts, ``[{"role": "assistant",
"content": "..."}]``); ``columns`` are the example's reward columns
(:data:`o3video.data.examples.Columns`), one list entry per completion, plus TRL's extras
(``prompts``, ``completion_ids``, ``trainer_state``), ignored unless a reward needs them.

The contract shared by every reward (this module holds its helpers):

- a value in ``[0, 1]`` for each completion; NaN becomes 0;
- a missing or malformed column, an unknown task, or unreadable text gives 0.0 for that
  item, never an exception (the error is logged at debug level);
- a reward applies only to its tasks (:data:`RewardKind`) and gives 0.0 to the others.

The rewards: :mod:`~o3video.rewards.answer` (r_acc), :mod:`~o3video.rewards.fmt` (r_fmt),
:mod:`~o3video.rewards.temporal` (r_t), :mod:`~o3video.rewards.spatial` (r_s); the
:mod:`~o3video.rewards.registry` builds them by name with weights.

>>> completion_text([{"role": "assistant", "content": "<answer>B</answer>"}])
'<answer>B</answer>'
>>> reward_kind("temporal QA (MCQ)"), reward_kind("General video QA Free-form")
('temporal_mcq', 'free_form')
"""

from __future__ import annotations

from o3video.rewards.base import (
    REWARD_KINDS,
    RewardFn,
    RewardKind,
    completion_text,
    reward_kind,
)
from o3video.rewards.registry import REWARDS, build_rewards, make_reward

__all__ = [
    "REWARDS",
    "REWARD_KINDS",
    "RewardFn",
    "RewardKind",
    "build_rewards",
    "completion_text",
    "make_reward",
    "reward_kind",
]

"""Sizes of a run known before any weight is loaded: sequence lengths from the recipe.

A prompt holds, per frame, its time label, the vision markers and the frame's merged vision
tokens (``max_pixels / factor²``, ``factor`` = patch × merge of the family: 28 for
Qwen2.5-VL), then the system prompt and the question (:data:`TEXT_TOKENS`).

>>> from o3video.train.config import load_config
>>> cfg = load_config(None, ["data.max_frames=16", "data.max_pixels=100352",
...                          "rl.max_completion_length=768"])
>>> frame_tokens(cfg.data), prompt_tokens(cfg.data), context_tokens(cfg)
(142, 3296, 4096)
"""

from __future__ import annotations

import math
from typing import Any

TEXT_TOKENS = 1024
"""System prompt, question, options and chat template: the longest system prompt with a
multiple-choice question is under 600 tokens; the rest is margin."""

FRAME_TEXT_TOKENS = 14
"""Per frame: ``Frame 12 at 10.5s: `` (about 11 tokens), ``<|vision_start|>``,
``<|vision_end|>`` and the newline."""


def frame_tokens(data: Any) -> int:
    """Tokens one frame takes in the prompt at the recipe's ``data.max_pixels``."""
    from o3video.families import get_family

    factor = get_family(data.family).factor
    return data.max_pixels // (factor * factor) + FRAME_TEXT_TOKENS


def prompt_tokens(data: Any) -> int:
    """The longest prompt of the recipe's frame budget: ``max_frames`` frames and the text."""
    return data.max_frames * frame_tokens(data) + TEXT_TOKENS


def context_tokens(config: Any) -> int:
    """Prompt and completion, rounded up to 256: the default ``rl.vllm_max_model_length``."""
    need = prompt_tokens(config.data) + config.rl.max_completion_length
    return math.ceil(need / 256) * 256

"""General video benchmarks (SPEC §7): the item every loader returns, the checked reading the
loaders share, the registry, and the three calls a runner needs.

A :class:`BenchItem` is one question of one benchmark, whatever its public format: a
multiple-choice question (``options`` lettered A, B, … in order and ``answer`` a letter), an
open question (no options, ``answer`` free text) or a temporal-grounding query (``span_s``
the ground-truth span). Loaders live beside their scoring — :mod:`o3video.eval.mcq`
(VideoMME, WorldSense, VideoMMMU, MVBench, STAR) and :mod:`o3video.eval.grounding`
(Charades-STA, TVGBench) — and register themselves in :data:`BENCHMARKS`.

Loading is strict: a record with a missing or mistyped field raises
:class:`~o3video.errors.DataError` naming the file, the record index (0-based position in
its file) and the field; a folder without the expected annotation file or video folder
raises naming what was expected. Nothing is skipped, since a skipped question would change a
benchmark's denominator. ``check_videos=False`` loads the questions without looking for
the videos (for scoring predictions made elsewhere).

The runner's cycle: :func:`load_benchmark` → for each item :func:`prompt_for` (a task preset
of :mod:`o3video.prompts` and the user text) → generate → :func:`parse_prediction` (JSON-ready)
→ :func:`score_benchmark`. Item ids are unique within a benchmark and stable across runs.

>>> from pathlib import Path
>>> item = BenchItem("q1", "videomme", Path("v.mp4"), "Which colour?", ("red", "blue"), "B")
>>> item.kind, item.letters
('mcq', ('A', 'B'))
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from o3video.eval import grounding, mcq, mcq_loaders
from o3video.eval.bench_items import (
    BENCHMARKS,
    GROUNDING_BENCHMARKS,
    LETTERS,
    BenchItem,
    Fields,
    ItemKind,
    Loader,
    answer_text,
    check_items,
    fail,
    find_annotations,
    missing_ids,
    read_records,
    register,
    strip_letters,
    video_folder,
)

__all__ = [
    "BENCHMARKS",
    "GROUNDING_BENCHMARKS",
    "LETTERS",
    "BenchItem",
    "Fields",
    "ItemKind",
    "Loader",
    "answer_text",
    "check_items",
    "fail",
    "find_annotations",
    "load_benchmark",
    "mcq_loaders",
    "missing_ids",
    "parse_prediction",
    "prompt_for",
    "read_records",
    "register",
    "score_benchmark",
    "strip_letters",
    "video_folder",
]


def load_benchmark(
    name: str,
    root: str | os.PathLike[str],
    videos: str | os.PathLike[str] | None = None,
    *,
    check_videos: bool = True,
) -> list[BenchItem]:
    """The items of benchmark ``name`` read from ``root`` (its folder or annotation file).

    >>> load_benchmark("videomme", "data/Video-MME")  # doctest: +SKIP
    """
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name](root, videos, check_videos=check_videos)


# --- the runner's adapter --------------------------------------------------------------------


def prompt_for(item: BenchItem) -> tuple[str, str]:
    """``(task, text)``: the :data:`o3video.prompts.Task` preset whose system prompt to use
    (``mcq``, ``free_form`` for open questions, ``temporal`` for grounding) and the user text.

    >>> from pathlib import Path
    >>> prompt_for(BenchItem("q", "star", Path("v.mp4"), "What?", ("a", "b"), "A"))[0]
    'mcq'
    """
    if item.kind == "grounding":
        return "temporal", grounding.grounding_question(item)
    if item.kind == "mcq":
        return "mcq", mcq.mcq_question(item)
    return "free_form", mcq.open_question(item)


def parse_prediction(item: BenchItem, text: str) -> dict[str, Any]:
    """What the model's ``text`` answers, JSON-ready: ``{"kind", "letter"}`` (MCQ),
    ``{"kind", "answer"}`` (open) or ``{"kind", "span_s"}`` (grounding), ``None`` values and a
    ``"problem"`` when unparsable.

    >>> from pathlib import Path
    >>> parse_prediction(BenchItem("q", "star", Path("v"), "?", ("a", "b"), "A"), "(B)")
    {'kind': 'mcq', 'letter': 'B'}
    """
    if item.kind == "grounding":
        return grounding.parse_grounding(text)
    if item.kind == "mcq":
        return mcq.parse_mcq(text, item.options)
    return mcq.parse_open(text)


def score_benchmark(
    name: str,
    items: Sequence[BenchItem],
    parsed_predictions: Mapping[str, Mapping[str, Any]],
    *,
    allow_missing: bool = False,
) -> dict[str, Any]:
    """Scores of ``items`` of benchmark ``name`` given :func:`parse_prediction` outputs keyed
    by item id; JSON-ready (see :class:`~o3video.eval.mcq.McqScores` and
    :class:`~o3video.eval.grounding.GroundingScores`)."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    other = next((it for it in items if it.benchmark != name), None)
    if other is not None:
        raise ValueError(f"item {other.id!r} is from {other.benchmark!r}, not {name!r}")
    if name in GROUNDING_BENCHMARKS:
        g = grounding.score_grounding(items, parsed_predictions, allow_missing=allow_missing)
        return {"benchmark": name, **g.to_dict()}
    m = mcq.score_mcq(items, parsed_predictions, allow_missing=allow_missing)
    return {"benchmark": name, **m.to_dict()}

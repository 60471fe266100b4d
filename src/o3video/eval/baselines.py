"""Trivial V-STaR baselines: what a model that ignores the video scores (SPEC §7 scorer).

From the training items only, :func:`constant_results` answers every evaluation item with the
same things: the most common training answer (What), the mean training span (both When
chains), and the mean training box (both Where chains, in original pixels) at every second
chain 1 asks for and, for chain 2 (told how many boxes, not when), at that many seconds from
the mean start. Scored by the same :func:`~o3video.eval.vstar_score.score_vstar` with the same judge
as a model, this is the floor a trained model must clear by a wide margin: it measures what
the data's regularities alone give.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from o3video.data.vstar import VStarItem
from o3video.evidence import format_span
from o3video.protocols.vstar import whole_seconds


def constant_answers(train: Sequence[VStarItem]) -> tuple[str, tuple[float, float], list[float]]:
    """(most common answer, mean span, mean box) of the training items.

    >>> from o3video.data.vstar import VStarBox
    >>> def item(answer, span, box):
    ...     return VStarItem(index=0, vid="v", domain="d", fps=10.0, width=100, height=100,
    ...         frame_count=100, question="q", answer=answer, temporal_question="t",
    ...         span_s=span, spatial_question="s", spatial_question_2="s2",
    ...         boxes=(VStarBox(2, 20, box),))
    >>> constant_answers([item("a", (1.0, 3.0), (0, 0, 10, 10)),
    ...                   item("a", (2.0, 4.0), (10, 10, 30, 30)),
    ...                   item("b", (0.0, 2.0), (0, 0, 20, 20))])
    ('a', (1.0, 3.0), [3.333, 3.333, 20.0, 20.0])
    """
    if not train:
        raise ValueError("the constant baseline needs training items")
    answer = Counter(i.answer for i in train).most_common(1)[0][0]
    spans = np.array([i.span_s for i in train], dtype=float)
    boxes = np.array([b.xyxy for i in train for b in i.boxes], dtype=float)
    start, end = spans.mean(axis=0)
    return (
        answer,
        (round(float(start), 3), round(float(end), 3)),
        [round(float(v), 3) for v in boxes.mean(axis=0)],
    )


def constant_results(
    raw_items: Sequence[dict[str, Any]], items: Sequence[VStarItem], train: Sequence[VStarItem]
) -> list[dict[str, Any]]:
    """Official-format results (each raw evaluation entry with the five answer fields) of the
    constant baseline; ``raw_items[k]`` is the raw entry of ``items[k]``."""
    answer, span, box = constant_answers(train)
    out = []
    for raw, item in zip(raw_items, items, strict=True):
        when = format_span(*span)
        where_1 = json.dumps({str(s): box for s in whole_seconds(item.span_s)})
        # Chain 2 is told how many boxes, not when: that many seconds from the mean start.
        first = math.ceil(span[0])
        where_2 = json.dumps({str(first + k): box for k in range(len(item.boxes))})
        entry = dict(raw)
        entry.update(
            answer_vqa=answer,
            answer_temporal=when,
            answer_temporal_2=when,
            answer_spatial=where_1,
            answer_spatial_2=where_2,
        )
        out.append(entry)
    return out

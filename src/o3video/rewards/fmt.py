"""Format reward r_fmt (SPEC §5): is the trace well formed, and does it hold its grounding?

0.0 unless the trace has one ``<think>…</think>`` followed by one ``<answer>…</answer>`` and
every tag pair is balanced — that is, :func:`o3video.evidence.parse_trace` reports none of
:data:`STRUCTURE_PROBLEMS` (missing, duplicate or nested sections, closing tags that close
nothing, tags never closed). Sloppy evidence *inside* (a bad number, a box without an object,
stray text outside the sections) does not cost the format reward: the grounding rewards
already pay less for it. Then:

- 1.0 when the ``<think>`` holds the grounding the task needs: a claim with object, box and
  time (spatio-temporal, and V-STaR's prompt forms); at least two ``<t>`` times (temporal
  grounding and temporal MCQ); a box (visual QA); nothing more (general MCQ and free-form);
- 0.5 otherwise. Unknown tasks: 0.0.

On V-STaR's prompt forms the ``<answer>`` must also be what the evaluation reads
(:func:`readable_answer`): a When answer a span, a Where answer boxes by second. Without this
term a Where answer could decay into text the metric cannot read (``2"2": [0, 30, 19, 44]}``)
while the format reward still paid 1.0; it now pays 0.5.

>>> format_reward(["<think>a</think><answer>B</answer>"], task=["General video QA MCQ"])
[1.0]
>>> format_reward(["<think>a</think><answer>B</answer>"], task=["temporal QA"])
[0.5]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from o3video.boxes import XYXY
from o3video.data.stgr import VSTAR_WHEN, VSTAR_WHERE
from o3video.evidence import Claim, Trace, parse_trace
from o3video.protocols.readers import read_boxes_by_second, read_span
from o3video.rewards.base import REWARD_KINDS, RewardKind, score_items

STRUCTURE_PROBLEMS: frozenset[str] = frozenset(
    {
        "missing_think",
        "missing_answer",
        "duplicate_section",
        "nested_tag",
        "unbalanced_tag",
        "unclosed_tag",
    }
)
"""Problem kinds that make a trace malformed for the format reward."""

MIN_THINK_TIMES = 2
"""A temporal task's ``<think>`` needs at least this many ``<t>`` (SPEC §5)."""


def well_formed(trace: Trace) -> bool:
    """One ``<think>`` then one ``<answer>``, every tag balanced.

    >>> well_formed(parse_trace("<answer>B</answer><think>a</think>"))
    False
    """
    if trace.think_span is None or trace.answer_span is None:
        return False
    if trace.think_span[1] > trace.answer_span[0]:
        return False
    return not STRUCTURE_PROBLEMS.intersection(trace.kinds)


def grounded(trace: Trace, kind: RewardKind) -> bool:
    """Whether the ``<think>`` of ``trace`` holds the grounding ``kind`` asks for."""
    if kind in ("spatio_temporal", "vstar"):
        return any(c.t_s is not None for c in think_claims(trace))
    if kind in ("temporal", "temporal_mcq"):
        return len(trace.think_times_s) >= MIN_THINK_TIMES
    if kind == "spatial":
        return bool(think_boxes(trace))
    return True


def readable_answer(answer: str | None, generation: Any) -> bool:
    """Whether the evaluation's reader gets an answer out of a V-STaR ``generation``'s
    ``<answer>``: When a span (:func:`~o3video.protocols.readers.read_span`), Where at
    least one box for a second (:func:`~o3video.protocols.readers.read_boxes_by_second`);
    What any non-blank text.

    >>> readable_answer('{"2": [0, 30, 19, 44]}', "where_1")
    True
    >>> readable_answer('2"2": [0, 30, 19, 44]}', "where_1"), readable_answer("soon", "when_2")
    (False, False)
    """
    if answer is None:
        return False
    if generation in VSTAR_WHEN:
        return read_span(answer) is not None
    if generation in VSTAR_WHERE:
        return bool(read_boxes_by_second(answer))
    return bool(answer.strip())


def think_claims(trace: Trace) -> tuple[Claim, ...]:
    """The claims inside ``<think>`` (every claim has at least one box)."""
    span = trace.think_span
    if span is None:
        return ()
    return tuple(c for c in trace.claims if span[0] <= c.span[0] < span[1])


def think_boxes(trace: Trace) -> tuple[XYXY, ...]:
    """Every valid box inside ``<think>``: its claims' boxes and its loose boxes.

    >>> think_boxes(parse_trace("<think><box>[0,0,2,2]</box></think><answer><box>[1,1,2,2]"
    ...                         "</box></answer>"))
    ((0.0, 0.0, 2.0, 2.0),)
    """
    if trace.think is None:
        return ()
    think = parse_trace(trace.think)
    return (*think.loose_boxes, *(b for c in think.claims for b in c.boxes))


def _score(text: str, kind: RewardKind, get: Callable[[str], Any]) -> float:
    trace = parse_trace(text)
    if not well_formed(trace):
        return 0.0
    if kind == "vstar" and not readable_answer(trace.answer, get("generation")):
        return 0.5
    return 1.0 if grounded(trace, kind) else 0.5


def format_reward(completions: list[Any], **columns: Any) -> list[float]:
    """r_fmt of every completion (rules in the module docstring).

    >>> format_reward(["<think><t>1</t>s <t>3</t>s</think><answer>From <t>1</t>s to "
    ...                "<t>3</t>s</answer>"], task=["temporal QA"])
    [1.0]
    """
    return score_items("format", completions, columns, frozenset(REWARD_KINDS.values()), _score)

"""Answer reward r_acc (SPEC §5): how right the ``<answer>`` is, by task.

- **MCQ** (``General video QA MCQ``): 1.0 when the answer's option letter equals
  ``answer_letter``. The letter is read by :func:`o3video.protocols.readers.read_letter`, the reader
  of the MCQ metric (:mod:`o3video.eval.mcq`), so reward and metric agree on every answer:
  a hedged answer ("The answer is A, or maybe the answer is C.") is ambiguous and earns 0,
  a lowercase ``c`` is C. The optional ``options`` column (the option texts, or their
  number) bounds the letters and lets an answer name an option by its text, as the metric
  does; without it any letter A–Z is read.
- **Free-form** (general and spatio-temporal): the mean of the ROUGE-1, ROUGE-2 and ROUGE-L
  F1 scores against ``answer`` (stemming on), clipped to ``[0, 1]``.
- **Numerical** free-form: when ``answer`` is a number as a whole (``"3"``, ``"-2.5"``,
  ``"1,200"``), the first number written in the answer is compared with it: an integer
  (a count, a year) must match exactly; a real value (written with a decimal point) scores
  the relative accuracy ``max(0, 1 − |pred − gt| / |gt|)`` (exact match when gt = 0). 0 when
  the answer has no digits — number words are not read. The reference lost this branch.
- **Temporal grounding**: tIoU of the answer's ``From <t>s</t>s to <t>e</t>s`` with
  ``answer_span_s`` (0 when end < start).
- **Temporal MCQ**: the mean of the letter score (the letter read, as for MCQ, from the text
  after ``Correct Option:``; 0 without that marker) and the tIoU, so each half is worth 0.5.
- **Visual QA** (spatial grounding): IoU of the first valid box of the answer with
  ``answer_box``; both in the model's box space, clamped to it.
- **V-STaR protocol** (the evaluation's five prompt forms on training items, by
  ``generation``): What as free-form, or with ``vstar_what="exact"``
  (:func:`make_answer_reward`) 1.0 exactly when the synthetic world's What judge
  (:func:`o3video.eval.judge.exact_match`) rates the answer right: ROUGE pays "the blue
  circle" 0.44 for "the white circle", which that metric counts wrong; with
  ``vstar_what="parts"`` a What answer whose reference is a synthetic object's name
  ("the red circle") earns 0.5 for the colour and 0.5 for the shape, each only when the
  answer names exactly one colour (one shape) of the world and it is the reference's, so a
  half-right answer is paid half and a hedge ("red or blue circle") is not paid for that
  part; a reference that is not such a name is scored by the ``exact`` rule; with
  ``vstar_what="none"`` every What answer earns 0.0, so a group of What completions has no
  advantage and its prompts train only through the KL term (an anchor that holds What to the
  reference model while the other forms are rewarded); When the tIoU of
  the span the evaluation reads
  (:func:`o3video.protocols.readers.read_span`) with ``answer_span_s``; Where the
  evaluation's vIoU in model space: per ground-truth second (``key_times_s``, its box in
  ``key_boxes``) the best IoU of the boxes answered for that second, 0 when none, averaged.

The answer is the ``<answer>`` section only; without one the reward is 0 (the format reward
says why). Other tasks: 0.0.

>>> answer_reward(["<think>.</think><answer>(B)</answer>"], task=["General video QA MCQ"],
...               answer_letter=["B"])
[1.0]
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any

from rouge_score import rouge_scorer  # type: ignore[import-untyped]

from o3video.boxes import XYXY, interval_iou, iou
from o3video.data.shapes import name_words
from o3video.data.stgr import VSTAR_WHEN, VSTAR_WHERE
from o3video.eval.judge import exact_match
from o3video.evidence import parse_span, parse_trace
from o3video.protocols.readers import Options, read_boxes_by_second, read_letter, read_span
from o3video.rewards.base import RewardKind, as_seconds, box_extent, score_items, to_box

logger = logging.getLogger(__name__)

ANSWER_KINDS: frozenset[RewardKind] = frozenset(
    {"mcq", "free_form", "spatio_temporal", "temporal", "temporal_mcq", "spatial", "vstar"}
)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_INTEGER = re.compile(r"[+-]?\d+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_CORRECT_OPTION = re.compile(r"correct\s+option\s*:", re.I)
_BOX = re.compile(r"<box>(.*?)</box>", re.S)


@functools.lru_cache(maxsize=1)
def _scorer() -> Any:
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge_f1(prediction: str, reference: str) -> float:
    """Mean of the ROUGE-1, ROUGE-2 and ROUGE-L F1 scores (stemmed), in ``[0, 1]``.

    >>> round(rouge_f1("the cat sat", "the cat ran"), 4)  # (2/3 + 1/2 + 2/3) / 3
    0.6111
    """
    scores = _scorer().score(reference, prediction)
    mean = sum(s.fmeasure for s in scores.values()) / len(scores)
    return min(1.0, max(0.0, float(mean)))


def parse_number(text: str, *, whole: bool = False) -> float | None:
    """The number ``text`` is (``whole=True``) or the first number in it; thousands
    separators (``1,200``) are dropped. ``None`` when there is none.

    >>> parse_number("1,200", whole=True), parse_number("about 3.5 m")
    (1200.0, 3.5)
    >>> parse_number("3 m", whole=True) is None
    True
    """
    text = _THOUSANDS.sub("", text.strip())
    m = _NUMBER.fullmatch(text) if whole else _NUMBER.search(text)
    return float(m.group(0)) if m else None


def is_integer_text(text: str) -> bool:
    """Whether the number ``text`` is written as an integer (``"1,200"``, ``"-3"``; not
    ``"3.0"``).

    >>> is_integer_text("1,200"), is_integer_text("3.0"), is_integer_text(" 7 ")
    (True, False, True)
    """
    return _INTEGER.fullmatch(_THOUSANDS.sub("", text.strip())) is not None


def relative_accuracy(pred: float, gt: float) -> float:
    """``max(0, 1 − |pred − gt| / |gt|)``; exact match when ``gt`` is 0.

    >>> relative_accuracy(9.0, 10.0), relative_accuracy(0.0, 0.0), relative_accuracy(30, 10)
    (0.9, 1.0, 0.0)
    """
    if gt == 0:
        return 1.0 if pred == 0 else 0.0
    return max(0.0, 1.0 - abs(pred - gt) / abs(gt))


def _options(value: object) -> Options:
    """The ``options`` column as :func:`~o3video.protocols.readers.read_letter` takes it; ``None``
    when absent. A malformed value raises (the item then scores 0, as every bad column)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"options must be a list of option texts or a count, got {value!r:.60}")


def letter_score(answer: str, gt_letter: object, options: Options = None) -> float:
    """1.0 when the option letter of ``answer`` (:func:`~o3video.protocols.readers.read_letter`) is
    ``gt_letter``.

    >>> letter_score("The answer is A, or maybe the answer is C.", "A"), letter_score("c", "C")
    (0.0, 1.0)
    """
    if not isinstance(gt_letter, str):
        return 0.0
    gt = read_letter(gt_letter, options)
    return 1.0 if gt is not None and read_letter(answer, options) == gt else 0.0


def span_score(
    answer: str,
    gt_span: object,
    parse: Callable[[str], tuple[float, float] | None] = parse_span,
) -> float:
    """tIoU of the span ``parse`` reads from ``answer`` (default: the first ``From <t>s</t>s
    to <t>e</t>s``) with ``gt_span``; 0 when either is missing."""
    if not isinstance(gt_span, (list, tuple)) or len(gt_span) != 2:
        return 0.0
    start, end = as_seconds(gt_span[0]), as_seconds(gt_span[1])
    span = parse(answer)
    if span is None or start is None or end is None:
        return 0.0
    return interval_iou(span, (start, end))


def free_form_score(answer: str, gt: object) -> float:
    """When ``gt`` is a number: exact match for an integer (a count, a year: ``2018`` for
    ``2019`` is wrong, not 0.9995 right), the relative accuracy for a real value (written
    with a decimal point); else the mean ROUGE F1.

    >>> free_form_score("2018", "2019"), free_form_score("4", "3"), free_form_score("3", "3")
    (0.0, 0.0, 1.0)
    >>> free_form_score("about 9.0 m", "10.0")
    0.9
    """
    if not isinstance(gt, str):
        return 0.0
    gt_number = parse_number(gt, whole=True)
    if gt_number is not None:
        pred = parse_number(answer)
        if pred is None:
            return 0.0
        if is_integer_text(gt):  # a count or a year: nearly right is wrong
            return 1.0 if pred == gt_number else 0.0
        return relative_accuracy(pred, gt_number)
    return rouge_f1(answer, gt)


def first_box(text: str) -> XYXY | None:
    """The first valid ``<box>`` of ``text``, as written (parsed by the trace parser)."""
    for m in _BOX.finditer(text):
        boxes = parse_trace(m.group(0)).loose_boxes
        if boxes:
            return boxes[0]
    return None


def box_score(answer: str, gt_box: object, extent: tuple[float, float] | None) -> float:
    """IoU of the first valid box of ``answer`` with ``gt_box``, both clamped to ``extent``."""
    gt = to_box(gt_box, extent)
    pred = first_box(answer)
    pred_box = to_box(pred, extent) if pred is not None else None
    return iou(pred_box, gt) if pred_box is not None and gt is not None else 0.0


def vstar_box_score(
    answer: str, times: object, boxes: object, extent: tuple[float, float] | None
) -> float:
    """The V-STaR vIoU of ``answer`` (JSON keyed by second) in model space: per ground-truth
    second in ``times`` (its box: the first of ``boxes[i]``, ``{name: [box, ...]}``), the best
    IoU of the boxes answered for that second (0 when none), averaged.

    >>> vstar_box_score('{"1": [0, 0, 10, 10]}', [1.0, 2.0],
    ...                 [{"dog": [[0, 0, 10, 10]]}, {"dog": [[5, 5, 9, 9]]}], None)
    0.5
    """
    if not isinstance(times, (list, tuple)) or not isinstance(boxes, (list, tuple)):
        return 0.0
    if not times or len(times) != len(boxes):
        return 0.0
    predicted = read_boxes_by_second(answer)
    scores = []
    for t, named in zip(times, boxes, strict=True):
        gt_boxes = [b for bs in named.values() for b in bs] if isinstance(named, dict) else []
        gt = to_box(gt_boxes[0], extent) if gt_boxes else None
        second = as_seconds(t)
        answered = predicted.get(second, ()) if second is not None else ()
        preds = [to_box(list(b), extent) for b in answered]
        scores.append(max((iou(p, gt) for p in preds if p is not None), default=0.0) if gt else 0.0)
    return sum(scores) / len(scores)


VSTAR_WHAT_RULES = ("rouge", "exact", "parts", "none")
"""How the answer reward scores a V-STaR What answer (module docstring)."""


def what_parts_score(reference: str, answer: str) -> float | None:
    """The ``parts`` What rule: 0.5 for the colour and 0.5 for the shape of the synthetic
    object named by ``reference``, each paid only when ``answer`` names exactly one word of
    that kind and it is the reference's; ``None`` when ``reference`` does not name one
    colour and one shape of the world.

    >>> ref = "the red circle"
    >>> what_parts_score(ref, "The red square."), what_parts_score(ref, "red circle")
    (0.5, 1.0)
    >>> what_parts_score(ref, "the red or blue circle"), what_parts_score("a dog", "dog")
    (0.5, None)
    """
    ref_colours, ref_shapes = name_words(reference)
    if len(ref_colours) != 1 or len(ref_shapes) != 1:
        return None
    colours, shapes = name_words(answer)
    return 0.5 * (colours == ref_colours) + 0.5 * (shapes == ref_shapes)


def _vstar(answer: str, get: Callable[[str], Any], vstar_what: str = "rouge") -> float:
    generation = get("generation")
    if generation == "what":
        if vstar_what == "none":
            return 0.0
        gt = get("answer")
        if vstar_what == "parts" and isinstance(gt, str):
            parts = what_parts_score(gt, answer)
            if parts is not None:
                return parts
        if vstar_what in ("exact", "parts"):
            return 1.0 if isinstance(gt, str) and exact_match(gt, answer) else 0.0
        return free_form_score(answer, gt)
    if generation in VSTAR_WHEN:
        # The span as the evaluation reads it (any form it accepts, e.g. "2 - 4").
        return span_score(answer, get("answer_span_s"), read_span)
    if generation in VSTAR_WHERE:
        return vstar_box_score(answer, get("key_times_s"), get("key_boxes"), box_extent(get))
    return 0.0


def after_correct_option(answer: str) -> str | None:
    """The temporal MCQ's letter part: the text after ``Correct Option:`` (any case), or
    ``None`` without that marker.

    >>> after_correct_option("From <t>1</t>s to <t>3</t>s.\\nCorrect Option: B")
    ' B'
    >>> after_correct_option("B") is None
    True
    """
    m = _CORRECT_OPTION.search(answer)
    return None if m is None else answer[m.end() :]


def _score(
    text: str, kind: RewardKind, get: Callable[[str], Any], vstar_what: str = "rouge"
) -> float:
    answer = parse_trace(text).answer
    if answer is None:
        return 0.0
    if kind == "mcq":
        return letter_score(answer, get("answer_letter"), _options(get("options")))
    if kind in ("free_form", "spatio_temporal"):
        return free_form_score(answer, get("answer"))
    if kind == "temporal":
        return span_score(answer, get("answer_span_s"))
    if kind == "temporal_mcq":
        said = after_correct_option(answer)
        options = _options(get("options"))
        letter = letter_score(said, get("answer_letter"), options) if said is not None else 0.0
        return (letter + span_score(answer, get("answer_span_s"))) / 2
    if kind == "vstar":
        return _vstar(answer, get, vstar_what)
    return box_score(answer, get("answer_box"), box_extent(get))


def answer_reward(completions: list[Any], **columns: Any) -> list[float]:
    """r_acc of every completion (rules in the module docstring).

    >>> answer_reward(["<answer>From <t>2</t>s to <t>6</t>s</answer>"], task=["temporal QA"],
    ...               answer_span_s=[[4.0, 8.0]])  # overlap 2 s / union 6 s
    [0.3333333333333333]
    """
    return score_items("answer", completions, columns, ANSWER_KINDS, _score)


def make_answer_reward(vstar_what: str = "rouge") -> Callable[..., list[float]]:
    """:func:`answer_reward` with V-STaR What answers scored by ``vstar_what``
    (:data:`VSTAR_WHAT_RULES`); ``"rouge"`` is :func:`answer_reward` itself.

    >>> what = {"task": ["V-STaR protocol"], "generation": ["what"], "answer": ["the white circle"]}
    >>> reply = "<think>.</think><answer>the blue circle</answer>"
    >>> round(answer_reward([reply], **what)[0], 2), make_answer_reward("exact")([reply], **what)
    (0.44, [0.0])
    """
    if vstar_what not in VSTAR_WHAT_RULES:
        raise ValueError(f"vstar_what must be one of {VSTAR_WHAT_RULES}, got {vstar_what!r}")
    if vstar_what == "rouge":
        return answer_reward
    score = functools.partial(_score, vstar_what=vstar_what)

    def answer_reward_vstar_what(completions: list[Any], **columns: Any) -> list[float]:
        return score_items("answer", completions, columns, ANSWER_KINDS, score)

    return answer_reward_vstar_what

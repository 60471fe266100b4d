"""Confidence-aware test-time scaling (SPEC §8): N sampled answers → one, by vote.

Each sample's answer is reduced to a *key* (:func:`normalize_answer`); samples with the same
key vote together. Two ways to weigh a vote:

- :func:`majority_vote` — one vote per sample.
- :func:`confidence_vote` — every evidence region of a sample (each box of each claim, at its
  frame) is cropped and the model itself (``scorer``) rates how relevant the crops are to the
  question: 0 not relevant, 1 possibly helpful, 2 clearly helpful. The vote weighs
  :data:`RATING_WEIGHTS` of the rating (the reference's 2 → 1.0, 1 → 0.6, 0 → 0.2); an
  unparsable rating and a sample without croppable evidence weigh 0.2. By default all crops
  of a sample go in one request, as the reference did; ``per_object=True`` rates each claim
  alone and averages its weights, as the paper describes. The mapping is linear in the rating
  (w = 0.2 + 0.4·s), so averaging the weights is mapping the mean rating by the same line
  (with an unparsable rating counted as 0).

Decisions:

- Keys: ``mcq`` and ``temporal_mcq`` → the option letter (the span of a temporal MCQ is not
  part of the key: the option is what is scored). ``temporal`` → the span rounded to 0.1 s,
  the precision of the frame labels the model reads, written ``From <t>S</t>s to <t>E</t>s``;
  a reversed or missing span has no key. ``free_form`` and ``spatial_image`` → the text,
  casefolded, punctuation replaced by spaces, whitespace collapsed.
- A sample without a key (no ``<answer>``, unparsable) never wins unless every sample has no
  key; its weight is still recorded.
- Ties: totals are compared at 1e-9 (0.2 + 0.2 + 0.2 equals 0.6). Between tied keys the one
  that appears first in sample order wins. The winning sample is the heaviest sample of the
  winning key, the earliest among equals (so, with one vote each, the earliest); when no
  sample has a key, the heaviest sample overall.

>>> import numpy as np
>>> from o3video.answer import build_answer
>>> from o3video.video import Clip
>>> clip = Clip(np.zeros((1, 56, 56, 3), np.uint8), (0.0,), (112, 112), (56, 56), 1.0, 1.0)
>>> answers = [build_answer(f"<answer>{x}</answer>", clip, "qwen2_5_vl") for x in "AAB"]
>>> r = majority_vote(answers, "mcq")
>>> r.winner, r.key, r.totals
(0, 'A', {'A': 2.0, 'B': 1.0})
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

from o3video.answer import Answer, Evidence
from o3video.boxes import WH, XYXY, convert_xyxy
from o3video.crops import crop_frame
from o3video.evidence import format_span, parse_span
from o3video.models.base import Backend, BackendError, Request, SamplingParams
from o3video.prompts import TASKS

logger = logging.getLogger(__name__)

VoteMode = Literal["majority", "confidence"]
RATING_WEIGHTS: dict[int, float] = {2: 1.0, 1: 0.6, 0: 0.2}
"""Rating → vote weight (the reference's values, SPEC §8)."""
UNPARSABLE_WEIGHT = 0.2
NO_EVIDENCE_WEIGHT = 0.2
RATING_PARAMS = SamplingParams(max_new_tokens=8)
"""Greedy and short: the reply should be one digit."""
RATING_PROMPT = (
    "The images above are regions cropped from a video, each cited as visual evidence for "
    "answering the question below.\nQuestion: {question}\n"
    "How relevant are these regions to answering the question? Reply with one digit only: "
    "0 = not relevant, 1 = possibly helpful, 2 = clearly helpful."
)
_EPS_DIGITS = 9  # totals and weights are compared rounded to 1e-9

_LETTER_LEAD = re.compile(r"[\s\"'`*_]*[(\[]?([A-Z])(?:[)\].:,*\"'`]|\s*$)")
_LETTER_SAID = re.compile(
    r"(?i:answer|option|choice)\s*(?:(?i:is)\s*)?[:\-]?\s*[\"'`*_(\[]*([A-Z])(?![A-Za-z0-9])"
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _letter(text: str) -> str | None:
    m = _LETTER_LEAD.match(text) or _LETTER_SAID.search(text)
    return m.group(1) if m else None


def normalize_answer(text: str | None, task: str) -> str | None:
    """The key votes are grouped by (rules in the module docstring); ``None`` if none.

    >>> [normalize_answer(t, "mcq") for t in ("B.", "(C) a cat", "The answer is D", "A dog")]
    ['B', 'C', 'D', None]
    >>> normalize_answer("From <t>2.46</t>s to <t>7</t>s", "temporal")
    'From <t>2.5</t>s to <t>7.0</t>s'
    >>> normalize_answer("  A red Ball! ", "free_form")
    'a red ball'
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if text is None:
        return None
    if task in ("mcq", "temporal_mcq"):
        return _letter(text)
    if task == "temporal":
        span = parse_span(text)
        if span is None or span[1] < span[0]:
            return None
        # + 0.0 turns a rounded -0.0 into 0.0
        return format_span(round(span[0], 1) + 0.0, round(span[1], 1) + 0.0, decimals=1)
    words = re.sub(r"[^\w\s]|_", " ", text.casefold()).split()
    return " ".join(words) or None


def parse_rating(text: str) -> int | None:
    """The first number in the reply if it is 0, 1 or 2; ``None`` for anything else.

    >>> [parse_rating(t) for t in ("2", "**1** - possibly", "Rating: 0.", "3", "10", "none")]
    [2, 1, 0, None, None, None]
    """
    m = _NUMBER.search(text)
    if m is None or m.group(0) not in ("0", "1", "2"):
        return None
    return int(m.group(0))


def rating_weight(rating: int | None) -> float:
    """The vote weight of a rating: :data:`RATING_WEIGHTS`, or 0.2 when unparsable."""
    return UNPARSABLE_WEIGHT if rating is None else RATING_WEIGHTS[rating]


@dataclass(frozen=True)
class VoteResult:
    """The outcome of a vote: ``winner`` indexes the samples, ``key`` is its answer key
    (``None`` when no sample had one), ``totals`` the summed weight per key, and
    ``per_sample`` one JSON-ready dict per sample (``index``, ``key``, ``answer``,
    ``ratings``, ``weight``, ``replies``) — what goes into ``Answer.votes``."""

    mode: VoteMode
    winner: int
    key: str | None
    totals: dict[str, float]
    per_sample: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "winner": self.winner,
            "key": self.key,
            "totals": dict(self.totals),
            "per_sample": [dict(s) for s in self.per_sample],
        }


def _tally(keys: Sequence[str | None], weights: Sequence[float]) -> tuple[int, dict[str, float]]:
    """The winning sample and the totals per key (tie rules in the module docstring)."""
    totals: dict[str, float] = {}
    for k, w in zip(keys, weights, strict=True):
        if k is not None:
            totals[k] = totals.get(k, 0.0) + w
    totals = {k: round(v, _EPS_DIGITS) for k, v in totals.items()}
    if totals:
        best = max(totals, key=totals.__getitem__)  # max keeps the first of equals
        members = [i for i, k in enumerate(keys) if k == best]
    else:
        members = list(range(len(keys)))
    winner = max(members, key=lambda i: round(weights[i], _EPS_DIGITS))
    return winner, totals


def _result(
    mode: VoteMode,
    answers: Sequence[Answer],
    keys: list[str | None],
    weights: list[float],
    ratings: list[list[int | None]],
    replies: list[list[str]],
) -> VoteResult:
    winner, totals = _tally(keys, weights)
    per_sample = tuple(
        {
            "index": i,
            "key": keys[i],
            "answer": a.answer_text,
            "ratings": ratings[i],
            "weight": round(weights[i], _EPS_DIGITS),
            "replies": replies[i],
        }
        for i, a in enumerate(answers)
    )
    return VoteResult(mode, winner, keys[winner], totals, per_sample)


def _keys(answers: Sequence[Answer], task: str) -> list[str | None]:
    if not answers:
        raise ValueError("a vote needs at least one answer")
    return [normalize_answer(a.answer_text, task) for a in answers]


def majority_vote(answers: Sequence[Answer], task: str) -> VoteResult:
    """One vote per sample; the most frequent key wins (ties: the key seen first).

    >>> import numpy as np
    >>> from o3video.answer import build_answer
    >>> from o3video.video import Clip
    >>> clip = Clip(np.zeros((1, 28, 28, 3), np.uint8), (0.0,), (28, 28), (28, 28), 1.0, 1.0)
    >>> texts = ["<answer>B</answer>", "<answer>A</answer>", "no answer", "<answer>A</answer>"]
    >>> majority_vote([build_answer(t, clip, "qwen2_5_vl") for t in texts], "mcq").winner
    1
    """
    keys = _keys(answers, task)
    n = len(answers)
    return _result("majority", answers, keys, [1.0] * n, [[] for _ in keys], [[] for _ in keys])


def crop_evidence(
    frame: np.ndarray, box_source: XYXY, source_wh: WH, *, min_side_px: int = 64
) -> Image.Image:
    """The part of ``frame`` (``(H, W, 3)`` uint8, a resized frame) inside ``box_source``
    (source pixels): the box converted to the frame's pixels, clamped, widened to whole
    pixels (at least one), then enlarged (bicubic) until its shorter side is ``min_side_px``.

    >>> frame = np.zeros((56, 56, 3), np.uint8)
    >>> crop_evidence(frame, (40, 40, 60, 62), (112, 112), min_side_px=1).size
    (10, 11)
    """
    h, w = frame.shape[:2]
    box = convert_xyxy(box_source, "source_px", "frame_px", source_wh=source_wh, frame_wh=(w, h))
    return crop_frame(frame, box, min_side_px=min_side_px)


def evidence_crops(
    answer: Answer, *, min_side_px: int = 64
) -> list[tuple[Evidence, list[Image.Image]]]:
    """Each evidence that has a frame, with the crops (:func:`crop_evidence`) of its boxes
    from ``answer.clip.frames``. An untimed claim in a video (``frame_index is None``) has
    no frame and is left out."""
    clip = answer.clip
    out: list[tuple[Evidence, list[Image.Image]]] = []
    for ev in answer.evidence:
        if ev.frame_index is None or not ev.boxes_source:
            continue
        frame = clip.frames[ev.frame_index]
        crops = [
            crop_evidence(frame, b, clip.source_wh, min_side_px=min_side_px)
            for b in ev.boxes_source
        ]
        out.append((ev, crops))
    return out


def rating_request(
    question: str,
    regions: Sequence[tuple[Evidence, Sequence[Image.Image]]],
    *,
    id: str | None = None,
) -> Request:
    """One request asking to rate ``regions``: each crop after a label with its number and
    frame time (not the object's name: the rating should judge what the crop shows, not what
    the trace says it shows), then :data:`RATING_PROMPT` with the question."""
    parts: list[str | Image.Image] = []
    k = 0
    for ev, crops in regions:
        when = f" at {ev.frame_t_s:.1f}s" if ev.frame_t_s is not None else ""
        for crop in crops:
            k += 1
            parts += [f"Region {k}{when}: ", crop, "\n"]
    parts.append(RATING_PROMPT.format(question=question))
    return Request.user(*parts, id=id)


def confidence_vote(
    answers: Sequence[Answer],
    task: str,
    scorer: Backend,
    *,
    per_object: bool = False,
    params: SamplingParams = RATING_PARAMS,
    min_side_px: int = 64,
) -> VoteResult:
    """Votes weighted by how relevant ``scorer`` rates each sample's evidence crops.

    Default: one request per sample with all its crops; ``per_object=True``: one request per
    claim, the sample's weight the mean of its claims' weights. A sample without croppable
    evidence sends nothing and weighs 0.2. Every request of every sample goes to
    ``scorer.generate`` in one call (the first completion of each is read);
    :class:`~o3video.models.base.BackendError` propagates.

    With samples answering A, A, B whose crops are rated 0, 0, 2: majority picks A (2 votes
    to 1), this picks B (1.0 against 0.2 + 0.2 = 0.4).
    """
    keys = _keys(answers, task)
    requests: list[Request] = []
    plan: list[range] = []  # the requests of each sample
    for i, answer in enumerate(answers):
        regions = evidence_crops(answer, min_side_px=min_side_px)
        start = len(requests)
        groups = [[r] for r in regions] if per_object else ([regions] if regions else [])
        for g, group in enumerate(groups):
            label = f"vote:sample{i}" + (f":evidence{g}" if per_object else "")
            requests.append(rating_request(answer.question, group, id=label))
        plan.append(range(start, len(requests)))
    replies = scorer.generate(requests, params) if requests else []
    if len(replies) != len(requests):
        raise BackendError(
            scorer.name, f"returned {len(replies)} replies for {len(requests)} rating requests"
        )
    texts = [r[0] if r else "" for r in replies]
    weights: list[float] = []
    ratings: list[list[int | None]] = []
    for span in plan:
        rs = [parse_rating(texts[k]) for k in span]
        ratings.append(rs)
        ws = [rating_weight(r) for r in rs]
        weights.append(sum(ws) / len(ws) if ws else NO_EVIDENCE_WEIGHT)
    bad = sum(r is None for rs in ratings for r in rs)
    if bad:
        logger.info("%d of %d ratings unparsable; weighted %s", bad, len(texts), UNPARSABLE_WEIGHT)
    sample_texts = [[texts[k] for k in span] for span in plan]
    return _result("confidence", answers, keys, weights, ratings, sample_texts)


def vote(
    answers: Sequence[Answer],
    task: str,
    mode: VoteMode,
    scorer: Backend | None = None,
    **kw: Any,
) -> VoteResult:
    """:func:`majority_vote` or :func:`confidence_vote` (``kw`` goes to the latter).

    ``mode="confidence"`` without a ``scorer``, an unknown mode, or ``kw`` with majority is a
    ``ValueError``.
    """
    if mode == "majority":
        if kw:
            raise ValueError(f"majority voting takes no options, got {sorted(kw)}")
        return majority_vote(answers, task)
    if mode == "confidence":
        if scorer is None:
            raise ValueError("confidence voting needs a scorer backend to rate the evidence")
        return confidence_vote(answers, task, scorer, **kw)
    raise ValueError(f"unknown vote mode {mode!r}; known: majority, confidence")

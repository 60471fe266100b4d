"""Multiple-choice video benchmarks (SPEC §7): VideoMME, WorldSense, VideoMMMU (with its open
questions), MVBench and STAR — loaders from the public files, prompts, answer reading, scores.

Reading an answer (:func:`extract_letter`): :func:`o3video.protocols.readers.read_letter_why`, the
reader the MCQ reward uses too (its rules are in :mod:`o3video.protocols.readers`): the answer
part of
the reply (its ``<answer>`` section, else the text without its ``<think>``), then the whole
answer as a letter, a leading letter, an option's exact text, "the answer is X" (several
letters named → ambiguous), "option X". A letter outside the options (``E`` of four) is no
answer either. An unread answer is **wrong and counted** (``unparsable``) — never replaced
by a default letter, as the reference code did (it fell back on "A").

Open answers (VideoMMMU's non-multiple-choice questions, :func:`open_match`): right when the
normalised texts are equal (casefolded, whitespace collapsed, surrounding quotes, ``*`` and
end punctuation dropped), or when the ground truth is a number (``1,200``, ``$3``, ``25%``
allowed) and the answer contains exactly one distinct number within a relative 1e-2 of it
(``|pred − gt| ≤ 0.01·|gt|``; a ground truth of 0 needs 0). The official scorer's substring
matching is not reproduced; an empty answer is unparsable.

>>> extract_letter("<think>A looks wrong.</think><answer>(B)</answer>", 4)
'B'
>>> extract_letter("A or B", 4) is None
True
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from o3video.eval.bench_items import (
    LETTERS,
    BenchItem,
    answer_text,
    missing_ids,
)
from o3video.protocols.readers import normalize_text, read_letter_why

MCQ_INSTRUCTION = "Answer with the option's letter from the given choices."
OPEN_INSTRUCTION = "Answer with the final value or a short phrase only."
IMAGE_AT_END = "The image for this question is at the end of the video."
"""VideoMMMU Adaptation: the question's image is appended to the video (lmms-eval's prompt)."""
OPEN_REL_TOL = 1e-2

Prediction = str | Mapping[str, Any]
"""The model's raw text, or what :func:`parse_mcq` / :func:`parse_open` made of it."""

# --- prompts --------------------------------------------------------------------------------


def _preamble(item: BenchItem) -> str:
    return f"{IMAGE_AT_END}\n" if item.extra.get("image_at_end") else ""


def mcq_question(item: BenchItem) -> str:
    """The question, one ``"X. option"`` line per option, then :data:`MCQ_INSTRUCTION` (the
    question layout of the STGR multiple-choice data).

    >>> from pathlib import Path
    >>> print(mcq_question(BenchItem("q", "star", Path("v"), "Which?", ("red", "blue"), "A")))
    Which?
    A. red
    B. blue
    Answer with the option's letter from the given choices.
    """
    lines = [f"{letter}. {option}" for letter, option in zip(LETTERS, item.options, strict=False)]
    return "\n".join([_preamble(item) + item.question, *lines, MCQ_INSTRUCTION])


def open_question(item: BenchItem) -> str:
    """The question, then :data:`OPEN_INSTRUCTION`."""
    return f"{_preamble(item)}{item.question}\n{OPEN_INSTRUCTION}"


# --- reading answers ------------------------------------------------------------------------

_DECOR = " \t\r\n\"'`*_"
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_GT_NUMBER = re.compile(r"\$?\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*%?")


def read_letter(
    text: str, n_options: int, options: Sequence[str] = ()
) -> tuple[str | None, str | None]:
    """``(letter, None)`` or ``(None, problem)``: ``empty_answer``, ``letter_out_of_range``,
    ``ambiguous`` or ``no_letter`` (:func:`o3video.protocols.readers.read_letter_why`).

    >>> read_letter("The answer is A, or maybe the answer is C.", 4)
    (None, 'ambiguous')
    """
    if options and len(options) != n_options:
        raise ValueError(f"{len(options)} options given with n_options={n_options}")
    return read_letter_why(text, options or n_options)


def extract_letter(text: str, n_options: int, options: Sequence[str] = ()) -> str | None:
    """The option letter a model's output answers, or ``None`` (unparsable or ambiguous —
    never a default letter). ``options`` (the texts) lets an answer name an option by text.

    >>> [extract_letter(t, 4) for t in ("B", "(C) a cat", "The answer is D.", "A dog", "E")]
    ['B', 'C', 'D', None, None]
    >>> extract_letter("<answer>a dog.</answer>", 2, ("a cat", "A dog"))
    'B'
    """
    return read_letter(text, n_options, options)[0]


def parse_mcq(text: str, options: Sequence[str]) -> dict[str, Any]:
    """JSON-ready reading of an MCQ answer: ``{"kind": "mcq", "letter": …}`` plus
    ``"problem"`` when the letter is ``None``.

    >>> parse_mcq("A or B", ("x", "y"))
    {'kind': 'mcq', 'letter': None, 'problem': 'ambiguous'}
    """
    letter, problem = read_letter(text, len(options), options)
    out: dict[str, Any] = {"kind": "mcq", "letter": letter}
    if problem is not None:
        out["problem"] = problem
    return out


def parse_open(text: str) -> dict[str, Any]:
    """JSON-ready reading of an open answer: ``{"kind": "open", "answer": …}`` (``None`` and
    ``"problem": "empty_answer"`` when there is nothing to read).

    >>> parse_open("<think>hm</think><answer> 42 </answer>")
    {'kind': 'open', 'answer': '42'}
    """
    answer = answer_text(text)
    if not answer.strip(_DECOR):
        return {"kind": "open", "answer": None, "problem": "empty_answer"}
    return {"kind": "open", "answer": answer}


def _as_number(text: str) -> float | None:
    m = _GT_NUMBER.fullmatch(_THOUSANDS.sub("", text.strip()))
    return float(m.group(1)) if m else None


def open_match(prediction: str, truth: str) -> bool:
    """Whether an open answer is right (rule in the module docstring).

    >>> open_match(" Mitochondria.", "mitochondria"), open_match("about 3.02 m", "3")
    (True, True)
    >>> open_match("1,210", "1200"), open_match("3 or 4", "3")
    (True, False)
    """
    if normalize_text(prediction) and normalize_text(prediction) == normalize_text(truth):
        return True
    gt = _as_number(truth)
    if gt is None:
        return False
    numbers = {float(x) for x in _NUMBER.findall(_THOUSANDS.sub("", prediction))}
    if len(numbers) != 1:
        return False
    (pred,) = numbers
    return math.isfinite(pred) and abs(pred - gt) <= OPEN_REL_TOL * abs(gt)


# --- scores ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accuracy:
    """``correct`` of ``n`` items, of which ``unparsable`` (wrong) and ``missing`` (wrong)."""

    n: int = 0
    correct: int = 0
    unparsable: int = 0
    missing: int = 0

    @property
    def accuracy(self) -> float | None:
        """``correct / n``; ``None`` for no items."""
        return self.correct / self.n if self.n else None

    def add(self, correct: bool, unparsable: bool, missing: bool) -> Accuracy:
        return Accuracy(
            self.n + 1,
            self.correct + correct,
            self.unparsable + unparsable,
            self.missing + missing,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "unparsable": self.unparsable,
            "missing": self.missing,
        }


@dataclass(frozen=True)
class ItemResult:
    """One item's outcome: the prediction read (letter or open answer) and why not."""

    id: str
    correct: bool
    prediction: str | None
    problem: str | None = None


@dataclass(frozen=True)
class McqScores:
    """Overall accuracy, accuracy per value of each ``BenchItem.group`` key (VideoMME by
    ``duration``, VideoMMMU by ``split`` and ``question_type``, MVBench by ``task``, STAR by
    ``question_type``, WorldSense by ``domain``/``task_domain``/``task_type``), per item."""

    overall: Accuracy
    groups: dict[str, dict[str, Accuracy]]
    items: tuple[ItemResult, ...] = field(default=())

    def to_dict(self, *, items: bool = False) -> dict[str, Any]:
        """JSON-ready: the overall counts, ``groups`` and (``items=True``) every item."""
        out: dict[str, Any] = self.overall.to_dict()
        out["groups"] = {
            key: {value: acc.to_dict() for value, acc in sorted(per.items())}
            for key, per in self.groups.items()
        }
        if items:
            out["items"] = [vars(r) for r in self.items]
        return out


def _read(item: BenchItem, prediction: Prediction) -> tuple[str | None, str | None]:
    """(what was read, problem) from raw text or a parsed dict."""
    parsed: Mapping[str, Any] = (
        prediction
        if not isinstance(prediction, str)
        else (parse_mcq(prediction, item.options) if item.options else parse_open(prediction))
    )
    kind = "mcq" if item.options else "open"
    if parsed.get("kind") != kind:
        raise ValueError(f"item {item.id!r} is {kind}, its prediction is {parsed.get('kind')!r}")
    value = parsed.get("letter" if kind == "mcq" else "answer")
    if value is not None and not isinstance(value, str):
        raise ValueError(f"item {item.id!r}: prediction value {value!r} is not a string")
    return value, None if value is not None else str(parsed.get("problem", "unparsable"))


def score_mcq(
    items: Sequence[BenchItem],
    predictions: Mapping[str, Prediction],
    *,
    allow_missing: bool = False,
) -> McqScores:
    """Accuracy of ``predictions`` (item id → raw text or parsed dict) on MCQ and open items.

    An unparsable prediction is wrong and counted. A missing prediction raises
    ``ValueError``, unless ``allow_missing`` (then wrong, and counted as ``missing``).

    >>> from pathlib import Path
    >>> items = [BenchItem(str(k), "x", Path("v"), "?", ("a", "b"), "A") for k in range(3)]
    >>> s = score_mcq(items, {"0": "A", "1": "B", "2": "no idea"})
    >>> s.overall.correct, s.overall.unparsable, round(s.overall.accuracy, 3)
    (1, 1, 0.333)
    """
    missing = missing_ids(items, predictions)
    if missing and not allow_missing:
        raise ValueError(f"{len(missing)} items have no prediction; first: {missing[0]!r}")
    overall, results = Accuracy(), []
    groups: dict[str, dict[str, Accuracy]] = {}
    for item in items:
        if item.kind == "grounding":
            raise ValueError(f"item {item.id!r} is a grounding item: use score_grounding")
        if item.id in predictions:
            value, problem = _read(item, predictions[item.id])
        else:
            value, problem = None, "missing"
        if value is None:
            correct = False
        elif item.options:
            correct = value == item.answer
        else:
            correct = open_match(value, item.answer)
        flags = (correct, value is None and problem != "missing", problem == "missing")
        overall = overall.add(*flags)
        for key, group in item.group.items():
            per = groups.setdefault(key, {})
            per[group] = per.get(group, Accuracy()).add(*flags)
        results.append(ItemResult(item.id, correct, value, problem))
    return McqScores(overall, groups, tuple(results))

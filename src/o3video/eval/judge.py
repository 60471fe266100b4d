"""The V-STaR What judge (SPEC §7): rate 0–3 how well a free-text answer matches the truth.

The official V-STaR script asks Qwen2.5-72B-Instruct, sampling at temperature 0.7, to rate
the semantic match; an answer is correct iff its rating is ≥ 2 and an unparsable rating counts
as wrong. Ours differs on purpose:

- :class:`LLMJudge` asks any :class:`~o3video.models.base.Backend` with our own prompt
  (:data:`JUDGE_SYSTEM`, :data:`JUDGE_USER`, version :data:`PROMPT_VERSION`), greedily
  (temperature 0, seed 0), so a rating is reproducible; ratings are cached on disk
  (:class:`RatingCache`), so a killed evaluation resumes without judging twice.
- :class:`ExactMatchJudge` needs no model, for the synthetic world whose answers are short
  names ("the red circle"): 3 when the normalised reference equals the normalised prediction
  or occurs in it as whole words, 0 otherwise.

A rating is 0–3, ``-1`` when the judge's reply is unparsable (counted in
:attr:`JudgeStats.unparsable`, never defaulted) and ``None`` for an item without a What
answer (the scorer, :mod:`o3video.eval.vstar_score`, decides what that means).

>>> parse_judge_reply('{"score": 3}'), parse_judge_reply("Score: 2/3"), parse_judge_reply("4")
(3, 2, -1)
>>> judge = ExactMatchJudge()
>>> judge.rate([JudgeItem("Which shape?", "the red circle", "It is the red circle."),
...             JudgeItem("Which shape?", "the red circle", "the blue square"),
...             JudgeItem("Which shape?", "the red circle", None)])
[3, 0, None]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from o3video import safejson
from o3video.jsonl import read_lines
from o3video.models.base import Backend, Request, SamplingParams

logger = logging.getLogger(__name__)

PROMPT_VERSION = "vstar-what-v1"
"""Part of every cache key: change it whenever :data:`JUDGE_SYSTEM` or :data:`JUDGE_USER`
changes, so that ratings given under an older prompt are not reused."""

UNPARSABLE = -1

JUDGE_SYSTEM = (
    "You are a strict, fair grader of answers to questions about videos. You compare a "
    "predicted answer with the ground-truth answer and rate how well their meanings match. "
    "Judge meaning, not wording: synonyms and paraphrases are fine, extra detail that does not "
    "contradict the ground truth is fine, a different or contradicting answer is wrong."
)

JUDGE_USER = """Question: {question}
Ground-truth answer: {reference}
Predicted answer: {prediction}

Rate the semantic match of the predicted answer against the ground-truth answer with one \
integer from 0 to 3:
0 = unrelated or wrong
1 = partially related, but wrong
2 = mostly correct (the key point matches; minor details missing or off)
3 = fully correct

Reply with the number only, or with the JSON object {{"score": <number>}}; nothing else."""


@dataclass(frozen=True)
class JudgeItem:
    """One What answer to rate: the ``question``, the ground-truth ``reference`` and the
    model's ``prediction`` (``None`` or blank: no What answer, rated ``None``)."""

    question: str
    reference: str
    prediction: str | None


@dataclass(frozen=True)
class JudgeStats:
    """Counts over a judge's life: ``n`` items rated, of which ``cached`` answered from the
    cache, ``called`` rated by the backend (identical items of one call share a request; for
    :class:`ExactMatchJudge`: rated by rule),
    ``no_answer`` without a prediction (rated ``None``); ``unparsable`` ratings of ``-1``
    (cached or called). ``n == cached + called + no_answer``."""

    n: int = 0
    cached: int = 0
    called: int = 0
    unparsable: int = 0
    no_answer: int = 0

    def __add__(self, other: JudgeStats) -> JudgeStats:
        return JudgeStats(
            self.n + other.n,
            self.cached + other.cached,
            self.called + other.called,
            self.unparsable + other.unparsable,
            self.no_answer + other.no_answer,
        )


@runtime_checkable
class Judge(Protocol):
    """Rates What answers: ``rate(items)`` → per item 0–3, ``-1`` unparsable, ``None`` no
    answer; ``stats`` counts what it did; ``name`` goes into result files."""

    name: str
    stats: JudgeStats

    def rate(self, items: Sequence[JudgeItem]) -> list[int | None]:
        """One rating per item, in order."""
        ...


# --- parsing -----------------------------------------------------------------------------

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
# The scale echoed back ("0-3", "0 to 3", "(0–3)") is not a rating.
_SCALE = re.compile(r"(?<![\w.])0\s*(?:-|–|—|to)\s*3(?![\w.])", re.IGNORECASE)
# A number standing alone: not glued to a letter, digit, '.', '-' (a sign or a range) before it,
# nor to a letter or digit after it ("3rd", "v2" and "-1" are not ratings).
_NUMBER = re.compile(r"(?<![\w.\-])(\d+(?:\.\d+)?)(?!\w)")
_LABELLED = re.compile(
    r"\b(?:score|rating)\b\W{0,4}(?:is\W{0,3}|of\W{0,3}|=\W{0,3})?(-?\d+(?:\.\d+)?)",
    re.IGNORECASE,
)


def _rating_of(token: Any) -> int:
    """``token`` as a rating 0–3, else :data:`UNPARSABLE` (``2.0`` counts as 2)."""
    if isinstance(token, bool):
        return UNPARSABLE
    if isinstance(token, str):
        try:
            token = float(token.strip())
        except ValueError:
            return UNPARSABLE
    if isinstance(token, (int, float)) and float(token).is_integer() and 0 <= token <= 3:
        return int(token)
    return UNPARSABLE


def parse_judge_reply(text: str | None) -> int:
    """The rating 0–3 in a judge's reply; :data:`UNPARSABLE` (``-1``) when there is none.

    In order: a JSON object with a ``score`` (or ``rating``) field decides; else a number
    labelled "score"/"rating" decides; else the first standalone number does (after dropping
    ``<think>`` blocks and an echoed scale "0-3"). Whichever decides must be an integer 0–3,
    or the reply is unparsable: "I'd say 4" is ``-1``, never a clamped 3.

    >>> [parse_judge_reply(t) for t in ("2", "Score: 1", "**3** fully correct", "2/3")]
    [2, 1, 3, 2]
    >>> [parse_judge_reply(t) for t in ("", "4", "2.5", "no idea", '{"score": 5}')]
    [-1, -1, -1, -1, -1]
    """
    if not text:
        return UNPARSABLE
    text = _THINK.sub(" ", text)
    for m in _JSON_OBJECT.finditer(text):
        try:
            obj = safejson.loads(m.group(0))  # model text: bounded nesting, never recursion
        except ValueError:
            continue
        if isinstance(obj, dict):
            for key in ("score", "rating"):
                if key in obj:
                    return _rating_of(obj[key])
    if labelled := _LABELLED.search(text):
        return _rating_of(labelled.group(1))
    if first := _NUMBER.search(_SCALE.sub(" ", text)):
        return _rating_of(first.group(1))
    return UNPARSABLE


def judge_request(item: JudgeItem) -> Request:
    """The chat request that asks the judge to rate ``item`` (our prompt, not the official)."""
    user = JUDGE_USER.format(
        question=item.question.strip(),
        reference=item.reference.strip(),
        prediction=(item.prediction or "").strip(),
    )
    return Request.user(user, system=JUDGE_SYSTEM)


# --- the cache ---------------------------------------------------------------------------


def cache_key(judge_name: str, item: JudgeItem, prompt_version: str = PROMPT_VERSION) -> str:
    """sha256 (hex) of the judge's name, the prompt version and the item's three texts."""
    payload = [judge_name, prompt_version, item.question, item.reference, item.prediction]
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


class RatingCache:
    """Ratings on disk: a JSON-lines file of ``{"key", "rating", "raw"}``, read back when
    opened, appended to line by line (each line flushed, so a kill loses at most the line
    being written). A cut last line (the process killed mid-write) is removed with a warning
    so that the next line starts clean; any other unreadable line is ignored with a warning.
    For the same key the last line wins."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.entries: dict[str, tuple[int, str]] = {}
        if self.path.exists():
            self._read()

    def _read(self) -> None:
        for n, line in read_lines(self.path):
            try:
                entry = json.loads(line)
                key, rating, raw = entry["key"], entry["rating"], entry["raw"]
                if not isinstance(key, str) or not isinstance(raw, str):
                    raise TypeError("key and raw must be strings")
                if type(rating) is not int or rating not in (UNPARSABLE, 0, 1, 2, 3):
                    raise ValueError(f"bad rating {rating!r}")
                self.entries[key] = (rating, raw)
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("%s: line %d is not a cache entry (%s); ignored", self.path, n, exc)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> tuple[int, str] | None:
        """``(rating, raw reply)`` cached under ``key``, or ``None``."""
        return self.entries.get(key)

    def put_many(self, entries: Sequence[tuple[str, int, str]]) -> None:
        """Append ``(key, rating, raw)`` entries, each line flushed, then synced to disk."""
        if not entries:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for key, rating, raw in entries:
                f.write(json.dumps({"key": key, "rating": rating, "raw": raw}) + "\n")
                f.flush()
                self.entries[key] = (rating, raw)
            os.fsync(f.fileno())


# --- judges ------------------------------------------------------------------------------


def _has_answer(item: JudgeItem) -> bool:
    return bool(item.prediction and item.prediction.strip())


class LLMJudge:
    """A language model as the What judge (SPEC §7), deterministic and cached.

    ``backend`` is any :class:`~o3video.models.base.Backend` (a served 72B model through
    ``openai``, a local one through ``hf`` or ``vllm``); it is asked in batches of
    ``batch_size`` with temperature 0 and ``seed``. ``cache`` is a JSON-lines file
    (:class:`RatingCache`) or ``None`` for no cache; each batch is written as soon as it is
    rated. Identical items are judged once. A :class:`~o3video.models.base.BackendError`
    propagates; the batches rated before it stay cached.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        cache: str | os.PathLike[str] | RatingCache | None = None,
        batch_size: int = 32,
        max_new_tokens: int = 32,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.backend = backend
        self.name = backend.name
        self.cache = (
            cache if isinstance(cache, RatingCache) or cache is None else RatingCache(cache)
        )
        self.batch_size = batch_size
        self.params = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed)
        self.stats = JudgeStats()

    def rate(self, items: Sequence[JudgeItem]) -> list[int | None]:
        """One rating per item: 0–3, ``-1`` unparsable, ``None`` without a prediction."""
        out: list[int | None] = [None] * len(items)
        todo: dict[str, list[int]] = {}  # key → positions of the items that share it
        cached = no_answer = 0
        for i, item in enumerate(items):
            if not _has_answer(item):
                no_answer += 1
                continue
            key = cache_key(self.name, item)
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                out[i] = hit[0]
                cached += 1
            else:
                todo.setdefault(key, []).append(i)
        keys = list(todo)
        for start in range(0, len(keys), self.batch_size):
            batch = keys[start : start + self.batch_size]
            requests = [judge_request(items[todo[k][0]]) for k in batch]
            replies = self.backend.generate(requests, self.params)
            if len(replies) != len(batch):
                raise ValueError(
                    f"judge {self.name}: {len(replies)} replies for {len(batch)} requests"
                )
            new = []
            for key, reply in zip(batch, replies, strict=True):
                raw = reply[0] if reply else ""
                rating = parse_judge_reply(raw)
                for i in todo[key]:
                    out[i] = rating
                new.append((key, rating, raw))
            if self.cache is not None:
                self.cache.put_many(new)
        unparsable = sum(r == UNPARSABLE for r in out)
        if unparsable:
            logger.warning(
                "judge %s: %d unparsable rating(s), counted wrong", self.name, unparsable
            )
        called = len(items) - cached - no_answer
        self.stats += JudgeStats(len(items), cached, called, unparsable, no_answer)
        return out


_ARTICLES = ("the", "a", "an")


def normalize_answer_text(text: str) -> str:
    """Lower case, punctuation to spaces, one leading article dropped, spaces collapsed.

    >>> normalize_answer_text("  The Red-Circle! "), normalize_answer_text("An apple")
    ('red circle', 'apple')
    """
    words = re.sub(r"[^\w\s]|_", " ", text.casefold()).split()
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words)


def exact_match(reference: str, prediction: str) -> bool:
    """The :class:`ExactMatchJudge` rule: the normalised prediction equals the normalised
    reference or holds it as whole words.

    >>> exact_match("the red circle", "It is the red circle."), exact_match("the red circle", "red")
    (True, False)
    """
    ref, pred = normalize_answer_text(reference), normalize_answer_text(prediction)
    return pred == ref or (bool(ref) and f" {ref} " in f" {pred} ")


class ExactMatchJudge:
    """The What judge of the synthetic world: no model, no cache.

    Rating 3 when the normalised prediction equals the normalised reference
    (:func:`normalize_answer_text`), or contains it as whole words ("It is the red circle."
    for "the red circle"); 0 otherwise. Containment does not check that no *other* shape is
    named as well ("the red circle or the blue square" is rated 3): synthetic answers are
    short, and the rule is meant to be simple and predictable, not adversarially robust.
    """

    name = "exact"

    def __init__(self) -> None:
        self.stats = JudgeStats()

    def rate(self, items: Sequence[JudgeItem]) -> list[int | None]:
        """One rating per item: 3 or 0, ``None`` without a prediction."""
        out: list[int | None] = []
        for item in items:
            if not _has_answer(item):
                out.append(None)
                continue
            out.append(3 if exact_match(item.reference, item.prediction or "") else 0)
        no_answer = sum(r is None for r in out)
        self.stats += JudgeStats(len(items), 0, len(items) - no_answer, 0, no_answer)
        return out


def make_judge(
    spec: str,
    *,
    backend: str = "hf",
    cache: str | os.PathLike[str] | None = None,
    batch_size: int = 32,
    max_new_tokens: int = 32,
    **backend_options: Any,
) -> Judge:
    """A judge from a spec: ``"exact"`` (:class:`ExactMatchJudge`), or a model name/path
    loaded with :func:`o3video.models.load.load_backend` as ``backend`` (``hf``, ``vllm``,
    ``openai``; ``backend_options`` such as ``base_url`` go to it) and wrapped in an
    :class:`LLMJudge` caching in ``cache``.

    >>> make_judge("exact").name
    'exact'
    """
    if spec == "exact":
        return ExactMatchJudge()
    from o3video.models.load import load_backend

    model = load_backend(spec, backend, **backend_options)
    return LLMJudge(model, cache=cache, batch_size=batch_size, max_new_tokens=max_new_tokens)

"""Reading a model's reply: one function per kind of answer, shared by rewards and metrics.

Pure functions (no torch, no I/O) that never raise on a reply, whatever it holds:

- :func:`answer_part`: the part of a reply that answers — its ``<answer>`` section when it
  has one, else the reply without its ``<think>`` section (an unclosed ``<think>`` runs to
  the end), stripped. Times or letters written while reasoning are never read as the answer.
- :func:`read_letter` / :func:`read_letter_why`: the option letter of a multiple-choice
  answer (rules below), ``None`` when there is none or it is ambiguous.
- :func:`read_span`: a ``(start_s, end_s)`` span of a When / temporal-grounding answer.
- :func:`read_boxes_by_second`: boxes per second of a V-STaR Where answer.

Each reads :func:`answer_part` of a text first, so a bare answer (an ``<answer>`` section's
content, or text with no tags) reads the same as the whole reply.

Letters (:func:`read_letter_why`), first rule that applies:

1. the whole answer is a letter: ``B``, ``(B)``, ``B.``, ``[B]``, ``**B**``, ``b``;
2. it starts with a capital letter and a delimiter, or a capital alone on the first line:
   ``B) …``, ``(B) …``, ``B. …``, ``B: …``, ``B\\n…`` (not ``A cat``: "A" is also a word);
3. its text equals exactly one option's text (case, spacing and end punctuation ignored);
4. letters named by "answer is X", "answer: X", "correct option: X" — one letter, or several
   → ambiguous; then the same with the weaker "option X", "choice X" and "(X)";
5. otherwise none; two or more standalone capitals among the letters (``A or B``) are
   ambiguous.

``options`` is the option texts (their number limits the letters, and rule 3 reads an
answer written as an option's text), a number of options, or ``None`` (any letter A–Z; rule
3 skipped). A letter outside the options (``E`` of four) is no answer. A hedged answer
("The answer is A, or maybe the answer is C.") is ambiguous: no letter, never the first one.

>>> read_letter("<think>A looks wrong.</think><answer>(B)</answer>", 4)
'B'
>>> read_letter("The answer is A, or maybe the answer is C.", 4) is None
True
>>> read_span("<think>at <t>9</t>s</think>From 2 to 5")
(2.0, 5.0)
>>> read_boxes_by_second('[[3, [1, 2, 3, 4]], [4, [2, 3, 4, 5]]]')
{3.0: ((1.0, 2.0, 3.0, 4.0),), 4.0: ((2.0, 3.0, 4.0, 5.0),)}
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from o3video.boxes import XYXY
from o3video.evidence import parse_span, parse_trace
from o3video.safejson import check_depth

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

Options = Sequence[str] | int | None
"""What a letter reader knows of the options: their texts, their number, or nothing."""

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)


def answer_part(text: str) -> str:
    """The part of a reply that answers (module docstring), stripped.

    >>> answer_part("<think>x</think><answer> the red circle </answer>")
    'the red circle'
    >>> answer_part("<think>at <t>9</t>s</think>From 2 to 5"), answer_part(" no tags ")
    ('From 2 to 5', 'no tags')
    >>> answer_part("<think>cut off while reason")
    ''
    """
    answer = parse_trace(text).answer
    return answer if answer is not None else _THINK.sub("", text).strip()


# --- letters ------------------------------------------------------------------------------

_DECOR = " \t\r\n\"'`*_"
_WHOLE = re.compile(r"[(\[]?([A-Za-z])[)\]]?[.:]?")
_LEAD = re.compile(r"[(\[]?([A-Z])(?:(?:[)\]][.:]?|[.:])\s+\S|[)\].:]?[ \t]*\n)")
_STRONG = re.compile(
    r"(?i:answer|correct\s+option|correct\s+choice)\s*(?i:is|would\s+be)?\s*[:\-]?\s*"
    r"[\"'`*_(\[]*([A-Z])(?![A-Za-z0-9])"
)
_WEAK = (
    re.compile(r"(?i:option|choice)\s*[:\-]?\s*[\"'`*_(\[]*([A-Z])(?![A-Za-z0-9])"),
    re.compile(r"[(\[]([A-Z])[)\]]"),
)
_CAPITAL = re.compile(r"(?<![A-Za-z0-9])([A-Z])(?![A-Za-z0-9])")


def normalize_text(text: str) -> str:
    """Casefolded, whitespace collapsed, quotes/``*`` and end punctuation dropped.

    >>> normalize_text('  "The  Red ball."  ')
    'the red ball'
    """
    text = " ".join(text.casefold().split())
    return text.strip(_DECOR + ".!?;,").strip()


def _valid_letters(options: Options) -> tuple[str, tuple[str, ...]]:
    if options is None:
        return LETTERS, ()
    if isinstance(options, int):
        if not 1 <= options <= len(LETTERS):
            raise ValueError(f"the number of options must be 1-{len(LETTERS)}, got {options}")
        return LETTERS[:options], ()
    texts = tuple(options)
    if not 1 <= len(texts) <= len(LETTERS):
        raise ValueError(f"the number of options must be 1-{len(LETTERS)}, got {len(texts)}")
    return LETTERS[: len(texts)], texts


def read_letter_why(text: str, options: Options = None) -> tuple[str | None, str | None]:
    """``(letter, None)`` or ``(None, problem)``: ``empty_answer``, ``letter_out_of_range``,
    ``ambiguous`` or ``no_letter`` (rules in the module docstring).

    >>> read_letter_why("The answer is A, or maybe the answer is C.", 4)
    (None, 'ambiguous')
    >>> read_letter_why("E", 4), read_letter_why("c")
    ((None, 'letter_out_of_range'), ('C', None))
    """
    valid, texts = _valid_letters(options)
    answer = answer_part(text)
    core = answer.strip(_DECOR)
    if not core:
        return None, "empty_answer"
    m = _WHOLE.fullmatch(core)
    if m:
        letter = m.group(1).upper()
        return (letter, None) if letter in valid else (None, "letter_out_of_range")
    m = _LEAD.match(core)
    if m and m.group(1) in valid:
        return m.group(1), None
    if texts:
        said = normalize_text(core)
        hits = [x for x, o in zip(valid, texts, strict=True) if normalize_text(o) == said]
        if len(hits) == 1:
            return hits[0], None
    for patterns in ((_STRONG,), _WEAK):
        found = {m.group(1) for p in patterns for m in p.finditer(answer)}
        if len(found) > 1:
            return None, "ambiguous"
        if found:
            letter = found.pop()
            return (letter, None) if letter in valid else (None, "letter_out_of_range")
    capitals = {m.group(1) for m in _CAPITAL.finditer(answer)} & set(valid)
    return None, "ambiguous" if len(capitals) > 1 else "no_letter"


def read_letter(text: str, options: Options = None) -> str | None:
    """The option letter ``text`` answers, or ``None`` (none, out of range or ambiguous —
    never a default letter).

    >>> [read_letter(t, 4) for t in ("B", "(C) a cat", "The answer is D.", "A dog", "E", "c")]
    ['B', 'C', 'D', None, None, 'C']
    >>> read_letter("<answer>a dog.</answer>", ("a cat", "A dog"))
    'B'
    """
    return read_letter_why(text, options)[0]


# --- spans --------------------------------------------------------------------------------

_CLOCK = re.compile(r"(?<![\d.:])(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)(?![\d:])")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _real(value: Any) -> float | None:
    """A finite float from a JSON number or a numeric string; ``None`` otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def _clock_to_seconds(m: re.Match[str]) -> str:
    hours = int(m.group(1)) if m.group(1) else 0
    return f"{hours * 3600 + int(m.group(2)) * 60 + float(m.group(3)):g}"


def read_span(value: Any) -> tuple[float, float] | None:
    """A ``(start_s, end_s)`` span from a When answer, or ``None`` (never raises).

    Accepts ``[a, b]`` (numbers or numeric strings) and text: in :func:`answer_part` of it,
    the first ``From <t>a</t>s to <t>b</t>s``, else the first two numbers after ``mm:ss`` /
    ``h:mm:ss`` became seconds. The span is returned as written (a reversed span scores 0
    later).

    >>> read_span([3, "7.5"]), read_span("between 0:12 and 0:20")
    ((3.0, 7.5), (12.0, 20.0))
    >>> read_span("<think>From <t>1</t>s to <t>2</t>s?</think><answer>From 4 to 6</answer>")
    (4.0, 6.0)
    >>> read_span("around 5 s") is None
    True
    """
    if isinstance(value, list | tuple):
        if len(value) != 2:
            return None
        start, end = _real(value[0]), _real(value[1])
        return None if start is None or end is None else (start, end)
    if not isinstance(value, str):
        return None
    text = answer_part(value)
    span = parse_span(text)
    if span is not None:
        return span
    numbers = [float(x) for x in _NUMBER.findall(_CLOCK.sub(_clock_to_seconds, text))]
    return (numbers[0], numbers[1]) if len(numbers) >= 2 else None


# --- boxes by second ----------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_SECOND_KEY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:s|sec|secs|second|seconds)?\s*", re.I)
_BOX_KEYS = ("bbox_2d", "bbox", "box")
_TIME_KEYS = ("timestamp", "time", "second", "t")


def _load_json_text(text: str) -> Any:
    m = _FENCE.search(text)
    body = m.group(1) if m else text
    candidates = [body.strip()]
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = body.find(open_), body.rfind(close)
        if 0 <= start < end:
            candidates.append(body[start : end + 1])
    for candidate in candidates:
        try:
            check_depth(candidate)  # json.loads recurses: 1,000 nested "[" raise RecursionError
        except ValueError:
            continue
        try:
            return json.loads(candidate)
        except ValueError:
            pass
        try:  # single-quoted Python dicts, as some models write
            return ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    return None


def _second(key: Any) -> float | None:
    if isinstance(key, str):
        m = _SECOND_KEY.fullmatch(key)
        return float(m.group(1)) if m else None
    return _real(key)


def _boxes_of(value: Any, depth: int = 0) -> list[XYXY]:
    """Every box in one second's value: ``[x1,y1,x2,y2]``, a list of them, bbox dicts."""
    if depth > 3:
        return []
    if isinstance(value, dict):
        inner = next((value[k] for k in _BOX_KEYS if k in value), None)
        return [] if inner is None else _boxes_of(inner, depth + 1)
    if not isinstance(value, list | tuple):
        return []
    if len(value) == 4 and not any(isinstance(v, list | tuple | dict) for v in value):
        xs = [_real(v) for v in value]
        if all(x is not None for x in xs):
            return [(xs[0], xs[1], xs[2], xs[3])]  # type: ignore[list-item]
        return []
    return [box for v in value for box in _boxes_of(v, depth + 1)]


def _pairs(value: Any) -> list[tuple[Any, Any]]:
    """``(second, boxes)`` pairs of a decoded answer: a dict keyed by seconds, or a list of
    ``{"timestamp": t, "bbox_2d": …}`` entries, of one-key ``{"t": box}`` dicts, or of
    ``[t, box]`` pairs."""
    if isinstance(value, dict):
        return list(value.items())
    if not isinstance(value, list | tuple):
        return []
    pairs: list[tuple[Any, Any]] = []
    for entry in value:
        if isinstance(entry, dict):
            key = next((entry[k] for k in _TIME_KEYS if k in entry), None)
            pairs.extend([(key, entry)] if key is not None else entry.items())
        elif isinstance(entry, list | tuple) and len(entry) == 2:
            pairs.append((entry[0], entry[1]))
    return pairs


def read_boxes_by_second(value: Any) -> dict[float, tuple[XYXY, ...]]:
    """Boxes per second from a Where answer; ``{}`` when nothing parses (never raises).

    ``value`` is the reply (its :func:`answer_part` is read: JSON, fenced in a ```json block
    or not, single quotes tolerated) or what a runner already decoded: a dict keyed by
    seconds (``"3"``, ``"3.0"``, ``"3s"``, ``3``), a list of ``{"timestamp": t, "bbox_2d":
    [...]}`` entries, a list of one-key ``{"3": box}`` dicts or a list of ``[3, box]``
    pairs. A second's value is one box, several, or ``{"bbox_2d": box}``. Seconds are
    numbers (``"3.0"`` and ``"3"`` are one second); boxes of one second from several places
    are merged.

    >>> read_boxes_by_second({"3": {"bbox_2d": [0, 0, 2, 2]}, "4s": [[0, 0, 1, 1], [1, 1, 2, 2]]})
    {3.0: ((0.0, 0.0, 2.0, 2.0),), 4.0: ((0.0, 0.0, 1.0, 1.0), (1.0, 1.0, 2.0, 2.0))}
    >>> read_boxes_by_second('<answer>[{"3": [1, 2, 3, 4]}, {"4": [1, 2, 3, 5]}]</answer>')
    {3.0: ((1.0, 2.0, 3.0, 4.0),), 4.0: ((1.0, 2.0, 3.0, 5.0),)}
    """
    if isinstance(value, str):
        value = _load_json_text(answer_part(value))
    out: dict[float, list[XYXY]] = {}
    for key, val in _pairs(value):
        t_s = _second(key)
        boxes = _boxes_of(val) if t_s is not None else []
        if t_s is not None and boxes:
            out.setdefault(t_s, []).extend(boxes)
    return {t_s: tuple(boxes) for t_s, boxes in out.items()}


# --- the reference protocol's readers: the reference pipeline's writer -----------------
# Open-o3 Video's eval/test/test_vstar_multi_images.py parses each reply before writing it:
# the results file holds these values, which the official eval.py then scores.

_REF_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
_REF_CLOCK = re.compile(r"(\d+:\d+)")
_REF_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_REF_FENCED = re.compile(r"```json\s*\n(\[.*?\]|\{.*?\})\s*\n```", re.S)
_REF_BARE = re.compile(r"(\[[\s\S]*\]|\{[\s\S]*\})", re.S)


def reference_answer_text(reply: str) -> str:
    """The reference's What answer (think mode): the first ``<answer>`` section, stripped,
    else the whole reply as it is.

    >>> reference_answer_text("<think>x</think><answer> a cat </answer>")
    'a cat'
    >>> reference_answer_text("<think>x</think> a cat")
    '<think>x</think> a cat'
    """
    m = _REF_ANSWER.search(reply)
    return m.group(1).strip() if m else reply


def reference_timestamps(reply: str) -> list[float]:
    """The reference's ``answer_temporal``: in the ``<answer>`` section (else the whole
    reply), each ``m:ss`` becomes its seconds, then the numbers are found; exactly two give
    ``[start, end]``, any other count ``[]``.

    >>> reference_timestamps("<answer>From <t>2</t>s to <t>5.5</t>s</answer>")
    [2.0, 5.5]
    >>> reference_timestamps("<think>at <t>9</t>s</think>From 2 to 5")  # three numbers
    []
    >>> reference_timestamps("from 1:05 to 1:10")
    [65.0, 70.0]
    """
    text = reference_answer_text(reply)
    for clock in _REF_CLOCK.findall(text):
        minutes, seconds = (int(x) for x in clock.split(":"))
        text = text.replace(clock, f"<t>{minutes * 60 + seconds}</t>s")
    numbers = _REF_NUMBER.findall(text)
    return [float(numbers[0]), float(numbers[1])] if len(numbers) == 2 else []


def _ref_close_brackets(text: str) -> str:
    """The reference's ``fix_incomplete_json``: balance ``[]`` then ``{}`` by appending the
    missing closers (or prepending the missing openers)."""
    for open_, close in (("[", "]"), ("{", "}")):
        n_open, n_close = text.count(open_), text.count(close)
        if n_open > n_close:
            text += close * (n_open - n_close)
        elif n_close > n_open:
            text = open_ * (n_close - n_open) + text
    return text


def reference_boxes(reply: str) -> dict[str, Any] | list[Any] | None:
    """The reference's ``answer_spatial``: the boxes exactly as the reference writes them
    (in the space the model wrote them; its unused ``denormalize_bbox`` never runs).

    In the ``<answer>`` section (else the whole reply): the first ```json block holding a
    list or an object, else the text from the first ``[``/``{`` to the last ``]``/``}``;
    single quotes become double quotes; JSON-decoded. A list of objects is merged into one
    object; another list becomes ``{str(pair[0]): pair[1]}``; an object is kept. JSON that
    does not decode gets its brackets balanced and is decoded again (a list is then kept as
    a list). ``None`` when nothing decodes.

    >>> reference_boxes('<answer>{"3": [1, 2, 3, 4]}</answer>')
    {'3': [1, 2, 3, 4]}
    >>> reference_boxes("[[3, [1, 2, 3, 4]], [4.0, [2, 3, 4, 5]]]")
    {'3': [1, 2, 3, 4], '4.0': [2, 3, 4, 5]}
    >>> reference_boxes('[{"3": [1, 2, 3, 4]}, {"4": [2, 3, 4, 5]}]')
    {'3': [1, 2, 3, 4], '4': [2, 3, 4, 5]}
    >>> reference_boxes('{"3": [1, 2, 3, 4]'), reference_boxes("no boxes") is None  # no "}"
    ([1, 2, 3, 4], True)
    """
    text = reference_answer_text(reply)
    m = _REF_FENCED.search(text) or _REF_BARE.search(text)
    if m is None:
        return None
    body = m.group(1).strip().replace("'", '"')
    try:
        check_depth(body)  # deeper than any box answer: unreadable, never a recursion
    except ValueError:
        return None
    try:
        value = json.loads(body)
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            merged: dict[str, Any] = {}
            for v in value:
                merged.update(v)
            value = merged
        if isinstance(value, list):
            return {str(pair[0]): pair[1] for pair in value}
        return dict(value) if isinstance(value, dict) else None
    except Exception:  # the reference retries after any error (a bad pair too)
        try:
            value = json.loads(_ref_close_brackets(body))
        except Exception:
            return None
        if isinstance(value, list | dict):
            return value
        return None

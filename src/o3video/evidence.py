"""The grounded-trace format of SPEC §1: read a model's output into claims, times and problems.

A trace is ``<think> … </think><answer> … </answer>``. Inside it a *claim* names an object,
one or more boxes and a time, ``<obj>NAME</obj><box>[x1,y1,x2,y2]</box>at<t>SECONDS</t>s``;
temporal-only evidence is a bare ``<t>SECONDS</t>s``; a temporal-grounding answer is
``From <t>START</t>s to <t>END</t>s``.

The published parser needs the parts of a claim exactly adjacent. :func:`parse_trace` also
takes whitespace or newlines between them, ``at`` written or not, int or float numbers, a
missing trailing ``s`` and several boxes per claim. It never raises: it returns whatever it
found, and every malformation as a :class:`Problem` with its character span, so that rewards
and the UI can use partial (cut-off, sloppy) traces. Policy:

- A claim is kept when it has at least one valid box; its bad boxes are dropped (``bad_box``).
  An ``<obj>`` with no valid box is not a claim (``claim_without_box``); its time, if any,
  counts as a bare time. A claim with boxes but no ``<t>`` is kept with ``t_s=None``
  (``claim_without_time``; spatial answers are written that way). A claim whose ``<t>`` is
  not a number is kept with ``t_s=None`` (``bad_number`` only).
- Boxes are kept as written, in the model's box space; negative or inverted coordinates are
  the caller's to clamp. ``<box>1,2,3,4</box>`` (no brackets) is accepted silently.
- Numbers are decimal literals (``7``, ``-1.5``, ``.5``, ``2e3``); ``inf``/``nan`` and literals
  too large for a float (``1e309``) are ``bad_number``.
- Sections: ``think``/``answer`` hold the (stripped) text of the first section of each name.
  An ``<answer>`` met while ``<think>`` is open closes the think (``unclosed_tag``).

The problem kinds are :data:`ProblemKind`, each explained where it is defined.

>>> tr = parse_trace("<think><obj>woman</obj><box>[374,67,420,224]</box>at<t>9.2</t>s</think>"
...                  "<answer>B</answer>")
>>> tr.claims[0].name, tr.claims[0].boxes, tr.claims[0].t_s, tr.answer, tr.ok
('woman', ((374.0, 67.0, 420.0, 224.0),), 9.2, 'B', True)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from o3video.boxes import XYXY

Span = tuple[int, int]
ProblemKind = Literal[
    "missing_think",  # no <think> section at all; span (0, 0)
    "missing_answer",  # no <answer> section at all; span (n, n), n = len(text)
    "duplicate_section",  # a second <think> or <answer> (the first one's text is kept)
    "nested_tag",  # <think>/<answer> opened inside an open section (the tag is ignored)
    "unbalanced_tag",  # a closing tag that closes nothing (ignored)
    "unclosed_tag",  # a tag never closed (span: to where it was abandoned), or text cut in a tag
    "bad_number",  # a <t> or box number that is not a finite decimal literal
    "bad_box",  # a box that is not 4 comma-separated numbers, in [] or bare
    "empty_name",  # <obj></obj> with a box: the claim is kept with name ""
    "box_without_object",  # a <box> that follows no <obj>; kept in Trace.loose_boxes if valid
    "claim_without_box",  # an <obj> with no valid box after it: no claim
    "claim_without_time",  # a claim with boxes but no <t>: kept with t_s=None
    "text_outside_tags",  # non-blank text outside both sections and outside other problems
]
PROBLEM_KINDS: tuple[str, ...] = get_args(ProblemKind)

# Only these ten literal tags are markup; any other ``<`` is text. Alternation of literals:
# linear time, no backtracking on long garbage.
_TAG = re.compile(r"<(/?)(think|answer|obj|box|t)>")
_TAG_STRINGS = tuple(f"<{c}{n}>" for c in ("", "/") for n in ("think", "answer", "obj", "box", "t"))
_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"  # a decimal literal; no inf/nan/1_0
_NUMBER = re.compile(_NUM)
_UNIT_S = re.compile(r"\s*s(?!\w)")
_SPAN = re.compile(rf"from\s*<t>\s*({_NUM})\s*</t>\s*(?:s\s*)?to\s*<t>\s*({_NUM})\s*</t>", re.I)


@dataclass(frozen=True)
class Problem:
    """One malformation: a stable ``kind`` code, a message, and ``span`` into the text."""

    kind: ProblemKind
    message: str
    span: Span


@dataclass(frozen=True)
class Claim:
    """Evidence: object ``name``, its ``boxes`` as written (model space), time ``t_s``.

    ``t_s`` is ``None`` when the claim has no valid time. ``span`` runs from ``<obj>`` to the
    end of the claim (its ``</t>`` and trailing ``s``, or its last ``</box>``).
    """

    name: str
    boxes: tuple[XYXY, ...]
    t_s: float | None
    span: Span


@dataclass(frozen=True)
class Trace:
    """A parsed trace. ``times_s`` are the bare ``<t>`` values (not a kept claim's time)
    from anywhere in the text, in order, with ``time_spans`` beside them; ``loose_boxes``
    are valid boxes outside any claim; ``think_span``/``answer_span`` are the raw content
    spans of the first section of each name.
    """

    text: str
    think: str | None
    answer: str | None
    claims: tuple[Claim, ...]
    times_s: tuple[float, ...]
    problems: tuple[Problem, ...]
    time_spans: tuple[Span, ...]
    loose_boxes: tuple[XYXY, ...]
    think_span: Span | None
    answer_span: Span | None

    @property
    def ok(self) -> bool:
        """True when nothing at all was wrong."""
        return not self.problems

    @property
    def kinds(self) -> tuple[ProblemKind, ...]:
        """The problems' kinds, in text order."""
        return tuple(p.kind for p in self.problems)

    @property
    def think_times_s(self) -> tuple[float, ...]:
        """Every time inside ``<think>`` (bare and claim times), in text order.

        >>> parse_trace("<think><t>1</t>s <obj>a</obj><box>[0,0,1,1]</box>at<t>2</t>s"
        ...             "</think><answer>From <t>3</t>s to <t>4</t>s</answer>").think_times_s
        (1.0, 2.0)
        """
        return self._times_within(self.think_span)

    @property
    def answer_times_s(self) -> tuple[float, ...]:
        """Every time inside ``<answer>`` (bare and claim times), in text order."""
        return self._times_within(self.answer_span)

    def _times_within(self, span: Span | None) -> tuple[float, ...]:
        if span is None:
            return ()
        marks = [(s[0], t) for t, s in zip(self.times_s, self.time_spans, strict=True)]
        marks += [(c.span[0], c.t_s) for c in self.claims if c.t_s is not None]
        return tuple(t for pos, t in sorted(marks) if span[0] <= pos < span[1])


@dataclass(frozen=True)
class _Element:
    """A closed inline tag: ``kind`` is obj/box/t, ``content`` its inner text."""

    kind: str
    content: str
    start: int
    end: int


def _clip(s: str, n: int = 40) -> str:
    return repr(s if len(s) <= n else s[:n] + "…")


def _number(raw: str) -> float | None:
    """The value of a decimal literal (whitespace around allowed), else ``None``; may be inf."""
    s = raw.strip()
    return float(s) if _NUMBER.fullmatch(s) else None


def _partial_tag_start(text: str) -> int:
    """Where a tag cut off by the end of the text starts (``len(text)`` if none)."""
    k = text.rfind("<", max(0, len(text) - 8))
    if k >= 0:
        tail = text[k:]
        if any(tag.startswith(tail) and tag != tail for tag in _TAG_STRINGS):
            return k
    return len(text)


def _scan(
    text: str, limit: int, problems: list[Problem]
) -> tuple[list[_Element], dict[str, Span], list[Span]]:
    """Walk the tags before ``limit``: inline elements, section content spans, section extents."""
    elements: list[_Element] = []
    sections: dict[str, Span] = {}
    extents: list[Span] = []
    inline: tuple[str, int, int] | None = None  # (name, tag start, content start)
    section: tuple[str, int, int] | None = None

    def close_section(content_end: int, tag_end: int) -> None:
        assert section is not None
        name, start, content_start = section
        sections.setdefault(name, (content_start, content_end))
        extents.append((start, tag_end))

    def report(kind: ProblemKind, msg: str, span: Span) -> None:
        problems.append(Problem(kind, msg, span))

    for m in _TAG.finditer(text, 0, limit):
        start, end, closing, name = m.start(), m.end(), m.group(1) == "/", m.group(2)
        if name in ("obj", "box", "t"):
            if not closing:
                if inline is not None:
                    report("unclosed_tag", f"<{inline[0]}> never closed", (inline[1], start))
                inline = (name, start, end)
            elif inline is not None and inline[0] == name:
                elements.append(_Element(name, text[inline[2] : start], inline[1], end))
                inline = None
            else:
                report("unbalanced_tag", f"</{name}> closes nothing", (start, end))
            continue
        if inline is not None:  # a section tag abandons an open inline tag
            report("unclosed_tag", f"<{inline[0]}> never closed", (inline[1], start))
            inline = None
        if closing:
            if section is not None and section[0] == name:
                close_section(start, end)
                section = None
            else:
                report("unbalanced_tag", f"</{name}> closes nothing", (start, end))
        elif section is not None and section[0] == "think" and name == "answer":
            report("unclosed_tag", "<think> never closed before <answer>", (section[1], start))
            close_section(start, start)
            section = (name, start, end)
        elif section is not None:
            report("nested_tag", f"<{name}> inside <{section[0]}>", (start, end))
        else:
            if name in sections:
                report("duplicate_section", f"a second <{name}> section", (start, end))
            section = (name, start, end)
    if inline is not None:
        report("unclosed_tag", f"<{inline[0]}> never closed", (inline[1], len(text)))
    if section is not None:
        report("unclosed_tag", f"<{section[0]}> never closed", (section[1], len(text)))
        close_section(limit, len(text))
    return elements, sections, extents


def _box(el: _Element, problems: list[Problem]) -> XYXY | None:
    body = el.content.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    values = [_number(part) for part in body.split(",")]
    nums = [v for v in values if v is not None]
    if len(values) != 4 or len(nums) != 4:
        msg = f"a box needs 4 comma-separated numbers: {_clip(el.content)}"
        problems.append(Problem("bad_box", msg, (el.start, el.end)))
        return None
    if not all(math.isfinite(v) for v in nums):
        msg = f"box number out of range: {_clip(el.content)}"
        problems.append(Problem("bad_number", msg, (el.start, el.end)))
        return None
    return (nums[0], nums[1], nums[2], nums[3])


def _time(el: _Element, problems: list[Problem]) -> float | None:
    value = _number(el.content)
    if value is None or not math.isfinite(value):
        msg = f"not a finite number of seconds: {_clip(el.content)}"
        problems.append(Problem("bad_number", msg, (el.start, el.end)))
        return None
    return value


def _unit_end(text: str, pos: int) -> int:
    """End of the optional ``s`` (seconds) after a ``</t>`` ending at ``pos``."""
    m = _UNIT_S.match(text, pos)
    return m.end() if m else pos


def _assemble(
    text: str, els: list[_Element], problems: list[Problem]
) -> tuple[list[Claim], list[tuple[float, Span]], list[XYXY]]:
    """Group inline elements into claims; the rest are bare times and loose boxes."""
    claims: list[Claim] = []
    times: list[tuple[float, Span]] = []
    loose: list[XYXY] = []
    i = 0
    while i < len(els):
        el = els[i]
        i += 1
        if el.kind == "box":
            msg = "a <box> not preceded by an <obj>"
            problems.append(Problem("box_without_object", msg, (el.start, el.end)))
            box = _box(el, problems)
            if box is not None:
                loose.append(box)
            continue
        if el.kind == "t":
            t = _time(el, problems)
            if t is not None:
                times.append((t, (el.start, _unit_end(text, el.end))))
            continue
        # An <obj>, then boxes separated by whitespace, then "at" (optional) and a <t>.
        end, boxes, t_el = el.end, [], None
        while i < len(els) and els[i].kind == "box" and not text[end : els[i].start].strip():
            box = _box(els[i], problems)
            if box is not None:
                boxes.append(box)
            end = els[i].end
            i += 1
        at_gap = i < len(els) and text[end : els[i].start].strip().lower() in ("", "at")
        if at_gap and els[i].kind == "t":
            t_el = els[i]
            end = _unit_end(text, t_el.end)
            i += 1
        t = _time(t_el, problems) if t_el is not None else None
        name, span = el.content.strip(), (el.start, end)
        if not boxes:
            msg = f"<obj>{_clip(name)}</obj> has no valid box"
            problems.append(Problem("claim_without_box", msg, span))
            if t_el is not None and t is not None:
                times.append((t, (t_el.start, end)))
            continue
        if not name:
            problems.append(Problem("empty_name", "<obj></obj> names nothing", span))
        if t_el is None:
            msg = f"<obj>{_clip(name)}</obj> has no <t> time"
            problems.append(Problem("claim_without_time", msg, span))
        claims.append(Claim(name, tuple(boxes), t, span))
    return claims, times, loose


def _outside(text: str, covered: list[Span]) -> list[Problem]:
    """``text_outside_tags`` for each non-blank stretch not in ``covered``."""
    found: list[Problem] = []
    pos = 0
    for start, end in [*sorted(covered), (len(text), len(text))]:
        if start > pos:
            chunk = text[pos:start]
            stripped = chunk.strip()
            if stripped:
                s = pos + (len(chunk) - len(chunk.lstrip()))
                msg = f"text outside <think>/<answer>: {_clip(stripped)}"
                found.append(Problem("text_outside_tags", msg, (s, s + len(stripped))))
        pos = max(pos, end)
    return found


def parse_trace(text: str) -> Trace:
    """Parse a model's output; never raises. See the module docstring for the policy.

    >>> tr = parse_trace("<think><obj>dog</obj> <box>[1, 2, 3, 4]</box>\\n at <t>5</t> s"
    ...                  "<box>[9,9,9,9]</box></think>")
    >>> tr.claims[0].boxes, tr.claims[0].t_s, tr.loose_boxes
    (((1.0, 2.0, 3.0, 4.0),), 5.0, ((9.0, 9.0, 9.0, 9.0),))
    >>> tr.kinds
    ('box_without_object', 'missing_answer')
    """
    n = len(text)
    problems: list[Problem] = []
    limit = _partial_tag_start(text)
    if limit < n:
        msg = f"text ends inside a tag: {_clip(text[limit:])}"
        problems.append(Problem("unclosed_tag", msg, (limit, n)))
    elements, sections, extents = _scan(text, limit, problems)
    claims, times, loose = _assemble(text, elements, problems)
    if "think" not in sections:
        problems.append(Problem("missing_think", "no <think> section", (0, 0)))
    if "answer" not in sections:
        problems.append(Problem("missing_answer", "no <answer> section", (n, n)))
    problems += _outside(text, extents + [p.span for p in problems])
    problems.sort(key=lambda p: p.span)
    think_span, answer_span = sections.get("think"), sections.get("answer")
    return Trace(
        text=text,
        think=None if think_span is None else text[think_span[0] : think_span[1]].strip(),
        answer=None if answer_span is None else text[answer_span[0] : answer_span[1]].strip(),
        claims=tuple(claims),
        times_s=tuple(t for t, _ in times),
        problems=tuple(problems),
        time_spans=tuple(s for _, s in times),
        loose_boxes=tuple(loose),
        think_span=think_span,
        answer_span=answer_span,
    )


def parse_span(text: str) -> tuple[float, float] | None:
    """The first ``From <t>S</t>s to <t>E</t>s`` in ``text`` (whitespace and case tolerated).

    ``None`` when there is none or a number is not finite. A reversed span is returned as
    written: scoring decides what it is worth.

    >>> parse_span("<answer>From <t>2.5</t>s to <t>7</t>s.</answer>")
    (2.5, 7.0)
    >>> parse_span("between 2 and 7 seconds") is None
    True
    """
    m = _SPAN.search(text)
    if m is None:
        return None
    start, end = float(m.group(1)), float(m.group(2))
    return (start, end) if math.isfinite(start) and math.isfinite(end) else None


def format_number(value: float) -> str:
    """A box coordinate: integral values as ints, others as the shortest exact float.

    >>> format_number(374.0), format_number(9.25), format_number(-3)
    ('374', '9.25', '-3')
    """
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"cannot write a non-finite number: {value!r}")
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def format_time(t_s: float, *, decimals: int | None = None) -> str:
    """Seconds as written inside ``<t>``.

    ``decimals=None`` writes the shortest text that reads back as exactly ``t_s`` (``9.0``,
    ``9.25``); an int rounds to that many decimals, like the frame labels of SPEC §3.

    >>> format_time(9.0), format_time(9.25), format_time(9.25, decimals=1)
    ('9.0', '9.25', '9.2')
    """
    x = float(t_s)
    if not math.isfinite(x):
        raise ValueError(f"cannot write a non-finite time: {t_s!r}")
    if decimals is None:
        return repr(x)
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    return f"{x:.{decimals}f}"


def format_claim(
    name: str,
    boxes: Sequence[Sequence[float]],
    t_s: float | None,
    *,
    decimals: int | None = None,
) -> str:
    """A claim in the strict published form, which every parser reads.

    The name is written stripped; a name that is blank or holds ``<`` or ``>`` is a
    ``ValueError`` (it could not be read back). Boxes use :func:`format_number`, the time
    :func:`format_time`; ``t_s=None`` writes a spatial-only claim (no ``at<t>…</t>s``).
    :func:`parse_trace` reads back exactly the stripped name, the boxes and the time.

    >>> format_claim("woman", [(374, 67, 420, 224)], 9.2)
    '<obj>woman</obj><box>[374,67,420,224]</box>at<t>9.2</t>s'
    >>> format_claim("cup", [(1, 2, 3.5, 4), (5, 6, 7, 8)], None)
    '<obj>cup</obj><box>[1,2,3.5,4]</box><box>[5,6,7,8]</box>'
    """
    clean = name.strip()
    if not clean or "<" in clean or ">" in clean:
        raise ValueError(f"an object name must be non-blank and free of '<' '>': {name!r}")
    if not boxes:
        raise ValueError("a claim needs at least one box")
    parts = [f"<obj>{clean}</obj>"]
    for box in boxes:
        if len(box) != 4:
            raise ValueError(f"a box needs 4 numbers, got {len(box)}: {list(box)!r}")
        parts.append("<box>[" + ",".join(format_number(v) for v in box) + "]</box>")
    if t_s is not None:
        parts.append(f"at<t>{format_time(t_s, decimals=decimals)}</t>s")
    return "".join(parts)


def format_span(start_s: float, end_s: float, *, decimals: int | None = None) -> str:
    """The temporal-grounding answer form; :func:`parse_span` reads it back exactly.

    >>> format_span(2.5, 7.0)
    'From <t>2.5</t>s to <t>7.0</t>s'
    """
    s, e = format_time(start_s, decimals=decimals), format_time(end_s, decimals=decimals)
    return f"From <t>{s}</t>s to <t>{e}</t>s"

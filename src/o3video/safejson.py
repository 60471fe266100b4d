"""JSON from outside (data files, model text, request bodies) with bounded nesting.

``json.loads`` recurses once per ``[`` or ``{``: 100,000 nested brackets raise
``RecursionError`` (not ``ValueError``), which readers that expect malformed input to be a
``ValueError`` let through as a crash. :func:`check_depth` measures the nesting without
recursion, in one pass (strings skipped); :func:`loads` refuses anything deeper than
``max_depth`` with :class:`TooDeep`, a ``json.JSONDecodeError`` (so a ``ValueError``) with the
position where the limit was passed.

>>> loads('{"a": [1, [2, "]]]"]]}')
{'a': [1, [2, ']]]']]}
>>> check_depth("[" * 5 + "]" * 5, max_depth=5)
>>> loads("[" * 100_000)
Traceback (most recent call last):
...
o3video.safejson.TooDeep: nested deeper than 64 levels: line 1 column 65 (char 64)
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

MAX_DEPTH = 64
"""The deepest nesting accepted by default: far beyond any record, answer or request this
project reads (they nest 3 to 5 levels)."""

# A whole string (escapes included; an unterminated one runs to the end), or one bracket.
_STRING_RE = r'"[^"\\]*(?:\\.[^"\\]*)*"?'
_TOKEN = re.compile(_STRING_RE + r"|[\[\]{}]", re.S)
_STRING = re.compile(_STRING_RE, re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class TooDeep(json.JSONDecodeError):
    """JSON nested deeper than the reader's limit; ``pos`` is where the limit was passed."""


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    """:class:`TooDeep` when ``text`` nests deeper than ``max_depth``.

    Fast in the common case (a data file of many MB): strings and everything but brackets are
    dropped by regular expressions, the depth of what is left is a running sum (numpy); only
    a text found too deep is walked token by token, for the position."""
    if text.count("[") + text.count("{") <= max_depth:
        return
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if brackets:
        steps = np.frombuffer(brackets.encode("ascii"), np.uint8)
        level = np.cumsum(np.where((steps == 91) | (steps == 123), 1, -1), dtype=np.int32)
        # A closer without its opener does not go below 0 (as in the walk below).
        level -= np.minimum(np.minimum.accumulate(level), 0)
        if int(level.max()) <= max_depth:
            return
    depth = 0
    for m in _TOKEN.finditer(text):
        c = m.group()[0]
        if c in "[{":
            depth += 1
            if depth > max_depth:
                raise TooDeep(f"nested deeper than {max_depth} levels", text, m.start())
        elif c in "]}":
            depth = max(0, depth - 1)


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` of ``text`` after :func:`check_depth`: every failure is a
    ``json.JSONDecodeError`` (a ``ValueError``), never a ``RecursionError``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    check_depth(text, max_depth)
    return json.loads(text)

"""Append-only JSON-lines files that survive a kill: the runner's records, the judge's
cache, the curation journal.

Writers append one line per entry and flush it, so a process killed at any point leaves
complete lines plus at most one cut-off last line. :func:`read_lines` reads such a file back:
with ``repair=True`` (before appending again) it truncates the cut-off line, with a warning,
so that the next line starts clean; with ``repair=False`` it only skips it.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "log.jsonl"
>>> _ = p.write_text('{"a": 1}\\n{"a": 2')
>>> read_lines(p)
[(1, '{"a": 1}')]
>>> p.read_text()
'{"a": 1}\\n'
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)


def read_lines(path: str | os.PathLike[str], *, repair: bool = True) -> list[tuple[int, str]]:
    """``(line number, text)`` of the complete, non-blank lines of ``path`` (none if it does
    not exist). A last line without its newline was cut off by a kill: it is dropped with a
    warning and, with ``repair``, truncated from the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        logger.warning("%s: dropping a cut-off last line (%d bytes)", path, len(data) - cut)
        if repair:
            with open(path, "r+b") as f:
                f.truncate(cut)
        data = data[:cut]
    text = data.decode("utf-8", "replace")
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]

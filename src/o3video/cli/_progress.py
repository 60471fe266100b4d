"""A progress line on stderr for long commands: done/total, rate and time left.

On a terminal the line is rewritten in place (carriage return); elsewhere (a log file, a
test) one line is printed at every tenth of the work, so that logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``.

    >>> format_duration(4.25), format_duration(185), format_duration(3725)
    ('4.2 s', '3 min 05 s', '1 h 02 min')
    """
    if seconds < 59.5:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressLine:
    """Call with ``(done, total)`` after each unit of work; ``unit`` names it ("videos").

    The rate and the time left count only the work done since the first call, so that a
    resumed job that starts at ``done > 0`` (its earlier work skipped) shows its real pace."""

    def __init__(self, unit: str, stream: TextIO | None = None) -> None:
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self._tenth = -1
        self._base: int | None = None

    def __call__(self, done: int, total: int) -> None:
        if self._base is None:
            self._base = done
        elapsed = time.perf_counter() - self.start
        rate = (done - self._base) / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else float("nan")
        eta = format_duration(left) if left == left else "?"
        line = (
            f"{done}/{total} {self.unit} ({done / max(total, 1):.0%}), "
            f"{rate:.2f} {self.unit}/s, {format_duration(elapsed)} elapsed, ETA {eta}"
        )
        if self.tty:
            end = "\n" if done >= total else ""
            print(f"\r{line}\x1b[K", end=end, file=self.stream, flush=True)
            return
        tenth = done * 10 // max(total, 1)
        if tenth > self._tenth:
            self._tenth = tenth
            print(line, file=self.stream, flush=True)

"""Is an RL run's When gain better timing, or just longer spans?

Reads the probe file of RL runs whose probe is a set of When records (``rl.probe_stgr``, e.g.
the When records of a held-out corpus) and prints, per run and evaluation (first and last),
the mean start and length of the answered spans and their mean tIoU. It then takes the
first evaluation's spans (the starting policy), widens each one by a fixed amount with no
learning (half on each side, clamped to the video), and prints the tIoU each widening would
have scored. A run whose gain is matched by a fixed widening has learned to cover more, not
to localise better.

Example::

    python benchmarks/span_widening.py runs/W1c-s0 runs/W1c-s1 \\
        --records runs/exp-when/heldout_when.json --widen 0.5 0.9 1.5 2.0

The spans are read as the evaluation reads them (:func:`o3video.protocols.readers.read_span`);
an answer without a span scores 0 and is left out of the start and length means. The truth
is each record's ``vstar.timestamps`` and the video's length ``vstar.frame_count / vstar.fps``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from o3video.boxes import interval_iou
from o3video.protocols.readers import read_span

Span = tuple[float, float]


def truths(records: Path) -> list[tuple[Span, float]]:
    """``(truth span, video length in s)`` of every record of the STGR file ``records``."""
    try:
        rows = json.loads(records.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SystemExit(f"{records}: cannot read the records ({e})") from e
    out = []
    for i, row in enumerate(rows if isinstance(rows, list) else []):
        try:
            v = row["vstar"]
            start, end = (float(x) for x in v["timestamps"])
            out.append(((start, end), float(v["frame_count"]) / float(v["fps"])))
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            raise SystemExit(f"{records}: record {i} has no usable vstar timestamps ({e!r})") from e
    if not out:
        raise SystemExit(f"{records}: no record")
    return out


def evaluations(run: Path) -> list[dict[str, Any]]:
    """The lines of ``run/probe.jsonl`` that hold completions."""
    path = run / "probe.jsonl"
    try:
        lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: cannot read the probe file ({e})") from e
    lines = [x for x in lines if isinstance(x, dict) and x.get("completions")]
    if not lines:
        raise SystemExit(f"{path}: no evaluation with completions")
    return lines


def spans(completions: Sequence[str]) -> list[Span | None]:
    """The span of each completion as the evaluation reads it, ``None`` without one."""
    return [read_span(c) for c in completions]


def mean_tiou(answered: Sequence[Span | None], truth: Sequence[tuple[Span, float]]) -> float:
    """Mean tIoU over the items (an item without a span scores 0).

    >>> mean_tiou([(0.0, 2.0), None], [((1.0, 2.0), 6.0), ((0.0, 1.0), 6.0)])
    0.25
    """
    scores = [interval_iou(a, t) if a else 0.0 for a, (t, _) in zip(answered, truth, strict=False)]
    return sum(scores) / len(scores)


def widen(
    answered: Sequence[Span | None], truth: Sequence[tuple[Span, float]], by: float
) -> list[Span | None]:
    """Each span widened by ``by`` seconds, half on each side, clamped to its video.

    >>> widen([(1.0, 2.0), None], [((0.0, 1.0), 6.0), ((0.0, 1.0), 6.0)], 3.0)
    [(0.0, 3.5), None]
    """
    return [
        (max(0.0, a[0] - by / 2), min(length, a[1] + by / 2)) if a else None
        for a, (_, length) in zip(answered, truth, strict=False)
    ]


def shape(answered: Sequence[Span | None]) -> tuple[float, float]:
    """Mean start and mean length of the answered spans."""
    got = [a for a in answered if a]
    if not got:
        return float("nan"), float("nan")
    return statistics.fmean(a[0] for a in got), statistics.fmean(a[1] - a[0] for a in got)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders holding probe.jsonl")
    parser.add_argument("--records", type=Path, required=True, help="the probe's STGR file")
    parser.add_argument("--widen", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0],
                        help="seconds to widen the first evaluation's spans by")  # fmt: skip
    args = parser.parse_args(argv)
    truth = truths(args.records)
    t_start, t_len = shape([t for t, _ in truth])
    out = sys.stdout
    out.write(f"truth: {len(truth)} items, mean start {t_start:.2f} s, length {t_len:.2f} s\n\n")
    out.write(
        "| run | step | answered | mean start | mean length | tIoU |\n|---|---|---|---|---|---|\n"
    )
    first: list[Span | None] | None = None
    for run in args.runs:
        lines = evaluations(run)
        for line in (lines[0], lines[-1]):
            answered = spans(line["completions"])
            if len(answered) > len(truth):
                raise SystemExit(
                    f"{run}: {len(answered)} probe items, {args.records} has {len(truth)}"
                )
            start, length = shape(answered)
            n = sum(a is not None for a in answered)
            out.write(f"| {run.name} | {line['step']} | {n}/{len(answered)} | {start:.2f} s "
                      f"| {length:.2f} s | {mean_tiou(answered, truth):.3f} |\n")  # fmt: skip
        first = first or spans(lines[0]["completions"])
    assert first is not None
    out.write("\nThe first run's first evaluation, each span widened with no learning:\n\n")
    out.write("| widened by | tIoU |\n|---|---|\n")
    out.write(f"| 0 s | {mean_tiou(first, truth):.3f} |\n")
    for by in args.widen:
        out.write(f"| {by:g} s | {mean_tiou(widen(first, truth, by), truth):.3f} |\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

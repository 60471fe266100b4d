"""`o3video trace`: parse a grounded reasoning trace and print what it holds.

Reads model output from a file (or ``-`` for standard input) and prints its claims (object,
boxes as written, time), its bare times, the answer and every malformation found, with the
character span of each. Useful to check what a model wrote before scoring or drawing it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from o3video.errors import O3VideoError
from o3video.evidence import Trace, parse_trace

NAME = "trace"
HELP = "parse a grounded trace (<think>/<obj>/<box>/<t>) and list claims and problems"
EXAMPLES = """examples:
  o3video trace answer.txt
  echo '<think><obj>dog</obj><box>[1,2,3,4]</box>at<t>3.5</t>s</think><answer>A</answer>' \\
      | o3video trace - --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a text file with the model output, or - for stdin")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def trace_to_dict(trace: Trace) -> dict[str, object]:
    """A JSON-ready view of a parsed trace."""
    return {
        "think": trace.think,
        "answer": trace.answer,
        "claims": [asdict(c) for c in trace.claims],
        "times_s": list(trace.times_s),
        "problems": [asdict(p) for p in trace.problems],
    }


def _read(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    path = Path(file)
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise O3VideoError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def run(args: argparse.Namespace) -> int:
    trace = parse_trace(_read(args.file))
    if args.json:
        print(json.dumps(trace_to_dict(trace), ensure_ascii=False))
        return 0
    print(f"answer: {trace.answer!r}")
    print(f"claims: {len(trace.claims)}")
    for c in trace.claims:
        t = "-" if c.t_s is None else f"{c.t_s:g}s"
        boxes = " ".join("[" + ",".join(f"{v:g}" for v in b) + "]" for b in c.boxes)
        print(f"  {c.name:<20} {t:>8}  {boxes}")
    if trace.times_s:
        print("bare times: " + ", ".join(f"{t:g}s" for t in trace.times_s))
    print(f"problems: {len(trace.problems)}")
    for p in trace.problems:
        print(f"  {p.kind:<20} chars {p.span[0]}-{p.span[1]}: {p.message}")
    return 0

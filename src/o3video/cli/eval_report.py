"""`o3video eval report`: compare evaluation runs in one table, a CSV and a chart.

Each RUN_DIR holds the ``scores.json`` its runner wrote (or give the ``.json`` file itself).
V-STaR runs make one table of What, When C1/C2, Where C1/C2, mAM and mLGM in % (SPEC §7), one
row per run named by its label, else its model, else its directory; ``--published`` adds the
published rows of SPEC §7. Runs of other benchmarks get a table of their top-level scores.
Runs measured under different protocols (``scores.json``'s ``protocol``, else ``run.json``'s,
else ``o3video``) are never shown as equals: the table gets a note naming each protocol's rows,
each row name carries its protocol, and the CSV a ``protocol`` column.
The tables are printed (markdown) and written to ``--out`` (default ``./eval-report/``):
``report.md``, ``report.csv`` and ``report.png`` for V-STaR, ``report-<benchmark>.csv`` and
``.png`` for the others. The charts need matplotlib (``pip install 'o3video[plot]'``);
``--no-plot`` skips them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from o3video.eval.report import write_report

NAME = "report"
HELP = "compare evaluation runs: markdown table, CSV and bar chart"
DEFAULT_OUT = Path("eval-report")
EXAMPLES = """examples:
  o3video eval report runs/vstar-base runs/vstar-rl
  o3video eval report runs/vstar-rl --published --out reports/vstar
  o3video eval report runs/*/ --no-plot
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``eval report``; the parser should use ``__doc__`` and ``EXAMPLES``
    with :class:`argparse.RawDescriptionHelpFormatter`."""
    parser.add_argument(
        "runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directory with scores.json"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output directory (default ./eval-report)"
    )
    parser.add_argument(
        "--published", action="store_true", help="add the published V-STaR rows (SPEC §7)"
    )
    parser.add_argument("--no-plot", action="store_true", help="write no PNG chart")


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser of this command (tests; ``o3video eval report`` wires its own)."""
    parser = argparse.ArgumentParser(
        prog="o3video eval report",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the report and print its tables; errors (a bad scores.json) propagate as
    :class:`~o3video.errors.O3VideoError`, which ``o3video`` prints."""
    report = write_report(args.runs, args.out, published=args.published, plot=not args.no_plot)
    print(report.markdown, end="")
    print(f"\nwrote {', '.join(p.name for p in report.files)} in {args.out}")
    return 0

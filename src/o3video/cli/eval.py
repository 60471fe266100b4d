"""`o3video eval`: run and score a model on a benchmark (V-STaR, SPEC §7), compare runs.

``o3video eval vstar --model M --data D --out RUN`` runs the five V-STaR generations per
item, resumably (``--shard i/n`` and ``eval merge RUN`` split it across processes), judges
the What answers and writes the scores and a report (:mod:`o3video.cli.eval_vstar`).
``o3video eval report RUN...`` compares finished runs.

``o3video eval vstar-score RESULTS.json --judgements RATINGS.json`` scores a results file in the
official format (a JSON list of V-STaR items, each with ``answer_vqa``, ``answer_temporal``,
``answer_spatial``, ``answer_spatial_2`` and ``answer_temporal_2``) given the judge's What ratings
(a JSON list aligned with the results: 0–3, -1 unparsable, null where the item has no What answer).
It prints Acc, tIoU, vIoU, AM, LGM per chain, mAM and mLGM, R1@{0.3,0.5,0.7}, vIoU@{0.1..0.9},
per domain and per duration. ``--mode official`` reproduces the official eval.py exactly,
``--mode default`` (the default) fixes its defects and lists what it changed: it reads the replies
(``*_pre`` fields, when the file keeps them) in the box space and frame size each item records
(``box_space``, ``input_shape``), so scoring a results file of ``eval vstar`` in either mode gives
that run's scores. ``temporal_question`` and ``spatial_question*`` may be absent.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from o3video.cli import eval_report, eval_vstar
from o3video.eval.vstar_score import (
    ScoreConfig,
    format_table,
    score_vstar_files,
)
from o3video.video import DEFAULT_MAX_PIXELS, QWEN25_FACTOR

NAME = "eval"
HELP = "run and score a model on a benchmark (V-STaR), compare runs"
EXAMPLES = """examples:
  o3video eval vstar-score results.json --judgements ratings.json
  o3video eval vstar-score results.json --judgements ratings.json --mode official --json
  o3video eval vstar-score results.json --judgements ratings.json --box-space frame_px
  o3video eval vstar --model runs/synthetic-tiny-gspo/final --data runs/synth-eval --out runs/ev
  o3video eval report runs/ev runs/ev-sft --published
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="eval_command", metavar="SUBCOMMAND", required=True)
    score = sub.add_parser(
        "vstar-score",
        help="score a V-STaR results file with its What ratings",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _score_arguments(score)
    runner = sub.add_parser(
        "vstar",
        help="run a model on V-STaR (resumable, shardable), judge and score it",
        description=eval_vstar.__doc__,
        epilog=eval_vstar.RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    eval_vstar.add_run_arguments(runner)
    bench = sub.add_parser(
        "bench",
        help="run a model on a general benchmark (VideoMME, MVBench, Charades-STA, ...)",
        description=eval_vstar.BENCH_DESCRIPTION,
        epilog=eval_vstar.BENCH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    eval_vstar.add_bench_arguments(bench)
    baseline = sub.add_parser(
        "vstar-baseline",
        help="score the constant baseline (training answer, span and box) on V-STaR",
        description=eval_vstar.__doc__,
        epilog="example:\n  o3video eval vstar-baseline --train runs/synth --data runs/synth-eval "
        "--out runs/ev-baseline\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    eval_vstar.add_baseline_arguments(baseline)
    merge = sub.add_parser(
        "merge",
        help="join the shards of a V-STaR run, judge and score it",
        description=eval_vstar.__doc__,
        epilog=eval_vstar.MERGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    eval_vstar.add_merge_arguments(merge)
    report = sub.add_parser(
        "report",
        help="compare finished runs: markdown table, CSV and bar chart",
        description=eval_report.__doc__,
        epilog=eval_report.EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    eval_report.add_arguments(report)


def _score_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=Path, help="JSON list of V-STaR items with the five answers")
    p.add_argument(
        "--judgements", type=Path, required=True, metavar="RATINGS.json", help="What ratings"
    )
    p.add_argument("--mode", choices=("default", "official"), default="default")
    p.add_argument(
        "--box-space",
        choices=("source_px", "frame_px", "rel1000"),
        default="source_px",
        help="space of the predicted boxes (default mode only) for items that do not record "
        "their own box_space (files written by `eval vstar` do); default: original pixels",
    )
    p.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="frame_px: frame budget"
    )
    p.add_argument("--factor", type=int, default=QWEN25_FACTOR, help="frame_px: 28 or 32")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    if args.eval_command == "vstar-score":
        return _run_score(args)
    if args.eval_command == "vstar":
        return eval_vstar.run_vstar_command(args)
    if args.eval_command == "bench":
        return eval_vstar.run_bench_command(args)
    if args.eval_command == "vstar-baseline":
        return eval_vstar.run_baseline_command(args)
    if args.eval_command == "merge":
        return eval_vstar.run_merge_command(args)
    if args.eval_command == "report":
        return eval_report.run(args)
    raise AssertionError(args.eval_command)


def _run_score(args: argparse.Namespace) -> int:
    cfg = ScoreConfig(
        mode=args.mode, box_space=args.box_space, max_pixels=args.max_pixels, factor=args.factor
    )
    scores = score_vstar_files(args.results, args.judgements, cfg)
    if args.json:
        print(json.dumps(scores.to_dict()))
    else:
        print(format_table(scores))
    return 0

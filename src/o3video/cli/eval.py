"""`o3video eval`: score a model on a benchmark (V-STaR, SPEC §7).

``o3video eval vstar-score RESULTS.json --judgements RATINGS.json`` scores a results file in the
official format (a JSON list of V-STaR items, each with ``answer_vqa``, ``answer_temporal``,
``answer_spatial``, ``answer_spatial_2`` and ``answer_temporal_2``) given the judge's What ratings
(a JSON list aligned with the results: 0–3, -1 unparsable, null where the item has no What answer).
It prints Acc, tIoU, vIoU, AM, LGM per chain, mAM and mLGM, R1@{0.3,0.5,0.7}, vIoU@{0.1..0.9},
per domain and per duration. ``--mode official`` reproduces the official eval.py exactly,
``--mode default`` (the default) fixes its defects and lists what it changed.

``o3video eval vstar`` (the generation runner) is not available in this version yet.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from o3video.cli._pending import add_passthrough, not_yet
from o3video.eval.vstar_score import (
    R1_THRESHOLDS,
    VIOU_THRESHOLDS,
    GroupScores,
    ScoreConfig,
    VStarScores,
    score_vstar_files,
)
from o3video.video import DEFAULT_MAX_PIXELS, QWEN25_FACTOR

NAME = "eval"
HELP = "score a model on a benchmark (V-STaR): vstar-score works, vstar not yet"
EXAMPLES = """examples:
  o3video eval vstar-score results.json --judgements ratings.json
  o3video eval vstar-score results.json --judgements ratings.json --mode official --json
  o3video eval vstar-score results.json --judgements ratings.json --box-space frame_px
  o3video eval vstar --model PATH          # not available in this version yet
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
    runner = sub.add_parser("vstar", help="run a model on V-STaR (not available yet)")
    add_passthrough(runner)


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
        help="space of the predicted boxes (default mode only; default: original pixels)",
    )
    p.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="frame_px: frame budget"
    )
    p.add_argument("--factor", type=int, default=QWEN25_FACTOR, help="frame_px: 28 or 32")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    if args.eval_command == "vstar-score":
        return _run_score(args)
    return not_yet(f"{NAME} vstar", "the V-STaR generation runner")


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


def _pct(x: float | None) -> str:
    # One space before every cell: LGM is unbounded (a clamped perfect term gives ~2072 %).
    return "    n/a" if x is None else f" {100 * x:6.1f}"


def _at(thresholds: tuple[float, ...], values: tuple[float | None, ...]) -> str:
    return ", ".join(f"@{t:g} {_pct(v).strip()}" for t, v in zip(thresholds, values, strict=True))


def _row(label: str, g: GroupScores) -> str:
    cells = (g.acc, g.tiou[0], g.tiou[1], g.viou[0], g.viou[1], g.mam)
    return f"{label:<16}{g.n:>6}" + "".join(_pct(c) for c in cells) + f"{_pct(g.mlgm)}"


def format_table(scores: VStarScores) -> str:
    """The readable report: one row per group (in %), then recall thresholds and notes."""
    head = f"{'V-STaR (' + scores.mode + ')':<16}{'n':>6}" + "".join(
        f" {h:>6}" for h in ("What", "When1", "When2", "Where1", "Where2", "mAM", "mLGM")
    )
    lines = [head, _row("all", scores.overall)]
    lines += [_row(f"  {k}", g) for k, g in scores.by_duration.items()]
    lines += [_row(f"  {k}", g) for k, g in scores.by_domain.items()]
    o = scores.overall
    for k in (0, 1):
        r1, at = _at(R1_THRESHOLDS, o.r1[k]), _at(VIOU_THRESHOLDS, o.viou_at[k])
        lines.append(f"chain {k + 1}: AM {_pct(o.am[k]).strip()}, LGM {_pct(o.lgm[k]).strip()}")
        lines.append(f"  tIoU R1 {r1}")
        lines.append(f"  vIoU    {at}")
    lines += [f"note: {n}" for n in scores.notes]
    return "\n".join(lines)

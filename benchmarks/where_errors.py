"""Where do a model's V-STaR Where answers lose their vIoU: the seconds, or the boxes?

V-STaR scores a Where answer, per box of the truth, by the best IoU of the answer's boxes at
that box's second (0 when the answer names no box there), and averages; seconds the answer
names beyond the truth's cost nothing. So an answer loses in two ways: it misses the truth's
seconds (chain 2 asks Where before When, so the model must find the seconds itself; chain 1's
question names them), or its boxes miss at the right seconds.

For each ``o3video eval vstar`` run folder (its ``results.json``), per chain, the script prints:

- how many answers were read (``o3video.eval.vstar_parse.parse_box_answer``; an answer with
  no box read counts as naming no second);
- the seconds an answer names and the truth holds, on average;
- the share of the truth's boxes whose second the answer names;
- the mean best IoU at those seconds;
- the vIoU as defined above (the boxes are those of ``results.json``, already in the truth's
  frame), which is the product of the two when every item has one box of the truth.

The last figure is ``o3video eval vstar``'s default-mode score computed again from
``results.json``; the score to report is still the one ``eval vstar`` writes.

    python benchmarks/where_errors.py runs/eval-T4b-800 runs/eval-T4b-W7L-s0
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from o3video.boxes import XYXY
from o3video.eval.vstar_parse import parse_box_answer
from o3video.rewards.spatial import best_iou

CHAINS = (("chain 1", "answer_spatial"), ("chain 2", "answer_spatial_2"))
"""(label, the ``results.json`` field of that chain's Where answer)."""

Boxes = Mapping[float, Sequence[XYXY]]


def truth_boxes(row: Mapping[str, Any]) -> Boxes:
    """The truth's boxes by second, from a V-STaR row's ``bboxes``.

    >>> truth_boxes({"bboxes": [{"timestamp": 2, "xmin": 0, "ymin": 0, "xmax": 4, "ymax": 4}]})
    {2.0: [(0.0, 0.0, 4.0, 4.0)]}
    """
    out: dict[float, list[XYXY]] = {}
    for b in row.get("bboxes") or []:
        box = (float(b["xmin"]), float(b["ymin"]), float(b["xmax"]), float(b["ymax"]))
        out.setdefault(float(b["timestamp"]), []).append(box)
    return out


def box_ious(pred: Boxes, gt: Boxes) -> list[float | None]:
    """Per box of the truth: the best IoU of the answer's boxes at its second, ``None`` when
    the answer names no box at that second (seconds match only when equal, as in
    ``o3video eval vstar``).

    >>> box_ious({1: [(0, 0, 2, 2)], 2: [(0, 0, 2, 2)]}, {2: [(0, 0, 2, 2)], 3: [(0, 0, 1, 1)]})
    [1.0, None]
    """
    return [best_iou(pred[s], [g]) if s in pred else None for s, boxes in gt.items() for g in boxes]


def summarize(run: Path) -> dict[str, dict[str, float]]:
    """The figures of the module docstring, per chain, for one run folder."""
    rows = json.loads((run / "results.json").read_text())
    out: dict[str, dict[str, float]] = {}
    for label, field in CHAINS:
        n = len(rows)
        read = boxes = covered = 0
        said = truth = iou_sum = viou_sum = 0.0
        for row in rows:
            gt = truth_boxes(row)
            pred = parse_box_answer(row.get(field))
            ious = box_ious(pred, gt)
            read += bool(pred)
            said += len(pred)
            truth += len(gt)
            boxes += len(ious)
            found = [v for v in ious if v is not None]
            covered += len(found)
            iou_sum += sum(found)
            viou_sum += sum(found) / len(ious) if ious else 0.0
        out[label] = {
            "n": n,
            "read": read,
            "seconds_said": said / n if n else 0.0,
            "seconds_true": truth / n if n else 0.0,
            "seconds_covered": covered / boxes if boxes else 0.0,
            "iou_at_covered_seconds": iou_sum / covered if covered else 0.0,
            "viou": viou_sum / n if n else 0.0,
        }
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="example: python benchmarks/where_errors.py runs/eval-A runs/eval-B",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="eval vstar output folders")
    args = parser.parse_args(argv)
    print(
        "| run | chain | read | seconds said / true | truth's seconds named | IoU at them | vIoU |"
    )
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        for label, s in summarize(run).items():
            print(
                f"| {run.name} | {label} | {s['read']:.0f}/{s['n']:.0f} | "
                f"{s['seconds_said']:.2f} / {s['seconds_true']:.2f} | "
                f"{s['seconds_covered']:.3f} | {s['iou_at_covered_seconds']:.3f} | "
                f"{s['viou']:.3f} |"
            )


if __name__ == "__main__":
    main()

"""What a model's own samples score on V-STaR: the room an RL stage has to work in.

RL with group-relative advantages (GRPO, GSPO) raises the probability of the better of a
model's own samples for a prompt; it is paid by the reward of sampled replies (temperature
1.0 in the recipes here) and judged on greedy replies. So three numbers per metric bound and
explain what it can do from a model:

- **greedy**: the model's score (``o3video eval vstar``);
- **sampled**: the mean score of one sampled reply per prompt (the mean of the sampled runs),
  what the training reward measures;
- **best of k**: per item and per generation the best of k sampled replies, the score of a
  policy that always put its mass on the best of k of its own samples. Each of the five V-STaR
  generations is its own prompt, so the best is taken per metric. It counts lucky draws as
  skill, so it is a ceiling, not a target;
- **consensus of k** (minimum Bayes risk): per item and generation, the sampled reply that
  agrees most with the other k − 1, chosen without the truth: the most frequent What answer
  (ties: the earliest run), the span with the highest summed tIoU to the other spans, the boxes
  with the highest summed agreement to the others' boxes (per second of either reply, the IoU
  of their first boxes, 0 where one has none). It is the gain of a decision rule over the
  model's own samples, with no new knowledge: an RL stage that adds no more than this has
  learnt how to answer from what the model already knows, not to see better.

The runs are ``o3video eval vstar --temperature T --seed S`` runs of one model on one corpus
(``benchmarks/sampled-vstar/run.sh``); every run is scored again here in the default mode.
mAM is computed from the item means as (AM_1 + AM_2) / 2, AM_k = (What + When_k + Where_k) / 3;
it equals the runs' own mAM where no item lacks a What answer (the script prints both for the
greedy run).

Example::

    python benchmarks/vstar_bestof.py --greedy benchmarks/what-apart-sft/A1/vstar \\
        runs/sampled/A1-s1 runs/sampled/A1-s2 runs/sampled/A1-s3 runs/sampled/A1-s4
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from o3video.boxes import interval_iou, iou
from o3video.eval.vstar_parse import parse_box_answer, parse_time_answer
from o3video.eval.vstar_score import (
    VStarScores,
    _reply,  # what the scorer reads for an answer field
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vstar_paired import METRICS  # the sibling script: run folders, metrics
from vstar_paired import metric as value
from vstar_paired import scores_of as _paired_scores_of

NAMES = {"acc": "What", "tiou_1": "When C1", "tiou_2": "When C2"}
NAMES |= {"viou_1": "Where C1", "viou_2": "Where C2"}


def scores_of(run: Path) -> VStarScores:
    """The run re-scored in the default mode (``vstar_paired.scores_of``)."""
    try:
        return _paired_scores_of(run)
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from e


def table_of(runs: Sequence[VStarScores]) -> list[list[float]]:
    """``[metric][item]`` values of one run each (``runs`` of length 1) or per item the
    best over ``runs``."""
    indices = [i.index for i in runs[0].items]
    for r in runs[1:]:
        if [i.index for i in r.items] != indices:
            raise SystemExit("the runs did not score the same items")
    return [[max(value(r.items[k], m) for r in runs) for k in range(len(indices))] for m in METRICS]


def mam(means: Sequence[float]) -> float:
    acc, t1, t2, v1, v2 = means
    return ((acc + t1 + v1) / 3 + (acc + t2 + v2) / 3) / 2


def means(table: Sequence[Sequence[float]]) -> list[float]:
    return [sum(col) / len(col) for col in table]


def best_of(runs: Sequence[VStarScores], k: int, draws: int, seed: int = 0) -> list[float]:
    """Mean over ``draws`` random k-subsets of the runs of the best-of-k item means (all
    subsets when there are few)."""
    from itertools import combinations

    subsets = list(combinations(range(len(runs)), k))
    if len(subsets) > draws:
        subsets = random.Random(seed).sample(subsets, draws)
    rows = [means(table_of([runs[i] for i in s])) for s in subsets]
    return [sum(r[m] for r in rows) / len(rows) for m in range(len(METRICS))]


FIELDS = {"tiou_1": "answer_temporal", "tiou_2": "answer_temporal_2"}
FIELDS |= {"viou_1": "answer_spatial", "viou_2": "answer_spatial_2"}


def replies(run: Path) -> list[dict[str, object]]:
    """The run's ``results.json`` records (the five answers and the replies they came from)."""
    records = json.loads((run / "results.json").read_text())
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise SystemExit(f"{run}/results.json: expected a list of records")
    return records


def _box_agreement(a: dict[float, tuple], b: dict[float, tuple]) -> float:
    seconds = set(a) | set(b)
    if not seconds:
        return 1.0
    total = sum(iou(a[s][0], b[s][0]) for s in seconds if a.get(s) and b.get(s))
    return total / len(seconds)


def agreement(field: str, x: object, y: object) -> float:
    """How much two replies to the same prompt agree (1: the same answer)."""
    if field == "answer_vqa":
        return float(str(x).strip().lower() == str(y).strip().lower())
    if field.startswith("answer_temporal"):
        sx, sy = parse_time_answer(x), parse_time_answer(y)
        return 0.0 if sx is None or sy is None else interval_iou(sx, sy)
    return _box_agreement(parse_box_answer(x), parse_box_answer(y))


def pick(field: str, answers: Sequence[object]) -> int:
    """The index of the answer with the highest summed agreement to the others (ties: the
    earliest)."""
    support = [
        sum(agreement(field, a, b) for j, b in enumerate(answers) if j != i)
        for i, a in enumerate(answers)
    ]
    return max(range(len(answers)), key=lambda i: (support[i], -i))


def consensus(
    runs: Sequence[VStarScores], records: Sequence[Sequence[dict[str, object]]]
) -> list[float]:
    """Item means of the consensus pick per item and metric (see the module docstring)."""
    n = len(runs[0].items)
    picked: list[list[float]] = [[] for _ in METRICS]
    for k in range(n):
        for m, name in enumerate(METRICS):
            field = "answer_vqa" if name == "acc" else FIELDS[name]
            answers = [_reply(rec[k], field) if field != "answer_vqa" else rec[k].get(field)
                       for rec in records]  # fmt: skip
            best = pick(field, answers)
            picked[m].append(value(runs[best].items[k], name))
    return means(picked)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="sampled run folders of one model")
    p.add_argument("--greedy", type=Path, default=None, help="the model's greedy run folder")
    p.add_argument("--label", default=None, help="the model's name in the table")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args(argv)
    sampled = [scores_of(r) for r in args.runs]
    label = args.label or args.runs[0].name
    rows: list[tuple[str, list[float]]] = []
    if args.greedy is not None:
        greedy = scores_of(args.greedy)
        g = means(table_of([greedy]))
        rows.append(("greedy", g))
        print(f"greedy mAM from item means {mam(g):.4f}, the run's own {greedy.overall.mam:.4f}")
    singles = [means(table_of([s])) for s in sampled]
    mean_single = [sum(r[m] for r in singles) / len(singles) for m in range(len(METRICS))]
    rows.append((f"sampled (mean of {len(sampled)} runs)", mean_single))
    lo = [min(r[m] for r in singles) for m in range(len(METRICS))]
    hi = [max(r[m] for r in singles) for m in range(len(METRICS))]
    for k in range(2, len(sampled) + 1):
        rows.append((f"best of {k}", best_of(sampled, k, draws=50)))
    if len(sampled) >= 3:
        records = [replies(r) for r in args.runs]
        rows.append((f"consensus of {len(sampled)}", consensus(sampled, records)))
    head = "| " + label + " | " + " | ".join(NAMES[m] for m in METRICS) + " | mAM |"
    print(head)
    print("|---" * (len(METRICS) + 2) + "|")
    for name, row in rows:
        cells = " | ".join(f"{100 * v:.1f}" for v in row)
        print(f"| {name} | {cells} | {100 * mam(row):.1f} |")
    spread = " | ".join(f"{100 * a:.1f}–{100 * b:.1f}" for a, b in zip(lo, hi, strict=True))
    mams = [mam(r) for r in singles]
    print(f"| sampled runs, range | {spread} | {100 * min(mams):.1f}–{100 * max(mams):.1f} |")
    if args.json is not None:
        doc = {"label": label, "runs": [str(r) for r in args.runs], "metrics": list(METRICS)}
        doc["rows"] = [{"row": n, "means": r, "mam": mam(r)} for n, r in rows]
        doc["sampled_runs"] = [{"means": r, "mam": mam(r)} for r in singles]
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

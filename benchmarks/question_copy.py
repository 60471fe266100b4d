"""Does the model read the answer's shape from the frames, or copy it from the question?

For the V-STaR items of a synthetic corpus asking "Which shape passes in front of the
<colour> <shape>?", writes a second corpus whose What question names another shape for the
object in front of which the answer passes (a shape that is neither the question's own nor
the answer's: "...in front of the purple cross?" for a purple square), everything else the
same, so that ``o3video eval vstar`` can run the model on both. Then reads the two runs'
What answers: if the model reads the frames, the substituted word leaves its answers as they
were; if it copies the question, its answers follow the new word.

    python benchmarks/question_copy.py make --data runs/e112/heldout --out runs/copy/data
    o3video eval vstar --model M --data runs/copy/data --out runs/copy/eval-M ...
    python benchmarks/question_copy.py read runs/copy/data EVAL-OF-M-ON-THE-CORPUS runs/copy/eval-M

``make`` writes ``OUT`` (the substituted items; one V-STaR item per video, so the video
names them) and ``OUT-original`` (the same items unchanged), each a ``vstar.json`` with links
to the corpus's videos and ground truth. ``read`` prints, per run (on either set, or on the
whole corpus: the items of ``OUT`` are picked by video), how often the What answer's shape
is the truth's, the shape the run's question named (where that is not the truth's), and the
substituted shape; and, on the items where the object in front and the one behind differ in
shape, which object's colour and which object's shape the answer names (a front colour with
the shape behind is a binding error: the right object found, the wrong shape read).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

from o3video.data.shapes import SHAPES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from what_errors import read_name  # type: ignore[import-not-found]

FORM = re.compile(r"^Which shape passes in front of the (\w+) (\w+)\?$")


def substitute(shape: str, answer_shape: str) -> str:
    """The first shape of the world after ``shape`` (cyclically) that is neither it nor the
    answer's.

    >>> substitute("square", "circle") in SHAPES
    True
    >>> substitute("square", "circle") not in ("square", "circle")
    True
    """
    order = list(SHAPES)
    start = order.index(shape)
    for k in range(1, len(order)):
        candidate = order[(start + k) % len(order)]
        if candidate not in (shape, answer_shape):
            return candidate
    raise ValueError(f"no third shape besides {shape} and {answer_shape}")


def make(data: Path, out: Path) -> tuple[int, int]:
    items = json.loads((data / "vstar.json").read_text())
    kept, changed = [], []
    for item in items:
        m = FORM.match(item["question"])
        if m is None:
            continue
        colour, shape = m.groups()
        new = dict(item)
        new["question"] = (
            f"Which shape passes in front of the {colour} "
            f"{substitute(shape, read_name(item['answer'])[1])}?"
        )
        kept.append(item)
        changed.append(new)
    for folder, rows in ((out, changed), (Path(f"{out}-original"), kept)):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vstar.json").write_text(json.dumps(rows, indent=1) + "\n")
        for sub in ("videos", "gt", "manifest.json"):  # the manifest marks it synthetic
            link = folder / sub
            if not link.exists() and (data / sub).exists():
                link.symlink_to((data / sub).resolve())
    return len(kept), len(items)


def same_answers(data: Path, a: Path, b: Path) -> tuple[int, int]:
    """On how many of ``data``'s items runs ``a`` and ``b`` give the same What answer."""
    vids = {row["vid"] for row in json.loads((data / "vstar.json").read_text())}
    answers = [
        {r["vid"]: r.get("answer_vqa") for r in json.loads((run / "results.json").read_text())}
        for run in (a, b)
    ]
    return sum(answers[0][v] == answers[1][v] for v in vids), len(vids)


def read(data: Path, runs: list[Path], pairs: bool = False) -> None:
    substituted = {
        row["vid"]: FORM.match(row["question"]).group(2)  # type: ignore[union-attr]
        for row in json.loads((data / "vstar.json").read_text())
    }
    behind = {  # the object behind, as the original question names it
        row["vid"]: FORM.match(row["question"]).groups()  # type: ignore[union-attr]
        for row in json.loads((Path(f"{data}-original") / "vstar.json").read_text())
    }
    for run in runs:
        rows = json.loads((run / "results.json").read_text())
        counts: Counter[str] = Counter()
        binding: Counter[str] = Counter()
        for row in rows:
            if row["vid"] not in substituted:  # a run on the whole corpus: these items only
                continue
            said_colour, said = read_name(str(row.get("answer_vqa") or ""))
            truth_colour, truth = read_name(str(row["answer"]))
            asked = FORM.match(str(row["question"]))
            asked_shape = asked.group(2) if asked else None
            counts["n"] += 1
            counts["truth"] += said == truth
            counts["the question's shape (not the truth's)"] += said == asked_shape != truth
            counts["the substituted shape"] += said == substituted[row["vid"]]
            back_colour, back_shape = behind[row["vid"]]
            if back_shape == truth:
                continue
            if truth_colour == back_colour:  # the colour does not tell the two apart
                colour = "shared" if said_colour == truth_colour else "other"
            else:
                colour = {truth_colour: "front", back_colour: "back"}.get(said_colour, "other")
            shape = "front" if said == truth else "back" if said == back_shape else "other"
            binding[f"{colour} colour + {shape} shape"] += 1
        n = counts.pop("n")
        shares = ", ".join(f"{k} {v / n:.3f}" for k, v in counts.items())
        print(f"{run}: {n} answers; answer shape = {shares}")
        print(
            f"  where the two objects' shapes differ ({sum(binding.values())}): "
            + ", ".join(f"{k} {v}" for k, v in sorted(binding.items(), key=lambda kv: -kv[1]))
        )
    if pairs:
        for a, b in zip(runs[::2], runs[1::2], strict=True):
            same, n = same_answers(data, a, b)
            print(f"{a} and {b}: the same What answer on {same} of {n} items")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make", help="write the substituted and the original item sets")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("read", help="compare eval runs on them")
    r.add_argument("data", type=Path, help="the substituted set (make's --out)")
    r.add_argument("runs", type=Path, nargs="+")
    r.add_argument("--pairs", action="store_true",
                   help="the runs come in pairs (own questions, replaced word): count the "
                        "items whose What answer is the same in both")  # fmt: skip
    args = parser.parse_args()
    if args.cmd == "make":
        n, total = make(args.data, args.out)
        print(f"{n} of {total} items ask which shape passes in front of another: {args.out}")
    else:
        if args.pairs and len(args.runs) % 2:
            parser.error("--pairs needs an even number of runs")
        read(args.data, args.runs, args.pairs)


if __name__ == "__main__":
    main()

"""Compare two ``o3video eval vstar`` runs on the same items, item by item.

Each run folder holds ``results.json`` (the five answers per item) and ``judgements.json``
(the What ratings). Both are scored again here in the default mode of
:mod:`o3video.eval.vstar_score`, and for every metric (What accuracy, When tIoU and Where
vIoU of both chains) the script prints the two means, the mean paired difference B − A with
its 95 % bootstrap interval (resampling items), and how many items went up and down. The
verdict is "B higher" or "B lower" only where that interval excludes 0. mAM is an average
of averages, so it is shown without an interval.

Example (the SFT model against an RL run from it, on the same held-out corpus)::

    python benchmarks/vstar_paired.py runs/embedded/eval-sft runs/eval-W1-s0
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from o3video.eval.vstar_score import ItemScore, VStarScores, score_vstar_files

METRICS = ("acc", "tiou_1", "tiou_2", "viou_1", "viou_2")


def _probe_curves() -> ModuleType:
    """The sibling script ``probe_curves.py`` (its paired bootstrap)."""
    path = Path(__file__).with_name("probe_curves.py")
    spec = importlib.util.spec_from_file_location("probe_curves", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("probe_curves", module)
    spec.loader.exec_module(module)
    return module


def scores_of(run: Path) -> VStarScores:
    for name in ("results.json", "judgements.json"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run}: no {name} (not an `o3video eval vstar` run folder)")
    return score_vstar_files(run / "results.json", run / "judgements.json")


def metric(item: ItemScore, name: str) -> float:
    if name == "acc":
        return float(item.correct)
    kind, chain = name.split("_")
    return (item.tiou if kind == "tiou" else item.viou)[int(chain) - 1]


def compare(a: VStarScores, b: VStarScores, *, draws: int = 2000) -> list[dict[str, object]]:
    """One row per metric: means, paired Δ, its interval, items up and down, verdict."""
    if [i.index for i in a.items] != [i.index for i in b.items]:
        raise ValueError("the two runs did not score the same items")
    paired = _probe_curves().paired
    rows: list[dict[str, object]] = []
    for name in METRICS:
        xs = [metric(i, name) for i in a.items]
        ys = [metric(i, name) for i in b.items]
        mean, lo, hi, up, down = paired(xs, ys, draws=draws)
        verdict = "B higher" if lo > 0 else "B lower" if hi < 0 else "no difference shown"
        rows.append({"metric": name, "a": sum(xs) / len(xs), "b": sum(ys) / len(ys),
                     "delta": mean, "lo": lo, "hi": hi, "up": up, "down": down,
                     "verdict": verdict})  # fmt: skip
    return rows


def table(rows: Sequence[dict[str, object]], a: VStarScores, b: VStarScores) -> str:
    lines = [
        "| metric | A | B | paired Δ [95 % CI] | up / down | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['metric']} | {r['a']:.3f} | {r['b']:.3f} | {r['delta']:+.3f} "
            f"[{r['lo']:+.3f}, {r['hi']:+.3f}] | {r['up']} / {r['down']} | {r['verdict']} |"
        )
    ma, mb = a.overall.mam, b.overall.mam
    if ma is not None and mb is not None:
        lines.append(f"| mAM | {ma:.3f} | {mb:.3f} | {mb - ma:+.3f} | | |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("a", type=Path, help="the first eval run folder (the base)")
    parser.add_argument("b", type=Path, help="the second eval run folder")
    args = parser.parse_args(argv)
    try:
        a, b = scores_of(args.a), scores_of(args.b)
        rows = compare(a, b)
    except (FileNotFoundError, ValueError) as e:
        print(f"vstar_paired: error: {e}", file=sys.stderr)
        return 1
    print(f"A = {args.a}, B = {args.b}, {len(a.items)} items")
    print(table(rows, a, b))
    return 0


if __name__ == "__main__":
    sys.exit(main())

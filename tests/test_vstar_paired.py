"""benchmarks/vstar_paired.py: two V-STaR runs compared item by item."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_scripts import load_benchmark

from o3video.eval.vstar_score import ItemScore, ScoreConfig, VStarScores, aggregate

paired = load_benchmark("vstar_paired")


def _scores(tious: list[float], correct: list[bool], start: int = 0) -> VStarScores:
    items = [
        ItemScore(
            index=start + i,
            domain="synthetic",
            duration="short",
            scored=True,
            rating=3 if ok else 0,
            correct=ok,
            tiou=(t, t / 2),
            viou=(0.2, 0.1),
            viou_at=((1.0,) * 5, (0.0,) * 5),
        )
        for i, (t, ok) in enumerate(zip(tious, correct, strict=True))
    ]
    overall = aggregate(items, ScoreConfig(), set(), denominator=len(items), dropped=0)
    return VStarScores(mode="default", overall=overall, by_domain={}, by_duration={},
                       items=tuple(items))  # fmt: skip


def test_a_metric_raised_on_most_items_is_higher_and_an_unchanged_one_is_not() -> None:
    n = 60
    a = _scores([0.2] * n, [i % 3 == 0 for i in range(n)])
    b = _scores([0.2 + (0.3 if i % 4 else -0.1) for i in range(n)], [i % 3 == 0 for i in range(n)])
    rows = {r["metric"]: r for r in paired.compare(a, b)}
    assert rows["tiou_1"]["verdict"] == "B higher"
    assert rows["tiou_1"]["delta"] == pytest.approx((45 * 0.3 - 15 * 0.1) / n)
    assert (rows["tiou_1"]["up"], rows["tiou_1"]["down"]) == (45, 15)
    assert rows["acc"]["verdict"] == "no difference shown" and rows["acc"]["delta"] == 0
    assert rows["viou_1"]["verdict"] == "no difference shown"
    # and the other way round
    rows = {r["metric"]: r for r in paired.compare(b, a)}
    assert rows["tiou_1"]["verdict"] == "B lower"
    assert "| mAM |" in paired.table(paired.compare(a, b), a, b)


def test_runs_of_different_items_and_missing_files_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="same items"):
        paired.compare(_scores([0.1], [True]), _scores([0.1], [True], start=5))
    assert paired.main([str(tmp_path), str(tmp_path)]) == 1
    assert f"{tmp_path}: no results.json" in capsys.readouterr().err

"""benchmarks/vstar_bestof.py: sampled V-STaR runs of one model, their mean and best of k."""

from __future__ import annotations

import pytest
from bench_scripts import load_benchmark
from test_vstar_paired import _scores

bestof = load_benchmark("vstar_bestof")


def test_best_of_takes_each_items_best_per_metric_and_mam_matches_the_scorer() -> None:
    a = _scores([0.2, 0.0, 0.6], [True, False, False])
    b = _scores([0.0, 0.4, 0.2], [False, False, True])
    best = bestof.means(bestof.table_of([a, b]))  # tIoU (t, t / 2), vIoU (0.2, 0.1)
    assert best[0] == pytest.approx(2 / 3)  # items 0 and 2 right in one run or the other
    assert best[1] == pytest.approx((0.2 + 0.4 + 0.6) / 3)
    assert best[2] == pytest.approx((0.1 + 0.2 + 0.3) / 3)
    assert best[3] == pytest.approx(0.2) and best[4] == pytest.approx(0.1)
    assert bestof.best_of([a, b], 2, draws=10) == pytest.approx(best)
    alone = bestof.means(bestof.table_of([a]))
    assert bestof.mam(alone) == pytest.approx(a.overall.mam)
    with pytest.raises(SystemExit, match="same items"):
        bestof.table_of([a, _scores([0.1, 0.1, 0.1], [True] * 3, start=7)])

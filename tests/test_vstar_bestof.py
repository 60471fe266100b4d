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


def test_consensus_picks_the_reply_that_agrees_most_with_the_others() -> None:
    spans = [[0.0, 2.0], [0.4, 2.4], [0.2, 2.1], [5.0, 9.0]]  # the third sits between two
    runs = [_scores([0.1 * (i + 1)], [i == 3]) for i in range(4)]
    boxes = [{"1": [0, 0, 10, 10]}, {"1": [50, 50, 60, 60]}, {"1": [1, 1, 10, 10]}, {}]
    whats = ["the red square", "The red square ", "a blue circle", "a blue circle"]
    records = [
        [{"answer_vqa": w, "answer_temporal_pre": f"From {a} to {b}", "answer_temporal_2": [a, b],
          "answer_spatial": box, "answer_spatial_2": box}]
        for w, (a, b), box in zip(whats, spans, boxes, strict=True)
    ]  # fmt: skip
    acc, t1, t2, v1, v2 = bestof.consensus(runs, records)
    assert (t1, t2) == (pytest.approx(0.3), pytest.approx(0.15))  # the third run's
    assert acc == 0.0  # "the red square" twice (case and spaces aside): the first run, wrong
    assert (v1, v2) == (0.2, 0.1)  # every run's vIoU
    assert bestof.pick("answer_spatial", boxes) == 0  # the first and the third agree: the first
    assert bestof.pick("answer_spatial", [boxes[1], boxes[0], boxes[2], {}]) == 1
    assert bestof.agreement("answer_spatial", {}, {}) == 1.0
    assert bestof.agreement("answer_temporal", "no span", "From 1 to 2") == 0.0

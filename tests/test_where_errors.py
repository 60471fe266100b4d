"""benchmarks/where_errors.py: seconds named and box IoU of Where answers, on fabricated files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_scripts import load_benchmark


def _box(t: int, x0: float, y0: float, x1: float, y1: float) -> dict[str, float]:
    return {"timestamp": t, "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1}


def test_seconds_named_and_iou_are_split(tmp_path: Path) -> None:
    we = load_benchmark("where_errors")
    rows = [
        {  # chain 1: the right second, half the box; chain 2: two seconds, one of them right
            "bboxes": [_box(2, 0, 0, 10, 10)],
            "answer_spatial": {"2": [0, 0, 10, 5]},
            "answer_spatial_2": {"1": [0, 0, 10, 10], "2": [0, 0, 10, 10]},
        },
        {  # two boxes of the truth; chain 1 names one of their seconds; chain 2 is unreadable
            "bboxes": [_box(3, 0, 0, 10, 10), _box(4, 0, 0, 10, 10)],
            "answer_spatial": {"4": [0, 0, 10, 10], "5": [0, 0, 10, 10]},
            "answer_spatial_2": "no boxes here",
        },
    ]
    (tmp_path / "results.json").write_text(json.dumps(rows))
    s = we.summarize(tmp_path)
    c1, c2 = s["chain 1"], s["chain 2"]
    assert (c1["n"], c1["read"], c2["read"]) == (2, 2, 1)
    assert c1["seconds_said"] == 1.5 and c1["seconds_true"] == 1.5
    assert c1["seconds_covered"] == pytest.approx(2 / 3)  # seconds 2 and 4 of 2, 3, 4
    assert c1["iou_at_covered_seconds"] == pytest.approx((0.5 + 1.0) / 2)
    assert c1["viou"] == pytest.approx((0.5 + 0.5) / 2)  # extra second 5 costs nothing
    assert c2["seconds_covered"] == pytest.approx(1 / 3)
    assert c2["viou"] == pytest.approx((1.0 + 0.0) / 2)

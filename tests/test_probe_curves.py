"""benchmarks/probe_curves.py: the probe-curve table and its item-by-item verdict, on
fabricated probe files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_scripts import load_benchmark


def _write(run: Path, evaluations: list[list[float]]) -> None:
    run.mkdir(parents=True)
    with (run / "probe.jsonl").open("w") as f:
        for step, items in zip(range(0, 100, 10), evaluations, strict=False):
            mean = sum(items) / len(items)
            line = {"step": step, "progress": 1.0, "rewards": {"temporal_point": mean},
                    "total": mean, "items": {"temporal_point": items}}  # fmt: skip
            f.write(json.dumps(line) + "\n")


def test_the_verdict_follows_the_item_by_item_change(tmp_path: Path) -> None:
    pc = load_benchmark("probe_curves")
    start = [0.2, 0.4, 0.6, 0.3, 0.5, 0.1, 0.7, 0.2] * 3
    _write(tmp_path / "up-s0", [start, [v + 0.1 for v in start]])
    _write(tmp_path / "down-s0", [start, [v - 0.05 for v in start]])
    # Half the items up by 0.3, half down by 0.3: the mean moves by 0, the verdict is noise.
    mixed = [v + (0.3 if i % 2 else -0.3) for i, v in enumerate(start)]
    _write(tmp_path / "mixed-s1", [start, mixed])
    curves = [
        pc.read_curve(tmp_path / n, "temporal_point") for n in ("up-s0", "down-s0", "mixed-s1")
    ]
    rows = pc.table(curves).splitlines()[2:]
    assert "raises" in rows[0] and "| 24 / 0 |" in rows[0] and "+0.100" in rows[0]
    assert "lowers" in rows[1] and "| 0 / 24 |" in rows[1]
    assert "flat (within noise)" in rows[2] and "| 12 / 12 |" in rows[2]
    assert curves[2].group == "mixed"
    png = tmp_path / "curve.png"
    assert pc.main([str(tmp_path / "up-s0"), "--reward", "temporal_point", "--png", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_line_without_the_reward_names_file_and_line(tmp_path: Path) -> None:
    pc = load_benchmark("probe_curves")
    run = tmp_path / "r"
    run.mkdir()
    (run / "probe.jsonl").write_text('{"step": 0, "rewards": {"format": 1.0}, "total": 1.0}\n')
    with pytest.raises(SystemExit, match=r"probe.jsonl:1: no 'temporal_point'"):
        pc.read_curve(run, "temporal_point")
    assert pc.read_curve(run, "total").values == [1.0]


def test_only_keeps_the_items_of_one_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--only generation=when_1 --records FILE``: the curve and the verdict of the items
    whose record has that field; a value no record has is refused."""
    pc = load_benchmark("probe_curves")
    # Items alternate when_1 / what: the when_1 items rise by 0.2, the what items fall by 0.2.
    start = [0.3, 0.5] * 12
    _write(tmp_path / "r-s0", [start, [v + (0.2 if i % 2 == 0 else -0.2) for i, v in
                                       enumerate(start)]])  # fmt: skip
    records = tmp_path / "probe.json"
    records.write_text(json.dumps([{"generation": g} for g in ["when_1", "what"] * 12]))
    whole = pc.read_curve(tmp_path / "r-s0", "temporal_point")
    assert whole.values == pytest.approx([0.4, 0.4])
    keep = pc.kept_items(records, "generation=when_1")
    assert keep == list(range(0, 24, 2))
    when = pc.read_curve(tmp_path / "r-s0", "temporal_point", keep)
    assert when.values == pytest.approx([0.3, 0.5]) and len(when.last_items or []) == 12
    args = [str(tmp_path / "r-s0"), "--reward", "temporal_point", "--records", str(records)]
    assert pc.main([*args, "--only", "generation=what"]) == 0
    assert "lowers" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no record has generation = 'where_1'"):
        pc.main([*args, "--only", "generation=where_1"])
    with pytest.raises(SystemExit):
        pc.main(args)  # --records without --only

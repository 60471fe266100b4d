"""benchmarks/span_widening.py: span statistics of a When probe and the tIoU of fixed
widenings, on fabricated probe and record files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_scripts import load_benchmark


def _records(path: Path, spans: list[tuple[float, float]]) -> None:
    rows = [{"vstar": {"timestamps": list(s), "frame_count": 60, "fps": 10.0}} for s in spans]
    path.write_text(json.dumps(rows))


def _probe(run: Path, evaluations: list[list[str]]) -> None:
    run.mkdir(parents=True)
    lines = [{"step": 100 * i, "completions": c} for i, c in enumerate(evaluations)]
    (run / "probe.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def answer(a: float, b: float) -> str:
    return f"<think>.</think><answer>From <t>{a}</t>s to <t>{b}</t>s</answer>"


def test_widening_the_first_spans_is_scored_against_the_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sw = load_benchmark("span_widening")
    records = tmp_path / "when.json"
    _records(records, [(2.0, 4.0), (0.0, 2.0)])
    # Start: each span 1 s inside its truth (tIoU 0.5); end: the truth itself, one unreadable.
    _probe(tmp_path / "r-s0", [[answer(2.5, 3.5), answer(0.5, 1.5)],
                               [answer(2.0, 4.0), "no span"]])  # fmt: skip
    assert sw.main([str(tmp_path / "r-s0"), "--records", str(records), "--widen", "1", "3"]) == 0
    out = capsys.readouterr().out
    assert "| r-s0 | 0 | 2/2 | 1.50 s | 1.00 s | 0.500 |" in out
    assert "| r-s0 | 100 | 1/2 | 2.00 s | 2.00 s | 0.500 |" in out
    # +1 s: both spans become their truths; +3 s: [1, 5] and [0, 3] (clamped at 0).
    assert "| 1 s | 1.000 |" in out
    assert f"| 3 s | {(2 / 4 + 2 / 3) / 2:.3f} |" in out


def test_a_probe_longer_than_the_records_is_refused(tmp_path: Path) -> None:
    sw = load_benchmark("span_widening")
    records = tmp_path / "when.json"
    _records(records, [(2.0, 4.0)])
    _probe(tmp_path / "r", [[answer(1, 2), answer(1, 2)]])
    with pytest.raises(SystemExit, match="2 probe items"):
        sw.main([str(tmp_path / "r"), "--records", str(records)])

"""`o3video eval report`: tables, CSV and chart from run directories written here."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_vstar_score import RATINGS, RECORDS

from o3video.cli import eval_report
from o3video.errors import DataError
from o3video.eval.report import (
    PUBLISHED_VSTAR,
    PlotUnavailableError,
    build_tables,
    format_markdown,
    plot_table,
    read_run,
)
from o3video.eval.vstar_score import ScoreConfig, score_vstar

# Run A, written by hand: % values 60.0 24.5 33.3 25.0 5.6 33.7 n/a.
SCORES_A: dict[str, Any] = {
    "n": 10,
    "acc": 0.6,
    "tiou_1": 0.2449,
    "tiou_2": 1 / 3,
    "viou_1": 0.25,
    "viou_2": 0.0561,
    "mam": 0.33749,
    "mlgm": None,
    "by_domain": {},
    "notes": [],
}
ROW_A = "| ours-rl | 60.0 | 24.5 | 33.3 | 25.0 | 5.6 | 33.7 | n/a |"


def _write_run(root: Path, name: str, data: dict[str, Any]) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "scores.json").write_text(json.dumps(data), encoding="utf-8")
    return run


def _runs(tmp_path: Path) -> tuple[Path, Path]:
    a = _write_run(
        tmp_path,
        "run-a",
        {
            "benchmark": "vstar",
            "model": "ckpt/rl",
            "label": "ours-rl",
            "mode": "default",
            "scores": SCORES_A,
        },
    )
    # Run B: real scores of test_vstar_score's items, official mode:
    # tIoU1 = 1/6 → 16.7, vIoU1 = 1/4 → 25.0, mAM = 11/36 → 30.6 (as test_cli_eval).
    real = score_vstar(RECORDS, RATINGS, ScoreConfig(mode="official")).to_dict()
    b = _write_run(
        tmp_path,
        "run-b",
        {"benchmark": "vstar", "model": "Qwen/Qwen2.5-VL-7B-Instruct", "scores": real},
    )
    return a, b


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    eval_report.add_arguments(parser)
    return eval_report.run(parser.parse_args(argv))


def test_report_table_csv_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _runs(tmp_path)
    out = tmp_path / "out"
    assert _run_cli([str(a), str(b), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md in printed
    lines = md.splitlines()
    head = "| Model | What | When C1 | When C2 | Where C1 | Where C2 | mAM | mLGM |"
    assert head in lines
    assert ROW_A in lines
    row_b = next(line for line in lines if line.startswith("| Qwen/Qwen2.5-VL-7B-Instruct |"))
    cells = [c.strip() for c in row_b.strip("|").split("|")]
    assert cells[2] == "16.7" and cells[4] == "25.0" and cells[6] == "30.6"
    assert "(published)" not in md

    with open(out / "report.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == [
        "model",
        "What",
        "When C1",
        "When C2",
        "Where C1",
        "Where C2",
        "mAM",
        "mLGM",
        "n",
        "mode",
        "protocol",
    ]
    assert rows[1] == [
        "ours-rl",
        "60.0",
        "24.5",
        "33.3",
        "25.0",
        "5.6",
        "33.7",
        "",
        "10",
        "default",
        "o3video",  # none recorded: a run from before protocols
    ]
    assert rows[2][0] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert rows[2][2] == "16.7" and rows[2][6] == "30.6"
    assert rows[2][-3:] == [str(len(RECORDS)), "official", "o3video"]  # mode from the scores
    assert len(rows) == 3

    png = out / "report.png"
    assert png.stat().st_size > 0
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 0 and im.height > 0


def test_published_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = _runs(tmp_path)
    out = tmp_path / "out"
    assert _run_cli([str(a), "--out", str(out), "--published"]) == 0
    md = capsys.readouterr().out
    assert ROW_A in md
    assert "| Open-o3 Video-7B (published) | 61.0 | 24.5 | 24.0 | 25.4 | 6.0 | 33.7 | 46.6 |" in md
    assert "| Qwen2.5-VL-7B (published) | 33.5 | 15.4 | 13.8 | 17.0 | 2.5 | 19.3 | 22.4 |" in md
    with open(out / "report.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    published = [r for r in rows if r[-2] == "published"]
    assert [r[0] for r in published] == list(PUBLISHED_VSTAR)
    assert published[-1][1:8] == ["61.1", "24.9", "23.5", "33.2", "8.8", "35.5", "49.0"]
    assert all(r[-3] == "" and r[-1] == "" for r in published)  # no n, no protocol
    with Image.open(out / "report.png") as im:
        assert im.format == "PNG"


def test_published_values_match_spec() -> None:
    # SPEC §7, in %: What, When C1, When C2, Where C1, Where C2, mAM, mLGM.
    assert PUBLISHED_VSTAR == {
        "Qwen2.5-VL-7B": (33.5, 15.4, 13.8, 17.0, 2.5, 19.3, 22.4),
        "GPT-4o": (60.8, 16.7, 12.8, 6.5, 3.0, 26.8, 38.2),
        "Gemini-2-Flash": (53.0, 24.5, 23.8, 4.6, 2.2, 26.9, 35.6),
        "Open-o3 Video-7B": (61.0, 24.5, 24.0, 25.4, 6.0, 33.7, 46.6),
        "Open-o3 Video-8B (Qwen3-VL)": (61.1, 24.9, 23.5, 33.2, 8.8, 35.5, 49.0),
    }


def test_row_names(tmp_path: Path) -> None:
    scores = {"benchmark": "vstar", "scores": SCORES_A}
    nameless = _write_run(tmp_path, "nameless-run", scores)
    m1 = _write_run(tmp_path, "x1", {**scores, "model": "m"})
    m2 = _write_run(tmp_path, "x2", {**scores, "model": "m"})
    (table,) = build_tables([read_run(p) for p in (nameless, m1, m2)])
    assert [r.name for r in table.rows] == ["nameless-run", "m (x1)", "m (x2)"]
    # a scores.json path works as well as its directory
    assert read_run(m1 / "scores.json").model == "m"


def test_other_benchmark_generic_table(tmp_path: Path) -> None:
    a, _ = _runs(tmp_path)
    mv = _write_run(
        tmp_path,
        "mvbench",
        {"benchmark": "mvbench", "model": "m", "scores": {"n": 4, "acc": 0.75, "by_task": {}}},
    )
    tg = _write_run(
        tmp_path,
        "tvg",
        {"benchmark": "tvgbench", "model": "m", "scores": {"miou": 0.2081, "r1_0.5": 0.125}},
    )
    out = tmp_path / "out"
    assert _run_cli([str(a), str(mv), str(tg), "--out", str(out), "--no-plot"]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## vstar (%)" in md and "## mvbench (%)" in md and "## tvgbench (%)" in md
    assert "| Model | acc |\n|---|---:|\n| m | 75.0 |" in md
    assert "| Model | miou | r1_0.5 |\n|---|---:|---:|\n| m | 20.8 | 12.5 |" in md
    assert (out / "report-mvbench.csv").read_text().splitlines() == [
        "model,acc,n,mode,protocol",
        "m,75.0,4,,o3video",
    ]
    assert not list(out.glob("*.png"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "scores file not found"),
        ("{not json", "malformed JSON at line 1"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"scores": {}}', "'benchmark'"),
        ('{"benchmark": "vstar", "scores": [1]}', "'scores' must be a JSON object"),
        ('{"benchmark": "vstar", "model": 3, "scores": {}}', "'model' must be a string"),
        ('{"benchmark": "vstar", "scores": {"acc": 0.5}}', "scores has no 'tiou_1'"),
    ],
)
def test_bad_scores_json(tmp_path: Path, content: str | None, message: str) -> None:
    run = tmp_path / "bad-run"
    run.mkdir()
    if content is not None:
        (run / "scores.json").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        _run_cli([str(run), "--out", str(tmp_path / "out")])
    assert str(run / "scores.json") in str(info.value)
    assert info.value.path == str(run / "scores.json")
    assert not (tmp_path / "out").exists()  # nothing written before every run is read


def test_bad_value_named(tmp_path: Path) -> None:
    run = _write_run(tmp_path, "r", {"benchmark": "vstar", "scores": {**SCORES_A, "mam": "x"}})
    with pytest.raises(DataError, match=r"scores\.mam must be a number") as info:
        _run_cli([str(run), "--out", str(tmp_path / "out")])
    assert str(run / "scores.json") in str(info.value)


def test_missing_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = _runs(tmp_path)
    (table,) = build_tables([read_run(a)])
    # an import of matplotlib or any of its modules fails, as when it is not installed
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(PlotUnavailableError, match=r"o3video\[plot\]"):
        plot_table(table, tmp_path / "x.png")


def test_default_out_and_help(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = _runs(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert _run_cli([str(a), "--no-plot"]) == 0
    assert (tmp_path / "eval-report" / "report.csv").exists()
    assert format_markdown(build_tables([read_run(a)])[0]).splitlines()[2] == ROW_A
    capsys.readouterr()
    with pytest.raises(SystemExit):
        eval_report.build_parser().parse_args(["--help"])
    assert "o3video eval report runs/vstar-base" in capsys.readouterr().out


def test_runs_of_different_protocols_are_told_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scores = {"n": 4, "accuracy": 0.5}
    ours = _write_run(tmp_path, "ours", {"benchmark": "videomme", "model": "m", "scores": scores})
    ref = _write_run(
        tmp_path,
        "ref",
        {"benchmark": "videomme", "model": "r", "protocol": "reference", "scores": scores},
    )
    # A run whose scores.json predates the field: its run.json says which protocol it ran.
    legacy = _write_run(
        tmp_path, "legacy", {"benchmark": "videomme", "model": "l", "scores": scores}
    )
    (legacy / "run.json").write_text(json.dumps({"settings": {"protocol": "reference"}}))
    assert [read_run(p).protocol for p in (ours, ref, legacy)] == [
        "o3video",
        "reference",
        "reference",
    ]
    out = tmp_path / "out"
    assert _run_cli([str(ours), str(ref), str(legacy), "--out", str(out), "--no-plot"]) == 0
    md = capsys.readouterr().out
    assert (
        "**Note:** Different protocols in one table: o3video (m [o3video]); "
        "reference (r [reference], l [reference])."
    ) in md
    assert "| m [o3video] | 50.0 |" in md and "| r [reference] | 50.0 |" in md
    assert (out / "report-videomme.csv").read_text().splitlines()[1:] == [
        "m [o3video],50.0,4,,o3video",
        "r [reference],50.0,4,,reference",
        "l [reference],50.0,4,,reference",
    ]
    # One protocol: no note, names unchanged.
    (table,) = build_tables([read_run(ref), read_run(legacy)])
    assert table.notes == () and [r.name for r in table.rows] == ["r", "l"]

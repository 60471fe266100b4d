"""`o3video eval vstar-score` on files written here (SPEC §7); numbers as in test_vstar_score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_vstar_score import RATINGS, RECORDS

from o3video.cli.main import main


def _files(tmp_path: Path) -> tuple[str, str]:
    results, ratings = tmp_path / "results.json", tmp_path / "ratings.json"
    results.write_text(json.dumps(RECORDS), encoding="utf-8")
    ratings.write_text(json.dumps(RATINGS), encoding="utf-8")
    return str(results), str(ratings)


@pytest.mark.parametrize(
    ("mode", "tiou_1", "viou_1", "mam"),
    # official: tIoU1 = (1/3 + 0)/2, vIoU1 = (0.5 + 0)/2, mAM = 11/36;
    # default: tIoU1 = (1/3 + 1 + 0)/3, vIoU1 = (1 + 1 + 0)/3, mAM = 14/27.
    [("official", 1 / 6, 0.25, 11 / 36), ("default", 4 / 9, 2 / 3, 14 / 27)],
)
def test_vstar_score_json(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    tiou_1: float,
    viou_1: float,
    mam: float,
) -> None:
    results, ratings = _files(tmp_path)
    assert (
        main(["eval", "vstar-score", results, "--judgements", ratings, "--mode", mode, "--json"])
        == 0
    )
    got = json.loads(capsys.readouterr().out)
    for key in (
        "acc",
        "tiou_1",
        "tiou_2",
        "viou_1",
        "viou_2",
        "am_1",
        "am_2",
        "mam",
        "lgm_1",
        "lgm_2",
        "mlgm",
    ):
        assert isinstance(got[key], float), key
    assert got["acc"] == pytest.approx(1 / 3)
    assert (got["tiou_1"], got["viou_1"], got["mam"]) == pytest.approx((tiou_1, viou_1, mam))
    assert len(got["r1_1"]) == 3 and len(got["r1_2"]) == 3
    assert set(got["by_domain"]) == {"a", "b"} and set(got["by_duration"]) == {"short", "long"}
    assert got["mode"] == mode


def test_vstar_score_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results, ratings = _files(tmp_path)
    assert main(["eval", "vstar-score", results, "--judgements", ratings]) == 0
    out = capsys.readouterr().out
    assert "What" in out and "mLGM" in out and "note: default mode" in out
    assert "  33.3" in out  # Acc 1/3 in %


def test_vstar_score_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results, ratings = _files(tmp_path)
    missing = str(tmp_path / "nope.json")
    assert main(["eval", "vstar-score", missing, "--judgements", ratings]) == 1
    assert "nope.json: results file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2", encoding="utf-8")
    assert main(["eval", "vstar-score", results, "--judgements", str(bad)]) == 1
    assert "bad.json: malformed JSON" in capsys.readouterr().err
    bad.write_text("[3]", encoding="utf-8")
    assert main(["eval", "vstar-score", results, "--judgements", str(bad)]) == 1
    assert "bad.json: 1 ratings for 3 results" in capsys.readouterr().err
    bad.write_text("[3, null, 7]", encoding="utf-8")
    assert main(["eval", "vstar-score", results, "--judgements", str(bad)]) == 1
    assert "rating 2 must be 0-3" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "vstar-score",
                results,
                "--judgements",
                ratings,
                "--mode",
                "official",
                "--box-space",
                "frame_px",
            ]
        )
        == 1
    )
    assert "official mode never rescales" in capsys.readouterr().err


def test_eval_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:  # no sub-command: argparse's usage error
        main(["eval"])
    assert exc.value.code == 2
    assert "SUBCOMMAND" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "vstar-score" in capsys.readouterr().out


def test_eval_bench_help_describes_bench(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", "bench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "`o3video eval bench NAME`: run a model on a general benchmark" in out
    assert "o3video eval vstar` and `o3video eval merge`" not in out
    assert "tvgbench" in out and "--root" in out

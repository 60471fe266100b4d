"""`o3video data check` and the readers of outside JSON, on hostile and careless files: deep
nesting is one error line, no records is a failure, every sampled frame is decoded, MCQ
answers must be among the options, reasoning times inside the video."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from test_stgr import valid, write
from videos import encode_video

from o3video.cli.main import main
from o3video.data.load import json_entries, read_json
from o3video.errors import DataError
from o3video.eval.vstar_parse import official_time_answer, parse_box_answer
from o3video.eval.vstar_score import ScoreConfig, score_vstar

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("text", [DEEP, '[{"a": ' * 50_000, "{" * 100_000])
def test_deep_nesting_in_a_data_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = tmp_path / "deep.json"
    path.write_text(text, encoding="utf-8")
    assert main(["data", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"o3video data: error: {path}: malformed JSON at line 1, column")
    assert "nested deeper than 64 levels" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(DataError, match="nested deeper"):
        list(json_entries(path))
    with pytest.raises(DataError, match="nested deeper"):
        read_json(path)


def test_nesting_within_the_limit_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "ok.json"
    value = {"a": [[[["]]]]]"]]]], "b": "[[[["}  # brackets in strings do not count
    path.write_text(json.dumps([value]), encoding="utf-8")
    assert list(json_entries(path)) == [(0, value)]


def test_a_where_answer_of_deep_brackets_scores_zero() -> None:
    assert parse_box_answer(DEEP) == {} and parse_box_answer("[" * 1000) == {}
    assert official_time_answer("[" * 100_000) is None
    record = {
        "vid": "v", "domain": "a", "fps": 10.0, "width": 100, "height": 100,
        "frame_count": 300, "question": "q", "answer": "a", "temporal_question": "tq",
        "timestamps": [2, 6], "spatial_question": "sq", "spatial_question_2": "sq2",
        "bboxes": [{"timestamp": 3, "frame_index": 30, "xmin": 0, "ymin": 0, "xmax": 10,
                    "ymax": 10}],
        "answer_vqa": "x", "answer_temporal": "[" * 100_000, "answer_temporal_2": [2, 6],
        "answer_spatial": "[" * 100_000, "answer_spatial_2": {"3": [0, 0, 10, 10]},
    }  # fmt: skip
    for mode in ("default", "official"):
        scores = score_vstar([record], [3], ScoreConfig(mode=mode))  # type: ignore[arg-type]
        assert scores.overall.viou[0] == 0.0 and scores.overall.viou[1] == 1.0
        assert scores.overall.tiou[0] == 0.0


@pytest.mark.parametrize("text", ["", "[]", "  \n"])
def test_a_file_without_records_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = tmp_path / "none.json"
    path.write_text(text, encoding="utf-8")
    assert main(["data", "check", str(path)]) == 1
    assert f"o3video data: error: {path}: no records" in capsys.readouterr().err
    assert main(["data", "check", str(path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_an_mcq_answer_outside_the_options_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [
        valid("General video QA MCQ", answer="E"),  # options A, B, C
        valid("temporal QA (MCQ)", answer="C\n[0.5, 1.5]"),  # options A, B
        valid("General video QA MCQ", answer="B", question="Which?\nA. red\nB. blue"),
    ]
    path = write(tmp_path, records)
    assert main(["data", "check", str(path), "--show", "5"]) == 1
    out = capsys.readouterr().out
    assert f"{path}: 3 records, 1 usable, 2 skipped" in out
    assert "record 0, answer: the answer E is not one of the options A, B, C [bad_answer]" in out
    assert "record 1, answer: the answer C is not one of the options A, B [bad_answer]" in out


def test_reasoning_times_outside_the_video_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reasoning = "<obj>dog</obj><box>[0.25,0.5,0.75,1.0]</box>at<t>500</t>s runs."
    record = valid("temporal-spatial free-form QA", reasoning_process=reasoning, duration=8.0)
    path = write(tmp_path, [record])
    assert main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        "record 0, reasoning_process: 500 s is past the end of the video (8.000 s) "
        "[time_out_of_range]"
    ) in out


def test_decode_reads_every_sampled_frame(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Matroska file cut in half opens and its first frame decodes; the check decodes
    every frame a model would be shown, so the cut is found."""
    media = tmp_path / "media"
    folder = media / "videor1" / "g"
    folder.mkdir(parents=True)
    full = folder / "full.mkv"
    encode_video(full, list(range(100)), Fraction(1, 10), rate=10, gop=10)
    data = full.read_bytes()
    (folder / "cut.mkv").write_bytes(data[: len(data) // 2])
    records = [
        valid("General video QA MCQ", video_path="g/full.mkv"),
        valid("General video QA MCQ", video_path="g/cut.mkv"),
    ]
    path = write(tmp_path, records)
    args = ["data", "check", str(path), "--media-root", str(media), "--decode", "--show", "5"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert f"{path}: 2 records, 1 usable, 1 skipped" in out
    assert "record 1, video_path:" in out and "truncated" in out


def test_a_judge_reply_of_deep_brackets_is_unparsable() -> None:
    from o3video.eval.judge import UNPARSABLE, parse_judge_reply

    assert parse_judge_reply('{"score": ' + "[" * 100_000 + "}") == UNPARSABLE
    assert parse_judge_reply('{"score": 2}') == 2

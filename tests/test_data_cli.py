"""`o3video data check`, `o3video data stats` and `o3video data synth`, in-process through
``main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_stgr import VALID, make_media, valid, write

from o3video.cli.main import main


def test_check_valid_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, [valid(t) for t in VALID])
    assert main(["data", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: 6 records, 6 usable, 0 skipped, 0 warnings" in out
    assert "  temporal QA (MCQ)                      1       1        0" in out


def test_check_reports_problems_and_missing_media(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    media = tmp_path / "videos"
    make_media(media)
    records = [valid(t) for t in VALID] + [valid("General video QA MCQ", answer="blue")]
    path, report = write(tmp_path, records), tmp_path / "report.json"
    code = main(
        [
            "data",
            "check",
            str(path),
            "--media-root",
            str(media),
            "--report",
            str(report),
            "--show",
            "1",
        ]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert f"{path}: 7 records, 3 usable, 4 skipped, 0 warnings" in out
    assert "  error   missing_media                3" in out
    assert "  error   bad_answer                   1" in out
    assert "missing media: 3 files in 2 folders" in out
    assert (
        f"  {media / 'videor1'}  (2 missing)\n    {media / 'videor1/g/mcq.mp4'}\n    ... and 1 more"
        in out
    )
    assert f"  {media / 'stgr/temporal_grounding/kfs'}  (1 missing)" in out
    assert "record 6, answer: MCQ answers are one letter, got 'blue' [bad_answer]" in out
    assert json.loads(report.read_text(encoding="utf-8"))["skipped"] == 4


def test_check_json_and_strict_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    warned = valid("temporal-spatial free-form QA", key_items={"0": None})
    path = write(tmp_path, [warned])
    assert main(["data", "check", str(path), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["ok"], got["usable"], got["warnings"]) == (True, 1, 1)
    assert got["issue_counts"] == {"warning:null_key_item": 1}
    assert got["tasks"] == {
        "temporal-spatial free-form QA": {"total": 1, "usable": 1, "skipped": 0}
    }
    assert main(["data", "check", str(path), "--json", "--strict"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_check_source_root_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips/mcq.mp4").write_bytes(b"x")
    path = write(tmp_path, [valid("General video QA MCQ", video_path="mcq.mp4")])
    args = ["data", "check", str(path), "--media-root", str(tmp_path)]
    assert main(args) == 1
    assert main([*args, "--source-root", "videor1_*=clips"]) == 0
    capsys.readouterr()


def test_malformed_json_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"task": }]', encoding="utf-8")
    assert main(["data", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"o3video data: error: {path}: malformed JSON at line 1, column 11 (record 0)"
    )


def test_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [valid(t) for t in VALID] + [
        valid("temporal QA", duration=75.0),
        valid("temporal QA", answer="?"),
    ]
    path = write(tmp_path, records)
    assert main(["data", "stats", str(path), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["records"], got["skipped"]) == (7, 1)
    assert got["tasks"]["temporal QA"] == 2 and got["sources"]["gqa"] == 1
    assert got["durations_s"]["count"] == 1 and got["durations_s"]["histogram"] == {
        "medium (60-180 s)": 1
    }
    # claims: visual QA 1, temporal QA 0 (twice: bare times only), spatio-temporal 1
    assert got["claims_per_trace"]["histogram"] == {"0": 2, "1": 2}
    assert got["key_frames_per_record"] == {
        "count": 1,
        "min": 1,
        "median": 1,
        "mean": 1.0,
        "max": 1,
        "histogram": {"1": 1},
    }
    assert main(["data", "stats", str(path)]) == 0
    out = capsys.readouterr().out
    assert "tasks:" in out and "claims_per_trace: 4 traces" in out


def test_stats_probes_durations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fractions import Fraction

    from videos import encode_video

    (tmp_path / "videor1").mkdir()
    encode_video(tmp_path / "videor1/a.mp4", list(range(8)), Fraction(1, 4), rate=4)
    path = write(tmp_path, [valid("General video QA MCQ", video_path="a.mp4")])
    assert (
        main(["data", "stats", str(path), "--media-root", str(tmp_path), "--probe", "--json"]) == 0
    )
    got = json.loads(capsys.readouterr().out)
    assert got["durations_s"]["count"] == 1 and got["durations_s"]["max"] == pytest.approx(2.0)


def test_data_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data"])
    assert exc.value.code == 2
    assert "SUBCOMMAND" in capsys.readouterr().err


def test_synth_writes_files_that_check_fully_valid_and_same_seed_same_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["data", "synth", "--out", str(a), "--n", "6", "--seed", "3"]) == 0
    out, err = capsys.readouterr()
    assert f"{a}: 6 videos (224x224, 8 s at 10 fps, seed 3) in " in out
    assert "  visual QA                              6       6" in out
    n_vstar = len(json.loads((a / "vstar.json").read_text()))  # + 5 records each, per file
    assert f"  {'V-STaR protocol':<32}{5 * n_vstar:>8}{5 * n_vstar:>8}" in out
    assert f"  {'all tasks':<32}{36 + 5 * n_vstar:>8}{36 + 5 * n_vstar:>8}" in out
    assert "media: 6 videos in videos/," in out and "V-STaR items: " in out
    assert "6/6 videos (100%)" in err and "ETA" in err
    for name, noun in (("stgr_sft", "records"), ("stgr_rl", "records"), ("vstar", "V-STaR items")):
        args = ["data", "check", str(a / f"{name}.json"), "--media-root", str(a), "--decode"]
        assert main(args) == 0, name
        out = capsys.readouterr().out
        total = {"stgr_sft": 36 + 5 * n_vstar, "stgr_rl": 36 + 5 * n_vstar, "vstar": n_vstar}[name]
        assert f"{total} {noun}, {total} usable, 0 skipped, 0 warnings" in out, name
        assert "problems:" not in out
    assert (
        main(["data", "synth", "--out", str(b), "--n", "6", "--seed", "3", "--workers", "2"]) == 0
    )
    for name in ("stgr_sft.json", "stgr_rl.json", "vstar.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_synth_options_and_help(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["data", "synth", "--out", str(tmp_path), "--n", "1", "--size", "96x64"]
    assert main([*args, "--duration", "2", "--fps", "5"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["width"] == 96 and manifest["config"]["fps"] == "5"
    capsys.readouterr()
    assert main([*args, "--duration", "1", "--fps", "5"]) == 2  # 5 frames: too short
    assert "at least 8 frames" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["data", "synth", "--help"])
    assert exc.value.code == 0
    assert "o3video data synth --out synth --n 200 --seed 0" in capsys.readouterr().out


def test_synth_world_of_a_model_or_a_recipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from o3video.models.card import VideoSettings, write_card

    world = {"width": 64, "height": 48, "duration_s": 2, "fps": 5.0, "num_objects": [1, 2],
             "size_px": [10, 16], "background": "gradient"}  # fmt: skip
    model = tmp_path / "model"
    model.mkdir()
    write_card(model, VideoSettings(), world=world)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data:\n  synth:\n    world: {json.dumps(world)}\n")
    for source in (model, recipe):
        out = tmp_path / f"out-{source.name}"
        args = ["data", "synth", "--out", str(out), "--n", "1", "--world-of", str(source)]
        assert main(args) == 0
        assert "1 videos (64x48, 2 s at 5 fps, seed 0)" in capsys.readouterr().out
        config = json.loads((out / "manifest.json").read_text())["config"]
        assert config["background"] == "gradient" and config["num_objects"] == [1, 2]
    # The world comes whole from the source: frame options beside it are refused.
    args = ["data", "synth", "--out", str(tmp_path / "x"), "--n", "1", "--world-of", str(model)]
    assert main([*args, "--fps", "4"]) == 2
    assert "--world-of sets the whole world; drop --fps" in capsys.readouterr().err
    # A folder without a card, a recipe without data.synth and a bad world name the file.
    bare = tmp_path / "bare"
    bare.mkdir()
    no_synth = tmp_path / "no-synth.yaml"
    no_synth.write_text("output_dir: x\n")
    write_card(tmp_path / "model", VideoSettings(), world={"colour": "red"})
    for source, message in ((bare, "no o3video.json with a 'world'"),
                            (no_synth, "the recipe has no data.synth section"),
                            (model, "unknown key 'data.synth.world.colour'")):  # fmt: skip
        args = ["data", "synth", "--out", str(tmp_path / "y"), "--n", "1", "--world-of"]
        assert main([*args, str(source)]) == 1
        err = capsys.readouterr().err
        assert str(source) in err and message in err, err

"""The command line, called in-process through ``main(argv)``."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from o3video import __version__
from o3video.cli.main import COMMANDS, Command, main


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"o3video {__version__}"
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ("ask", "demo", "data", "train", "eval", "serve", "probe", "trace"):
        assert name in out


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_command_has_help_with_an_example(
    command: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    module = importlib.import_module(command.module)
    assert (command.name, command.help) == (module.NAME, module.HELP)  # the table is the module's
    with pytest.raises(SystemExit) as exc:
        main([command.name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and module.__doc__.split("\n")[0][:40] in out


def test_trace_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "out.txt"
    f.write_text(
        "<think>a <obj>dog</obj> <box>[1,2,3,4]</box> at <t>3.5</t>s then <t>7</t>s</think>"
        "<answer>B</answer>",
        encoding="utf-8",
    )
    assert main(["trace", str(f), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["answer"] == "B"
    assert [(c["name"], c["boxes"], c["t_s"]) for c in got["claims"]] == [
        ("dog", [[1.0, 2.0, 3.0, 4.0]], 3.5)
    ]
    assert got["times_s"] == [7.0]
    assert got["problems"] == []
    assert main(["trace", str(f)]) == 0
    assert "dog" in capsys.readouterr().out


def test_trace_reports_problems_and_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "cut.txt"
    f.write_text("<think><obj>cat</obj><box>[1,2,3", encoding="utf-8")
    assert main(["trace", str(f), "--json"]) == 0
    kinds = {p["kind"] for p in json.loads(capsys.readouterr().out)["problems"]}
    assert "missing_answer" in kinds and "unclosed_tag" in kinds
    missing = tmp_path / "nope.txt"
    assert main(["trace", str(missing)]) == 1
    assert str(missing) in capsys.readouterr().err


def test_console_script_runs() -> None:
    exe = Path(sys.executable).with_name("o3video")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"o3video {__version__}"


def test_probe_command_lists_true_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fractions import Fraction

    from videos import encode_video

    # 12 frames at 29.97 fps: PTS k * 1001 in a 1/30000 time base.
    path = tmp_path / "ntsc.mp4"
    encode_video(
        path, [k * 1001 for k in range(12)], Fraction(1, 30000), rate=Fraction(30000, 1001)
    )
    frames_dir = tmp_path / "frames"
    assert main(["probe", str(path), "--num-frames", "4", "--json", "--save", str(frames_dir)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["fps"] == pytest.approx(30000 / 1001, abs=1e-9)
    true_pts = [k * 1001 / 30000 for k in range(12)]
    assert len(got["times_s"]) == 4
    for t in got["times_s"]:
        assert min(abs(t - p) for p in true_pts) < 1e-3
    assert len(list(frames_dir.glob("*.png"))) == 4
    assert main(["probe", str(path)]) == 0
    assert "29.97 fps" in capsys.readouterr().out


def test_probe_bad_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video", encoding="utf-8")
    assert main(["probe", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("o3video probe: error: ") and str(bad) in err
    assert len(err.splitlines()) == 1


def test_progress_line_rate_counts_only_this_runs_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from o3video.cli import _progress

    clock = iter([100.0, 100.0, 110.0])
    monkeypatch.setattr(_progress.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    line = _progress.ProgressLine("items", stream=out)
    line(40, 100)  # a resumed run: 40 items were done before it started
    line(60, 100)  # 20 more in 10 s: 2 items/s, 40 left → 20 s
    last = out.getvalue().splitlines()[-1]
    assert last == "60/100 items (60%), 2.00 items/s, 10 s elapsed, ETA 20 s"

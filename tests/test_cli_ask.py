"""``o3video ask`` in-process: the tiny model answers, outputs are written, errors are one line."""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from videos import encode_video

from o3video.cli.main import main


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    encode_video(path, list(range(20)), Fraction(1, 10), rate=10, size_wh=(64, 48))
    return path


def _viz_available() -> bool:
    try:
        from o3video.viz import write_outputs  # noqa: F401
    except ImportError:
        return False
    return True


def test_ask_prints_and_writes_outputs(
    tiny_dir: Path, video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["ask", str(video), "What moves?", "--model", str(tiny_dir), "--out", str(out)]
    assert main([*argv, "--max-new-tokens", "8"]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((out / "answer.json").read_text(encoding="utf-8"))
    assert saved["question"] == "What moves?" and saved["model"] == f"hf:{tiny_dir}"
    assert printed.startswith("reasoning:\n" + saved["text"])  # streamed as it was written
    assert "answer: (none)" in printed
    assert f"parser problems: {len(saved['problems'])}" in printed
    assert "evidence: 0 claim(s), boxes in source pixels (64x48)" in printed
    assert f"json: {out / 'answer.json'}" in printed
    if _viz_available():
        assert (out / "report.html").is_file() and f"report: {out / 'report.html'}" in printed


def test_ask_json(
    tiny_dir: Path, video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "j"
    argv = ["ask", str(video), "Q", "--model", str(tiny_dir), "--out", str(out)]
    assert main([*argv, "--max-new-tokens", "4", "--samples", "2", "--seed", "1", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["samples"]) == 2 and payload["outputs"]["json"] == str(out / "answer.json")
    assert payload["video"]["frame_times_s"] == pytest.approx([0.0, 0.6, 1.3, 1.9])


def test_without_viz_answer_json_is_still_written(
    tiny_dir: Path,
    video: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "o3video.viz", None)
    out = tmp_path / "noviz"
    argv = ["ask", str(video), "Q", "--model", str(tiny_dir), "--out", str(out)]
    assert main([*argv, "--max-new-tokens", "4"]) == 0
    assert [p.name for p in out.iterdir()] == ["answer.json"]
    assert "note: the animation and report.html need o3video.viz" in capsys.readouterr().out


def test_default_out_dir_is_named_after_the_video(
    tiny_dir: Path, video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["ask", str(video), "Q", "--model", str(tiny_dir), "--max-new-tokens", "2"]) == 0
    assert (tmp_path / "o3video-out" / "clip" / "answer.json").is_file()


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("o3video ask: error: ")
    return lines[0]


def test_corrupt_video_is_one_line(
    tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 50)
    assert main(["ask", str(bad), "Q", "--model", str(tiny_dir), "--out", str(tmp_path)]) == 1
    assert str(bad) in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "answer.json").exists()


def test_missing_model_is_one_line(
    video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "models" / "nothing"
    assert main(["ask", str(video), "Q", "--model", str(missing), "--out", str(tmp_path)]) == 1
    assert str(missing) in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--vote", "majority"], "--vote needs --samples 2 or more"),
        (["--backend", "openai"], "--backend openai needs --base-url"),
        (["--base-url", "http://x/v1"], "--base-url is for --backend openai"),
    ],
)
def test_argument_mistakes(
    video: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", str(video), "Q", "--model", "m", *extra]) == 2
    assert message in capsys.readouterr().err


def test_ask_shows_the_embedded_model_its_own_frames(
    video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --model: the embedded model, with its card's frame budget (at least 3,136
    pixels: 56×56 frames for this 64×48 video), not the default 112×112 a bare budget would
    give it."""
    from o3video.embedded import embedded_model_dir

    for extra in ([], ["--model", str(embedded_model_dir())]):
        out = tmp_path / f"emb{len(extra)}"
        argv = ["ask", str(video), "What moves?", "--out", str(out), "--max-new-tokens", "4"]
        assert main([*argv, *extra, "--json"]) == 0
        saved = json.loads(capsys.readouterr().out)
        assert saved["video"]["frame_wh"] == [56, 56]
        assert saved["model"] == f"hf:{embedded_model_dir()}"


def test_ask_frame_options_override_the_card(
    video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ask", str(video), "Q", "--out", str(tmp_path / "o"), "--max-new-tokens", "2"]
    # The card says 2 fps (4 frames of this 2 s video) of at least 3,136 pixels (56×56 here);
    # --fps 4 gives 8 frames.
    assert main([*argv, "--fps", "4", "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved["video"]["frame_wh"] == [56, 56] and len(saved["video"]["frame_times_s"]) == 8

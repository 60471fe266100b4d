"""The command line's inputs: questions that cannot be asked and non-finite numbers are
refused with an error line before any model is loaded or any frame decoded."""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import pytest
from videos import encode_video

from o3video.cli import finite_float
from o3video.cli.main import build_parser, main


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    encode_video(path, list(range(20)), Fraction(1, 10), rate=10, size_wh=(64, 48))
    return path


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("", "the question is empty"),
        ("  \n\t ", "the question is empty"),
        ("x" * 100_000, "the question is 100000 characters; at most 32768"),
        ("a b " * 2000, "does not fit the model's context of 4096 tokens"),
    ],
)
def test_ask_refuses_a_question_it_cannot_ask(
    tiny_dir: Path,
    video: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    question: str,
    message: str,
) -> None:
    argv = ["ask", str(video), question, "--model", str(tiny_dir), "--out", str(tmp_path)]
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("o3video ask: error: "), lines
    assert message in lines[0]
    assert not (tmp_path / "answer.json").exists()


def test_a_question_that_fits_is_asked(
    tiny_dir: Path, video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ask", str(video), "a b " * 200, "--model", str(tiny_dir), "--out", str(tmp_path)]
    assert main([*argv, "--max-new-tokens", "2"]) == 0
    assert (tmp_path / "answer.json").exists()


def _float_options() -> list[tuple[list[str], str]]:
    """``(command path, option)`` of every option of every command that takes a number
    with a fraction (any ``type`` but ``int``/``str`` whose default or type is a float)."""
    found = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        if hasattr(parser, "load"):  # a command's parser is filled in when it is used
            parser.load()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif action.type in (float, finite_float) and action.option_strings:
                found.append((path, action.option_strings[-1]))

    walk(build_parser(), [])
    return found


FLOAT_OPTIONS = _float_options()


def test_every_float_option_is_finite_only() -> None:
    assert len(FLOAT_OPTIONS) >= 17
    plain = [f"{' '.join(p)} {o}" for p, o in FLOAT_OPTIONS if _type_of(p, o) is float]
    assert plain == []


def _type_of(path: list[str], option: str) -> object:
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
        if hasattr(parser, "load"):
            parser.load()
    return next(a for a in parser._actions if option in a.option_strings).type


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
@pytest.mark.parametrize(("path", "option"), FLOAT_OPTIONS, ids=lambda x: str(x))
def test_non_finite_numbers_are_refused(
    path: list[str], option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*path, f"{option}={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {option}: not a finite number: {value!r}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("option", ["--fps", "--start", "--end", "--snap-tolerance"])
def test_probe_with_nan_is_an_error_line_not_a_traceback(
    video: Path, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["probe", str(video), option, "nan"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.rstrip().splitlines()[-1] == (
        f"o3video probe: error: argument {option}: not a finite number: 'nan'"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fps": float("nan")},
        {"fps": float("inf")},
        {"start_s": float("nan")},
        {"end_s": float("inf")},
        {"mode": "snap", "snap_tolerance_s": float("nan")},
    ],
)
def test_sampling_refuses_non_finite_numbers(video: Path, kwargs: dict[str, object]) -> None:
    from o3video.errors import VideoDecodeError
    from o3video.video import sample_frames

    with pytest.raises(VideoDecodeError, match=r"^.*clip\.mp4: bad"):
        sample_frames(video, **kwargs)  # type: ignore[arg-type]

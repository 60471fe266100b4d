"""`o3video demo`: a synthetic video, a few grounded questions, the outputs per question."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from o3video.cli.main import main
from o3video.embedded import MODEL_DIR, EmbeddedModelMissing, embedded_model_dir


def test_demo_with_a_model_folder_writes_every_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from o3video.models.card import VideoSettings, write_card
    from o3video.models.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    world = {"width": 112, "height": 96, "duration_s": 4, "num_objects": [2, 3],
             "size_px": [12, 24]}  # fmt: skip
    write_card(model, VideoSettings(max_frames=4, max_pixels=6272), world=world)
    out = tmp_path / "demo"
    argv = ["demo", "--model", str(model), "--out", str(out), "--max-new-tokens", "8"]
    assert main([*argv, "--animation", "none"]) == 0
    printed = capsys.readouterr().out
    assert "4 frames shown" in printed  # the card's frame budget
    assert "(112x96, 4.0 s;" in printed  # a video of the card's world
    assert printed.count("ground truth: ") == 3 and "o3video ask VIDEO" in printed
    for k in (1, 2, 3):
        answer = json.loads((out / f"q{k}" / "answer.json").read_text())
        assert answer["model"] == f"hf:{model}"
        assert (out / f"q{k}" / "report.html").is_file()
    assert len(list((out / "video" / "videos").glob("*.mp4"))) == 1


def test_without_an_embedded_model_the_demo_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import o3video.embedded as embedded

    monkeypatch.setattr(embedded, "MODEL_DIR", tmp_path / "none")
    with pytest.raises(EmbeddedModelMissing, match="Pass --model"):
        embedded.embedded_model_dir()
    assert main(["demo", "--out", str(tmp_path / "o")]) == 1
    assert "Pass --model" in capsys.readouterr().err


def test_a_bad_world_in_the_card_names_the_card(tmp_path: Path) -> None:
    from o3video.errors import DataError
    from o3video.models.card import VideoSettings, write_card
    from o3video.train.card import world_of

    write_card(tmp_path, VideoSettings(), world={"width": 225})
    with pytest.raises(DataError, match=r"o3video.json: world: .*even frame size"):
        world_of(tmp_path)
    write_card(tmp_path, VideoSettings(), world=[112, 112])
    with pytest.raises(DataError, match="world must be an object"):
        world_of(tmp_path)


def test_embedded_model_dir_is_inside_the_package() -> None:
    assert MODEL_DIR.parent.name == "embedded" and MODEL_DIR.parent.parent.name == "o3video"
    if (MODEL_DIR / "model.safetensors").is_file():
        assert embedded_model_dir() == MODEL_DIR


def test_the_demo_asks_the_best_kinds_the_video_has_then_fills_from_the_tasks() -> None:
    from o3video.cli.demo import QUESTIONS, pick_questions
    from o3video.data.questions import Question

    def q(task: str, text: str, answer: str = "x") -> Question:
        return Question(task, text, answer, "")

    free, temporal = "General video QA Free-form", "temporal QA"
    questions = {
        free: [q(free, "What colour is the square?", "red"),
               q(free, "How many shapes appear in the video?", "3")],
        temporal: [q(temporal, "When does the red square stand still?"),
                   q(temporal, "When is the red square in the scene?", "[0.0, 6.0]")],
        "General video QA MCQ": [q("General video QA MCQ", "How many squares appear?\nA. 1")],
    }  # fmt: skip
    picked = pick_questions(questions)
    # The best kinds first, whatever their place in the video's lists.
    assert [p.question for p in picked] == [
        "When is the red square in the scene?",
        "How many shapes appear in the video?",
        "What colour is the square?",
    ]
    assert picked[0].task == temporal and picked[0].answer == "[0.0, 6.0]"
    assert QUESTIONS[0][1].fullmatch(picked[0].question)
    # A video without those kinds: the first question of each fallback task, none twice.
    only = {temporal: questions[temporal][:1], free: questions[free][:1]}
    assert [p.question for p in pick_questions(only)] == [
        "What colour is the square?",
        "When does the red square stand still?",
    ]

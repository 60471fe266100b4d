"""benchmarks/what_errors.py: the colour/shape table of What answers, on fabricated files."""

from __future__ import annotations

import json
from pathlib import Path

from bench_scripts import load_benchmark


def _corpus(data: Path, videos: dict[str, list[str]]) -> None:
    (data / "gt").mkdir(parents=True)
    for vid, names in videos.items():
        objects = [{"name": n, "colour": n.split()[0], "shape": n.split()[1]} for n in names]
        (data / "gt" / f"{vid}.json").write_text(json.dumps({"objects": objects}))


def test_answers_are_split_by_colour_and_shape(tmp_path: Path) -> None:
    we = load_benchmark("what_errors")
    _corpus(
        tmp_path / "data", {"v0": ["red circle", "blue square"], "v1": ["red cross", "red square"]}
    )
    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {
            "vid": "v0",
            "answer": "the red circle",
            "answer_vqa": "the red circle",
            "question": "Which shape passes in front of the blue square?",
        },  # both
        {
            "vid": "v0",
            "answer": "the red circle",
            "answer_vqa": "the blue square",
        },  # neither, present
        {"vid": "v1", "answer": "the red cross", "answer_vqa": "the red square"},  # colour, present
        {"vid": "v1", "answer": "the red cross", "answer_vqa": "I do not know"},  # neither
    ]
    (run / "results.json").write_text(json.dumps(rows))
    s = we.summarize(run, tmp_path / "data")
    assert (s["both_right"], s["colour_only"], s["shape_only"], s["neither"]) == (1, 1, 0, 2)
    assert s["colour_right"] == 0.5 and s["shape_right"] == 0.25
    assert s["names_an_object_in_the_video"] == 0.75
    assert s["truth_has_a_unique_colour"] == 0.5  # v0's red circle only
    assert s["shapes_said"] == {"circle": 1, "square": 2, "(none)": 1}
    # Per question: the first row's form, and the three without a question under "".
    assert s["by_question"] == {
        "": {"n": 3, "both": 0.0, "colour": 1 / 3, "shape": 0.0, "present": 2 / 3,
             "shape_named": 0.0, "colour_named": 0.0},
        "Which shape passes in front of the COLOUR SHAPE?": {
            "n": 1,
            "both": 1.0,
            "colour": 1.0,
            "shape": 1.0,
            "present": 1.0,
            "shape_named": 0.0,
            "colour_named": 0.0,
        },
    }  # fmt: skip
    assert s["wrong_shape_named_by_the_question"] == 0


def test_a_wrong_name_that_the_question_names_is_counted(tmp_path: Path) -> None:
    we = load_benchmark("what_errors")
    _corpus(tmp_path / "data", {"v0": ["red circle", "blue square", "green cross"]})
    run = tmp_path / "run"
    run.mkdir()
    q = "Which shape passes in front of the blue square?\nAnswer briefly."
    rows = [
        {"vid": "v0", "answer": "the red circle", "answer_vqa": "the red square", "question": q},
        {"vid": "v0", "answer": "the red circle", "answer_vqa": "the blue square", "question": q},
        {"vid": "v0", "answer": "the red circle", "answer_vqa": "the red cross", "question": q},
        {"vid": "v0", "answer": "the blue square", "answer_vqa": "the blue square",
         "question": "Which shape stands still for a while?"},
    ]  # fmt: skip
    (run / "results.json").write_text(json.dumps(rows))
    s = we.summarize(run, tmp_path / "data")
    assert s["wrong_shape_named_by_the_question"] == 2  # rows 1 and 2; row 3's cross is not
    assert s["wrong_colour_named_by_the_question"] == 1  # row 2
    form = s["by_question"]["Which shape passes in front of the COLOUR SHAPE?"]
    assert (form["shape_named"], form["colour_named"]) == (2 / 3, 1 / 3)
    # A right answer never counts, even where the question names it.
    assert s["by_question"]["Which shape stands still for a while?"]["shape_named"] == 0

"""benchmarks/question_copy.py: the substituted question set and the reading of runs on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_scripts import load_benchmark

from o3video.data.shapes import SHAPES


def test_the_substitute_is_a_third_shape() -> None:
    qc = load_benchmark("question_copy")
    for shape in SHAPES:
        for answer in SHAPES:
            new = qc.substitute(shape, answer)
            assert new in SHAPES and new not in (shape, answer)


def _item(vid: str, question: str, answer: str) -> dict[str, object]:
    return {"vid": vid, "question": question, "answer": answer, "timestamps": [0.0, 1.0]}


def test_make_then_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qc = load_benchmark("question_copy")
    data = tmp_path / "corpus"
    (data / "videos").mkdir(parents=True)
    (data / "gt").mkdir()
    items = [
        _item("v0", "Which shape passes in front of the red square?", "the blue circle"),
        _item("v1", "Which shape stands still for a while?", "the red cross"),
        _item("v2", "Which shape passes in front of the green cross?", "the red cross"),
    ]
    (data / "vstar.json").write_text(json.dumps(items))
    assert qc.make(data, tmp_path / "sub") == (2, 3)
    sub = json.loads((tmp_path / "sub" / "vstar.json").read_text())
    original = json.loads((tmp_path / "sub-original" / "vstar.json").read_text())
    assert [r["vid"] for r in sub] == [r["vid"] for r in original] == ["v0", "v2"]
    assert original[0] == items[0]
    new_shape = qc.substitute("square", "circle")
    assert sub[0]["question"] == f"Which shape passes in front of the red {new_shape}?"
    assert {k: v for k, v in sub[0].items() if k != "question"} == {
        k: v for k, v in items[0].items() if k != "question"
    }
    assert (tmp_path / "sub" / "videos").resolve() == (data / "videos").resolve()

    # A run on the whole corpus (its own questions) and one on the substituted set.
    whole = tmp_path / "whole"
    whole.mkdir()
    rows = [dict(items[0], answer_vqa="the blue square"),  # copies the question's shape
            dict(items[1], answer_vqa="the red cross"),  # not in the set: skipped
            dict(items[2], answer_vqa="the red cross")]  # right  # fmt: skip
    (whole / "results.json").write_text(json.dumps(rows))
    on_sub = tmp_path / "on-sub"
    on_sub.mkdir()
    rows = [dict(sub[0], answer_vqa=f"the blue {new_shape}"),  # follows the new word
            dict(sub[1], answer_vqa="the red cross")]  # fmt: skip
    (on_sub / "results.json").write_text(json.dumps(rows))
    qc.read(tmp_path / "sub", [whole, on_sub], pairs=True)
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(
        "2 answers; answer shape = truth 0.500, the question's shape (not the truth's) 0.500, "
        "the substituted shape 0.000"
    )
    assert out[2].endswith(
        "2 answers; answer shape = truth 0.500, the question's shape (not the truth's) 0.500, "
        "the substituted shape 0.500"
    )
    # v0: blue circle in front of a red square, answered with the front colour and the shape
    # behind; v2 (a red cross in front of a green cross) is left out of this line.
    assert out[1].strip() == "where the two objects' shapes differ (1): front colour + back shape 1"
    assert out[4].endswith("the same What answer on 1 of 2 items")  # v2 only
    assert out[3].strip() == (
        "where the two objects' shapes differ (1): front colour + other shape 1"
    )

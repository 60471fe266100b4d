"""benchmarks/demo_questions.py: templates, the Wilson interval, and the questions it asks are
those of the corpus ``synthesize`` wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_scripts import load_benchmark


def test_template_hides_colours_shapes_and_options() -> None:
    dq = load_benchmark("demo_questions")
    colours, shapes = ["red", "blue"], ["circle", "cross", "square"]
    q = "How many blue crosses appear in the video?\nA. 1\nB. 2"
    assert dq.template(q, colours, shapes) == "How many COLOUR SHAPEs appear in the video?"
    q = "When does the red circle pass in front of the blue square?"
    assert dq.template(q, colours, shapes) == (
        "When does the COLOUR SHAPE pass in front of the COLOUR SHAPE?"
    )
    assert dq.template("What shape is the reddish thing?", colours, shapes) == (
        "What shape is the reddish thing?"  # whole words only
    )


def test_wilson_interval() -> None:
    dq = load_benchmark("demo_questions")
    lo, hi = dq.wilson(0, 20)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.161, abs=1e-3)
    lo, hi = dq.wilson(10, 20)
    assert lo < 0.5 < hi and hi - 0.5 == pytest.approx(0.5 - lo)


def test_questions_are_the_synthesized_corpus_s(tmp_path: Path) -> None:
    from o3video.data.synthetic import synthesize
    from o3video.data.world import WorldConfig

    dq = load_benchmark("demo_questions")
    cfg = WorldConfig(width=112, height=112, duration_s=3, num_objects=(2, 3))
    synthesize(tmp_path, 2, seed=31, config=cfg, workers=1)
    records = json.loads((tmp_path / "stgr_sft.json").read_text())
    for index in range(2):
        asked = dq.questions_of(31, index, cfg)
        picked = [
            r
            for r in records
            if r.get("video_path") == f"videos/synth_{index:06d}.mp4" and r["task"] in asked
        ]
        assert picked
        for r in picked:  # the corpus's record is the first candidate of its task
            first = asked[r["task"]][0]
            assert (first.question, first.answer) == (r["question"], str(r["answer"]))


def test_demo_picks_scores_the_questions_the_demo_would_ask() -> None:
    dq = load_benchmark("demo_questions")

    def row(video: str, task: str, question: str, right: bool, claims: int, on: int) -> dict:
        return {"video": video, "task": task, "question": question, "right": right,
                "claims": claims, "on_object": on}  # fmt: skip

    free, mcq = "General video QA Free-form", "General video QA MCQ"
    rows = [
        row("v0", mcq, "How many squares appear?\nA. 1", True, 1, 1),  # not a demo kind
        row("v0", free, "How many shapes appear in the video?", True, 2, 2),
        row("v0", free, "How many shapes can be seen in the last frame?", True, 1, 0),
        row("v0", free, "What colour is the square?", False, 1, 1),
        row("v1", free, "How many shapes appear in the video?", False, 1, 0),
        row("v1", mcq, "How many circles appear?\nA. 1", True, 1, 0),  # filled in: 2 asked
    ]
    assert dq.demo_picks(rows) == (
        "the demo's questions (o3video.cli.demo.pick_questions) on these 2 videos: 3 of 5 "
        "right, most of a video's right on 1; right with every box on its object: 1"
    )

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

"""The V-STaR results file: written as the reference pipeline writes it (so the official scorer
gives the same numbers as for the reference's own file of the same replies), entries rejected
at load kept in the denominators, and files lacking the fields scoring never reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_eval_vstar import Oracle

from o3video.cli.main import main
from o3video.data.synthetic import SynthResult, synthesize
from o3video.data.vstar import item_from_dict
from o3video.eval.judge import ExactMatchJudge
from o3video.eval.vstar import finish, load_items, result_entry, run_vstar, score_config_for
from o3video.eval.vstar_parse import reference_boxes, reference_timestamps
from o3video.eval.vstar_score import ScoreConfig, score_vstar
from o3video.families import get_family
from o3video.models.card import VideoSettings

QWEN25 = get_family("qwen2_5_vl")

# Ground truth: span [2, 5.5] s, boxes at seconds 2..5 in a 640x360 video.
BOXES = {2: [10, 20, 110, 120], 3: [20, 20, 120, 120], 4: [30, 20, 130, 120], 5: [40, 20, 140, 120]}


def raw_item(vid: str) -> dict[str, Any]:
    return {
        "vid": vid, "domain": "d", "fps": 10.0, "width": 640, "height": 360, "frame_count": 100,
        "question": "q", "answer": "a", "temporal_question": "tq", "timestamps": [2, 5.5],
        "spatial_question": "sq", "spatial_question_2": "sq2",
        "bboxes": [
            {"timestamp": t, "frame_index": 10 * t, "xmin": b[0], "ymin": b[1], "xmax": b[2],
             "ymax": b[3]}
            for t, b in BOXES.items()
        ],
    }  # fmt: skip


def tagged(answer: str) -> str:
    return f"<think>looking at <t>3</t>s</think><answer>{answer}</answer>"


# Five replies per item, and what the reference pipeline writes for them (by hand, from
# reading eval/test/test_vstar_multi_images.py: extract_timestamps / extract_bounding_boxes).
CASES: list[tuple[dict[str, str], dict[str, Any]]] = [
    (  # perfect, tagged
        {
            "what": tagged("a"),
            "when_1": tagged("From <t>2</t>s to <t>5.5</t>s"),
            "where_1": tagged(json.dumps({str(t): b for t, b in BOXES.items()})),
            "where_2": tagged(json.dumps({str(t): b for t, b in BOXES.items()})),
            "when_2": tagged("From <t>2</t>s to <t>5.5</t>s"),
        },
        {
            "answer_vqa": "a",
            "answer_temporal": [2.0, 5.5],
            "answer_spatial": {str(t): b for t, b in BOXES.items()},
            "answer_spatial_2": {str(t): b for t, b in BOXES.items()},
            "answer_temporal_2": [2.0, 5.5],
        },
    ),
    (  # untagged replies with reasoning; pairs and one-key dicts; m:ss
        {
            "what": "<think>x</think>a",
            "when_1": "<think>at <t>9</t>s</think>From 2 to 5",  # three numbers → []
            "where_1": "[[2, [10, 20, 110, 120]], [3, [20, 20, 120, 120]]]",
            "where_2": "[{'4': [30, 20, 130, 120]}, {'5': [40, 20, 140, 120]}]",
            "when_2": tagged("from 0:02 to 0:05"),
        },
        {
            "answer_vqa": "<think>x</think>a",
            "answer_temporal": [],
            "answer_spatial": {"2": [10, 20, 110, 120], "3": [20, 20, 120, 120]},
            "answer_spatial_2": {"4": [30, 20, 130, 120], "5": [40, 20, 140, 120]},
            "answer_temporal_2": [2.0, 5.0],
        },
    ),
    (  # fenced JSON with float keys (never matched by str(timestamp)), nothing readable
        {
            "what": tagged("b"),
            "when_1": tagged("It starts at 2 s, ends at 4 s, lasting 2 s."),
            "where_1": tagged('```json\n{"2.0": [10, 20, 110, 120], "3": [0, 0, 5, 5]}\n```'),
            "where_2": tagged("I cannot tell."),
            "when_2": tagged("From <t>4</t>s to <t>3</t>s"),
        },
        {
            "answer_vqa": "b",
            "answer_temporal": [],
            "answer_spatial": {"2.0": [10, 20, 110, 120], "3": [0, 0, 5, 5]},
            "answer_spatial_2": None,
            "answer_temporal_2": [4.0, 3.0],
        },
    ),
]


def test_our_results_file_scores_like_the_reference_pipelines_file() -> None:
    ours, reference = [], []
    for k, (replies, written) in enumerate(CASES):
        raw = raw_item(f"v{k}")
        item, _ = item_from_dict(raw, k)
        assert item is not None
        entry = result_entry(raw, replies, item, "source_px", (644, 364))
        for field, value in written.items():
            assert entry[field] == value, (k, field)
        ours.append(entry)
        reference.append({**raw, **written, "input_shape": [644, 364]})
    ratings = [3, 3, 0]
    official = ScoreConfig(mode="official")
    theirs = score_vstar(reference, ratings, official).to_dict()
    assert score_vstar(ours, ratings, official).to_dict() == theirs
    # Hand check: item 0 perfect; item 1 When 0, Where halves; item 2 nothing overlaps.
    assert theirs["tiou_1"] == pytest.approx(1 / 3)
    assert theirs["viou_1"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert theirs["viou_2"] == pytest.approx((1 + 0.5 + 0) / 3)
    # Default mode reads the replies: "From 2 to 5" after the think is (2, 5) → tIoU 3/3.5.
    default = score_vstar(ours, ratings, ScoreConfig()).to_dict()
    tiou_1 = (1 + 3 / 3.5 + 2 / 3.5) / 3
    assert default["tiou_1"] == pytest.approx(tiou_1)


def test_reference_readers_on_literal_replies() -> None:
    assert reference_timestamps("<think>at <t>9</t>s</think>From 2 to 5") == []
    assert reference_timestamps("<answer>From <t>2</t>s to <t>5</t>s</answer>") == [2.0, 5.0]
    assert reference_boxes("[[2, [1, 2, 3, 4]]]") == {"2": [1, 2, 3, 4]}
    assert reference_boxes("[{'2': [1, 2, 3, 4]}]") == {"2": [1, 2, 3, 4]}
    assert reference_boxes("[[2, [1, 2, 3, 4]], 7]") == [[2, [1, 2, 3, 4]], 7]  # kept as a list
    assert reference_boxes("nothing") is None


def test_float_sizes_load() -> None:
    raw = {**raw_item("v"), "width": 640.0, "height": 360.0, "frame_count": 100.0}
    item, issues = item_from_dict(raw, 0)
    assert item is not None and issues == []
    assert (item.width, item.height, item.frame_count) == (640, 360, 100)
    assert isinstance(item.width, int)
    item, issues = item_from_dict({**raw, "width": 640.5}, 3)
    assert item is None and "'width' must be a whole number, got 640.5" in str(issues[0])


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synthesize(tmp_path_factory.mktemp("synth"), 4, seed=1000)


def test_an_item_rejected_at_load_stays_in_the_denominator(
    synth: SynthResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = json.loads((synth.out_dir / "vstar.json").read_text())
    entries[1]["timestamps"] = entries[1]["timestamps"][::-1]  # reversed: rejected at load
    data = tmp_path / "vstar.json"
    data.write_text(json.dumps(entries))
    items = load_items(data, synth.out_dir)
    assert len(items) == len(entries) - 1
    run_dir = tmp_path / "run"
    run_vstar(Oracle(items, QWEN25), QWEN25, data, run_dir, media_root=synth.out_dir)
    for mode in ("official", "default"):
        cfg = score_config_for(QWEN25, VideoSettings(), mode)
        o = finish(run_dir, items, ExactMatchJudge(), cfg).scores.overall
        assert (o.n, o.n_dropped) == (len(entries), 1)
        assert o.acc == pytest.approx(3 / 4)  # 3 right of the 4 entries of the file
        if mode == "default":  # the dropped entry counts as zero everywhere
            assert o.tiou == (pytest.approx(3 / 4), pytest.approx(3 / 4))
        else:  # the official script skips it in the IoU means (no What answer)
            assert o.tiou == (1.0, 1.0)
    results = json.loads((run_dir / "results.json").read_text())
    assert [("dropped" in r) for r in results] == [False, True, False, False]
    assert "timestamps" in results[1]["dropped"]
    assert json.loads((run_dir / "judgements.json").read_text()) == [3, None, 3, 3]
    saved = json.loads((run_dir / "scores.json").read_text())["scores"]
    assert saved["n_dropped"] == 1 and any("dropped at load" in n for n in saved["notes"])
    capsys.readouterr()
    argv = ["eval", "vstar-score", str(run_dir / "results.json"), "--judgements"]
    assert main([*argv, str(run_dir / "judgements.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == saved


def test_vstar_score_needs_no_question_fields(synth: SynthResult, tmp_path: Path) -> None:
    data = synth.out_dir / "vstar.json"
    items = load_items(data, synth.out_dir)
    run_vstar(Oracle(items, QWEN25), QWEN25, data, tmp_path)
    cfg = score_config_for(QWEN25, VideoSettings(), "official")
    finish(tmp_path, items, ExactMatchJudge(), cfg)
    results = json.loads((tmp_path / "results.json").read_text())
    ratings = json.loads((tmp_path / "judgements.json").read_text())
    bare = [
        {k: v for k, v in r.items() if k not in ("temporal_question", "spatial_question",
                                                  "spatial_question_2")}
        for r in results
    ]  # fmt: skip
    for mode in ("official", "default"):
        c = ScoreConfig(mode=mode)  # type: ignore[arg-type]
        assert score_vstar(bare, ratings, c).to_dict() == score_vstar(results, ratings, c).to_dict()


def test_reference_protocol_keeps_boxes_as_written() -> None:
    """The reference pipeline never rescaled boxes written on its 644x364 images: under the
    reference protocol the file holds them as written (what the official script then scores);
    under o3video they are mapped to the original 640x360 pixels."""
    raw = raw_item("v")
    item, _ = item_from_dict(raw, 0)
    assert item is not None
    replies = dict(CASES[0][0])
    replies["where_1"] = tagged('{"2": [644, 364, 322, 182]}')
    kept = result_entry(raw, replies, item, "frame_px", (644, 364), to_source=False)
    mapped = result_entry(raw, replies, item, "frame_px", (644, 364))
    assert kept["answer_spatial"] == {"2": [644, 364, 322, 182]}
    assert mapped["answer_spatial"] == {"2": [640.0, 360.0, 320.0, 180.0]}
    # The default mode reads the replies in their space either way.
    assert kept["answer_spatial_pre"] == mapped["answer_spatial_pre"]
    assert (kept["box_space"], kept["input_shape"]) == ("frame_px", [644, 364])

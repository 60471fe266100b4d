"""``V-STaR protocol`` records: the evaluation's five prompts as SFT examples (issue 7).

A hand-made item on a 1280×720 video of 16 frames at 4 fps (4 s): span [0.6, 2.7] s, so
Where asks the whole seconds 1 and 2, which hold the two ground-truth boxes. At the published
budget Qwen2.5-VL sees 420×224 frames and Qwen3-VL 416×224 (1000-grid boxes), so every box
is converted: the targets must read back, through the evaluation's own parsers, to the
ground truth (spans exactly, boxes within half a model unit), and the prompts must be the
ones :func:`o3video.eval.vstar.item_prompts` gives for the frames shown.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from videos import encode_video

from o3video.boxes import convert_xyxy
from o3video.data.examples import to_example
from o3video.data.load import load_stgr
from o3video.data.stgr import (
    VSTAR_GENERATION_KEYS,
    VSTAR_PROTOCOL_TASK,
    VStarProtocolRecord,
    record_from_dict,
    vstar_protocol_entries,
)
from o3video.data.synthetic import SynthResult, synthesize
from o3video.data.vstar import item_from_dict
from o3video.eval.judge import ExactMatchJudge, JudgeItem
from o3video.eval.vstar import answer_part
from o3video.eval.vstar_parse import parse_box_answer, parse_time_answer
from o3video.evidence import parse_trace
from o3video.families import get_family
from o3video.prompts import build_messages
from o3video.protocols.vstar import GENERATIONS, item_prompts
from o3video.train.dataset import ExampleSource

RAW_ITEM: dict[str, Any] = {
    "vid": "clip", "domain": "test", "fps": 4.0, "width": 1280, "height": 720,
    "frame_count": 16, "question": "Which animal runs?", "answer": "the dog",
    "temporal_question": "When does the dog run?", "timestamps": [0.6, 2.7],
    "spatial_question": "Where is the dog while it runs?",
    "spatial_question_2": "Where is the dog running?",
    "bboxes": [
        {"timestamp": 1, "frame_index": 4, "xmin": 100, "ymin": 50, "xmax": 400.5, "ymax": 300},
        {"timestamp": 2, "frame_index": 8, "xmin": 640, "ymin": 360, "xmax": 1279, "ymax": 719},
    ],
}  # fmt: skip
REASONING = {
    "what": "It is <obj>dog</obj><box>[0.5,0.5,0.999,0.999]</box>at<t>2.0</t>s.",
    "when_1": "<obj>dog</obj><box>[0.078,0.069,0.313,0.417]</box>at<t>1.0</t>s and at <t>2.0</t>s.",
    "when_2": "It runs from about <t>1.0</t>s to <t>2.5</t>s.",
    "where_1": "It is at <obj>dog</obj><box>[0.078,0.069,0.313,0.417]</box>at<t>1.0</t>s.",
    "where_2": "It is at <obj>dog</obj><box>[0.078,0.069,0.313,0.417]</box>at<t>1.0</t>s.",
}
FAMILIES = ("qwen2_5_vl", "qwen3_vl")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    (root / "videos").mkdir()
    encode_video(root / "videos/clip.mp4", list(range(16)), Fraction(1, 4), rate=4,
                 size_wh=(1280, 720))  # fmt: skip
    return root


def entries(**changes: Any) -> list[dict[str, Any]]:
    raw = vstar_protocol_entries(
        RAW_ITEM, source="synthetic", video_path="videos/clip.mp4", reasoning=REASONING
    )
    return [{**e, **changes} for e in raw]


def records() -> list[VStarProtocolRecord]:
    out = []
    for i, raw in enumerate(entries()):
        record, issues = record_from_dict(raw, i)
        assert issues == [] and isinstance(record, VStarProtocolRecord)
        out.append(record)
    return out


def test_entries_validate_in_the_evaluation_order() -> None:
    item, _ = item_from_dict(RAW_ITEM, 0)
    assert item is not None
    got = records()
    assert tuple(key for key, _ in GENERATIONS) == VSTAR_GENERATION_KEYS
    assert [r.generation for r in got] == list(VSTAR_GENERATION_KEYS)
    assert {r.task for r in got} == {VSTAR_PROTOCOL_TASK}
    # The item is read as its own file reads it, numbered as the record.
    assert all(r.item == replace(item, index=r.index) and r.duration_s == 4.0 for r in got)
    assert [r.question for r in got] == [
        "Which animal runs?",
        "When does the dog run?",
        "Where is the dog while it runs?",
        "Where is the dog running?",
        "When does the dog run?",
    ]
    assert [r.answer for r in got[:3]] == [
        "the dog",
        "[0.6, 2.7]",
        '{"1": [100, 50, 400.5, 300], "2": [640, 360, 1279, 719]}',
    ]


@pytest.mark.parametrize(
    ("k", "changes", "expected"),
    [
        (0, {"generation": "where_3"}, [("generation", "bad_value")]),
        (0, {"generation": None}, [("generation", "missing_field")]),
        (0, {"vstar": None}, [("vstar", "missing_field")]),
        (1, {"vstar": {**RAW_ITEM, "fps": 0}}, [("vstar.fps", "bad_value")]),
        (1, {"vstar": {**RAW_ITEM, "timestamps": [3, 1]}}, [("vstar.timestamps", "bad_time")]),
        (1, {"answer": "[0.6, 2.8]"}, [("answer", "bad_answer")]),
        (2, {"question": "Where is it?"}, [("question", "bad_value")]),
        (2, {"image_size": [640, 360]}, [("image_size", "bad_value")]),
        (3, {"video_path": None}, [("video_path", "missing_field")]),
        (4, {"duration": 2.0}, [("vstar.timestamps[1]", "time_out_of_range")]),
    ],
)
def test_bad_records_name_index_and_field(
    k: int, changes: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    record, issues = record_from_dict(entries(**changes)[k], 9)
    assert record is None
    assert [(i.field, i.kind) for i in issues if i.severity == "error"] == expected
    assert {i.index for i in issues} == {9}


def source_px(box: tuple[float, ...], family: str, frame_wh: tuple[int, int]) -> tuple[float, ...]:
    space = get_family(family).box_space
    return convert_xyxy(box, space, "source_px", source_wh=(1280, 720), frame_wh=frame_wh)


@pytest.mark.parametrize("family", FAMILIES)
def test_examples_use_the_evaluation_prompts_and_parse_back_to_the_truth(
    media: Path, family: str
) -> None:
    fam = get_family(family)
    item, _ = item_from_dict(RAW_ITEM, 0)
    assert item is not None
    for record in records():
        ex = to_example(record, media, family)
        assert ex.clip.frame_wh == ((420, 224) if family == "qwen2_5_vl" else (416, 224))
        assert ex.clip.num_frames == 8
        prompts = {
            key: (system, text) for key, system, text in item_prompts(item, fam, ex.clip.frame_wh)
        }
        system, text = prompts[record.generation]
        assert ex.messages == build_messages(ex.clip, text, system_prompt=system)
        assert ex.target is not None
        trace = parse_trace(ex.target)
        assert not trace.problems, trace.problems
        answer = answer_part(ex.target)
        if record.generation == "what":
            judge = ExactMatchJudge()
            assert judge.rate([JudgeItem(item.question, item.answer, answer)]) == [3]
        elif record.generation.startswith("when"):
            assert parse_time_answer(answer) == item.span_s == (0.6, 2.7)
            assert ex.columns["answer_span_s"] == [0.6, 2.7]
        else:
            boxes = parse_box_answer(answer)
            assert list(boxes) == [1.0, 2.0]
            # Half a model unit, in source pixels: 1280/420 or 1280/1000 per unit.
            unit = source_px((0, 0, 1, 1), family, ex.clip.frame_wh)
            for gt in item.boxes:
                (pred,) = boxes[float(gt.timestamp_s)]
                assert all(isinstance(v, float) and v.is_integer() for v in pred)
                back = source_px(pred, family, ex.clip.frame_wh)
                for j in range(4):
                    assert abs(back[j] - gt.xyxy[j]) <= unit[2 + j % 2] / 2 + 1e-9
            assert json.loads(answer) == {
                str(int(s)): [round(v) for v in b[0]] for s, b in boxes.items()
            }
            assert ex.columns["key_times_s"] == [1.0, 2.0]
            assert list(ex.columns["key_boxes"][0]) == ["dog"]


def test_when_2_prompt_and_where_targets_follow_the_frames_shown(media: Path) -> None:
    by_key = {r.generation: r for r in records()}
    small = to_example(by_key["where_1"], media, "qwen2_5_vl", max_pixels=64 * 28 * 28)
    big = to_example(by_key["where_1"], media, "qwen2_5_vl")
    assert small.clip.frame_wh != big.clip.frame_wh
    assert answer_part(small.target or "") != answer_part(big.target or "")
    ask = to_example(by_key["when_2"], media, "qwen2_5_vl")
    # (100, 50, 400.5, 300) and (640, 360, 1279, 719) × (420/1280, 224/720), rounded.
    assert "[33, 16, 131, 93], [210, 112, 420, 224]" in ask.messages[1]["content"][-1]["text"]
    # The reasoning's normalized boxes become model pixels, like any other video record.
    assert ask.target == (
        "<think>It runs from about <t>1.0</t>s to <t>2.5</t>s.</think>\n"
        "<answer>From <t>0.6</t>s to <t>2.7</t>s</answer>"
    )
    where = to_example(by_key["where_1"], media, "qwen2_5_vl")
    assert where.target == (
        "<think>It is at <obj>dog</obj><box>[33,15,131,93]</box>at<t>1.0</t>s.</think>\n"
        '<answer>{"1": [33, 16, 131, 93], "2": [210, 112, 420, 224]}</answer>'
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synthesize(tmp_path_factory.mktemp("synth"), 3, seed=0)


def test_synthesized_files_hold_the_protocol_records(corpus: SynthResult) -> None:
    out = corpus.out_dir
    sft = json.loads((out / "stgr_sft.json").read_text())
    rl = json.loads((out / "stgr_rl.json").read_text())
    vstar = json.loads((out / "vstar.json").read_text())
    protocol = [r for r in sft if r["task"] == VSTAR_PROTOCOL_TASK]
    assert corpus.num_vstar == len(vstar) > 0
    assert len(protocol) == 5 * len(vstar) == corpus.sft_counts[VSTAR_PROTOCOL_TASK]
    rl_protocol = [r for r in rl if r["task"] == VSTAR_PROTOCOL_TASK]
    assert len(rl_protocol) == len(protocol) == corpus.rl_counts[VSTAR_PROTOCOL_TASK]
    assert not any("reasoning_process" in r for r in rl_protocol)  # RL: prompts and truths
    assert [r["vstar"] for r in protocol] == [item for item in vstar for _ in range(5)]
    assert [r["vstar"] for r in rl_protocol] == [r["vstar"] for r in protocol]
    assert json.loads((out / "manifest.json").read_text())["vstar_protocol"] is True
    data = load_stgr(out / "stgr_sft.json", out, strict=True)
    loaded = [r for r in data.records if isinstance(r, VStarProtocolRecord)]
    assert len(loaded) == len(protocol)
    for record in loaded:
        trace = parse_trace(f"<think>{record.reasoning}</think><answer>x</answer>")
        assert not trace.problems and trace.claims
        assert f"the {trace.claims[0].name}" == record.item.answer


def test_protocol_records_can_be_left_out(tmp_path: Path) -> None:
    result = synthesize(tmp_path, 2, seed=0, vstar_protocol=False)
    assert VSTAR_PROTOCOL_TASK not in result.sft_counts | result.rl_counts
    for name in ("stgr_sft.json", "stgr_rl.json"):
        records = json.loads((tmp_path / name).read_text())
        assert not any(r["task"] == VSTAR_PROTOCOL_TASK for r in records)
    assert json.loads((tmp_path / "manifest.json").read_text())["vstar_protocol"] is False


def test_train_dataset_builds_sft_rows_from_them(corpus: SynthResult) -> None:
    out = corpus.out_dir
    data = load_stgr(out / "stgr_sft.json", out, strict=True)
    protocol = [r for r in data.records if isinstance(r, VStarProtocolRecord)]
    source = ExampleSource(protocol, out, max_frames=4, max_pixels=64 * 28 * 28)
    for i, record in enumerate(protocol):
        row = source.sft_row(i)
        system, _ = row["prompt"][0], row["prompt"][1]
        key, want, text = next(
            p
            for p in item_prompts(
                record.item, get_family("qwen2_5_vl"), source.example(i).clip.frame_wh
            )
            if p[0] == record.generation
        )
        assert system["content"][0]["text"] == want and key == record.generation
        assert row["prompt"][1]["content"][-1]["text"] == text
        assert row["completion"][0]["content"][0]["text"].endswith("</answer>")
        assert len(row["images"]) == source.example(i).clip.num_frames
    assert source.decodes == len({r.video_path for r in protocol})
    pytest.importorskip("datasets")
    from o3video.train.dataset import sft_dataset

    assert len(sft_dataset(source)) == len(protocol)


@pytest.mark.parametrize("family", FAMILIES)
def test_rewards_score_each_generation_as_the_evaluation(media: Path, family: str) -> None:
    """RL on the protocol prompts: the answer reward of each generation is the evaluation's
    measure (What free-form, When tIoU, Where vIoU per ground-truth second), in model space."""
    from o3video.rewards.answer import answer_reward
    from o3video.rewards.fmt import format_reward
    from o3video.rewards.registry import build_rewards

    examples = {r.generation: to_example(r, media, family, max_frames=16) for r in records()}

    def reward(generation: str, answer: str) -> float:
        columns = {k: [v] for k, v in examples[generation].columns.items()}
        return answer_reward([f"<think></think><answer>{answer}</answer>"], **columns)[0]

    # The SFT targets score 1 (boxes within the rounding of model units: IoU >= 0.98).
    for generation, ex in examples.items():
        assert ex.columns["generation"] == generation and ex.target is not None
        columns = {k: [v] for k, v in ex.columns.items()}
        assert answer_reward([ex.target], **columns)[0] >= 0.98, generation
        # 1.0 with a claim holding a box and a time; REASONING's when_2 cites times only.
        grounded = generation != "when_2"
        assert format_reward([ex.target], **columns) == [1.0 if grounded else 0.5], generation
    assert reward("what", "the dog") == 1.0
    assert reward("what", "the cat") < 1.0
    # When: [1.6, 2.7] against [0.6, 2.7] is 1.1 / 2.1; any form the evaluation reads.
    assert reward("when_1", "From <t>1.6</t>s to <t>2.7</t>s") == pytest.approx(1.1 / 2.1)
    assert reward("when_2", "1.6 - 2.7") == pytest.approx(1.1 / 2.1)
    assert reward("when_1", "no idea") == 0.0
    # Where: the right box for second 1 only is half the score; second "1.0" is second 1.
    target = parse_box_answer(answer_part(examples["where_1"].target or ""))
    box_1 = [round(v) for v in target[1.0][0]]
    assert reward("where_1", json.dumps({"1.0": box_1})) == pytest.approx(0.5, abs=0.01)
    assert reward("where_2", json.dumps({"5": box_1})) == 0.0
    assert reward("where_2", "not json") == 0.0
    # Point supervision and the gated spatial reward read the item's seconds and boxes.
    funcs, _ = build_rewards({"temporal_point": 1.0, "spatial": 1.0}, progress_fn=lambda: 0.0)
    columns = {k: [v] for k, v in examples["where_1"].columns.items()}
    claim = f"<obj>dog</obj><box>{json.dumps(box_1)}</box>at<t>1.0</t>s"
    good = f"<think>It is at {claim}.</think><answer>x</answer>"
    late = good.replace("<t>1.0</t>", "<t>9.0</t>")
    assert [f([good], **columns)[0] for f in funcs] == [1.0, pytest.approx(1.0, abs=0.02)]
    point, spatial = (f([late], **columns)[0] for f in funcs)
    # 7 s from the last second (2 s): exp(-7² / 2σ²), σ = 4 s at the start; past the 3 s gate.
    assert point == pytest.approx(math.exp(-49 / 32)) and spatial == 0.0


def test_the_format_reward_needs_an_answer_the_evaluation_reads(media: Path) -> None:
    """A well-formed, grounded trace whose Where answer no reader parses (the decay seen
    under RL: ``2"2": [...]}``), or whose When answer holds no span, earns 0.5, not 1.0."""
    from o3video.rewards.fmt import format_reward

    examples = {r.generation: to_example(r, media, "qwen2_5_vl", max_frames=16) for r in records()}

    def fmt(generation: str, answer: str) -> float:
        ex = examples[generation]
        target = ex.target or ""
        think = target[: target.index("<answer>")]
        columns = {k: [v] for k, v in ex.columns.items()}
        return format_reward([f"{think}<answer>{answer}</answer>"], **columns)[0]

    assert fmt("where_1", '{"2": [0, 30, 19, 44]}') == 1.0
    assert fmt("where_1", '2"2": [0, 30, 19, 44]}') == 0.5
    assert fmt("where_2", "the dog") == 0.5
    assert fmt("when_1", "From <t>1.6</t>s to <t>2.7</t>s") == 1.0
    assert fmt("when_1", "a little later") == 0.5
    assert fmt("what", "the dog") == 1.0
    assert fmt("what", " ") == 0.5


def _answer_scorer(media: Path) -> tuple[Any, dict[str, str]]:
    """``score(rule, generation, answer)``: the answer reward built with ``rule`` (a
    ``vstar_what`` value, or ``None`` for the bare weight) on the record of ``generation``;
    and the reference answer of every generation (its SFT target's ``<answer>``)."""
    from o3video.rewards.registry import build_rewards

    examples = {r.generation: to_example(r, media, "qwen2_5_vl", max_frames=16) for r in records()}

    def score(rule: str | None, generation: str, answer: str) -> float:
        (reward,), _ = build_rewards({"answer": 1.0 if rule is None else {"vstar_what": rule}})
        columns = {k: [v] for k, v in examples[generation].columns.items()}
        return reward([f"<think></think><answer>{answer}</answer>"], **columns)[0]

    targets = {g: parse_trace(e.target or "").answer or "" for g, e in examples.items()}
    return score, targets


def test_the_what_reward_can_be_the_synthetic_judge(media: Path) -> None:
    """``answer: {vstar_what: exact}``: a What answer earns 1.0 exactly when the synthetic
    world's judge rates it right (ROUGE would pay a wrong colour a share); When and Where
    are unchanged; an unknown rule is refused."""
    from o3video.rewards.registry import build_rewards

    score, targets = _answer_scorer(media)
    assert score("exact", "what", "It is the dog.") == 1.0
    assert score("exact", "what", "the cat") == 0.0 and score(None, "what", "the cat") > 0.0
    for generation in ("when_1", "where_1"):
        answer = targets[generation]
        assert score("exact", generation, answer) == score(None, generation, answer) > 0.9
    with pytest.raises(ValueError, match="vstar_what must be one of"):
        build_rewards({"answer": {"vstar_what": "bleu"}})


@pytest.mark.parametrize(
    ("reference", "answer", "expected"),
    [
        ("the red circle", "It is the red circle.", 1.0),
        ("the red circle", "the blue circle", 0.5),  # the shape's half
        ("the red circle", "the red square", 0.5),  # the colour's half
        ("the red circle", "the blue square", 0.0),
        ("the red circle", "the red or blue circle", 0.5),  # a hedged colour earns nothing
        ("the red circle", "the red circle or square", 0.5),  # nor does a hedged shape
        ("the red circle", "the circle", 0.5),
        ("the red circle", "", 0.0),
        ("the dog", "It is the dog.", 1.0),  # not a synthetic name: the exact rule
        ("the dog", "the cat", 0.0),
    ],
)
def test_the_what_reward_can_pay_colour_and_shape_apart(
    reference: str, answer: str, expected: float
) -> None:
    """``answer: {vstar_what: parts}``: on a synthetic object's name the colour and the shape
    earn half each, a hedge earns nothing for the hedged part, and a reference that is not
    such a name is scored by the exact rule."""
    from o3video.rewards.registry import build_rewards

    (reward,), _ = build_rewards({"answer": {"vstar_what": "parts"}})
    columns = {"task": ["V-STaR protocol"], "generation": ["what"], "answer": [reference]}
    assert reward([f"<think></think><answer>{answer}</answer>"], **columns) == [expected]


def test_the_what_reward_can_be_left_out(media: Path) -> None:
    """``answer: {vstar_what: none}``: What answers, right or wrong, earn 0.0 (their prompts
    then train only through the KL term); When and Where are scored as before."""
    score, targets = _answer_scorer(media)
    right = "It is the dog."
    assert (score("none", "what", right), score("exact", "what", right)) == (0.0, 1.0)
    assert score("none", "what", "the cat") == score("exact", "what", "the cat") == 0.0
    for generation in ("when_1", "where_1"):
        answer = targets[generation]
        assert score("none", generation, answer) == score("exact", generation, answer) > 0.9


@pytest.mark.parametrize("protocol", ["reference", "reference-sft"])
def test_the_reference_protocols_refuse_these_records(media: Path, protocol: str) -> None:
    from o3video.errors import DataError

    record = records()[0]
    with pytest.raises(
        DataError, match=f"'V-STaR protocol' has no prompt under protocol '{protocol}'"
    ):
        to_example(record, media, "qwen2_5_vl", protocol=protocol)
    with pytest.raises(DataError, match="5 of task 'V-STaR protocol'"):
        ExampleSource(records(), media, protocol=protocol)

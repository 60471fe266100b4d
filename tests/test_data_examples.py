"""STGR record → training example: key frames at their true times, boxes in the model's box
space of the frames shown, targets in the form the system prompts ask, reward columns.

The video is 1280×720, 8 frames at 4 fps (times 0, 0.25, …, 1.75 s), each frame showing its
index (``videos.py``). At the published budget (2 fps, 4–16 frames, ≤ 128·28·28 pixels)
Qwen2.5-VL sees 4 frames of 420×224: wanted times ``linspace(0, 1.75, 4)`` = 0, 0.583,
1.167, 1.75 s → nearest frames 0, 2, 5, 7 (0, 0.5, 1.25, 1.75 s). The key frame at 1.3 s
replaces the sampled 1.25 s frame (0.05 s apart, inside the 0.1 s tolerance); the key frame
at 0.75 s is inserted. Normalized (0.25, 0.5, 0.75, 1.0) → ×(420, 224) → (105, 112, 315, 224).
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from videos import encode_video, read_index

from o3video.data import (
    SpatioTemporalRecord,
    VisualQARecord,
    merge_key_frames,
    record_from_dict,
    rewrite_boxes,
    to_example,
)
from o3video.errors import DataError
from o3video.prompts import (
    SYSTEM_PROMPT_FREE_FORM,
    SYSTEM_PROMPT_SPATIAL_IMAGE,
    SYSTEM_PROMPT_TEMPORAL_MCQ,
)
from o3video.video import Clip

RED, GREEN = (220, 30, 30), (30, 200, 30)
REASONING = (
    "First <obj>dog</obj><box>[0.25,0.5,0.75,1.0]</box>at<t>0.75</t>s,\n"
    "then <obj>cat</obj> <box>[0, 0, 0.5, 0.5]</box> at <t>1.3</t>s chases it."
)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    videos = root / "stgr/temporal_grounding/videos"
    kfs = root / "stgr/temporal_grounding/kfs"
    videos.mkdir(parents=True)
    kfs.mkdir(parents=True)
    encode_video(videos / "dog.mp4", list(range(8)), Fraction(1, 4), rate=4, size_wh=(1280, 720))
    Image.new("RGB", (1280, 720), RED).save(kfs / "dog_0.jpg")
    Image.new("RGB", (1280, 720), GREEN).save(kfs / "dog_1.jpg")
    (root / "gqa").mkdir()
    Image.new("RGB", (640, 480), (90, 90, 90)).save(root / "gqa/cup.jpg")
    (root / "tvg_r1").mkdir()
    (root / "tvg_r1/dog.mp4").symlink_to(videos / "dog.mp4")
    return root


def st_record(**changes: Any) -> SpatioTemporalRecord:
    raw = {
        "task": "temporal-spatial free-form QA",
        "question": "What does the cat do?",
        "answer": "It chases the dog.",
        "reasoning_process": REASONING,
        "source": "STR_coin",
        "video_path": "dog.mp4",
        "key_frames": [
            {"path": "dog_1.jpg", "time": 1.3, "idx": 1},
            {"path": "dog_0.jpg", "time": 0.75, "idx": 0},
        ],
        "key_items": {"0": {"dog": [[0.25, 0.5, 0.75, 1.0]]}, "1": {"cat": [[0, 0, 0.5, 0.5]]}},
        **changes,
    }
    record, issues = record_from_dict(raw, 3)
    assert isinstance(record, SpatioTemporalRecord), issues
    return record


def labels(messages: list[dict[str, Any]]) -> list[str]:
    texts = [item["text"] for item in messages[1]["content"] if item["type"] == "text"]
    return [t for t in texts if re.fullmatch(r"Frame \d+ at \d+\.\ds: ", t)]


def test_key_frames_sit_at_their_true_times_qwen2_5(media: Path) -> None:
    ex = to_example(st_record(), media)
    assert ex.clip.times_s == (0.0, 0.5, 0.75, 1.3, 1.75)
    assert labels(ex.messages) == [
        "Frame 1 at 0.0s: ",
        "Frame 2 at 0.5s: ",
        "Frame 3 at 0.8s: ",
        "Frame 4 at 1.3s: ",
        "Frame 5 at 1.8s: ",
    ]
    frames = ex.clip.frames
    assert ex.clip.frame_wh == (420, 224) and frames.shape == (5, 224, 420, 3)
    assert [read_index(frames[k]) for k in (0, 1, 4)] == [0, 2, 7]  # sampled frames
    assert np.abs(frames[2].reshape(-1, 3).mean(0) - RED).max() < 8  # key frame 0.75 s
    assert np.abs(frames[3].reshape(-1, 3).mean(0) - GREEN).max() < 8  # key frame 1.3 s
    images = [item["image"] for item in ex.messages[1]["content"] if item["type"] == "image"]
    assert [im.size for im in images] == [(420, 224)] * 5
    assert ex.messages[0]["content"][0]["text"] == SYSTEM_PROMPT_FREE_FORM
    assert ex.messages[1]["content"][-2]["text"] == "The video is in total 2.0 seconds.\n"
    assert ex.messages[1]["content"][-1]["text"] == "What does the cat do?"


def test_boxes_become_pixels_of_the_420x224_frames(media: Path) -> None:
    ex = to_example(st_record(), media)
    assert ex.target == (
        "<think>First <obj>dog</obj><box>[105,112,315,224]</box>at<t>0.75</t>s,\n"
        "then <obj>cat</obj> <box>[0,0,210,112]</box> at <t>1.3</t>s chases it.</think>\n"
        "<answer>It chases the dog.</answer>"
    )
    c = ex.columns
    assert c["key_times_s"] == [0.75, 1.3]
    assert c["key_boxes"] == [
        {"dog": [[105.0, 112.0, 315.0, 224.0]]},
        {"cat": [[0.0, 0.0, 210.0, 112.0]]},
    ]
    assert (c["frame_wh"], c["source_wh"], c["box_space"]) == ([420, 224], [1280, 720], "frame_px")
    assert c["frame_times_s"] == [0.0, 0.5, 0.75, 1.3, 1.75]
    assert (c["task"], c["answer"], c["index"]) == (
        "temporal-spatial free-form QA",
        "It chases the dog.",
        3,
    )
    assert c["answer_span_s"] is None and c["answer_letter"] is None and c["answer_box"] is None
    assert ex.conversation()[-1]["content"][0]["text"] == ex.target
    assert json.loads(json.dumps(c)) == c  # the columns go into a datasets.Dataset as they are


def test_qwen3_writes_the_1000_grid_of_416x224_frames(media: Path) -> None:
    # smart_resize(720, 1280, factor 32, 100352 px): beta = sqrt(921600/100352) = 3.03 →
    # floor(720/3.03/32)·32 = 224, floor(1280/3.03/32)·32 = 416.
    ex = to_example(st_record(), media, family="qwen3_vl")
    assert ex.clip.frame_wh == (416, 224)
    assert ex.columns["key_boxes"][0] == {"dog": [[250.0, 500.0, 750.0, 1000.0]]}
    assert "<box>[250,500,750,1000]</box>" in (ex.target or "")


def test_visual_qa_answer_box_from_image_pixels(media: Path) -> None:
    raw = {
        "task": "visual QA",
        "question": "Where is the cup?",
        "answer": "<obj>cup</obj><box>[64,48,320,240]</box>",
        "reasoning_process": "The cup <obj>cup</obj><box>[64, 48, 320, 240]</box> is left.",
        "source": "gqa",
        "image_path": "cup.jpg",
        "image_size": [640, 480],
    }
    record, _ = record_from_dict(raw, 0)
    assert record is not None
    ex = to_example(record, media)
    # smart_resize(480, 640) = (252, 364): x × 364/640, y × 252/480 → 36.4, 25.2, 182, 126.
    assert ex.clip.frame_wh == (364, 252) and ex.clip.num_frames == 1
    assert ex.columns["answer_box"] == pytest.approx([36.4, 25.2, 182.0, 126.0])
    assert ex.target == (
        "<think>The cup <obj>cup</obj><box>[36,25,182,126]</box> is left.</think>\n"
        "<answer><obj>cup</obj><box>[36,25,182,126]</box></answer>"
    )
    assert ex.messages[0]["content"][0]["text"] == SYSTEM_PROMPT_SPATIAL_IMAGE
    assert [i["type"] for i in ex.messages[1]["content"]] == ["image", "text"]


def test_temporal_targets_use_the_prompted_answer_form(media: Path) -> None:
    raw = {
        "task": "temporal QA (MCQ)",
        "question": "When? A. early B. late",
        "answer": "B\n[0.5, 1.5]",
        "reasoning_process": "It starts at <t>0.5</t>s.",
        "source": "TVG_x",
        "video_path": "dog.mp4",
    }
    record, _ = record_from_dict(raw, 0)
    assert record is not None
    ex = to_example(record, media)
    assert ex.target == (
        "<think>It starts at <t>0.5</t>s.</think>\n"
        "<answer>From <t>0.5</t>s to <t>1.5</t>s.\nCorrect Option: B</answer>"
    )
    assert (ex.columns["answer_span_s"], ex.columns["answer_letter"]) == ([0.5, 1.5], "B")
    assert ex.messages[0]["content"][0]["text"] == SYSTEM_PROMPT_TEMPORAL_MCQ
    assert ex.clip.times_s == (0.0, 0.5, 1.25, 1.75)
    no_reasoning = record_from_dict({**raw, "reasoning_process": None}, 1)[0]
    assert no_reasoning is not None
    rl = to_example(no_reasoning, media)
    assert rl.target is None
    with pytest.raises(ValueError, match="no SFT target"):
        rl.conversation()


def test_missing_media_name_record_and_field(media: Path) -> None:
    with pytest.raises(DataError) as exc:
        to_example(st_record(video_path="nope.mp4"), media)
    assert (exc.value.index, exc.value.field) == (3, "video_path")
    kfs = [{"path": "gone.jpg", "time": 0.75, "idx": 0}]
    with pytest.raises(DataError) as exc:
        to_example(st_record(key_frames=kfs, key_items={"0": {}}), media)
    assert (exc.value.index, exc.value.field) == (3, "key_frames[0].path")


def test_merge_replaces_frames_within_tolerance_only() -> None:
    frames = np.zeros((4, 28, 56, 3), dtype=np.uint8)
    clip = Clip(frames, (0.0, 1.0, 2.0, 3.0), (112, 56), (56, 28), 1.0, 4.0, (0, 1, 2, 3))
    key = np.full((10, 20, 3), 255, dtype=np.uint8)
    merged = merge_key_frames(clip, [(2.05, key), (1.5, key), (2.9, key)], tolerance_s=0.1)
    assert merged.times_s == (0.0, 1.0, 1.5, 2.05, 2.9, 3.0)
    assert merged.frame_indices == (0, 1, 2, 2, 3, 3)
    assert [int(f.max()) for f in merged.frames] == [0, 0, 255, 255, 255, 0]
    assert merge_key_frames(clip, []) is clip


def test_rewrite_boxes_changes_only_box_numbers() -> None:
    text = "a <box> [0.1,0.2 , 0.3,0.4] </box>\n<t>2</t>s <box>0.5,0.5,1,1</box> ü <box></box"
    got = rewrite_boxes(text, lambda b: tuple(v * 100 for v in b))
    assert got == "a <box>[10,20,30,40]</box>\n<t>2</t>s <box>[50,50,100,100]</box> ü <box></box"
    assert rewrite_boxes("no boxes", lambda b: b) == "no boxes"
    with pytest.raises(ValueError, match="not 4 numbers"):
        rewrite_boxes("<box>[1,2]</box>", lambda b: b)
    # Half up, not to even: 0.5 → 1, 2.5 → 3.
    assert rewrite_boxes("<box>[0.5,2.5,3.49,4]</box>", lambda b: b) == "<box>[1,3,3,4]</box>"


def test_visual_qa_reasoning_in_0_1_is_read_as_normalized(media: Path) -> None:
    # SPEC §4 writes reasoning boxes 0–1; the published TreeVGR traces use image pixels.
    # A trace whose every coordinate is <= 1 is normalized: ×(364, 252) here.
    raw = {
        "task": "visual QA",
        "question": "Where is the cup?",
        "answer": "<obj>cup</obj><box>[64,48,320,240]</box>",
        "reasoning_process": "Here: <obj>cup</obj><box>[0.1,0.1,0.5,0.5]</box>.",
        "source": "gqa",
        "image_path": "cup.jpg",
        "image_size": [640, 480],
    }
    record, issues = record_from_dict(raw, 0)
    assert isinstance(record, VisualQARecord) and issues == []
    assert record.reasoning_box_space == "rel1"
    ex = to_example(record, media)
    assert ex.target is not None
    assert ex.target.startswith("<think>Here: <obj>cup</obj><box>[36,25,182,126]</box>.</think>")


OTHER_RECORDS: dict[str, dict[str, Any]] = {
    "visual QA": {
        "question": "Where is the cup?",
        "answer": "<obj>cup</obj><box>[64,48,320,240]</box>",
        "reasoning_process": "The cup <obj>cup</obj><box>[64, 48, 320, 240]</box> is left.",
        "source": "gqa",
        "image_path": "cup.jpg",
        "image_size": [640, 480],
    },
    "temporal QA": {
        "question": "When does it jump?",
        "answer": "[0.5, 1.5]",
        "reasoning_process": "At <t>0.5</t>s.",
        "source": "TVG_x",
        "video_path": "dog.mp4",
    },
    "temporal QA (MCQ)": {
        "question": "When? A. early B. late",
        "answer": "B\n[0.5, 1.5]",
        "source": "TVG_x",
        "video_path": "dog.mp4",
    },
    "General video QA MCQ": {
        "question": "What runs?\nA. dog\nB. cat",
        "answer": "A",
        "source": "TVG_x",
        "video_path": "dog.mp4",
    },
    "General video QA Free-form": {
        "question": "What happens?",
        "answer": "A dog runs.",
        "reasoning_process": "A dog at <t>0.5</t>s.",
        "source": "TVG_x",
        "video_path": "dog.mp4",
    },
}


def test_o3video_protocol_renders_what_build_messages_rendered(media: Path) -> None:
    # The prompt of the o3video protocol is the one o3video.prompts.build_messages has always
    # built (system prompt of the task, true-time labels, duration line, question).
    from o3video.prompts import build_messages

    one_key = [{"path": "dog_0.jpg", "time": 1.75, "idx": 0}]  # replaces the last frame
    records = [st_record(), st_record(key_frames=one_key, key_items={"0": {}})]
    for task, raw in OTHER_RECORDS.items():
        rec, issues = record_from_dict({"task": task, **raw}, 1)
        assert rec is not None, issues
        records.append(rec)
    for family in ("qwen2_5_vl", "qwen3_vl"):
        for rec in records:
            ex = to_example(rec, media, family)
            assert to_example(rec, media, family, protocol="o3video").messages == ex.messages
            want = build_messages(ex.clip, rec.question, rec.prompt_task, "frames")
            assert ex.messages == want, (family, rec.task)
            custom = to_example(rec, media, family, system_prompt="Be brief.")
            assert custom.messages == build_messages(
                ex.clip, rec.question, rec.prompt_task, "frames", "Be brief."
            )


def test_unknown_protocol_is_refused(media: Path) -> None:
    with pytest.raises(ValueError, match="unknown protocol 'paper'"):
        to_example(st_record(), media, protocol="paper")

"""Prompts: the published system prompts, the one label format, message structure, metadata."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from o3video.families import get_family
from o3video.prompts import (
    STGR_TASKS,
    SYSTEM_PROMPTS,
    build_messages,
    duration_line,
    frame_label,
    sampling_interval_s,
    task_for_stgr,
    video_metadata,
)
from o3video.video import Clip

# SPEC §3, verbatim: the published checkpoint was trained on exactly this string.
PUBLISHED_FREE_FORM = (
    "A conversation between user and assistant. The user provides a video and asks a question, "
    "and the Assistant solves it. The assistant MUST first think about the reasoning process in "
    "the mind and then provide the user with the answer. The reasoning process and answer are "
    "enclosed within <think> </think> and <answer> </answer> tags, respectively. All reasoning "
    "must be grounded in visual evidence from the video. When you mention any related object, "
    "person, or specific visual element in the reasoning process, you must strictly follow the "
    "following format: `<obj>object_name</obj><box>bounding_box</box>at<t>time_in_seconds</t>s`. "
    "The answer part only requires a text response; tags like <obj>, <box>, <t> are not needed."
)


def make_clip(
    n: int = 4, step_s: float = 0.5, start_s: float = 0.0, wh: tuple[int, int] = (84, 56)
) -> Clip:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(n, wh[1], wh[0], 3), dtype=np.uint8)
    times = tuple(start_s + step_s * i for i in range(n))
    indices = tuple(round(t * 30) for t in times)
    return Clip(
        frames,
        times,
        source_wh=(168, 112),
        frame_wh=wh,
        fps=30.0,
        duration_s=2.0,
        frame_indices=indices,
    )


def test_free_form_prompt_is_verbatim() -> None:
    assert SYSTEM_PROMPTS["free_form"] == PUBLISHED_FREE_FORM


def test_mcq_prompt_differs_only_where_spec_says() -> None:
    mcq = SYSTEM_PROMPTS["mcq"]
    expected = PUBLISHED_FREE_FORM.replace(
        "asks a question", "asks a multiple-choice question"
    ).replace(
        "The answer part only requires a text response; tags like <obj>, <box>, <t> are not "
        "needed.",
        "Only output the correct option in the <answer> </answer> section.",
    )
    assert mcq == expected


def test_temporal_prompts() -> None:
    temporal, temporal_mcq = SYSTEM_PROMPTS["temporal"], SYSTEM_PROMPTS["temporal_mcq"]
    assert "the Assistant determines the precise time period that answers the question" in temporal
    assert "`<t>time_in_seconds</t>s'" in temporal
    assert temporal.endswith("`From <t>start_time</t>s to <t>end_time</t>s'.")
    assert (
        "a multiple-choice question" in temporal_mcq
        and "selects the correct option" in temporal_mcq
    )
    assert temporal_mcq.endswith(
        "`From <t>start_time</t>s to <t>end_time</t>s.\nCorrect Option: [ONLY THE LETTER]'."
    )
    assert "<obj>" not in temporal and "<obj>" not in temporal_mcq


def test_spatial_image_prompt() -> None:
    spatial = SYSTEM_PROMPTS["spatial_image"]
    assert "The user provides an image and asks a question" in spatial
    assert "localize the object with bounding box coordinates between <box> and </box>" in spatial
    assert spatial.endswith("`<obj>object_name</obj><box>bounding_box</box>'.")


def test_every_prompt_shares_the_think_answer_sentence() -> None:
    for text in SYSTEM_PROMPTS.values():
        assert text.startswith("A conversation between user and assistant. ")
        assert "enclosed within <think> </think> and <answer> </answer> tags, respectively." in text


@pytest.mark.parametrize(
    ("stgr", "task"),
    [
        ("temporal-spatial free-form QA", "free_form"),
        ("General video QA Free-form", "free_form"),
        ("General video QA MCQ", "mcq"),
        ("temporal QA", "temporal"),
        ("temporal QA (MCQ)", "temporal_mcq"),
        ("visual QA", "spatial_image"),
    ],
)
def test_stgr_task_mapping(stgr: str, task: str) -> None:
    assert task_for_stgr(stgr) == task


def test_unknown_task_names() -> None:
    assert len(STGR_TASKS) == 6
    with pytest.raises(ValueError, match="unknown STGR task"):
        task_for_stgr("dance QA")
    with pytest.raises(ValueError, match="unknown task"):
        build_messages(make_clip(), "q", task="dance")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("k", "t_s", "expected"),
    [
        (1, 0.0, "Frame 1 at 0.0s: "),
        (2, 0.5, "Frame 2 at 0.5s: "),
        (16, 9.2333, "Frame 16 at 9.2s: "),
        (3, 1.96, "Frame 3 at 2.0s: "),
        (1, -0.01, "Frame 1 at 0.0s: "),  # never "-0.0"
    ],
)
def test_frame_label(k: int, t_s: float, expected: str) -> None:
    assert frame_label(k, t_s) == expected


@pytest.mark.parametrize(
    ("d", "expected"), [(2.0, "2.0"), (10.04, "10.0"), (59.96, "60.0"), (7, "7.0")]
)
def test_duration_line(d: float, expected: str) -> None:
    assert duration_line(d) == f"The video is in total {expected} seconds."


def test_frames_messages_structure() -> None:
    clip = make_clip()
    messages = build_messages(clip, "What moves?", "free_form", "frames")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == [{"type": "text", "text": PUBLISHED_FREE_FORM}]
    content = messages[1]["content"]
    assert len(content) == 3 * clip.num_frames + 2
    for k in range(clip.num_frames):
        label, image, newline = content[3 * k : 3 * k + 3]
        assert label == {"type": "text", "text": frame_label(k + 1, clip.times_s[k])}
        assert image["type"] == "image" and isinstance(image["image"], Image.Image)
        assert np.array_equal(np.asarray(image["image"]), clip.frames[k])
        assert newline == {"type": "text", "text": "\n"}
    assert content[-2] == {"type": "text", "text": "The video is in total 2.0 seconds.\n"}
    assert content[-1] == {"type": "text", "text": "What moves?"}
    texts = [c["text"] for c in content if c["type"] == "text"]
    assert texts[:4] == ["Frame 1 at 0.0s: ", "\n", "Frame 2 at 0.5s: ", "\n"]


def test_video_messages_structure() -> None:
    clip = make_clip()
    messages = build_messages(clip, "When?", "temporal", "video")
    assert messages[0]["content"][0]["text"] == SYSTEM_PROMPTS["temporal"]
    video, question = messages[1]["content"]
    assert video["type"] == "video" and video["video"] is clip.frames
    assert question == {"type": "text", "text": "When?"}


def test_custom_system_prompt_and_spatial_image() -> None:
    messages = build_messages(
        make_clip(n=1), "Where is the dog?", "spatial_image", system_prompt="S"
    )
    assert messages[0]["content"][0]["text"] == "S"
    image, question = messages[1]["content"]
    assert image["type"] == "image" and question["text"] == "Where is the dog?"
    with pytest.raises(ValueError, match="one image"):
        build_messages(make_clip(n=4), "q", "spatial_image")
    with pytest.raises(ValueError, match="presentation"):
        build_messages(make_clip(), "q", presentation="gif")  # type: ignore[arg-type]


def test_sampling_interval() -> None:
    assert sampling_interval_s(make_clip(step_s=0.5)) == pytest.approx(0.5)
    assert sampling_interval_s(make_clip(n=1)) == pytest.approx(1 / 30)
    clip = make_clip()
    backwards = Clip(clip.frames, (1.0, 0.5, 0.0, -0.5), clip.source_wh, clip.frame_wh, 30.0, 2.0)
    with pytest.raises(ValueError, match="increase"):
        sampling_interval_s(backwards)


def test_irregular_times_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    clip = make_clip()
    odd = Clip(clip.frames, (0.0, 0.1, 1.0, 1.5), clip.source_wh, clip.frame_wh, 30.0, 2.0)
    with caplog.at_level(logging.WARNING, logger="o3video.prompts"):
        assert sampling_interval_s(odd) == pytest.approx(0.5)
    assert "irregular" in caplog.text


def test_video_metadata_qwen25_gives_true_sampling_rate() -> None:
    # Qwen2.5-VL: second_per_grid_ts = 2 / sampled_fps, sampled_fps = n / total × fps.
    meta = video_metadata(make_clip(step_s=0.5), "qwen2_5_vl")
    assert meta["frames_indices"] == [0, 1, 2, 3] and meta["total_num_frames"] == 4
    sampled_fps = len(meta["frames_indices"]) / meta["total_num_frames"] * meta["fps"]
    assert sampled_fps == pytest.approx(2.0)
    assert (meta["width"], meta["height"], meta["duration"]) == (84, 56, 2.0)


def test_video_metadata_qwen3_gives_true_timestamps() -> None:
    # Qwen3-VL: timestamps are frames_indices / fps; stream indices are kept when they match.
    clip = make_clip(start_s=1.0)
    meta = video_metadata(clip, get_family("qwen3_vl"))
    assert meta["fps"] == 30.0 and meta["frames_indices"] == [30, 45, 60, 75]
    # times that are not whole frames of the stream still come out exactly
    odd = Clip(
        clip.frames,
        (1.01, 1.51, 2.01, 2.51),
        clip.source_wh,
        clip.frame_wh,
        30.0,
        3.0,
        (30, 45, 60, 75),
    )
    meta = video_metadata(odd, "qwen3_vl")
    assert [i / meta["fps"] for i in meta["frames_indices"]] == pytest.approx(
        [1.01, 1.51, 2.01, 2.51]
    )

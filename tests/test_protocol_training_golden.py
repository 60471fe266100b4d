"""Golden tests: one record of each STGR task rendered under the reference protocols, with
the real Qwen2.5-VL-7B-Instruct processor files, equal to the text the reference code builds.

Every expected string below is written by hand from reading the reference repository
(``src/r1-v/src/open_r1/``): ``data_loader.py`` (the RL system prompts; user turn = the
video, then the question), ``trainer/grpo_trainer.py`` ``compute_loss`` (the RL frame
prompt) and ``sft_multi_task.py`` (``prepare_dataset`` and ``collate_fn``: the SFT stage).

The video: 10 frames at 4 fps, 112×112 (2.5 s). At the training budget (2 fps, 4–16 frames)
qwen-vl-utils takes ``nframes`` = floor-even(2.5 · 2) = 4 frames, indices
``linspace(0, 9, 4)`` = 0, 3, 6, 9 (true times 0, 0.75, 1.5, 2.25 s), and
``sample_fps = 4 / 10 · 4 = 1.6``. The reference labels frame ``i`` with
``round(i / 1.6, 1)``: 0.0, 0.6 (0.625), 1.2 (1.25), 1.9 (1.875); the duration line is
``int(4 / 1.6)`` = 2. A 112×112 frame is 8×8 patches of 14 px, merged 2×2: 16 tokens.

Spatio-temporal record: key frames (file order) at 1.9 s and 0.7 s. Ours merges them at
their times; the one at 0.7 s replaces the sampled frame at 0.75 s (within 0.1 s): frames
s0, key 0.7, s2, key 1.9, s3. RL labels a key frame ``round(time)`` as an int (``1s``,
``2s``) and keeps the duration line; SFT labels it with its raw time (``0.7s``) and has no
duration line. (The reference's own index-based insertion would show neither key frame
here: the first in file order, at round(1.9) = 2 s, waits for a sampled frame with
``int(i / 1.6) >= 2``, which this 2.5 s video never has — see o3video.protocols.training.)
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from videos import encode_video

from o3video.data import record_from_dict, to_example
from o3video.data.examples import Example
from o3video.errors import DataError
from o3video.protocols.show import render_request

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
QWEN = SHARED / "reference-data" / "qwen" / "qwen2_5_vl_7b_instruct"

pytestmark = pytest.mark.skipif(
    not (QWEN / "vocab.json").is_file(),
    reason=f"the real Qwen2.5-VL processor files are not at {QWEN} (../shared beside the repo)",
)

# data_loader.py SYSTEM_PROMPT (RL stage), verbatim.
RL_FREE_FORM = "A conversation between user and assistant. The user provides a video and asks a question, and the Assistant solves it. The assistant MUST first think about the reasoning process in the mind and then provide the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively. All reasoning must be grounded in visual evidence from the video. When you mention any related object, person, or specific visual element in the reasoning process, you must strictly follow the following format: `<obj>object_name</obj><box>bounding_box</box>at<t>time_in_seconds</t>s`. The answer part only requires a text response; tags like <obj>, <box>, <t> are not needed."  # noqa: E501
RL_TEMPORAL = "A conversation between user and assistant. The user provides a video and asks a question, and the Assistant determines the precise time period that answers the question. The assistant MUST first think about the reasoning process in the mind and then provide the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively. When mentioning time during the reasoning process, the assistant must use the format: `<t>time_in_seconds</t>s'.The answer must strictly follow the following format: `From <t>start_time</t>s to <t>end_time</t>s'."  # noqa: E501
RL_TEMPORAL_MCQ = "A conversation between user and assistant. The user provides a video and a multiple-choice question, and the Assistant determines the precise time period that answers the question and selects the correct option. The assistant MUST first think about the reasoning process in the mind and then provide the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively. When mentioning time during the reasoning process, the assistant must use the format: `<t>time_in_seconds</t>s'. The answer must strictly follow the following format: `From <t>start_time</t>s to <t>end_time</t>s.\nCorrect Option: [ONLY THE LETTER]'."  # noqa: E501
RL_MCQ = "A conversation between user and assistant. The user provides a video and asks a multiple-choice question, and the Assistant solves it. The assistant MUST first think about the reasoning process in the mind and then provide the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively. All reasoning must be grounded in visual evidence from the video. When you mention any related object, person, or specific visual element in the reasoning process, you must strictly follow the following format: `<obj>object_name</obj><box>bounding_box</box>at<t>time_in_seconds</t>s`. Only output the correct option in the <answer> </answer> section."  # noqa: E501
RL_VISUAL = "A conversation between user and assistant. The user provides an image and asks a question, and the Assistant solves it. The assistant MUST first think about the reasoning process in the mind and then provide the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively. When referring to particular objects in the reasoning process, the assistant must localize the object with bounding box coordinates between <box> and </box>. The answer must strictly follow the following format:`<obj>object_name</obj><box>bounding_box</box>'."  # noqa: E501

# sft_multi_task.py prepare_dataset (SFT stage), verbatim.
SFT_VISUAL = "A conversation between user and assistant. The user provides an image and asks a question, and the Assistant solves it. The assistant MUST first think about the reasoning process in the mind and then provide the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively. When referring to particular objects in the reasoning process, the assistant MUST localize the object with bounding box coordinates between <box> and </box>. You MUST strictly follow the format."  # noqa: E501
SFT_ST = "A conversation between user and assistant. The user provides a video and asks a question, and the Assistant solves it. The assistant MUST first think about the reasoning process in the mind and then provide the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively. All reasoning must be grounded in visual evidence from the video. When you mention any related object, person, or specific visual element, you must strictly follow the following format: `<obj>object_name</obj><box>bounding_box</box>at<t>time_in_seconds</t>s`."  # noqa: E501
SFT_TEMPORAL = "A conversation between user and assistant. The user provides a video and asks a question, and the Assistant determines the precise time period that answers the question. The assistant MUST first think about the reasoning process in the mind and then provide the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively. The answer must strictly follow the following format: `From <t>start_time</t>s to <t>end_time</t>s'"  # noqa: E501
SFT_MCQ = "A conversation between user and assistant. The user provides a video and asks a multiple-choice question, and the Assistant solves it. The assistant MUST first think about the reasoning process in the mind and then provide the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively. Only output the correct option in the <answer> </answer> section."  # noqa: E501
SFT_FREE_FORM = "A conversation between user and assistant. The user provides a video and asks a question, and the Assistant solves it. The assistant MUST first think about the reasoning process in the mind and then provide the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively."  # noqa: E501

IMG16 = "<|vision_start|><|image_pad|>×16<|vision_end|>"  # a 112×112 frame, expanded
IMG = "<|vision_start|><|image_pad|><|vision_end|>"  # the chat template's placeholder


def chat(system: str, user: str, assistant: str | None = None) -> str:
    """The Qwen2.5-VL chat template's text: a prompt (with the generation prompt) or a
    whole conversation (the SFT stage's ``apply_chat_template(messages)``)."""
    head = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
    if assistant is None:
        return head + "<|im_start|>assistant\n"
    return head + f"<|im_start|>assistant\n{assistant}<|im_end|>\n"


@pytest.fixture(scope="module")
def processor() -> Any:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(QWEN))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    videos = root / "stgr/temporal_grounding/videos"
    kfs = root / "stgr/temporal_grounding/kfs"
    for folder in (videos, kfs, root / "tvg_r1", root / "videor1", root / "gqa"):
        folder.mkdir(parents=True)
    encode_video(videos / "clip.mp4", list(range(10)), Fraction(1, 4), rate=4, size_wh=(112, 112))
    for other in ("tvg_r1", "videor1"):
        (root / other / "clip.mp4").symlink_to(videos / "clip.mp4")
    Image.new("RGB", (224, 224), (220, 30, 30)).save(kfs / "k0.jpg")
    Image.new("RGB", (224, 224), (30, 200, 30)).save(kfs / "k1.jpg")
    Image.new("RGB", (896, 448), (90, 90, 90)).save(root / "gqa/cup.jpg")
    return root


RAW: dict[str, dict[str, Any]] = {
    "temporal-spatial free-form QA": {
        "question": "What does the cat do?",
        "answer": "The cat follows the dog.",
        "reasoning_process": "The <obj>dog</obj><box>[0.25,0.5,0.75,1.0]</box>at<t>0.7</t>s "
        "runs; the <obj>cat</obj><box>[0,0,0.5,0.5]</box>at<t>1.9</t>s follows.",
        "source": "STR_coin",
        "video_path": "clip.mp4",
        "key_frames": [
            {"path": "k1.jpg", "time": 1.9, "idx": 1},
            {"path": "k0.jpg", "time": 0.7, "idx": 0},
        ],
        "key_items": {"0": {"dog": [[0.25, 0.5, 0.75, 1.0]]}, "1": {"cat": [[0, 0, 0.5, 0.5]]}},
    },
    "temporal QA": {
        "question": "When does the dog jump?",
        "answer": "[0.5, 1.5]",
        "reasoning_process": "It jumps at <t>0.6</t>s and lands at <t>1.5</t>s.",
        "source": "TVG_charades",
        "video_path": "clip.mp4",
    },
    "temporal QA (MCQ)": {
        "question": "When does the dog jump? A. early B. late",
        "answer": "A\n[0.5, 1.5]",
        "reasoning_process": "It jumps at <t>0.6</t>s.",
        "source": "TVG_charades",
        "video_path": "clip.mp4",
    },
    "General video QA MCQ": {
        "question": "What jumps?\nA. a dog\nB. a cat",
        "answer": "A",
        "reasoning_process": "The <obj>dog</obj><box>[0.1,0.2,0.3,0.4]</box>at<t>0.6</t>s jumps.",
        "source": "videor1_mcq",
        "video_path": "clip.mp4",
    },
    "General video QA Free-form": {
        "question": "What happens?",
        "answer": "A dog jumps.",
        "reasoning_process": "A dog jumps at <t>0.6</t>s.",
        "source": "videor1_free_from",
        "video_path": "clip.mp4",
    },
    "visual QA": {
        "question": "Where is the cup?",
        "answer": "<obj>cup</obj><box>[5,10,101,51]</box>",
        "reasoning_process": "The cup <obj>cup</obj><box>[5,10,101,51]</box> is left.",
        "source": "gqa",
        "image_path": "cup.jpg",
        "image_size": [896, 448],
    },
}


def record(task: str) -> Any:
    rec, issues = record_from_dict({"task": task, **RAW[task]}, 0)
    assert rec is not None, issues
    return rec


def example(task: str, media: Path, protocol: str) -> Example:
    return to_example(record(task), media, "qwen2_5_vl", protocol=protocol)


def rl_text(task: str, media: Path, processor: Any) -> tuple[str, tuple[int, ...]]:
    ex = example(task, media, "reference")
    rendered = render_request(processor, ex.messages, ex.clip)
    return rendered.display(), rendered.vision_tokens


def sft_text(task: str, media: Path, processor: Any) -> str:
    ex = example(task, media, "reference-sft")
    text: str = processor.apply_chat_template(ex.conversation(), tokenize=False)
    return text


RL_VIDEO_FRAMES = (
    f"Frame 1 at 0.0s: {IMG16}\nFrame 2 at 0.6s: {IMG16}\nFrame 3 at 1.2s: {IMG16}\n"
    f"Frame 4 at 1.9s: {IMG16}\nThe video is in total 2 seconds.\n"
)
SFT_PLAIN_FRAMES = (
    f"Frame 1 at 0.0: {IMG}\nFrame 2 at 0.6: {IMG}\nFrame 3 at 1.2: {IMG}\n"
    f"Frame 4 at 1.9: {IMG}\nThe video is in total 2 seconds.\n"
)


def test_spatio_temporal_rl(media: Path, processor: Any) -> None:
    text, tokens = rl_text("temporal-spatial free-form QA", media, processor)
    assert text == chat(
        RL_FREE_FORM,
        f"Frame 1 at 0.0s: {IMG16}\nFrame 2 at 1s: {IMG16}\nFrame 3 at 1.2s: {IMG16}\n"
        f"Frame 4 at 2s: {IMG16}\nFrame 5 at 1.9s: {IMG16}\n"
        "The video is in total 2 seconds.\nWhat does the cat do?",
    )
    assert tokens == (16,) * 5


def test_spatio_temporal_sft(media: Path, processor: Any) -> None:
    # Boxes 0-1 → pixels of the 112×112 frames (replace_boxes_for_gemini_data).
    assert sft_text("temporal-spatial free-form QA", media, processor) == chat(
        SFT_ST,
        f"Frame 1 at 0.0s: {IMG}\nFrame 2 at 0.7s: {IMG}\nFrame 3 at 1.2s: {IMG}\n"
        f"Frame 4 at 1.9s: {IMG}\nFrame 5 at 1.9s: {IMG}\nWhat does the cat do?",
        "<think>The <obj>dog</obj><box>[28,56,84,112]</box>at<t>0.7</t>s runs; the "
        "<obj>cat</obj><box>[0,0,56,56]</box>at<t>1.9</t>s follows.</think>\n"
        "<answer>The cat follows the dog.</answer>",
    )


def test_temporal_qa(media: Path, processor: Any) -> None:
    text, tokens = rl_text("temporal QA", media, processor)
    assert text == chat(RL_TEMPORAL, RL_VIDEO_FRAMES + "When does the dog jump?")
    assert tokens == (16,) * 4
    # SFT: labels without "s", "Question: ", and the file's answer as it is.
    assert sft_text("temporal QA", media, processor) == chat(
        SFT_TEMPORAL,
        SFT_PLAIN_FRAMES + "Question: When does the dog jump?",
        "<think>It jumps at <t>0.6</t>s and lands at <t>1.5</t>s.</think>\n"
        "<answer>[0.5, 1.5]</answer>",
    )


def test_temporal_mcq_rl_and_no_sft(media: Path, processor: Any) -> None:
    text, _ = rl_text("temporal QA (MCQ)", media, processor)
    assert text == chat(
        RL_TEMPORAL_MCQ, RL_VIDEO_FRAMES + "When does the dog jump? A. early B. late"
    )
    # prepare_dataset has no branch for it: "Unknown task".
    with pytest.raises(DataError, match="'reference-sft'") as exc:
        example("temporal QA (MCQ)", media, "reference-sft")
    assert (exc.value.index, exc.value.field) == (0, "task")


def test_general_mcq(media: Path, processor: Any) -> None:
    text, _ = rl_text("General video QA MCQ", media, processor)
    assert text == chat(RL_MCQ, RL_VIDEO_FRAMES + "What jumps?\nA. a dog\nB. a cat")
    # The SFT stage converts no box of a general-QA trace: it stays 0-1.
    assert sft_text("General video QA MCQ", media, processor) == chat(
        SFT_MCQ,
        SFT_PLAIN_FRAMES + "Question: What jumps?\nA. a dog\nB. a cat",
        "<think>The <obj>dog</obj><box>[0.1,0.2,0.3,0.4]</box>at<t>0.6</t>s jumps.</think>\n"
        "<answer>A</answer>",
    )


def test_general_free_form(media: Path, processor: Any) -> None:
    text, _ = rl_text("General video QA Free-form", media, processor)
    assert text == chat(RL_FREE_FORM, RL_VIDEO_FRAMES + "What happens?")
    assert sft_text("General video QA Free-form", media, processor) == chat(
        SFT_FREE_FORM,
        SFT_PLAIN_FRAMES + "Question: What happens?",
        "<think>A dog jumps at <t>0.6</t>s.</think>\n<answer>A dog jumps.</answer>",
    )


def test_visual_qa(media: Path, processor: Any) -> None:
    # 896×448 → smart_resize at ≤ 128·28·28 px → 448×224: 32×16 patches / 4 = 128 tokens.
    text, tokens = rl_text("visual QA", media, processor)
    assert text == chat(
        RL_VISUAL, "<|vision_start|><|image_pad|>×128<|vision_end|>Where is the cup?"
    )
    assert tokens == (128,)
    # resize_bounding_boxes_for_image: int(round(c · 0.5)), half to even: 2.5 → 2, 50.5 → 50,
    # 25.5 → 26 (ours, half up, writes [3,5,51,26]).
    assert sft_text("visual QA", media, processor) == chat(
        SFT_VISUAL,
        f"{IMG}Where is the cup?",
        "<think>The cup <obj>cup</obj><box>[2,5,50,26]</box> is left.</think>\n"
        "<answer><obj>cup</obj><box>[2,5,50,26]</box></answer>",
    )
    assert example("visual QA", media, "o3video").target == (
        "<think>The cup <obj>cup</obj><box>[3,5,51,26]</box> is left.</think>\n"
        "<answer><obj>cup</obj><box>[3,5,51,26]</box></answer>"
    )


def test_the_frames_are_the_same_under_every_protocol(media: Path) -> None:
    for task in RAW:
        clips = [example(task, media, p).clip for p in ("o3video", "reference")]
        assert clips[0].times_s == clips[1].times_s
        assert np.array_equal(clips[0].frames, clips[1].frames)
        columns = [example(task, media, p).columns for p in ("o3video", "reference")]
        assert json.dumps(columns[0]) == json.dumps(columns[1])

"""Golden tests: the general benchmarks' requests, fully rendered by the real Qwen2.5-VL-7B
processor and tokenizer files, per protocol — one multiple-choice item (VideoMME) and one
grounding item (Charades-STA).

The expected texts are written out by hand from the reference code: VideoMME's think-mode
text (``eval/dataloader/videomme.py`` ``videomme_doc_to_text``), one native video item and no
system turn of its own (``eval/models/model_vllm.py``, so the chat template's default
``You are a helpful assistant.``), and the RL-stage frame labels and duration line
(``src/r1-v/src/open_r1/trainer/grpo_trainer.py``). Vision-token counts follow from the frame
sizes: Qwen2.5-VL merges 2×2 patches of 14 px and, for a video, 2 frames in time, so a
``W×H`` image is ``(W/28)·(H/28)`` tokens and a video of ``T`` frames ``T/2`` times that.

The processor files live in ``../shared/reference-data/qwen/qwen2_5_vl_7b_instruct`` (found
relative to the repository root); without them the tests are skipped.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from videos import encode_video

from o3video.eval.bench import show_benchmark_prompts
from o3video.families import family_for_processor
from o3video.models.card import VideoSettings
from o3video.prompts import processor_inputs
from o3video.protocols.bench import REFERENCE_VIDEO_INTERVAL_S

REPO = Path(__file__).resolve().parents[1]
QWEN = REPO.parent / "shared" / "reference-data" / "qwen" / "qwen2_5_vl_7b_instruct"

pytestmark = pytest.mark.skipif(
    not (QWEN / "vocab.json").is_file(),
    reason=f"the real Qwen2.5-VL processor files are not at {QWEN} (../shared/reference-data)",
)

VSTART, VEND = "<|vision_start|>", "<|vision_end|>"
HEAD_DEFAULT = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
TAIL = "<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def processor() -> Any:
    transformers = pytest.importorskip("transformers")
    return transformers.AutoProcessor.from_pretrained(str(QWEN))


@pytest.fixture(scope="module")
def videomme(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One VideoMME question on a 640×360 video of 8 frames at 1 fps (8 s)."""
    root = tmp_path_factory.mktemp("Video-MME")
    (root / "data").mkdir()
    encode_video(root / "data" / "vidA.mp4", list(range(8)), Fraction(1, 1), rate=1,
                 size_wh=(640, 360))  # fmt: skip
    record = {
        "question_id": "001-1", "videoID": "vidA", "duration": "short", "domain": "Knowledge",
        "sub_category": "Humanity & History", "task_type": "Counting Problem",
        "question": "How many people appear?",
        "options": ["A. One.", "B. Two.", "C. Three.", "D. Four."], "answer": "B",
    }  # fmt: skip
    (root / "videomme.json").write_text(json.dumps([record]))
    return root


@pytest.fixture(scope="module")
def charades(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Charades-STA query on a 320×240 video of 15 frames at 5 fps (3 s)."""
    root = tmp_path_factory.mktemp("Charades")
    (root / "Charades_v1_480").mkdir()
    encode_video(root / "Charades_v1_480" / "AO8RW.mp4", list(range(15)), Fraction(1, 5),
                 rate=5, size_wh=(320, 240))  # fmt: skip
    (root / "charades_sta_test.txt").write_text("AO8RW 0.5 2.5##a person opens a door.\n")
    return root


def rendered(processor: Any, name: str, root: Path, protocol: str) -> Any:
    shown = show_benchmark_prompts(
        processor, family_for_processor(processor), name, root, protocol=protocol, n=1
    )
    assert len(shown) == 1
    return shown[0][1]


def frames_block(times: list[str], tokens: int) -> str:
    return "".join(
        f"Frame {k} at {t}s: {VSTART}{'<|image_pad|>' * tokens}{VEND}\n"
        for k, t in enumerate(times, start=1)
    )


def test_videomme_reference_is_the_scripts_native_video_request(
    processor: Any, videomme: Path
) -> None:
    r = rendered(processor, "videomme", videomme, "reference")
    # 2 fps · 8 s = 16 frames, at most the 8 there are; 640×360 = 230,400 px lies within
    # 100,352..262,144, so the frame keeps its size rounded to 28: 644×364 → 23·13 = 299
    # tokens a frame; 8 frames = 4 temporal patches → 4 · 299 = 1196 video tokens.
    assert r.vision_tokens == (1196,)
    expected = (
        HEAD_DEFAULT
        + VSTART + "<|video_pad|>" * 1196 + VEND
        + "Question:How many people appear?\nA. One.\nB. Two.\nC. Three.\nD. Four.\n"
        "Select the best answer to the multiple-choice question based on the video. "
        "You must first think about the reasoning process in the mind and then provide the "
        "user with the answer. The reasoning process and answer are enclosed within "
        "<think> </think> and <answer> </answer> tags, respectively. All reasoning must be "
        "grounded in visual evidence from the video. When you mention any related object, "
        "person, or specific visual element, you must strictly follow the following format: "
        "`<obj>object_name</obj><box>bounding_box</box>at<t>time_in_seconds</t>s`. "
        "The reasoning process MUST NOT be longer than 100 words. In the answer part, "
        "respond with only the letter (A, B, C, or D) of the correct option."
        + TAIL
    )  # fmt: skip
    assert r.text == expected


def test_videomme_reference_places_frames_half_a_second_apart(
    processor: Any, videomme: Path
) -> None:
    # The script passes no frame rate: the processor takes its 2 fps default, 2 frames a
    # temporal patch → second_per_grid_ts 1.0, although these frames are 1 s apart (their
    # true spacing would give 2.0).
    from o3video.eval.bench import item_request
    from o3video.eval.benchmarks import load_benchmark
    from o3video.protocols.render import to_messages

    (item,) = load_benchmark("videomme", videomme)
    family = family_for_processor(processor)
    prompt, clip = item_request(item, "reference", family, VideoSettings())
    assert prompt.video_interval_s == REFERENCE_VIDEO_INTERVAL_S == 0.5
    assert clip.times_s == tuple(float(t) for t in range(8))
    messages = to_messages(prompt, clip)
    inputs = processor_inputs(processor, messages, clip, video_interval_s=0.5)
    assert inputs["second_per_grid_ts"].tolist() == [1.0]
    assert inputs["video_grid_thw"].tolist() == [[4, 26, 46]]
    true_time = processor_inputs(processor, messages, clip)
    assert true_time["second_per_grid_ts"].tolist() == [2.0]


def test_videomme_o3video_is_our_mcq_prompt_on_labelled_frames(
    processor: Any, videomme: Path
) -> None:
    r = rendered(processor, "videomme", videomme, "o3video")
    # Budget 2 fps, 4..16 frames, ≤ 100,352 px: 8 frames of 420×224 → 15·8 = 120 tokens each.
    assert r.vision_tokens == (120,) * 8
    system = (
        "A conversation between user and assistant. The user provides a video and asks a "
        "multiple-choice question, and the Assistant solves it. The assistant MUST first think "
        "about the reasoning process in the mind and then provide the user with the answer. "
        "The reasoning process and answer are enclosed within <think> </think> and <answer> "
        "</answer> tags, respectively. All reasoning must be grounded in visual evidence from "
        "the video. When you mention any related object, person, or specific visual element "
        "in the reasoning process, you must strictly follow the following format: "
        "`<obj>object_name</obj><box>bounding_box</box>at<t>time_in_seconds</t>s`. "
        "Only output the correct option in the <answer> </answer> section."
    )
    times = ["0.0", "1.0", "2.0", "3.0", "4.0", "5.0", "6.0", "7.0"]
    expected = (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n"
        + frames_block(times, 120)
        + "The video is in total 8.0 seconds.\n"
        "How many people appear?\nA. One.\nB. Two.\nC. Three.\nD. Four.\n"
        "Answer with the option's letter from the given choices." + TAIL
    )
    assert r.text == expected


TEMPORAL_SYSTEM = (
    "A conversation between user and assistant. The user provides a video and asks a "
    "question, and the Assistant determines the precise time period that answers the "
    "question. The assistant MUST first think about the reasoning process in the mind and "
    "then provide the user with the answer. The reasoning process and answer are enclosed "
    "within <think> </think> and <answer> </answer> tags, respectively. When mentioning time "
    "during the reasoning process, the assistant must use the format: "
    "`<t>time_in_seconds</t>s'.The answer must strictly follow the following format: "
    "`From <t>start_time</t>s to <t>end_time</t>s'."
)
CHARADES_QUESTION = (
    'When does this happen in the video: "a person opens a door"? Give the start and end '
    "time in seconds."
)


def test_charades_reference_is_the_rl_stage_prompt(processor: Any, charades: Path) -> None:
    r = rendered(processor, "charades_sta", charades, "reference")
    # 2 fps · 3 s = 6 frames of 15; 320×240 rounds to 308×252 → 11·9 = 99 tokens each.
    # sample_fps = 6 / 15 · 5 = 2.0: labels round(i / 2, 1), duration int(6 / 2) = 3.
    assert r.vision_tokens == (99,) * 6
    expected = (
        f"<|im_start|>system\n{TEMPORAL_SYSTEM}<|im_end|>\n<|im_start|>user\n"
        + frames_block(["0.0", "0.5", "1.0", "1.5", "2.0", "2.5"], 99)
        + "The video is in total 3 seconds.\n"
        + CHARADES_QUESTION
        + TAIL
    )
    assert r.text == expected


def test_charades_o3video_labels_true_times(processor: Any, charades: Path) -> None:
    r = rendered(processor, "charades_sta", charades, "o3video")
    # The same 6 frames, picked at linspace(0, 2.8, 6) and snapped to the 0.2 s grid:
    # 0.0, 0.6, 1.2, 1.6, 2.2, 2.8 s, labelled with those times; the true duration 3.0 s.
    assert r.vision_tokens == (99,) * 6
    expected = (
        f"<|im_start|>system\n{TEMPORAL_SYSTEM}<|im_end|>\n<|im_start|>user\n"
        + frames_block(["0.0", "0.6", "1.2", "1.6", "2.2", "2.8"], 99)
        + "The video is in total 3.0 seconds.\n"
        + CHARADES_QUESTION
        + TAIL
    )
    assert r.text == expected


def test_cli_show_prompts_needs_no_weights_nor_out(
    videomme: Path, charades: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from o3video.cli.main import main

    # No --protocol: a model folder without a card (the released checkpoint's case) runs
    # under the reference protocol.
    argv = ["eval", "bench", "videomme", "--root", str(videomme), "--model", str(QWEN)]
    assert main([*argv, "--show-prompts", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "=== videomme item 001-1 · reference · 8 frames 644x364 (native video, told 0.5 s apart)"
    )
    assert "1 vision item(s) of 1196 token(s)" in out
    assert f"{VSTART}<|video_pad|>×1196{VEND}Question:How many people appear?\n" in out
    argv = ["eval", "bench", "charades_sta", "--root", str(charades), "--model", str(QWEN)]
    assert main([*argv, "--protocol", "o3video", "--show-prompts", "1"]) == 0
    out = capsys.readouterr().out
    assert "· o3video · 6 frames 308x252 (frames)" in out
    assert f"Frame 2 at 0.6s: {VSTART}<|image_pad|>×99{VEND}\n" in out

"""Golden tests: what a Qwen2.5-VL-7B checkpoint is shown for a V-STaR item, per protocol.

The expected strings are written by hand from reading the reference V-STaR script
(``eval/test/test_vstar_multi_images.py`` of the reference repository, ``--think_mode`` as its
``eval_all.sh`` runs it, with ``eval/config/vstar.yaml``): system prompt ``You are a helpful
assistant.``; the frame prompt ``Frame {i+1} at {round(idx/fps, 1)}s: <image>\\n`` put in
place of the video placeholder (or before the prompt when it has none); frames read every
``int(fps)``-th frame, at most 16; images at native size (640×360 → 644×364 = 23×13 merged
patches = 299 tokens). They are rendered with the real processor and tokenizer files of
Qwen2.5-VL-7B-Instruct in ``../shared/reference-data`` — no weights.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from videos import encode_video, read_index

from o3video.cli.main import main
from o3video.data.vstar import item_from_dict
from o3video.families import get_family
from o3video.models.card import VideoSettings
from o3video.protocols.frames import reference_vstar_indices
from o3video.protocols.render import to_messages
from o3video.protocols.show import render_request
from o3video.protocols.vstar import REFERENCE_VIDEO, vstar_prompts
from o3video.video import sample_frame_indices

QWEN_DIR = Path(__file__).resolve().parents[1].parent / "shared/reference-data/qwen"
QWEN25 = QWEN_DIR / "qwen2_5_vl_7b_instruct"
needs_qwen = pytest.mark.skipif(
    not (QWEN25 / "vocab.json").is_file(),
    reason=f"the real Qwen2.5-VL processor files are not at {QWEN25} (../shared/reference-data)",
)

RAW = {
    "vid": "clip1",
    "domain": "Sports",
    "fps": 5.0,
    "width": 640,
    "height": 360,
    "frame_count": 30,
    "question": "What does the man hold?",
    "answer": "a red ball",
    "temporal_question": "When does the man hold the red ball?",
    "timestamps": [1.5, 4.2],
    "spatial_question": "Where is the red ball while the man holds it?",
    "spatial_question_2": "Where is the red ball?",
    "bboxes": [
        {"timestamp": 2, "frame_index": 10, "xmin": 100, "ymin": 50, "xmax": 200, "ymax": 150},
        {"timestamp": 3, "frame_index": 15, "xmin": 110, "ymin": 60, "xmax": 210, "ymax": 160},
        {"timestamp": 4, "frame_index": 20, "xmin": 120, "ymin": 70, "xmax": 220, "ymax": 170},
    ],
}

THINK = (
    "You must first think about the reasoning process in the mind and then provide the user "
    "with the answer. The reasoning process and answer are enclosed within <think> </think> "
    "and <answer> </answer> tags, respectively."
)
IMG = "<|vision_start|><|image_pad|>×299<|vision_end|>"
FRAMES = "".join(f"Frame {k + 1} at {k}.0s: {IMG}\n" for k in range(6))
HEAD = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
TAIL = "<|im_end|>\n<|im_start|>assistant\n"

EXPECTED_REFERENCE = {
    "what": HEAD + FRAMES + "Answer the question about the video: What does the man hold? \n"
    " (If the answer is a person, you don't need to identify the person.)" + THINK + " All "
    "reasoning must be grounded in visual evidence from the video. When you mention any related "
    "object, person, or specific visual element, you must strictly follow the following format: "
    "`<obj>object_name</obj><box>bounding_box</box>at<t>time_in_seconds</t>s`. Do not use "
    "<box>, <obj> and <t> in the answer part." + TAIL,
    "when_1": HEAD + "This video is 6.0 seconds long. " + FRAMES + "\nAnswer the question about "
    "the video: When does the man hold the red ball? \n. " + THINK + " The answer must follow "
    "the following format: `From <t>start_time</t>s to <t>end_time</t>s'" + TAIL,
    "where_1": HEAD + FRAMES + "\nPlease answer the question about the video: Where is the red "
    "ball while the man holds it? with a series of bounding boxes in [x1, y1, x2, y2] format.\n"
    + THINK
    + "\nIn the answer part, for each whole second within the time range [2, 3, 4] "
    "provided (inclusive of the boundaries), output a series of bounding boxes of the object in "
    "JSON format. The keys should be the whole seconds (as strings), and the values should be "
    "the box in [x1, y1, x2, y2] format.\nExample output of the answer part: "
    '{"2": [x1, y1, x2, y2],...}\n' + TAIL,
    "where_2": HEAD + FRAMES + "\nPlease answer the question about the video: Where is the red "
    "ball? with a series of bounding boxes in [x1, y1, x2, y2] format.\n" + THINK + "\nIn the "
    "answer part, for each whole second that may related to the question, output a series of "
    "bounding boxes of the object in JSON format. You only need to output 3 bbox(es). You need "
    "to determine which frame is related to the question, and you don't need to output the bbox "
    "for the frames not related to the question.\nThe keys should be the whole seconds (as "
    "strings), and the values should be the bounding box in [x0,y0,x1,y1] format.\n\nExample "
    'output of the answer part:\n{"0": [x0,y0,x1,y1], "1":..., ..., "3":...} (if the frames at '
    "0~3 second are related to the questions)\n" + TAIL,
    "when_2": HEAD + "This video is 6.0 seconds long with a resolution of 640x360 (width x "
    "height). " + FRAMES + "\nAnswer the question about the video: When does the man hold the "
    "red ball? \nThere are 3 bounding boxes of the key object related to the question in the "
    "video without knowing the time, which are:[[100, 50, 200, 150], [110, 60, 210, 160], "
    "[120, 70, 220, 170]]. " + THINK + " The answer must follow the following format: "
    "`From <t>start_time</t>s to <t>end_time</t>s'" + TAIL,
}


@pytest.fixture(scope="module")
def vstar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A V-STaR folder: the item above and its 6 s, 640×360, 5 fps video."""
    root = tmp_path_factory.mktemp("vstar")
    (root / "videos").mkdir()
    encode_video(
        root / "videos/clip1.mp4", list(range(30)), Fraction(1, 5), rate=5, size_wh=(640, 360)
    )
    (root / "V_STaR_test.json").write_text(json.dumps([RAW]))
    return root


def test_reference_indices_follow_the_script() -> None:
    # 6 s at 5 fps: int(6 * 1) = 6 <= 16, so every int(5 / 1) = 5th frame from 0.
    assert reference_vstar_indices(30, 5.0) == [0, 5, 10, 15, 20, 25]
    # 29.97 fps: the step is int(29.97) = 29 frames, so the labels drift from whole seconds.
    assert reference_vstar_indices(120, 29.97)[:3] == [0, 29, 58]
    # 20 s at 2 fps: int(20) = 20 > 16, so 16 indices linspace(0, 39) truncated.
    assert reference_vstar_indices(40, 2.0) == [
        0, 2, 5, 7, 10, 13, 15, 18, 20, 23, 26, 28, 31, 33, 36, 39
    ]  # fmt: skip


def test_frames_by_index_are_those_frames(vstar_dir: Path) -> None:
    clip = sample_frame_indices(
        vstar_dir / "videos/clip1.mp4", [0, 5, 10, 25], min_pixels=3136, max_pixels=12845056
    )
    assert [read_index(f) for f in clip.frames] == [0, 5, 10, 25]
    assert clip.times_s == (0.0, 1.0, 2.0, 5.0)
    assert clip.frame_wh == (644, 364)


@needs_qwen
def test_reference_protocol_renders_the_scripts_text(vstar_dir: Path) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(QWEN25)
    item, issues = item_from_dict(RAW, 0)
    assert item is not None and not issues
    clip = REFERENCE_VIDEO.sample(vstar_dir / "videos/clip1.mp4", factor=28)
    assert clip.num_frames == 6 and clip.frame_wh == (644, 364)
    prompts = dict(vstar_prompts(item, "reference", get_family("qwen2_5_vl"), clip, RAW))
    assert list(prompts) == list(EXPECTED_REFERENCE)
    for key, expected in EXPECTED_REFERENCE.items():
        rendered = render_request(processor, to_messages(prompts[key], clip), clip)
        assert rendered.display() == expected, key
        assert rendered.vision_tokens == (299,) * 6


@needs_qwen
def test_o3video_protocol_renders_true_times_and_model_space_boxes(vstar_dir: Path) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(QWEN25)
    item, _ = item_from_dict(RAW, 0)
    assert item is not None
    clip = VideoSettings().sample(vstar_dir / "videos/clip1.mp4", factor=28)
    # 2 fps over 6 s = 12 frames, each at most 128·28·28 pixels: 420×224 = 15×8 = 120 tokens.
    assert clip.num_frames == 12 and clip.frame_wh == (420, 224)
    prompts = dict(vstar_prompts(item, "o3video", get_family("qwen2_5_vl"), clip))
    rendered = render_request(processor, to_messages(prompts["when_2"], clip), clip)
    img = "<|vision_start|><|image_pad|>×120<|vision_end|>"
    # The frames nearest linspace(0, 29, 12), at their true times (index / 5 fps).
    times = [round(k * 29 / 11) / 5 for k in range(12)]
    frames = "".join(f"Frame {k + 1} at {t:.1f}s: {img}\n" for k, t in enumerate(times))
    # Ground-truth boxes shown in the 420×224 frames' pixels: x · 420/640, y · 224/360.
    expected = (
        "<|im_start|>system\nA conversation between user and assistant. The user provides a "
        "video and asks a question, and the Assistant determines the precise time period that "
        "answers the question. The assistant MUST first think about the reasoning process in the "
        "mind and then provide the user with the answer. The reasoning process and answer are "
        "enclosed within <think> </think> and <answer> </answer> tags, respectively. When "
        "mentioning time during the reasoning process, the assistant must use the format: "
        "`<t>time_in_seconds</t>s'.The answer must strictly follow the following format: "
        "`From <t>start_time</t>s to <t>end_time</t>s'.<|im_end|>\n<|im_start|>user\n"
        + frames
        + "The video is in total 6.0 seconds.\nWhen does the man hold the red ball?\nThe object "
        "is at these boxes, in time order: [66, 31, 131, 93], [72, 37, 138, 100], "
        "[79, 44, 144, 106]. Boxes are [x1, y1, x2, y2] in pixels of the 420x224 frames."
        "<|im_end|>\n<|im_start|>assistant\n"
    )
    assert rendered.display() == expected
    assert rendered.vision_tokens == (120,) * 12
    # The other four: the published task prompts (grounded free-form, temporal) and ours for
    # Where, the same frames and duration line, the bare questions.
    user = "<|im_end|>\n<|im_start|>user\n" + frames + "The video is in total 6.0 seconds.\n"
    think = (
        "The assistant MUST first think about the reasoning process in the mind and then "
        "provide the user with the answer. The reasoning process and answer are enclosed within "
        "<think> </think> and <answer> </answer> tags, respectively. All reasoning must be "
        "grounded in visual evidence from the video. When you mention any related object, "
        "person, or specific visual element in the reasoning process, you must strictly follow "
        "the following format: `<obj>object_name</obj><box>bounding_box</box>at<t>time_in_"
        "seconds</t>s`. "
    )
    where_system = (
        "<|im_start|>system\nA conversation between user and assistant. The user provides a "
        "video and asks where an object is at given seconds, and the Assistant locates it. "
        + think
        + "The answer must be a JSON object that maps each second to the object's bounding box "
        '[x1, y1, x2, y2], like {"3": [x1, y1, x2, y2]}.'
    )
    note = "Boxes are [x1, y1, x2, y2] in pixels of the 420x224 frames."
    tail = "<|im_end|>\n<|im_start|>assistant\n"
    expected_rest = {
        "what": "<|im_start|>system\nA conversation between user and assistant. The user "
        "provides a video and asks a question, and the Assistant solves it. " + think + "The "
        "answer part only requires a text response; tags like <obj>, <box>, <t> are not needed."
        + user
        + "What does the man hold?"
        + tail,
        "when_1": expected.split(frames)[0] + frames + "The video is in total 6.0 seconds.\n"
        "When does the man hold the red ball?" + tail,
        "where_1": where_system + user + "Where is the red ball while the man holds it?\nGive "
        f"the object's bounding box at each of these seconds: 2, 3, 4. {note} Answer with a "
        'JSON object mapping each second to its box, like {"2": [x1, y1, x2, y2], '
        '"3": [x1, y1, x2, y2]}.' + tail,
        "where_2": where_system + user + "Where is the red ball?\nGive 3 bounding boxes, one per "
        f"whole second while it happens. {note} Answer with a JSON object mapping each second "
        "to its box." + tail,
    }
    for key, text in expected_rest.items():
        shown = render_request(processor, to_messages(prompts[key], clip), clip).display()
        assert shown == text, key


@needs_qwen
def test_show_prompts_needs_no_weights(vstar_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The reference-data folder has processor and tokenizer files only: no card, so the
    # default protocol is the reference one.
    argv = ["eval", "vstar", "--model", str(QWEN25), "--data", str(vstar_dir)]
    assert main([*argv, "--show-prompts", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== item 0 (clip1)") == 5
    assert "· reference · 6 frames 644x364" in out
    assert "6 vision item(s) of 299 token(s)" in out
    assert EXPECTED_REFERENCE["when_2"] in out
    assert main([*argv, "--show-prompts", "1", "--protocol", "o3video"]) == 0
    assert "· o3video · 12 frames 420x224" in capsys.readouterr().out

"""The general benchmarks under each protocol, without the real processor: the reference
texts of WorldSense and VideoMMMU written out by hand from the reference scripts, the
``o3video`` requests unchanged (``build_messages``), the reference RL-stage prompt's numbers,
a native video's frame spacing, and what a run records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from videos import encode_video

from o3video.cli.main import main
from o3video.eval.bench import finish_benchmark, item_request, run_benchmark
from o3video.eval.benchmarks import BenchItem, load_benchmark, prompt_for
from o3video.families import get_family
from o3video.models.base import Request, SamplingParams
from o3video.models.card import VideoSettings
from o3video.prompts import build_messages, processor_inputs, video_metadata
from o3video.protocols.bench import (
    REFERENCE_BENCH_VIDEO,
    videommmu_text,
    worldsense_text,
)
from o3video.protocols.render import to_messages
from o3video.protocols.tasks import reference_rl_prompt, sample_fps
from o3video.video import Clip

QWEN25 = get_family("qwen2_5_vl")

THINK = (
    "You must first think about the reasoning process in the mind and then provide the user "
    "with the answer. The reasoning process and answer are enclosed within <think> </think> "
    "and <answer> </answer> tags, respectively. All reasoning must be grounded in visual "
    "evidence from the video. When you mention any related object, person, or specific visual "
    "element, you must strictly follow the following format: "
    "`<obj>object_name</obj><box>bounding_box</box>at<t>time_in_seconds</t>s`. The reasoning "
    "process MUST NOT be longer than 100 words."
)


def test_worldsense_text_as_its_script_builds_it() -> None:
    # SYS + FRAMES_TMPL_NOSUB (its lines joined by backslash continuations: no newline at
    # its end) + "Question: {question}\n{candidates}\n" + REQUIREMENTS_THK (no space after
    # "words.", ends in "option. " without a newline).
    expected = (
        "Carefully watch this video and pay attention to every detail. Based on your "
        "observations, select the best option that accurately addresses the question.\n"
        "These are the frames of a video. Audio transcripts of the video:\n"
        "This video does not have audio transcripts. Question: What falls?\nA. A cup.\n"
        "B. A pen.\n\nSelect the best answer to the multiple-choice question based on the "
        "video. " + THINK + "In the answer part, respond with only the letter (A, B, C, or D) "
        "of the correct option. "
    )
    assert worldsense_text("What falls?", ["A. A cup.", "B. A pen."]) == expected


def test_videommmu_text_per_split() -> None:
    tail = "\n" + THINK + " In the answer part, respond with only the letter of the correct option."
    assert videommmu_text("Which law?", ["Ohm", "Hooke"], "Perception") == (
        "Which law?\nA. Ohm\nB. Hooke\nQuestion Category:Perception\n"
        "Please ignore the Quiz question in last frame of the video." + tail
    )
    # An open question has no options: the script still adds the newline before them.
    assert videommmu_text("How far?", [], "Adaptation") == (
        "How far?\n\nQuestion Category:Adaptation\nYou should watch and learn the video "
        "content. Then apply what you learned to the question. Some key information of the "
        "question is in the input image." + tail
    )
    # Options that already carry "A." are printed as they are.
    assert videommmu_text("Q", ["A.x", "B.y"], "Comprehension").startswith("Q\nA.x\nB.y\n")
    with pytest.raises(ValueError, match="unknown VideoMMMU split 'perception'"):
        videommmu_text("Q", [], "perception")


def video(path: Path, seconds: int, rate: int = 5, size_wh: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = seconds * rate
    encode_video(path, list(range(n)), Fraction(1, rate), rate=rate, size_wh=size_wh)
    return path


@pytest.fixture
def videomme(tmp_path: Path) -> Path:
    root = tmp_path / "Video-MME"
    video(root / "data" / "v1.mp4", 4, rate=2)
    record = {
        "question_id": "q1", "videoID": "v1", "duration": "short", "question": "Who?",
        "options": ["A. Me.", "B. You."], "answer": "A",
    }  # fmt: skip
    (root / "videomme.json").write_text(json.dumps([record]))
    return root


@pytest.fixture
def star(tmp_path: Path) -> Path:
    root = tmp_path / "STAR"
    root.mkdir()
    record = {
        "question_id": "Interaction_T1_1", "question": "Which object?", "video_id": "V1",
        "start": 2.0, "end": 6.2, "answer": "The box.",
        "choices": [{"choice_id": 0, "choice": "The cup."}, {"choice_id": 1, "choice": "The box."}],
    }  # fmt: skip
    (root / "STAR_val.json").write_text(json.dumps([record]))
    video(root / "Charades_v1_480" / "V1.mp4", 8)
    return root


@pytest.fixture
def charades(tmp_path: Path) -> Path:
    root = tmp_path / "Charades"
    root.mkdir()
    (root / "charades_sta_test.txt").write_text("V2 1.0 3.0##a person sits down.\n")
    video(root / "Charades_v1_480" / "V2.mp4", 5)
    return root


def test_o3video_requests_are_what_build_messages_builds(
    videomme: Path, star: Path, charades: Path
) -> None:
    items = [
        *load_benchmark("videomme", videomme),
        *load_benchmark("star", star),
        *load_benchmark("charades_sta", charades),
    ]
    for item in items:
        prompt, clip = item_request(item, "o3video", QWEN25, VideoSettings())
        task, text = prompt_for(item)
        assert to_messages(prompt, clip) == build_messages(clip, text, task)  # type: ignore[arg-type]
        assert prompt.video_interval_s is None


def test_reference_rl_prompt_numbers() -> None:
    frames = np.zeros((6, 28, 28, 3), np.uint8)
    # 6 frames of a 30 fps video of 301 frames (10.03 s): sample_fps = 6 / 301 · 30 = 0.598…
    clip = Clip(frames, tuple(2.0 * k for k in range(6)), (28, 28), (28, 28), 30.0, 301 / 30)
    fps = sample_fps(clip)
    assert fps == pytest.approx(6 / 301 * 30)
    prompt = reference_rl_prompt("mcq", "Q?", clip)
    # round(i · 301 / 180, 1): 0.0, 1.7, 3.3, 5.0, 6.7, 8.4 (not the true times 0, 2, 4, …);
    # int(6 / 0.598…) = int(10.03) = 10.
    assert prompt.labels == (
        "Frame 1 at 0.0s: ", "Frame 2 at 1.7s: ", "Frame 3 at 3.3s: ",
        "Frame 4 at 5.0s: ", "Frame 5 at 6.7s: ", "Frame 6 at 8.4s: ",
    )  # fmt: skip
    assert prompt.duration == "The video is in total 10 seconds.\n"
    assert prompt.system is not None and "multiple-choice question" in prompt.system
    # A window of 121 frames of the same video: sample_fps = 6 / 121 · 30 = 1.487…: frame 2
    # at round(121 / 180, 1) = 0.7 s, int(121 / 30) = 4 s.
    windowed = reference_rl_prompt("temporal", "Q?", clip, total_frames=121)
    assert windowed.labels[1] == "Frame 2 at 0.7s: "
    assert windowed.duration == "The video is in total 4 seconds.\n"
    image = Clip(frames[:1], (0.0,), (28, 28), (28, 28), 0.0, 1.0)
    assert reference_rl_prompt("spatial_image", "Where?", image).labels == ("",)
    with pytest.raises(ValueError, match="shows one image"):
        reference_rl_prompt("spatial_image", "Where?", clip)


def test_video_interval_overrides_the_true_spacing() -> None:
    frames = np.zeros((4, 28, 28, 3), np.uint8)
    clip = Clip(frames, (0.0, 1.0, 2.0, 3.0), (28, 28), (28, 28), 30.0, 4.0)
    for family in ("qwen2_5_vl", "qwen3_vl"):
        meta = video_metadata(clip, family, interval_s=0.5)
        assert meta["fps"] == 2.0 and meta["frames_indices"] == [0, 1, 2, 3]
        assert meta["total_num_frames"] == 4
    assert video_metadata(clip, "qwen2_5_vl")["fps"] == 1.0  # the default is unchanged
    with pytest.raises(ValueError, match="positive"):
        video_metadata(clip, interval_s=0.0)
    image_only = build_messages(clip, "Q?", "mcq")
    with pytest.raises(ValueError, match="native video"):
        processor_inputs(object(), image_only, clip, family=QWEN25, video_interval_s=0.5)


class Scripted:
    name = "scripted"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.requests: list[Request] = []

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[str]]:
        self.requests.extend(requests)
        return [[self.reply] for _ in requests]


def test_reference_run_of_videomme_records_its_protocol(videomme: Path, tmp_path: Path) -> None:
    model = Scripted("<think>x</think><answer>A</answer>")
    out = tmp_path / "run"
    run_benchmark(model, QWEN25, "videomme", videomme, out, protocol="reference")
    (request,) = model.requests
    assert request.video_interval_s == 0.5
    assert [m["role"] for m in request.messages] == ["user"]  # the template's default system
    content = request.messages[0]["content"]
    assert [c["type"] for c in content] == ["video", "text"]
    assert content[1]["text"].startswith("Question:Who?\nA. Me.\nB. You.\nSelect the best")
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["protocol"] == "reference"
    assert settings["video"]["max_frames"] == REFERENCE_BENCH_VIDEO.max_frames == 64
    finish_benchmark(out)
    assert json.loads((out / "scores.json").read_text())["protocol"] == "reference"
    # The same folder refuses to resume under another protocol.
    with pytest.raises(Exception, match="protocol"):
        run_benchmark(model, QWEN25, "videomme", videomme, out, protocol="o3video")


def test_reference_star_uses_the_rl_prompt_on_its_window(star: Path, tmp_path: Path) -> None:
    model = Scripted("<answer>B</answer>")
    video = VideoSettings(fps=1.0, max_frames=4)
    run_benchmark(model, QWEN25, "star", star, tmp_path / "run", video=video, protocol="reference")
    (request,) = model.requests
    assert request.video_interval_s is None and request.clip is not None
    # Window 2..6.2 s of a 5 fps video: 22 source frames, 4 sampled (1 fps, at most 4) →
    # sample_fps 4 / 22 · 5: labels round(i · 22 / 20, 1), duration int(22 / 5) = 4.
    texts = [c["text"] for c in request.messages[1]["content"] if c["type"] == "text"]
    labels = [t for t in texts if t.startswith("Frame")]
    assert labels == [
        "Frame 1 at 0.0s: ", "Frame 2 at 1.1s: ", "Frame 3 at 2.2s: ", "Frame 4 at 3.3s: "
    ]  # fmt: skip
    assert texts[-2] == "The video is in total 4 seconds.\n"
    assert texts[-1].startswith("Which object?\nA. The cup.\nB. The box.")


def test_videommmu_adaptation_under_reference_refuses_without_its_image() -> None:
    item = BenchItem(
        "adaptation/x", "videommmu", Path("x.mp4"), "Q", group={"split": "adaptation"},
        answer="1", extra={"image_at_end": True, "options_raw": []},
    )  # fmt: skip
    with pytest.raises(Exception, match="image"):
        item_request(item, "reference", QWEN25, VideoSettings())


def test_bench_help_describes_the_bench_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "bench", "--help"])
    text = capsys.readouterr().out
    assert "run a model on a general benchmark" in text and "--show-prompts" in text
    assert "V-STaR" not in text.split("positional arguments")[0]


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def videommmu(tmp_path: Path) -> Path:
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    root = tmp_path / "VideoMMMU"
    for split in ("Perception", "Comprehension", "Adaptation"):
        vid = f"{split.lower()}_Physics_1"
        video(root / "videos" / "Science" / f"{vid}.mp4", 2, rate=2)
        record: dict[str, Any] = {
            "id": vid, "question": f"{split} question?", "options": ["1 m", "2 m"],
            "answer": "B", "question_type": "multiple-choice",
        }  # fmt: skip
        if split == "Adaptation":
            record["image"] = {"bytes": _png(100, 60), "path": "q.png"}
        (root / split).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist([record]), root / split / "test-00000-of-00001.parquet")
    return root


def test_videommmu_adaptation_shows_its_image_between_video_and_text(videommmu: Path) -> None:
    items = {item.group["split"]: item for item in load_benchmark("videommmu", videommmu)}
    prompt, _ = item_request(items["perception"], "reference", QWEN25, VideoSettings())
    assert prompt.extra_images == ()
    assert prompt.after.startswith("Perception question?\nA. 1 m\nB. 2 m\nQuestion Category:")
    prompt, clip = item_request(items["adaptation"], "reference", QWEN25, VideoSettings())
    # qwen-vl-utils' image bounds keep its size, rounded to 28: 100×60 → 112×56.
    (image,) = prompt.extra_images
    assert image.size == (112, 56) and image.getpixel((50, 30)) == (200, 30, 30)
    content = to_messages(prompt, clip)[0]["content"]
    assert [c["type"] for c in content] == ["video", "image", "text"]
    assert "Question Category:Adaptation\nYou should watch" in content[2]["text"]

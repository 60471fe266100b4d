"""``ask``: a video and a question to a grounded Answer, end to end.

Two kinds of model: the tiny random Qwen2.5-VL (nonsense text: the parser reports problems,
nothing crashes) and a scripted backend that returns a known trace, so that the boxes in
source pixels can be checked against numbers derived by hand.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import pytest
from videos import encode_video

from o3video.ask import ask
from o3video.errors import VideoDecodeError
from o3video.models.base import BackendError, Request, SamplingParams
from o3video.models.hf import HFBackend
from o3video.prompts import Presentation

STAGES = {"decode", "preprocess", "generate", "parse", "total"}
TRACE = (
    "<think>The <obj>dog</obj><box>[42,56,210,112]</box>at<t>0.4</t>s runs to the right."
    "</think><answer>It runs.</answer>"
)


@pytest.fixture(scope="module")
def backend(tiny_dir: Path) -> HFBackend:
    return HFBackend(tiny_dir)


@pytest.fixture(scope="module")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64x48, 2 s at 10 fps."""
    path = tmp_path_factory.mktemp("video") / "small.mp4"
    encode_video(path, list(range(20)), Fraction(1, 10), rate=10, size_wh=(64, 48))
    return path


@pytest.fixture(scope="module")
def hd_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1280x720, 10 frames at 10 fps (0.0 ... 0.9 s)."""
    path = tmp_path_factory.mktemp("video") / "hd.mp4"
    encode_video(path, list(range(10)), Fraction(1, 10), rate=10, size_wh=(1280, 720))
    return path


class Scripted:
    """A backend that returns fixed texts (cycled) and records what it was asked."""

    def __init__(self, texts: Sequence[str], family: str | None = None) -> None:
        self.name = "scripted"
        self.texts = list(texts)
        if family is not None:
            self.family = family
        self.calls: list[tuple[list[Request], SamplingParams]] = []

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[str]]:
        self.calls.append((list(requests), params))
        return [[self.texts[j % len(self.texts)] for j in range(params.n)] for _ in requests]


@pytest.mark.parametrize("presentation", ["frames", "video"])
def test_tiny_model_end_to_end(
    backend: HFBackend, small_video: Path, presentation: Presentation
) -> None:
    answer = ask(
        small_video, "What moves?", model=backend, presentation=presentation, max_new_tokens=16
    )
    assert answer.model == backend.name and answer.box_space == "frame_px"
    assert isinstance(answer.text, str) and answer.trace.problems  # nonsense, reported
    assert set(answer.timings) >= STAGES and all(v >= 0 for v in answer.timings.values())
    clip = answer.clip
    assert clip.source == str(small_video) and clip.source_wh == (64, 48)
    assert clip.num_frames == 4 and clip.frame_wh == (56, 56)
    # 2 fps over 2 s = 4 frames, at true times linspace(0, 1.9, 4) snapped to real frames
    assert clip.times_s == pytest.approx((0.0, 0.6, 1.3, 1.9))
    assert answer.samples == () and answer.votes == ()


def test_model_by_path_loads_it(tiny_dir: Path, small_video: Path) -> None:
    answer = ask(small_video, "What moves?", model=str(tiny_dir), max_new_tokens=4)
    assert answer.model == f"hf:{tiny_dir}" and "load" in answer.timings


def test_streaming_deltas_concatenate_to_the_text(backend: HFBackend, small_video: Path) -> None:
    deltas: list[str] = []
    streamed = ask(small_video, "What?", model=backend, max_new_tokens=16, on_text=deltas.append)
    assert len(deltas) >= 2 and "".join(deltas) == streamed.text
    plain = ask(small_video, "What?", model=backend, max_new_tokens=16)
    assert plain.text == streamed.text  # greedy either way


def test_two_samples_return_two_texts(backend: HFBackend, small_video: Path) -> None:
    deltas: list[str] = []
    answer = ask(
        small_video,
        "What?",
        model=backend,
        samples=2,
        seed=0,
        max_new_tokens=8,
        on_text=deltas.append,
    )
    assert len(answer.samples) == 2 and answer.text == answer.samples[0]
    assert deltas == []  # several samples are not streamed


def test_boxes_come_back_in_source_pixels(hd_video: Path) -> None:
    """Qwen2.5-VL sees 1280x720 as 420x224 frames: x × 1280/420, y × 720/224.

    [42, 56, 210, 112] → (42·1280/420, 56·720/224, 210·1280/420, 112·720/224)
                       = (128, 180, 640, 360).
    Frames: 4 of 10 (2 fps, at least 4) at linspace(0, 0.9, 4) = 0, 0.3, 0.6, 0.9 s; the
    claim at 0.4 s is nearest the frame at 0.3 s (index 1).
    """
    model = Scripted([TRACE])
    answer = ask(hd_video, "What does the dog do?", model=model)
    assert answer.clip.frame_wh == (420, 224) and answer.clip.source_wh == (1280, 720)
    assert answer.answer_text == "It runs." and answer.trace.problems == ()
    [ev] = answer.evidence
    assert ev.name == "dog" and ev.t_s == 0.4
    assert ev.boxes_model == ((42.0, 56.0, 210.0, 112.0),)
    assert ev.boxes_source == ((128.0, 180.0, 640.0, 360.0),)
    assert ev.frame_index == 1 and ev.frame_t_s == pytest.approx(0.3)
    [(requests, params)] = model.calls
    assert requests[0].clip is answer.clip and requests[0].id == str(hd_video)
    assert (params.n, params.temperature, params.max_new_tokens) == (1, 0.0, 768)


def test_qwen3_family_sizes_frames_and_reads_boxes_its_way(hd_video: Path) -> None:
    """Qwen3-VL: frames in multiples of 32 — 1280x720 over 100,352 pixels scales by
    sqrt(921,600 / 100,352) = 3.03 and floors to 416x224 — and boxes on a 0–1000 grid:
    [100, 250, 500, 500] → (128, 180, 640, 360) in 1280x720, whatever the frame size."""
    trace = (
        "<think><obj>dog</obj><box>[100,250,500,500]</box>at<t>0.4</t>s</think><answer>x</answer>"
    )
    answer = ask(hd_video, "Where?", model=Scripted([trace]), family="qwen3_vl")
    assert answer.clip.frame_wh == (416, 224) and answer.box_space == "rel1000"
    assert answer.evidence[0].boxes_source == ((128.0, 180.0, 640.0, 360.0),)
    own = Scripted([trace], family="qwen3_vl")  # the backend's own family wins
    assert ask(hd_video, "Where?", model=own, family="qwen2_5_vl").box_space == "rel1000"


def test_temperature_defaults_follow_the_sample_count(hd_video: Path) -> None:
    model = Scripted(["<answer>A</answer>"])
    ask(hd_video, "Q", model=model, samples=1)
    ask(hd_video, "Q", model=model, samples=3)
    ask(hd_video, "Q", model=model, samples=3, temperature=0.5, seed=4, max_new_tokens=9)
    got = [(p.n, p.temperature, p.seed, p.max_new_tokens) for _, p in model.calls]
    assert got == [(1, 0.0, None, 768), (3, 1.0, None, 768), (3, 0.5, 4, 9)]


def test_majority_vote_returns_the_winner_with_all_samples(hd_video: Path) -> None:
    pytest.importorskip("o3video.voting")
    texts = [f"<think>t{i}</think><answer>{x}</answer>" for i, x in enumerate("ABB")]
    answer = ask(hd_video, "Which? A. x B. y", model=Scripted(texts), task="mcq", samples=3,
                 vote="majority")  # fmt: skip
    assert answer.text == texts[1] and answer.answer_text == "B"
    assert answer.samples == tuple(texts) and len(answer.votes) == 3
    assert "vote" in answer.timings


def test_errors(backend: HFBackend, tmp_path: Path, small_video: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 20)
    with pytest.raises(VideoDecodeError, match=re.escape(str(corrupt))):
        ask(corrupt, "Q", model=backend)
    missing = tmp_path / "no-model"
    with pytest.raises(BackendError, match=re.escape(f"no model at {missing}")):
        ask(small_video, "Q", model=str(missing))
    with pytest.raises(ValueError, match="several samples"):
        ask(small_video, "Q", model=backend, vote="majority")
    with pytest.raises(BackendError, match="no completion"):
        ask(small_video, "Q", model=Empty())


class Empty:
    """A backend that returns no completion at all."""

    name = "empty"

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[str]]:
        return [[] for _ in requests]


def _user_text(request: Request) -> str:
    return "".join(
        "<image>" if c["type"] == "image" else c.get("text", "")
        for c in request.messages[-1]["content"]
    )


def test_reference_protocol_writes_the_rl_stage_prompt(small_video: Path) -> None:
    scripted = Scripted([TRACE])
    ask(small_video, "What moves?", model=scripted, protocol="reference")
    ref = _user_text(scripted.calls[-1][0][0])
    # 4 of 20 frames of a 10 fps video: sample_fps = 4 / 20 * 10 = 2, labels i / 2, and
    # int(4 / 2) = 2 seconds; the frames' true times are 0.0, 0.6, 1.3, 1.9.
    assert ref == (
        "Frame 1 at 0.0s: <image>\nFrame 2 at 0.5s: <image>\nFrame 3 at 1.0s: <image>\n"
        "Frame 4 at 1.5s: <image>\nThe video is in total 2 seconds.\nWhat moves?"
    )
    ask(small_video, "What moves?", model=scripted)  # a backend instance: o3video
    assert _user_text(scripted.calls[-1][0][0]) == (
        "Frame 1 at 0.0s: <image>\nFrame 2 at 0.6s: <image>\nFrame 3 at 1.3s: <image>\n"
        "Frame 4 at 1.9s: <image>\nThe video is in total 2.0 seconds.\nWhat moves?"
    )
    with pytest.raises(ValueError, match="shows frames as images"):
        ask(small_video, "Q", model=scripted, protocol="reference", presentation="video")

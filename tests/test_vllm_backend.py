"""VLLMBackend on a CPU: a fake ``vllm`` module records what the engine would receive.

The prompt is rendered by the tiny checkpoint's real processor (its chat template), so the
checks on labels and placeholders are the real ones; only ``vllm.LLM`` and
``vllm.SamplingParams`` are stand-ins.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from o3video.ask import ask
from o3video.models.base import BackendError, Request, SamplingParams
from o3video.models.load import load_backend
from o3video.models.vllm import VLLMBackend
from o3video.prompts import build_messages
from o3video.video import Clip

W, H = 84, 56
IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
VIDEO = "<|vision_start|><|video_pad|><|vision_end|>"


class FakeSamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.n = kwargs.get("n", 1)


class FakeLLM:
    """Records its options and every generate call; completions are labelled ``r{i}s{j}``
    and returned in reverse index order, to check that the backend sorts them."""

    last: FakeLLM | None = None

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.calls: list[tuple[list[dict[str, Any]], FakeSamplingParams, bool]] = []
        self.script: list[str] | None = None
        FakeLLM.last = self

    def generate(
        self, prompts: list[dict[str, Any]], sampling_params: FakeSamplingParams, use_tqdm: bool
    ) -> list[Any]:
        self.calls.append((prompts, sampling_params, use_tqdm))
        outs = []
        for i in range(len(prompts)):
            texts = self.script or [f"r{i}s{j}" for j in range(sampling_params.n)]
            completions = [types.SimpleNamespace(index=j, text=t) for j, t in enumerate(texts)]
            outs.append(types.SimpleNamespace(outputs=completions[::-1]))
        return outs


class FakeStructured:
    def __init__(self, json: dict[str, Any]) -> None:
        self.json = json


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM  # type: ignore[attr-defined]
    module.SamplingParams = FakeSamplingParams  # type: ignore[attr-defined]
    sampling = types.ModuleType("vllm.sampling_params")
    sampling.StructuredOutputsParams = FakeStructured  # type: ignore[attr-defined]
    module.sampling_params = sampling  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)
    return module


def make_clip(n: int = 4, step_s: float = 0.5) -> Clip:
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, size=(n, H, W, 3), dtype=np.uint8)
    times = tuple(0.2 + step_s * i for i in range(n))
    return Clip(frames, times, (2 * W, 2 * H), (W, H), 25.0, 3.0, None, "clip.mp4")


def test_frames_become_labelled_placeholders_and_images_in_order(
    fake_vllm: types.ModuleType, tiny_dir: Path
) -> None:
    backend = VLLMBackend(tiny_dir, presentation="frames", max_model_len=8192)
    engine = FakeLLM.last
    assert engine is not None
    assert engine.kwargs == {
        "model": str(tiny_dir),
        "tensor_parallel_size": 1,
        "gpu_memory_utilization": 0.9,
        "limit_mm_per_prompt": {"image": 64, "video": 0},
        "enable_prefix_caching": True,
        "seed": 0,
        "max_model_len": 8192,
    }
    clip = make_clip()
    request = Request(build_messages(clip, "What moves?"), clip=clip)
    assert backend.generate([request], SamplingParams()) == [["r0s0"]]
    [(prompts, _, use_tqdm)] = engine.calls
    assert use_tqdm is False
    [prompt] = prompts
    text = prompt["prompt"]
    for k, t in enumerate(clip.times_s, start=1):
        assert f"Frame {k} at {t:.1f}s: {IMAGE}\n" in text
    assert text.count("<|image_pad|>") == clip.num_frames  # one placeholder a frame: vLLM expands
    assert "The video is in total 3.0 seconds.\nWhat moves?<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    images = prompt["multi_modal_data"]["image"]
    assert [np.asarray(im).tolist() for im in images] == [f.tolist() for f in clip.frames]
    assert set(prompt) == {"prompt", "multi_modal_data"}


def test_sampling_params_mapping_and_request_order(
    fake_vllm: types.ModuleType, tiny_dir: Path
) -> None:
    backend = VLLMBackend(tiny_dir)
    clip = make_clip()
    requests = [Request(build_messages(clip, q), clip=clip) for q in ("One?", "Two?")]
    params = SamplingParams(
        n=3, temperature=0.7, top_p=0.9, max_new_tokens=100, seed=5, stop=("</answer>",)
    )
    out = backend.generate(requests, params)
    assert out == [["r0s0", "r0s1", "r0s2"], ["r1s0", "r1s1", "r1s2"]]
    engine = FakeLLM.last
    assert engine is not None
    [(prompts, sampling, _)] = engine.calls  # one engine call: n samples share the prefill
    assert [p["prompt"].rsplit("\n", 3)[-3] for p in prompts] == [
        "One?<|im_end|>",
        "Two?<|im_end|>",
    ]
    assert sampling.kwargs == {
        "n": 3,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 100,
        "seed": 5,
        "stop": ["</answer>"],
    }
    greedy = backend.sampling_params(SamplingParams(json_schema={"type": "object"}))
    assert greedy.kwargs["temperature"] == 0.0 and "stop" not in greedy.kwargs
    assert greedy.kwargs["structured_outputs"].json == {"type": "object"}
    assert "repetition_penalty" not in greedy.kwargs
    reference = backend.sampling_params(SamplingParams(repetition_penalty=1.05))
    assert reference.kwargs["repetition_penalty"] == 1.05


def test_native_video_goes_with_its_true_timing(
    fake_vllm: types.ModuleType, tiny_dir: Path
) -> None:
    backend = VLLMBackend(tiny_dir, presentation="video")
    assert backend.limits == {"image": 1, "video": 1}
    clip = make_clip(n=4, step_s=0.5)
    request = Request(build_messages(clip, "When?", "temporal", "video"), clip=clip)
    backend.generate([request], SamplingParams())
    engine = FakeLLM.last
    assert engine is not None
    [prompt] = engine.calls[0][0]
    assert prompt["prompt"].count(VIDEO) == 1 and "<|image_pad|>" not in prompt["prompt"]
    [(frames, meta)] = prompt["multi_modal_data"]["video"]
    assert np.array_equal(frames, clip.frames)
    # Qwen2.5-VL: the frames as a video of their own, 1 / 0.5 s = 2 fps, no resampling
    assert meta["fps"] == pytest.approx(2.0)
    assert meta["frames_indices"] == [0, 1, 2, 3] and meta["total_num_frames"] == 4
    assert meta["do_sample_frames"] is False
    assert prompt["mm_processor_kwargs"] == {"do_sample_frames": False, "fps": pytest.approx(2.0)}


def test_refusals_before_the_engine_sees_them(fake_vllm: types.ModuleType, tiny_dir: Path) -> None:
    frames_engine = VLLMBackend(tiny_dir, presentation="frames")
    clip = make_clip(n=4)
    video = Request(build_messages(clip, "q", presentation="video"), clip=clip)
    with pytest.raises(BackendError, match=r"1 video item.*allows 0"):
        frames_engine.generate([video], SamplingParams())
    video_engine = VLLMBackend(tiny_dir, presentation="video")
    with pytest.raises(BackendError, match=r"4 image item.*allows 1"):
        video_engine.generate([Request(build_messages(clip, "q"), clip=clip)], SamplingParams())
    odd = make_clip(n=3)
    with pytest.raises(BackendError, match="divisible by the temporal patch"):
        video_engine.generate(
            [Request(build_messages(odd, "q", presentation="video"), clip=odd)], SamplingParams()
        )
    with pytest.raises(BackendError, match=r"needs Request.clip"):
        video_engine.generate([Request(video.messages)], SamplingParams())


def test_ask_through_vllm_maps_boxes(fake_vllm: types.ModuleType, tiny_dir: Path) -> None:
    backend = load_backend(tiny_dir, "vllm", presentation="frames")
    engine = FakeLLM.last
    assert engine is not None
    engine.script = [
        "<think><obj>cat</obj><box>[0,0,42,28]</box>at<t>0.7</t>s</think><answer>A cat.</answer>"
    ]
    answer = ask(make_clip(), "What is it?", model=backend)
    assert answer.model == f"vllm:{tiny_dir}" and answer.answer_text == "A cat."
    [ev] = answer.evidence
    assert ev.boxes_source == ((0.0, 0.0, 84.0, 56.0),) and ev.frame_t_s == pytest.approx(0.7)


def test_missing_vllm_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tiny_dir: Path) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    import o3video.models  # the package itself never needs vllm

    assert o3video.models.VLLMBackend is VLLMBackend
    with pytest.raises(BackendError, match=r"vLLM is not installed.*o3video\[vllm\]"):
        VLLMBackend(tiny_dir)
    with pytest.raises(BackendError, match="not installed"):
        load_backend(tiny_dir, "vllm")

"""HFBackend: the tiny random Qwen2.5-VL through ``transformers``, batched, sampled, streamed.

The model's text is nonsense; what is checked is the machinery: batches of requests with
different media collate correctly (a batch gives what each request gives alone), greedy is
deterministic, seeded sampling repeats, stop strings cut like vLLM, streamed deltas add up
to the completion, and a wrong model name or path fails at once, naming it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from o3video.models.base import BackendError, Request, SamplingParams, StreamingBackend
from o3video.models.hf import (
    SMALL_MODEL_PARAMS,
    HFBackend,
    StopFilter,
    choose_threads,
    truncate_at_stop,
)
from o3video.prompts import build_messages
from o3video.video import Clip

W, H = 84, 56  # multiples of 28


@pytest.fixture(scope="module")
def backend(tiny_dir: Path) -> HFBackend:
    return HFBackend(tiny_dir, max_batch=4)


def make_clip(n: int = 4, step_s: float = 0.5, seed: int = 1) -> Clip:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(n, H, W, 3), dtype=np.uint8)
    times = tuple(step_s * i for i in range(n))
    return Clip(frames, times, (2 * W, 2 * H), (W, H), 30.0, step_s * n, None)


def frames_request(n: int = 4, question: str = "What moves?") -> Request:
    clip = make_clip(n)
    return Request(build_messages(clip, question), id="frames", clip=clip)


def video_request(n: int = 2, question: str = "When?") -> Request:
    clip = make_clip(n, seed=2)
    messages = build_messages(clip, question, "temporal", presentation="video")
    return Request(messages, id="video", clip=clip)


GREEDY = SamplingParams(max_new_tokens=12)


def test_loads_a_local_checkpoint_on_cpu(backend: HFBackend, tiny_dir: Path) -> None:
    assert backend.name == f"hf:{tiny_dir}"
    assert backend.family.name == "qwen2_5_vl"
    assert backend.device.type == "cpu" and backend.dtype == torch.float32
    assert isinstance(backend, StreamingBackend)


def test_batch_of_two_n2_greedy_is_deterministic_and_equals_one_by_one(
    backend: HFBackend,
) -> None:
    requests = [frames_request(), video_request()]  # images in one, a native video in the other
    params = SamplingParams(n=2, max_new_tokens=10)
    first = backend.generate(requests, params)
    assert first == backend.generate(requests, params)
    assert [len(texts) for texts in first] == [2, 2]
    assert all(texts[0] == texts[1] for texts in first)  # greedy: n copies of one completion
    alone = [backend.generate([r], params)[0] for r in requests]
    assert first == alone  # left padding and media order are right
    assert first[0] != first[1]


def test_max_batch_splits_but_keeps_request_order(tiny_dir: Path, backend: HFBackend) -> None:
    requests = [frames_request(question=q) for q in ("One?", "Two, longer?", "Three")]
    small = HFBackend(tiny_dir, max_batch=2)
    assert small.generate(requests, GREEDY) == backend.generate(requests, GREEDY)


def test_prompts_of_different_lengths_batch_longest_first_with_greedy_text_unchanged(
    backend: HFBackend,
) -> None:
    # Different frame counts and questions: prompts of four lengths, in no length order.
    requests = [
        frames_request(2, "Short?"),
        frames_request(6, "A much longer question about what moves and where it goes?"),
        video_request(2, "When?"),
        frames_request(4, "Which shape is first?"),
    ]
    lengths = [int(f["input_ids"].shape[1]) for f in backend._features(requests)]
    assert len(set(lengths)) == 4
    calls: list[list[int]] = []
    generate = backend.model.generate

    def spy(**kwargs: object) -> object:
        ids = kwargs["input_ids"]
        mask = kwargs["attention_mask"]
        assert isinstance(ids, torch.Tensor) and isinstance(mask, torch.Tensor)
        calls.append([int(m.sum()) for m in mask])  # each row's true prompt length
        return generate(**kwargs)

    backend.model.generate = spy
    try:
        batched = backend.generate(requests, GREEDY)
    finally:
        del backend.model.generate
    assert calls == [sorted(lengths, reverse=True)]  # one call, longest prompt first
    alone = [backend.generate([r], GREEDY)[0] for r in requests]
    assert batched == alone  # results in request order, text identical to one at a time
    assert len({t[0] for t in batched}) > 1


def test_max_batch_is_requests_per_generate_call(tiny_dir: Path, backend: HFBackend) -> None:
    requests = [frames_request(n, q) for n, q in ((2, "a?"), (4, "bb?"), (2, "ccc?"))]
    small = HFBackend(tiny_dir, max_batch=2)
    calls: list[int] = []
    generate = small.model.generate

    def spy(**kwargs: object) -> object:
        ids = kwargs["input_ids"]
        assert isinstance(ids, torch.Tensor)
        calls.append(int(ids.shape[0]))
        return generate(**kwargs)

    small.model.generate = spy
    assert small.generate(requests, GREEDY) == backend.generate(requests, GREEDY)
    assert calls == [2, 1]


def test_threads_explicit_sets_torch_threads_and_small_models_default_to_one(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = torch.get_num_threads()
    try:
        assert HFBackend(tiny_dir, threads=2).threads == 2 == torch.get_num_threads()
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        torch.set_num_threads(2)
        assert HFBackend(tiny_dir).threads == 1 == torch.get_num_threads()  # 2.6 M parameters
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # read by torch at start-up: left alone
        torch.set_num_threads(2)
        assert HFBackend(tiny_dir).threads == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("n_params", "requested", "env", "expected"),
    [
        (2_600_000, None, {}, 1),
        (2_600_000, 3, {"OMP_NUM_THREADS": "1"}, 3),
        (2_600_000, None, {"OMP_NUM_THREADS": "4"}, None),
        (SMALL_MODEL_PARAMS, None, {}, None),
        (8_000_000_000, 2, {}, 2),
    ],
)
def test_choose_threads(
    n_params: int, requested: int | None, env: dict[str, str], expected: int | None
) -> None:
    assert choose_threads(n_params, requested, env)[0] == expected


def test_choose_threads_refuses_zero() -> None:
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        choose_threads(1, 0, {})


def test_seeded_sampling_repeats_and_leaves_the_global_rng_alone(backend: HFBackend) -> None:
    request = frames_request()
    params = SamplingParams(n=3, temperature=1.0, top_p=0.95, max_new_tokens=8, seed=7)
    state = torch.random.get_rng_state()
    a = backend.generate([request], params)
    assert torch.equal(state, torch.random.get_rng_state())
    assert a == backend.generate([request], params)
    assert len(a[0]) == 3 and len(set(a[0])) > 1  # real samples, not copies
    other = backend.generate(
        [request], SamplingParams(n=3, temperature=1.0, max_new_tokens=8, seed=8)
    )
    assert other != a


def test_sampling_is_exactly_the_params_not_the_checkpoint_defaults(backend: HFBackend) -> None:
    # Qwen2.5-VL-7B ships top_k=1 and repetition_penalty=1.05: "sampling" would be greedy.
    saved = backend.model.generation_config
    backend.model.generation_config = type(saved)(**{**saved.to_dict(), "top_k": 1})
    try:
        config = backend.generation_config(SamplingParams(n=4, temperature=0.7, top_p=0.9))
        assert (config.do_sample, config.temperature, config.top_p) == (True, 0.7, 0.9)
        assert (config.top_k, config.repetition_penalty, config.num_return_sequences) == (0, 1.0, 4)
        greedy = backend.generation_config(SamplingParams(n=4))
        assert (greedy.do_sample, greedy.num_return_sequences) == (False, 1)
        reference = backend.generation_config(SamplingParams(repetition_penalty=1.05))
        assert reference.repetition_penalty == 1.05  # the reference evaluation's setting
        params = SamplingParams(n=4, temperature=1.0, max_new_tokens=6, seed=1)
        assert len(set(backend.generate([frames_request()], params)[0])) > 1
    finally:
        backend.model.generation_config = saved


def _ascii_window(text: str) -> str:
    for k in range(2, len(text) - 1):
        window = text[k : k + 2]
        if window.isascii() and window.isalpha():
            return window
    pytest.skip(f"no ascii pair in {text!r}")


def test_stop_strings_cut_the_text_like_vllm(backend: HFBackend) -> None:
    request = frames_request()
    full = backend.generate([request], SamplingParams(max_new_tokens=16))[0][0]
    stop = _ascii_window(full)
    expected = full[: full.find(stop)]
    params = SamplingParams(max_new_tokens=16, stop=(stop, "never-written"))
    assert backend.generate([request], params) == [[expected]]
    assert "".join(backend.stream(request, params)) == expected


def test_stream_deltas_add_up_to_the_completion(backend: HFBackend) -> None:
    request = video_request()
    deltas = list(backend.stream(request, GREEDY))
    assert len(deltas) >= 1 and all(deltas)
    assert "".join(deltas) == backend.generate([request], GREEDY)[0][0]
    with pytest.raises(ValueError, match="n=2"):
        next(backend.stream(request, SamplingParams(n=2)))


def test_abandoned_stream_stops_generating(backend: HFBackend) -> None:
    stream = backend.stream(frames_request(), SamplingParams(max_new_tokens=2000))
    next(stream)
    t0 = time.perf_counter()
    stream.close()  # sets the cancel event and joins the generation thread
    assert time.perf_counter() - t0 < 5.0


def test_request_without_clip_lets_the_processor_resize(backend: HFBackend) -> None:
    crop = Image.fromarray(np.full((40, 61, 3), 200, np.uint8))  # not multiples of 28
    out = backend.generate([Request.user(crop, "Is this a dog? Answer yes or no.")], GREEDY)
    assert len(out) == 1 and isinstance(out[0][0], str)
    video = video_request()
    bare = Request(video.messages, id="no clip")
    with pytest.raises(BackendError, match=r"request 0: .*needs Request.clip"):
        backend.generate([bare], GREEDY)


def test_missing_local_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "model"
    with pytest.raises(BackendError, match=re.escape(f"no model at {missing}")):
        HFBackend(missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match=r"has no config.json"):
        HFBackend(tmp_path / "empty")


def test_unknown_hub_name_fails_fast_offline() -> None:
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match=r"nobody-o3video/no-such-model.*HF_HUB_OFFLINE=1"):
        HFBackend("nobody-o3video/no-such-model")
    assert time.perf_counter() - t0 < 10.0


@pytest.mark.parametrize(
    ("text", "stop", "expected"),
    [
        ("abc</t>def", ["</t>"], "abc"),
        ("abc", ["x"], "abc"),
        ("a.b.c", [".", "b"], "a"),
        ("abc", None, "abc"),
        ("abc", [""], "abc"),
    ],
)
def test_truncate_at_stop(text: str, stop: list[str] | None, expected: str) -> None:
    assert truncate_at_stop(text, stop) == expected


@given(
    pieces=st.lists(st.text(alphabet="ab</t>", max_size=4), max_size=8),
    stop=st.lists(st.text(alphabet="ab</t>", min_size=1, max_size=3), max_size=2),
)
@example(pieces=["b", ">", "b"], stop=[">", "b>b"])  # a longer stop begun earlier cuts earlier
@example(pieces=["b", ">"], stop=[">", "b>b"])  # ... unless it never completes
def test_stop_filter_streams_what_truncation_keeps(pieces: list[str], stop: list[str]) -> None:
    f = StopFilter(stop)
    out = "".join(f.feed(p) for p in pieces) + f.flush()
    assert out == truncate_at_stop("".join(pieces), stop)

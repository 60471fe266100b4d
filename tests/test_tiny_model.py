"""The tiny random Qwen2.5-VL: build, save, load offline, tokenise, and generate end to end.

Both presentations go through the real ``Qwen2_5_VLProcessor`` and ``model.generate`` on CPU.
For native video, ``second_per_grid_ts`` must be ``temporal_patch_size × true interval``
(frames 0.5 s apart → 1.0), not what transformers 5.x assumes without metadata (2 / 24).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from o3video.models.tiny import QWEN_SPECIAL_TOKENS, build_tiny_model, build_tiny_tokenizer
from o3video.prompts import build_messages, prepare_inputs, processor_inputs
from o3video.video import Clip

transformers = pytest.importorskip("transformers")

# 84x56 frames (multiples of 28): a 6x4 patch grid, 6 merged tokens a frame.
W, H = 84, 56


@pytest.fixture(scope="module")
def processor(tiny_dir: Path) -> Any:
    return transformers.AutoProcessor.from_pretrained(tiny_dir)


@pytest.fixture(scope="module")
def model(tiny_dir: Path) -> Any:
    return transformers.AutoModelForImageTextToText.from_pretrained(tiny_dir).eval()


def make_clip(n: int = 4, step_s: float = 0.5, wh: tuple[int, int] = (W, H)) -> Clip:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(n, wh[1], wh[0], 3), dtype=np.uint8)
    times = tuple(step_s * i for i in range(n))
    return Clip(
        frames,
        times,
        source_wh=(2 * wh[0], 2 * wh[1]),
        frame_wh=wh,
        fps=30.0,
        duration_s=step_s * n,
        frame_indices=tuple(round(t * 30) for t in times),
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_writes_a_small_complete_checkpoint(tiny_dir: Path) -> None:
    names = {p.name for p in tiny_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    assert {"processor_config.json", "generation_config.json"} <= names
    assert sum(p.stat().st_size for p in tiny_dir.iterdir()) < 5_000_000


def test_build_is_deterministic(tiny_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "same", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert _digest(again / name) == _digest(tiny_dir / name), name
    assert _digest(other / "model.safetensors") != _digest(tiny_dir / "model.safetensors")


def test_loads_with_auto_classes_offline(processor: Any, model: Any) -> None:
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    tok, cfg = processor.tokenizer, model.config
    assert cfg.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert cfg.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert cfg.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert cfg.vision_end_token_id == tok.convert_tokens_to_ids("<|vision_end|>")
    assert (
        cfg.text_config.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    )
    assert (
        cfg.text_config.pad_token_id
        == tok.pad_token_id
        == tok.convert_tokens_to_ids("<|endoftext|>")
    )
    assert cfg.text_config.vocab_size == len(tok)
    rope = cfg.text_config.rope_parameters
    assert (
        sum(rope["mrope_section"])
        == cfg.text_config.hidden_size // cfg.text_config.num_attention_heads // 2
    )


def test_tokenizer_digits_and_special_tokens(processor: Any) -> None:
    tok = processor.tokenizer
    assert 500 <= len(tok) <= 4096
    pieces = tok.convert_ids_to_tokens(tok("<box>[374,67,420,224]</box>at<t>9.2</t>s").input_ids)
    digits = [p for p in pieces if any(ch.isdigit() for ch in p)]
    assert digits == [*"37467420224", "9", "2"]
    for special in QWEN_SPECIAL_TOKENS:
        assert tok(special).input_ids == [tok.convert_tokens_to_ids(special)]
    text = "<think>The <obj>woman</obj> at <t>9.2</t>s</think>\n<answer>yes</answer>"
    assert tok.decode(tok(text).input_ids) == text


def test_tokenizer_builds_identically() -> None:
    a, b = build_tiny_tokenizer(), build_tiny_tokenizer()
    assert a.get_vocab() == b.get_vocab()


def test_chat_template_renders_qwen_format(processor: Any) -> None:
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "S"}]},
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": "Q"}, {"type": "video"}],
        },
    ]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>Q<|vision_start|><|video_pad|><|vision_end|>"
        "<|im_end|>\n<|im_start|>assistant\n"
    )
    no_system = processor.apply_chat_template([messages[1]], tokenize=False)
    assert no_system.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")


def test_frames_as_images_generate_end_to_end(processor: Any, model: Any) -> None:
    clip = make_clip()
    inputs = prepare_inputs(processor, clip, "What moves?", presentation="frames")
    # each frame is one image at our size: grid (1, H/14, W/14), never resized by the processor
    assert inputs["image_grid_thw"].tolist() == [[1, H // 14, W // 14]] * clip.num_frames
    n_pad = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_pad == clip.num_frames * (H // 28) * (W // 28)
    text = processor.tokenizer.decode(inputs["input_ids"][0])
    assert "Frame 2 at 0.5s: <|vision_start|><|image_pad|>" in text
    assert "<|vision_end|>\nThe video is in total 2.0 seconds.\nWhat moves?<|im_end|>" in text
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    new_tokens = out[0, inputs["input_ids"].shape[1] :]
    assert 1 <= len(new_tokens) <= 4
    assert isinstance(processor.decode(new_tokens), str)


def test_native_video_generate_end_to_end(processor: Any, model: Any) -> None:
    clip = make_clip(n=4, step_s=0.5)
    inputs = prepare_inputs(processor, clip, "When?", "temporal", presentation="video")
    # temporal_patch_size (2) × true interval (0.5 s) = 1.0 s per temporal grid step
    assert inputs["second_per_grid_ts"].tolist() == pytest.approx([1.0])
    assert inputs["video_grid_thw"].tolist() == [[2, H // 14, W // 14]]
    n_pad = int((inputs["input_ids"] == model.config.video_token_id).sum())
    assert n_pad == 2 * (H // 28) * (W // 28)
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


@pytest.mark.parametrize(("step_s", "expected"), [(0.5, 1.0), (0.25, 0.5), (2.0, 4.0)])
def test_second_per_grid_ts_follows_true_interval(
    processor: Any, step_s: float, expected: float
) -> None:
    inputs = prepare_inputs(processor, make_clip(n=6, step_s=step_s), "q", presentation="video")
    assert inputs["second_per_grid_ts"].tolist() == pytest.approx([expected])


def test_without_our_metadata_the_processor_assumes_24_fps(processor: Any) -> None:
    """The pitfall this module exists for: pre-sampled frames and no metadata → 2/24 s."""
    clip = make_clip(n=4, step_s=0.5)
    text = processor.apply_chat_template(
        build_messages(clip, "q", presentation="video"), tokenize=False
    )
    plain = processor(
        text=[text],
        videos=[clip.frames],
        do_sample_frames=False,
        do_resize=False,
        cap_pixels_per_frame=False,
        return_tensors="pt",
    )
    assert plain["second_per_grid_ts"].tolist() == pytest.approx([2 / 24])
    with_fps = processor(
        text=[text],
        videos=[clip.frames],
        fps=2.0,
        do_sample_frames=False,
        do_resize=False,
        cap_pixels_per_frame=False,
        return_tensors="pt",
    )
    assert with_fps["second_per_grid_ts"].tolist() == pytest.approx([2 / 24])  # fps= is ignored


def test_model_time_axis_uses_the_true_interval(processor: Any, model: Any) -> None:
    """mRoPE temporal ids advance by tokens_per_second × second_per_grid_ts per grid step."""
    inputs = prepare_inputs(processor, make_clip(n=4, step_s=0.5), "q", presentation="video")
    position_ids, _ = model.model.get_rope_index(
        inputs["input_ids"],
        inputs["mm_token_type_ids"],
        video_grid_thw=inputs["video_grid_thw"],
        second_per_grid_ts=inputs["second_per_grid_ts"],
    )
    video = inputs["input_ids"][0] == model.config.video_token_id
    t_ids = position_ids[0, 0, video]
    per_frame = (H // 28) * (W // 28)
    step = int(t_ids[per_frame] - t_ids[0])
    assert step == model.config.vision_config.tokens_per_second * 1  # 2 × 1.0 s


def test_spatial_image_and_size_checks(processor: Any) -> None:
    one = make_clip(n=1)
    inputs = prepare_inputs(processor, one, "Where is it?", "spatial_image")
    assert inputs["image_grid_thw"].tolist() == [[1, H // 14, W // 14]]
    odd = make_clip(wh=(90, 56))
    with pytest.raises(ValueError, match="multiples of qwen2_5_vl's factor 28"):
        processor_inputs(processor, build_messages(odd, "q"), odd)


def test_qwen3_processor_writes_true_timestamps(processor: Any) -> None:
    """Qwen3-VL tells time as text; with our metadata the timestamps are the frames' own."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    qwen3 = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=16),
        tokenizer=processor.tokenizer,
        video_processor=Qwen3VLVideoProcessor(),
        chat_template=processor.chat_template,
    )
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(4, 64, 96, 3), dtype=np.uint8)
    clip = Clip(frames, (1.0, 1.5, 2.0, 2.5), (192, 128), (96, 64), 30.0, 3.0, (30, 45, 60, 75))
    inputs = prepare_inputs(qwen3, clip, "q", presentation="video")
    text = qwen3.tokenizer.decode(inputs["input_ids"][0])
    # each temporal patch is stamped with the mean time of its two frames: 1.25, 2.25
    assert "<1.2 seconds>" in text and "<2.2 seconds>" in text
    assert "second_per_grid_ts" not in inputs
    assert torch.equal(inputs["video_grid_thw"], torch.tensor([[2, 4, 6]]))


def test_size_is_configurable(tmp_path: Path) -> None:
    out = build_tiny_model(
        tmp_path / "bigger", seed=0, hidden_size=96, num_layers=3, vision_hidden_size=64,
        vision_depth=3, vision_num_heads=4,
    )  # fmt: skip
    config = transformers.AutoConfig.from_pretrained(out)
    assert (config.text_config.hidden_size, config.text_config.num_hidden_layers) == (96, 3)
    vision = config.vision_config
    assert (vision.hidden_size, vision.depth, vision.num_heads) == (64, 3, 4)
    assert vision.fullatt_block_indexes == [2] and vision.out_hidden_size == 96
    with pytest.raises(ValueError, match="vision_hidden_size"):
        build_tiny_model(tmp_path / "bad", vision_hidden_size=40, vision_num_heads=2)

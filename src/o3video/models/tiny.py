"""A tiny random Qwen2.5-VL, built locally in seconds: the model every offline test runs.

Nothing is downloaded (DESIGN principle 3). The model has the real architecture
(``Qwen2_5_VLForConditionalGeneration``) at toy width, random weights, and the real
``Qwen2_5_VLProcessor`` (image processor, video processor, tokenizer, chat template), so
every code path that loads a checkpoint by name — ``AutoProcessor`` and
``AutoModelForImageTextToText`` — works on it unchanged.

The tokenizer is a byte-level BPE trained here with the ``tokenizers`` library on a small
built-in corpus (the system prompts, the trace tags, frame labels, some English). It is
saved as a ``Qwen2Tokenizer``, so it uses Qwen's own pre-tokenizer: byte level, with every
digit a token of its own (``\\p{N}`` in Qwen's split pattern), exactly like the real
checkpoint. All of Qwen2.5-VL's special tokens are single ids, and the model config's
token ids (image, video, vision start/end, eos, pad, bos) are read back from the tokenizer.

>>> from o3video.models.tiny import build_tiny_model   # doctest: +SKIP
>>> path = build_tiny_model("/tmp/tiny-qwen25vl")      # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from o3video import prompts

logger = logging.getLogger(__name__)

# Every special token Qwen2.5-VL's tokenizer, chat template and processor reference, in the
# checkpoint's order (ids 151643... there; 0... here).
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# The chat template of Qwen/Qwen2.5-VL-7B-Instruct, verbatim: a default system turn when the
# conversation has none, images as <|vision_start|><|image_pad|><|vision_end|>, videos with
# <|video_pad|>, and ``add_generation_prompt`` opening the assistant turn.
QWEN25_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2's split pattern (transformers.models.qwen2.tokenization_qwen2): ``\p{N}`` alone puts
# each digit in its own piece, so "12.5" is "1", "2", ".", "5" — numbers in boxes and times
# tokenise digit by digit, as in the real checkpoint.
QWEN_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_ENGLISH = (
    "The woman in the red coat walks to the door and opens it.",
    "A man is holding a cup of coffee while he reads the newspaper.",
    "Which object appears first in the video? A. a dog B. a cat C. a car D. a ball",
    "What is the person doing after the ball falls on the ground?",
    "When does the blue square move to the left side of the frame?",
    "Where is the green circle at the end of the video?",
    "The answer is B. The dog runs across the street from left to right.",
    "First the person picks up the phone, then puts it on the table.",
    "There is a small yellow triangle near the top right corner.",
    "Correct Option: A",
)
_TRACES = (
    "<think>The <obj>woman</obj><box>[374,67,420,224]</box>at<t>9.2</t>s opens the door."
    "</think>\n<answer>She opens the door.</answer>",
    "<think>The event starts at <t>3.5</t>s and ends at <t>7.0</t>s.</think>\n"
    "<answer>From <t>3.5</t>s to <t>7.0</t>s</answer>",
    "<think>The <obj>cup</obj><box>[12,40,96,128]</box><box>[20,44,100,130]</box>at<t>1.0</t>s"
    " is on the table.</think>\n<answer>B</answer>",
    "<answer><obj>dog</obj><box>[0,0,210,112]</box></answer>",
)


def tiny_corpus() -> list[str]:
    """The text the tiny tokenizer is trained on: prompts, tags, labels, numbers, English."""
    lines: list[str] = list(prompts.SYSTEM_PROMPTS.values())
    lines += [" ".join(prompts.TRACE_TAGS), *_ENGLISH, *_TRACES]
    lines += [prompts.frame_label(k + 1, 0.5 * k) for k in range(16)]
    lines += [prompts.duration_line(d) for d in (4.0, 8.0, 10.5, 30.0)]
    lines.append(" ".join(str(n) for n in range(0, 1001, 7)))
    return lines


def build_tiny_tokenizer(vocab_size: int = 1024) -> Any:
    """Train a byte-level BPE on :func:`tiny_corpus` and wrap it as a ``Qwen2Tokenizer``.

    The special tokens take ids ``0..13`` (order of :data:`QWEN_SPECIAL_TOKENS`). As in the
    real checkpoint, ``eos`` is ``<|im_end|>``, ``pad`` is ``<|endoftext|>``, there is no
    ``bos``, and the trace tags (``<think>``, ``<box>`` ...) are ordinary BPE text.
    Training is deterministic: the BPE trainer breaks count ties by pair order.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers import trainers as tk_trainers
    from transformers import Qwen2Tokenizer

    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = tk_trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(tiny_corpus(), trainer)
    model_json = json.loads(backend.to_str())["model"]
    merges = [
        tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model_json["merges"]
    ]
    # As in Qwen/Qwen2.5-VL-7B-Instruct's tokenizer_config: no unk, no bos, eos <|im_end|>.
    # (A dict because transformers annotates ``merges`` as strings, while BPE needs pairs.)
    kwargs: dict[str, Any] = {
        "vocab": model_json["vocab"],
        "merges": merges,
        "unk_token": None,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "extra_special_tokens": [t for t in QWEN_SPECIAL_TOKENS if t != "<|endoftext|>"],
        "model_max_length": 32768,
    }
    tokenizer = Qwen2Tokenizer(**kwargs)
    tokenizer.chat_template = QWEN25_VL_CHAT_TEMPLATE
    return tokenizer


def build_tiny_processor(tokenizer: Any) -> Any:
    """The real ``Qwen2_5_VLProcessor`` around ``tokenizer``, with Qwen2.5-VL's defaults.

    Patch 14, merge 2, temporal patch 2; image pixels in [56·56, 28·28·1280] and video
    pixels in [128·28·28, 768·28·28] as in the published preprocessor config.
    """
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    image_processor = Qwen2VLImageProcessor(patch_size=14, merge_size=2, temporal_patch_size=2)
    video_processor = Qwen2VLVideoProcessor(patch_size=14, merge_size=2, temporal_patch_size=2)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN25_VL_CHAT_TEMPLATE,
    )


def tiny_config(
    tokenizer: Any,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    vision_hidden_size: int = 32,
    vision_depth: int = 2,
    vision_num_heads: int = 2,
) -> Any:
    """A ``Qwen2_5_VLConfig`` at toy width whose token ids match ``tokenizer``.

    Text: ``head_dim = hidden_size / num_heads``; mRoPE sections (t, h, w) split
    ``head_dim / 2`` in Qwen's 2:3:3 proportion (16/24/24 of 64 in the 7B model) and must
    sum to it. Vision: patch 14, merge 2, temporal patch 2, the last block full attention
    (Qwen's window/full alternation), ``out_hidden_size = hidden_size``, and Qwen2.5-VL's
    ``tokens_per_second = 2`` so that absolute-time mRoPE behaves as in the 7B checkpoint.
    """
    from transformers import Qwen2_5_VLConfig

    head_dim = hidden_size // num_heads
    if head_dim * num_heads != hidden_size or head_dim % 8:
        raise ValueError(
            f"hidden_size {hidden_size} / num_heads {num_heads} must be a multiple of 8"
        )
    vision_head_dim = vision_hidden_size // vision_num_heads
    if vision_head_dim * vision_num_heads != vision_hidden_size or vision_head_dim % 8:
        raise ValueError(
            f"vision_hidden_size {vision_hidden_size} / vision_num_heads {vision_num_heads}"
            " must be a multiple of 8"
        )
    half = head_dim // 2
    mrope_section = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in QWEN_SPECIAL_TOKENS}
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "max_position_embeddings": 4096,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": mrope_section,
        },
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    vision_config = {
        "depth": vision_depth,
        "hidden_size": vision_hidden_size,
        "intermediate_size": 2 * vision_hidden_size,
        "num_heads": vision_num_heads,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [vision_depth - 1],
        "out_hidden_size": hidden_size,
        "tokens_per_second": 2,
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def build_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    vocab_size: int = 1024,
    **size: int,
) -> Path:
    """Build a tiny random Qwen2.5-VL with its processor and save both to ``out_dir``.

    Deterministic given ``seed`` (weights drawn under a forked torch RNG, so the caller's
    random state is untouched). The result loads offline with ``AutoProcessor`` and
    ``AutoModelForImageTextToText.from_pretrained(out_dir)``; at the default size it is about
    1 MB in float32 (``size``: the keyword arguments of :func:`tiny_config`). Returns ``out_dir``
    as a ``Path``.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    out = Path(out_dir)
    tokenizer = build_tiny_tokenizer(vocab_size)
    processor = build_tiny_processor(tokenizer)
    config = tiny_config(tokenizer, **size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config).eval()
    eos = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    model.generation_config = GenerationConfig(
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=config.text_config.bos_token_id,
        do_sample=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info(
        "tiny Qwen2.5-VL (%d parameters, vocab %d) saved to %s", n_params, len(tokenizer), out
    )
    return out

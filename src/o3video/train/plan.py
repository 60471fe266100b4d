"""Sizes of a run known before any weight is loaded: sequence lengths and peak memory.

A prompt holds, per frame (``max_frames`` and the record's key frames), its time label, the
vision markers and the frame's merged vision tokens (``max_pixels / factor²``, ``factor`` =
patch × merge of the family: 28 for Qwen2.5-VL), then the system prompt and the question
(:data:`TEXT_TOKENS`). :func:`estimate` adds up the peak memory of a training process from
these and the model's ``config.json`` (:class:`ModelShape`); ``o3video train plan`` prints it.

>>> from o3video.train.config import load_config
>>> cfg = load_config(None, ["data.max_frames=16", "data.max_pixels=100352",
...                          "rl.max_completion_length=768"])
>>> frame_tokens(cfg.data), prompt_tokens(cfg.data), context_tokens(cfg)
(142, 3352, 4352)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from o3video.train.config import LORA_TARGETS as LORA_TARGETS_DEFAULT

TEXT_TOKENS = 512
"""System prompt, question, options, frame labels and chat template: at most 360 tokens
(Qwen2.5's tokenizer) on the synthetic corpus; the rest is margin."""

KEY_FRAMES = 4
"""Frames a record adds to the ``max_frames`` sampled ones: its key frames, shown at their
own times (:func:`o3video.data.examples.merge_key_frames`)."""

FRAME_TEXT_TOKENS = 14
"""Per frame: ``Frame 12 at 10.5s: `` (about 11 tokens), ``<|vision_start|>``,
``<|vision_end|>`` and the newline."""


def frame_tokens(data: Any) -> int:
    """Tokens one frame takes in the prompt at the recipe's ``data.max_pixels``."""
    from o3video.families import get_family

    factor = get_family(data.family).factor
    return data.max_pixels // (factor * factor) + FRAME_TEXT_TOKENS


def prompt_tokens(data: Any) -> int:
    """The longest prompt of the recipe's frame budget: ``max_frames`` frames, the key
    frames and the text."""
    return (data.max_frames + KEY_FRAMES) * frame_tokens(data) + TEXT_TOKENS


def context_tokens(config: Any) -> int:
    """Prompt and completion, rounded up to 256: the default ``rl.vllm_max_model_length``."""
    need = prompt_tokens(config.data) + config.rl.max_completion_length
    return math.ceil(need / 256) * 256


# ---------------------------------------------------------------------------------------
# The memory plan: peak bytes per GPU of each way of training, from config.json and recipe.

GIB = 1024**3
MODES = ("full", "zero2", "zero3", "lora", "qlora")
"""Full fine-tuning (one whole copy per process, as DDP), DeepSpeed ZeRO-2 (gradients and
optimizer states divided among the GPUs), ZeRO-3 (weights too), LoRA, QLoRA."""

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
QUANT_BYTES = {"4bit": 0.53, "8bit": 1.0}
"""Bytes per quantized weight: NF4 is half a byte plus one fp32 scale per 64 weights
(double-quantized: about 0.03 byte); int8 is one byte (its row scales are negligible)."""

CUDA_OVERHEAD = 1.5 * GIB
"""CUDA context, cuBLAS/cuDNN workspaces and allocator slack of one training process."""

SFT_TARGET_TOKENS = 1024
"""Length of an SFT target (reasoning and answer) when ``sft.max_length`` does not cap it."""

LOGIT_BYTES = 12
"""Per scored token and vocabulary entry: the logits in fp32, their log-softmax and its
gradient (the loss upcasts to fp32)."""


@dataclass(frozen=True)
class ModelShape:
    """What of a Qwen2.5-VL ``config.json`` sizes its memory (text and vision tower)."""

    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    tied: bool
    v_depth: int
    v_hidden: int
    v_intermediate: int
    v_patch: int
    v_temporal_patch: int
    v_merge: int
    v_in_chans: int
    v_out: int
    dtype: str

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        """From the JSON of a ``config.json`` (old flat or transformers-5 nested layout)."""
        text = {**config, **config.get("text_config", {})}
        vision = config["vision_config"]
        return cls(
            vocab=text["vocab_size"],
            hidden=text["hidden_size"],
            intermediate=text["intermediate_size"],
            layers=text["num_hidden_layers"],
            heads=text["num_attention_heads"],
            kv_heads=text["num_key_value_heads"],
            tied=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
            v_depth=vision["depth"],
            v_hidden=vision["hidden_size"],
            v_intermediate=vision["intermediate_size"],
            v_patch=vision["patch_size"],
            v_temporal_patch=vision.get("temporal_patch_size", 2),
            v_merge=vision.get("spatial_merge_size", 2),
            v_in_chans=vision.get("in_chans", vision.get("in_channels", 3)),
            v_out=vision.get("out_hidden_size", text["hidden_size"]),
            dtype=str(config.get("torch_dtype") or config.get("dtype") or "float32"),
        )

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * (self.hidden // self.heads)

    def layer_linear_params(self) -> int:
        """Weights of one decoder layer's linear layers (q, k, v, o, gate, up, down)."""
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        return h * h + 2 * h * kv + h * h + 3 * h * i

    def text_params(self) -> int:
        """Embeddings, decoder layers (q, k, v with biases; RMSNorms), final norm, LM head."""
        h, kv = self.hidden, self.kv_dim
        layer = self.layer_linear_params() + (h + 2 * kv) + 2 * h
        head = 0 if self.tied else self.vocab * h
        return self.vocab * h + self.layers * layer + h + head

    def vision_params(self) -> int:
        """Patch embedding (Conv3d, no bias), blocks (qkv, proj and SwiGLU MLP with biases,
        two RMSNorms) and the patch merger (RMSNorm, two linear layers with biases)."""
        h, i = self.v_hidden, self.v_intermediate
        patch = self.v_in_chans * self.v_temporal_patch * self.v_patch**2 * h
        block = (h * 3 * h + 3 * h) + (h * h + h) + 2 * (h * i + i) + (i * h + h) + 2 * h
        merged = h * self.v_merge**2
        merger = h + (merged * merged + merged) + (merged * self.v_out + self.v_out)
        return patch + self.v_depth * block + merger

    def params(self) -> int:
        return self.text_params() + self.vision_params()

    def lora_params(self, r: int, targets: list[str], vision: bool) -> int:
        """Trainable LoRA parameters: ``r·(in + out)`` per adapted linear layer."""
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        shapes = {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                  "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}  # fmt: skip
        unknown = [t for t in targets if t not in shapes]
        if unknown:
            raise ValueError(f"model.lora.target_modules: unknown {unknown}; known: {list(shapes)}")
        total = self.layers * sum(r * sum(shapes[t]) for t in targets)
        if vision:
            vh, vi = self.v_hidden, self.v_intermediate
            block = [(vh, 3 * vh), (vh, vh), (vh, vi), (vh, vi), (vi, vh)]
            total += self.v_depth * sum(r * (a + b) for a, b in block)
        return total


@dataclass(frozen=True)
class Estimate:
    """Peak bytes per GPU (or per process on CPU) of one mode, by term."""

    mode: str
    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    reference: float
    rollout: float
    overhead: float

    @property
    def total(self) -> float:
        return (self.weights + self.gradients + self.optimizer + self.activations + self.logits
                + self.reference + self.rollout + self.overhead)  # fmt: skip


def _bytes(dtype: str, shape: ModelShape) -> int:
    name = shape.dtype if dtype == "auto" else dtype
    if name not in DTYPE_BYTES:
        raise ValueError(f"model.dtype {name!r}: expected one of {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[name]


def sequence_tokens(config: Any, stage: str) -> tuple[int, int]:
    """(tokens of one sequence in the loss forward, of them scored by the loss)."""
    prompt = prompt_tokens(config.data)
    if stage == "sft":
        total = prompt + SFT_TARGET_TOKENS
        if config.sft.max_length:
            total = min(total, config.sft.max_length)
        return total, total  # the logits of every position are computed
    completion = config.rl.max_completion_length
    return prompt + completion, completion  # TRL computes the completion's logits only


def estimate(
    config: Any,
    shape: ModelShape,
    mode: str,
    *,
    stage: str,
    gpus: int = 1,
    gpu_memory: float = 80 * GIB,
    device: str = "cuda",
) -> Estimate:
    """Peak memory of one training process in ``mode`` (:data:`MODES`) for ``config``.

    Weights, gradients and optimizer states follow the ZeRO paper's accounting: ``e`` bytes
    per weight and gradient (2 for bf16, 4 for fp32); Adam keeps two states in the weights'
    dtype without DeepSpeed (torch ``AdamW``), and in fp32 with a fp32 master copy of bf16
    weights under DeepSpeed (12 bytes); ZeRO-2 divides gradients and optimizer states by
    ``gpus``, ZeRO-3 the weights too. LoRA keeps the base frozen and trains fp32 adapters
    (4 + 4 + 8 bytes each); QLoRA stores the language model's linear weights quantized.
    Activations: per token and decoder layer ``7h + 2·kv + 4·i`` values are kept for the
    backward pass (attention with a fused kernel, SwiGLU MLP); with gradient checkpointing
    only each layer's input (``h``) plus one layer recomputed. The vision tower likewise for
    its patches. RL adds the frozen reference model when ``beta > 0`` (none for LoRA: the base
    with adapters off is the reference) and the rollout share: vLLM colocated reserves
    ``vllm_gpu_memory_utilization`` of the GPU, generate's KV cache otherwise.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    train = config.sft if stage == "sft" else config.rl
    e = _bytes(config.model.dtype, shape)
    act = 2 if train.bf16 else e  # autocast computes activations in bf16
    p = shape.params()
    n = gpus if mode in ("zero2", "zero3") else 1
    lora = config.model.lora
    r = lora.r if lora is not None else 16
    targets = list(lora.target_modules) if lora is not None else list(LORA_TARGETS_DEFAULT)
    p_lora = shape.lora_params(r, targets, bool(lora and lora.vision))
    if mode in ("full", "zero2", "zero3"):
        weights = e * p / (n if mode == "zero3" else 1)
        gradients = e * p / (n if mode != "full" else 1)
        per_state = (8 + (4 if e < 4 else 0)) if mode != "full" else 2 * e
        optimizer = per_state * p / n
    else:
        base = float(e * p)
        if mode == "qlora":
            quant = config.model.quantization or "4bit"
            linear = shape.layers * shape.layer_linear_params()
            base = e * (p - linear) + QUANT_BYTES[quant] * linear
        weights, gradients, optimizer = base + 4 * p_lora, 4.0 * p_lora, 8.0 * p_lora
    tokens, scored = sequence_tokens(config, stage)
    b = train.per_device_train_batch_size
    h, kv, i = shape.hidden, shape.kv_dim, shape.intermediate
    per_layer = 7 * h + 2 * kv + 4 * i
    vh, vi = shape.v_hidden, shape.v_intermediate
    v_per_block = 7 * vh + 4 * vi
    frames = config.data.max_frames + KEY_FRAMES
    patches = frames * (config.data.max_pixels // shape.v_patch**2)
    if train.gradient_checkpointing:
        text_values = shape.layers * h + per_layer
        vision_values = shape.v_depth * vh + v_per_block
    else:
        text_values = shape.layers * per_layer
        vision_values = shape.v_depth * v_per_block
    activations = float(b * (tokens * text_values + patches * vision_values) * act)
    logits = float(b * scored * shape.vocab * LOGIT_BYTES)
    reference = 0.0
    rollout = 0.0
    if stage == "rl":
        if config.rl.beta > 0 and mode not in ("lora", "qlora"):
            reference = e * p / (n if mode == "zero3" else 1)
        if config.rl.use_vllm and config.rl.vllm_mode == "colocate" and device == "cuda":
            rollout = config.rl.vllm_gpu_memory_utilization * gpu_memory
        elif not config.rl.use_vllm:
            rollout = float(b * tokens * shape.layers * 2 * kv * act)  # generate's KV cache
    overhead = CUDA_OVERHEAD if device == "cuda" else 0.0
    return Estimate(mode, weights, gradients, optimizer, activations, logits, reference,
                    rollout, overhead)  # fmt: skip


def model_shape(config: Any, model_config: str | Path | None = None) -> tuple[ModelShape, str]:
    """The :class:`ModelShape` of the recipe's model and where its ``config.json`` was read:
    ``model_config`` (a file or folder) when given; for ``tiny:<seed>`` the built base model
    in the output folder, else the ``model.tiny`` sizes (vocabulary: ``model.tiny.vocab_size``,
    an upper bound); a local folder; a hub name from the local cache. No weight is read."""
    import json

    from o3video.train.config import ConfigError

    def read(path: Path) -> ModelShape:
        try:
            return ModelShape.from_config(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(f"{path}: not a Qwen2.5-VL config.json ({e})") from e

    if model_config is not None:
        path = Path(model_config)
        path = path / "config.json" if path.is_dir() else path
        return read(path), str(path)
    name = config.model.path
    if name.startswith("tiny:"):
        built = Path(config.output_dir) / "base-model" / "config.json"
        if built.exists():
            return read(built), str(built)
        t = config.model.tiny
        shape = ModelShape(vocab=t.vocab_size, hidden=t.hidden_size, intermediate=2 * t.hidden_size,
                           layers=t.num_layers, heads=t.num_heads, kv_heads=t.num_kv_heads,
                           tied=False, v_depth=t.vision_depth, v_hidden=t.vision_hidden_size,
                           v_intermediate=2 * t.vision_hidden_size, v_patch=14,
                           v_temporal_patch=2, v_merge=2, v_in_chans=3, v_out=t.hidden_size,
                           dtype="float32")  # fmt: skip
        return shape, f"model.tiny sizes ({name})"
    local = Path(name).expanduser()
    if local.is_dir():
        return read(local / "config.json"), str(local / "config.json")
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if not isinstance(cached, str):
        raise ConfigError(
            f"model.path {name!r}: no config.json found (not a local folder, not in the hub "
            "cache); pass --model-config PATH/config.json"
        )
    return read(Path(cached)), cached


def fits(total: float, gpu_memory: float) -> bool:
    return total <= gpu_memory


def advice(config: Any, stage: str, estimates: list[Estimate], gpu_memory: float, gpus: int,
           shape: ModelShape) -> list[str]:  # fmt: skip
    """Which recipe values to change, from the terms that weigh most."""
    train = config.sft if stage == "sft" else config.rl
    by_mode = {e.mode: e for e in estimates}
    tips: list[str] = []
    fitting = [e.mode for e in estimates if fits(e.total, gpu_memory)]
    if not fitting:
        tips.append(f"nothing fits {gpu_memory / GIB:.0f} GiB per GPU as the recipe stands")
    zero3 = by_mode["zero3"]
    if config.model.lora is None and not fits(zero3.total, gpu_memory):
        fixed = zero3.activations + zero3.logits + zero3.rollout + zero3.overhead
        sharded = zero3.total - fixed
        if fixed < gpu_memory:
            need = math.ceil(sharded * gpus / (gpu_memory - fixed))
            tips.append(f"ZeRO-3 needs about {need} GPUs of this size")
    worst = max(estimates, key=lambda e: e.total)
    if worst.activations + worst.logits > 0.2 * gpu_memory:
        if not train.gradient_checkpointing:
            tips.append(f"set {stage}.gradient_checkpointing: true (activations)")
        if train.per_device_train_batch_size > 1:
            batch = train.per_device_train_batch_size
            tips.append(
                f"lower {stage}.per_device_train_batch_size ({batch}): activations and logits"
                " scale with it"
            )
        tips.append(
            f"lower data.max_frames ({config.data.max_frames}) or data.max_pixels"
            f" ({config.data.max_pixels}): {frame_tokens(config.data)} tokens a frame"
        )
    if stage == "rl" and config.rl.use_vllm and config.rl.vllm_mode == "colocate":
        tips.append(f"vLLM colocated takes rl.vllm_gpu_memory_utilization "
                    f"({config.rl.vllm_gpu_memory_utilization}) of each GPU; lower it, or "
                    "rl.vllm_mode: server on a GPU of its own")  # fmt: skip
    if stage == "rl" and config.rl.use_vllm and config.rl.vllm_mode == "colocate":
        # vLLM holds its own copy of the (merged) weights in model.dtype, plus a KV cache.
        vllm_weights = _bytes(config.model.dtype, shape) * shape.params()
        share = config.rl.vllm_gpu_memory_utilization * gpu_memory
        if share < 1.1 * vllm_weights:
            fraction = 1.2 * vllm_weights / gpu_memory
            tips.append(
                f"vLLM's share ({share / GIB:.1f} GiB) cannot hold its {vllm_weights / GIB:.1f}"
                f" GiB of weights and a KV cache: rl.vllm_gpu_memory_utilization >= {fraction:.2f},"
                " or rl.use_vllm: false"
            )
    lora = config.model.lora is not None
    if not lora and not fits(by_mode["full"].total, gpu_memory):
        if fits(by_mode["lora"].total, gpu_memory):
            tips.append("LoRA fits: model.lora: {r: 16} (recipes/qwen2.5-vl-7b-lora-*.yaml)")
        elif fits(by_mode["qlora"].total, gpu_memory):
            tips.append("QLoRA fits: model.lora: {r: 16} and model.quantization: 4bit")
    elif (
        lora
        and config.model.quantization is None
        and not fits(by_mode["lora"].total, gpu_memory)
        and fits(by_mode["qlora"].total, gpu_memory)
    ):
        tips.append("QLoRA fits: model.quantization: 4bit (needs bitsandbytes)")
    return tips


def format_plan(config: Any, stage: str, shape: ModelShape, source: str, *, gpus: int,
                gpu_memory_gib: float, device: str = "cuda") -> str:  # fmt: skip
    """The plan as text: the model's size, one row per mode in GiB, and advice."""
    memory = gpu_memory_gib * GIB
    rows = [
        estimate(config, shape, m, stage=stage, gpus=gpus, gpu_memory=memory, device=device)
        for m in MODES
    ]
    lora = config.model.lora
    r = lora.r if lora is not None else 16
    targets = list(lora.target_modules) if lora is not None else list(LORA_TARGETS_DEFAULT)
    trainable = shape.lora_params(r, targets, bool(lora and lora.vision))
    tokens, scored = sequence_tokens(config, stage)
    train = config.sft if stage == "sft" else config.rl
    checkpointing = "on" if train.gradient_checkpointing else "off"
    unit, unit_name = (GIB, "GiB") if max(e.total for e in rows) >= GIB else (1024**2, "MiB")
    where = "GPU" if device == "cuda" else "process (CPU)"
    lines = [
        f"model: {source}",
        f"parameters: {shape.params() / 1e9:.3f} B (language {shape.text_params() / 1e9:.3f} B,"
        f" vision {shape.vision_params() / 1e9:.3f} B); LoRA r={r}: {trainable / 1e6:.1f} M",
        f"stage {stage}: {train.per_device_train_batch_size} sequence(s) of {tokens} tokens per "
        f"GPU ({config.data.max_frames}+{KEY_FRAMES} frames × {frame_tokens(config.data)} tokens"
        " + text), "
        f"{scored} scored; gradient checkpointing {checkpointing}",
        f"peak memory per {where} in {unit_name}, {gpus} GPU(s) of {gpu_memory_gib:g} GiB:",
        "",
    ]
    header = ("mode", "weights", "grads", "optim", "activ", "logits", "ref", "rollout",
              "other", "total", "fits")  # fmt: skip
    lines.append(f"{header[0]:<6}" + "".join(f"{h:>9}" for h in header[1:]))
    for e in rows:
        values = (e.weights, e.gradients, e.optimizer, e.activations, e.logits, e.reference,
                  e.rollout, e.overhead, e.total)  # fmt: skip
        cells = "".join(f"{v / unit:9.1f}" for v in values)
        lines.append(f"{e.mode:<6}{cells}{'yes' if fits(e.total, memory) else 'no':>9}")
    tips = advice(config, stage, rows, memory, gpus, shape)
    if tips:
        lines += ["", "to fit:", *(f"- {t}" for t in tips)]
    lines += ["", "An estimate (o3video.train.plan.estimate says what it counts); measure "
              "with benchmarks/gpu/check.sh."]  # fmt: skip
    return "\n".join(lines)

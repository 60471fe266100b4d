"""LoRA and QLoRA training (``model.lora``, ``model.quantization``) and merging adapters.

With ``model.lora`` the trainers get a ``peft.LoraConfig`` (TRL wraps the policy; the base
stays frozen, only the adapters train and are saved: ``final/`` holds ``adapter_config.json``,
``adapter_model.safetensors``, the processor and the model card). The adapters go on the
language model's layers only, so the vision tower is frozen — unless ``model.lora.vision``,
which puts them on the vision blocks too. With GSPO and vLLM rollouts TRL merges the adapters
into the weights it sends to vLLM at each weight sync, as for any ``peft`` model. The RL
reference model is the base with the adapters switched off (no second copy).

``model.quantization`` (``4bit``: NF4 with double quantization; ``8bit``) loads the
language model's linear layers through bitsandbytes (CUDA only): QLoRA. The vision tower and
the LM head stay in ``model.dtype``.

``o3video ask/eval/serve --model ADAPTER_DIR`` load base + adapter
(:func:`o3video.models.load.load_model`); :func:`merge_adapter` (``o3video train merge``)
writes a folder of merged weights, for vLLM or to share.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from o3video.train.config import ConfigError, ModelConfig

logger = logging.getLogger(__name__)

VISION_TARGETS = ("qkv", "proj", "gate_proj", "up_proj", "down_proj")
"""The linear layers of a Qwen2.5-VL vision block."""


def target_pattern(model: ModelConfig) -> str:
    """The ``peft`` ``target_modules`` regular expression (matched against whole module names)
    of ``model.lora``: its targets in the language model's layers, and with ``vision`` the
    vision blocks' linear layers.

    >>> from o3video.train.config import LoraConfig
    >>> target_pattern(ModelConfig(lora=LoraConfig(target_modules=["q_proj", "v_proj"])))
    '.*language_model\\\\.layers\\\\.\\\\d+\\\\.\\\\w+\\\\.(q_proj|v_proj)'
    """
    if model.lora is None:
        raise ConfigError("model.lora is not set")
    if not model.lora.target_modules:
        raise ConfigError("model.lora.target_modules is empty")
    text = "|".join(model.lora.target_modules)
    pattern = rf".*language_model\.layers\.\d+\.\w+\.({text})"
    if model.lora.vision:
        pattern += rf"|.*visual\.blocks\.\d+\.\w+\.({'|'.join(VISION_TARGETS)})"
    return pattern


def peft_config(model: ModelConfig) -> Any:
    """The ``peft.LoraConfig`` of ``model.lora``, or ``None`` without it."""
    if model.lora is None:
        return None
    try:
        from peft import LoraConfig
    except ImportError as e:
        raise ConfigError("model.lora needs peft: pip install 'o3video[train]'") from e
    lora = model.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=target_pattern(model),
        bias="none",
        task_type="CAUSAL_LM",
    )


def quantization_config(model: ModelConfig) -> Any:
    """The ``BitsAndBytesConfig`` of ``model.quantization``, or ``None`` without it."""
    if model.quantization is None:
        return None
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            f"model.quantization {model.quantization!r} needs bitsandbytes and a CUDA GPU: "
            "pip install bitsandbytes (or drop model.quantization: plain LoRA)"
        )
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.float32 if model.dtype == "float32" else torch.bfloat16
    skip = ["visual", "lm_head"]  # the vision tower and the head stay in model.dtype
    if model.quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
            llm_int8_skip_modules=skip,
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)


def is_adapter_model(model: Any) -> bool:
    """Whether ``model`` is a ``peft`` model (trains adapters only)."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def merge_adapter(adapter_dir: str | Path, out: str | Path, dtype: str = "auto") -> Path:
    """Base + adapter of ``adapter_dir`` merged into plain weights, saved to ``out`` with the
    processor and the model card (which gains ``merged_from``). Returns ``out``."""
    import json

    import torch

    from o3video.models.base import BackendError
    from o3video.models.card import CARD_FILE
    from o3video.models.load import adapter_base, load_model

    adapter_dir, out = Path(adapter_dir), Path(out)
    try:
        base = adapter_base(adapter_dir, "merge")
    except BackendError as e:
        raise ConfigError(str(e)) from e
    if base is None:
        raise ConfigError(f"{adapter_dir}: not a LoRA adapter folder (no adapter_config.json)")
    if out.resolve() == adapter_dir.resolve():
        raise ConfigError(f"--out {out}: must differ from the adapter folder")
    kwargs: dict[str, Any] = {} if dtype == "auto" else {"dtype": getattr(torch, dtype)}
    model = load_model(str(adapter_dir), **kwargs)
    merged = model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    from transformers import AutoProcessor

    AutoProcessor.from_pretrained(str(adapter_dir)).save_pretrained(str(out))
    card = adapter_dir / CARD_FILE
    if card.is_file():
        data = json.loads(card.read_text(encoding="utf-8"))
        data["merged_from"] = {"adapter": str(adapter_dir), "base": base}
        (out / CARD_FILE).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    else:
        logger.warning("%s has no %s; the merged model has none either", adapter_dir, CARD_FILE)
    logger.info("merged %s (base %s) into %s", adapter_dir, base, out)
    return out

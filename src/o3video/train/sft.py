"""Stage 1, cold-start SFT (SPEC §6) on TRL's ``SFTTrainer``.

The data are conversational prompt-completion rows (:func:`o3video.train.dataset.sft_dataset`):
TRL's ``DataCollatorForVisionLanguageModeling._collate_prompt_completion`` tokenises prompt
and completion separately and, with ``completion_only_loss=True``, sets the label of every
prompt token (system prompt, frames, question) to -100 — the reference trained on them, a bug.

:func:`run_sft` resumes from the last ``checkpoint-*`` in the output folder, and saves the final
model and processor to ``<output_dir>/final`` (what ``o3video ask --model`` loads).

The helpers here (:func:`resolve_model_path`, :func:`load_policy`, :func:`common_args`) are
shared with :mod:`o3video.train.rl`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from o3video.models.base import BackendError
from o3video.models.load import adapter_base, check_model_source, load_model
from o3video.train.config import (
    ConfigError,
    ModelConfig,
    RunConfig,
    Stage,
    TrainConfig,
    save_resolved,
)
from o3video.train.dataset import ExampleSource, sft_dataset, source_from_config
from o3video.train.launch import check_launch, main_first, without_zero3_init
from o3video.train.lora import is_adapter_model, peft_config, quantization_config

logger = logging.getLogger(__name__)

FINAL_DIR = "final"
"""Sub-folder of the output folder holding the final model and processor."""


def resolve_model_path(model: ModelConfig, output_dir: str | Path) -> str:
    """``model.path``, or for ``tiny:<seed>`` the tiny random model built in
    ``<output_dir>/base-model`` (once; its seed and size are kept beside it, and a later run
    asking for another one is refused rather than silently given the old one)."""
    if not model.path.startswith("tiny:"):
        return model.path
    try:
        seed = int(model.path.split(":", 1)[1] or 0)
    except ValueError as e:
        raise ConfigError(f"model.path {model.path!r}: expected tiny:<integer seed>") from e
    out = Path(output_dir) / "base-model"
    spec = {"seed": seed, **dataclasses.asdict(model.tiny)}
    spec_file = out / "tiny.json"
    if (out / "config.json").exists():
        built = json.loads(spec_file.read_text()) if spec_file.exists() else None
        if built != spec:
            raise ConfigError(
                f"{out} holds a tiny model built as {built}, not {spec}; "
                "use another output_dir, or delete that folder to rebuild it"
            )
        return str(out)
    from o3video.models.tiny import build_tiny_model

    size = dataclasses.asdict(model.tiny)
    try:
        with without_zero3_init():  # one process builds it: no collective partitioning
            build_tiny_model(out, seed=seed, **size)
    except ValueError as e:
        raise ConfigError(f"model.tiny {size}: {e}") from e
    spec_file.write_text(json.dumps(spec) + "\n")
    return str(out)


def load_policy(model: ModelConfig, output_dir: str | Path) -> tuple[Any, Any]:
    """The (model, processor) to train, from ``model.path`` (``tiny:<seed>`` built on the fly)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = resolve_model_path(model, output_dir)
    try:  # a missing local path says so, instead of failing as a malformed hub id
        source = check_model_source(path, backend="train")
    except BackendError as e:
        raise ConfigError(f"model.path {model.path!r}: {e}") from e
    if Path(source).is_dir():  # a LoRA adapter records its base by this string: make it last
        source = str(Path(source).resolve())
    kwargs: dict[str, Any] = {}
    quantization = quantization_config(model)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    if model.dtype != "auto":
        kwargs["dtype"] = getattr(torch, model.dtype)
    if model.attn_implementation:
        check_attention(model.attn_implementation)
        kwargs["attn_implementation"] = model.attn_implementation
    adapter = adapter_base(source, "train")
    if adapter is not None and model.lora is not None:
        raise ConfigError(
            f"model.path {model.path!r} is a LoRA adapter (on {adapter}); a new adapter would "
            f"be saved against {adapter} without it. Merge it first: o3video train merge "
            f"{model.path} --out DIR, then model.path=DIR"
        )
    try:
        if adapter is None:
            policy = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
        else:  # full fine-tuning from base + adapter: its merged weights
            policy = load_model(source, **kwargs).merge_and_unload()
        processor = AutoProcessor.from_pretrained(source)
    except OSError as e:
        raise ConfigError(f"model.path {model.path!r}: cannot load: {e}") from e
    if model.freeze_vision:
        freeze_vision_tower(policy)
    if model.fast_paths:
        from o3video.train.fastpaths import apply_fast_paths

        installed = apply_fast_paths(policy)
        logger.info("fast paths: %s", ", ".join(installed) or "none apply to this model")
    return policy, processor


def freeze_vision_tower(policy: Any) -> None:
    """Stop training the vision tower and its merger (``model.visual``). The language model,
    its embeddings and head still train."""
    tower = getattr(getattr(policy, "model", None), "visual", None)
    if tower is None:
        raise ConfigError(
            f"model.freeze_vision: {type(policy).__name__} has no vision tower (model.visual)"
        )
    tower.requires_grad_(False)


def scale_vision_lr(trainer: Any, scale: float) -> None:
    """Make ``trainer`` build its optimizer with the vision tower and its merger
    (``model.visual``) at ``scale`` × the learning rate (``model.vision_lr_scale``).

    The trainer's own optimizer class, keyword arguments and weight-decay groups are kept;
    each group is split in two, the tower's part with its own ``lr``. The scheduler scales
    every group from its own starting rate, so the ratio holds through warm-up and decay.
    Set on the built trainer (``optimizer_cls_and_kwargs``, which ``create_optimizer``
    reads), so the SFT and RL trainers share it."""
    if scale == 1.0:
        return
    import torch
    from transformers import Trainer

    tower = getattr(getattr(trainer.model, "model", None), "visual", None)
    if tower is None:
        raise ConfigError(
            f"model.vision_lr_scale: {type(trainer.model).__name__} has no vision tower "
            "(model.visual)"
        )
    ids = {id(p) for p in tower.parameters()}
    base, kwargs = Trainer.get_optimizer_cls_and_kwargs(trainer.args, trainer.model)
    if not (isinstance(base, type) and issubclass(base, torch.optim.Optimizer)):
        raise ConfigError(
            f"model.vision_lr_scale: the optimizer {trainer.args.optim!r} is not a "
            "torch.optim.Optimizer class; its parameter groups cannot be split"
        )
    rate = float(kwargs.get("lr", trainer.args.learning_rate))

    class TowerScaled(base):  # type: ignore[misc, valid-type]
        def __init__(self, params: Any, **options: Any) -> None:
            groups = []
            for group in params:
                own = [p for p in group["params"] if id(p) not in ids]
                tower_part = [p for p in group["params"] if id(p) in ids]
                if own:
                    groups.append({**group, "params": own})
                if tower_part:
                    groups.append({**group, "params": tower_part, "lr": rate * scale})
            super().__init__(groups, **options)

    TowerScaled.__name__ = TowerScaled.__qualname__ = f"TowerScaled{base.__name__}"
    trainer.optimizer_cls_and_kwargs = (TowerScaled, kwargs)


def check_attention(name: str) -> None:
    """Refuse ``flash_attention_2`` without the ``flash_attn`` package: ``transformers`` would
    otherwise fetch a kernel from the hub at load time (failing offline, or running code no
    one pinned). Install it with ``pip install 'o3video[flash]'``."""
    import importlib.util

    if name == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise ConfigError(
            "model.attn_implementation 'flash_attention_2' needs the flash-attn package: "
            "pip install 'o3video[flash]' (a CUDA build), or set model.attn_implementation=sdpa"
        )


def common_args(train: TrainConfig, output_dir: str | Path) -> dict[str, Any]:
    """The ``TrainingArguments`` both stages share, from ``train``."""
    return {
        "output_dir": str(output_dir),
        "learning_rate": train.learning_rate,
        "num_train_epochs": train.num_train_epochs,
        "max_steps": train.max_steps,
        "per_device_train_batch_size": train.per_device_train_batch_size,
        "gradient_accumulation_steps": train.gradient_accumulation_steps,
        "lr_scheduler_type": train.lr_scheduler_type,
        "warmup_steps": train.warmup_steps,
        "weight_decay": train.weight_decay,
        "max_grad_norm": train.max_grad_norm,
        "bf16": train.bf16,
        "gradient_checkpointing": train.gradient_checkpointing,
        "seed": train.seed,
        "save_steps": train.save_steps,
        "save_total_limit": train.save_total_limit,
        "logging_steps": train.logging_steps,
        "report_to": train.report_to,
        "dataloader_num_workers": train.dataloader_num_workers,
        # Rows are built on access from the record position; nothing must be dropped.
        "remove_unused_columns": False,
    }


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest ``checkpoint-*`` folder under ``output_dir``, if any."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(output_dir)
    return get_last_checkpoint(str(out)) if out.is_dir() else None


def build_sft_trainer(
    config: RunConfig, source: ExampleSource | None = None, callbacks: list[Any] | None = None
) -> Any:
    """A ready ``trl.SFTTrainer`` for ``config`` (tests and benchmarks drive it directly)."""
    from trl import SFTConfig as TrlSFTConfig
    from trl import SFTTrainer

    out = Path(config.output_dir)
    # The arguments first: they set up the processes and, under DeepSpeed ZeRO-3, make
    # from_pretrained partition the weights as it loads them (o3video.train.launch).
    args = TrlSFTConfig(
        **common_args(config.sft, out),
        max_length=config.sft.max_length,
        completion_only_loss=True,
        assistant_only_loss=False,
        dataset_kwargs={"skip_prepare_dataset": True},
    )
    check_launch(args)
    with main_first(args, "data and base model"):
        if source is None:
            source = source_from_config(config.data, out, stage="sft")
        resolve_model_path(config.model, out)
    dataset = sft_dataset(source)
    if len(dataset) == 0:
        raise ConfigError(
            f"{config.data.stgr or 'data'}: no record with a reasoning to train SFT on"
        )
    model, processor = load_policy(config.model, out)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        callbacks=callbacks,
        peft_config=peft_config(config.model),  # None: full fine-tuning
    )
    scale_vision_lr(trainer, config.model.vision_lr_scale)
    return trainer


def run_sft(config: RunConfig) -> Path:
    """Train stage 1 as ``config`` says; returns ``<output_dir>/final``."""
    started = time.perf_counter()
    out = Path(config.output_dir)
    trainer = build_sft_trainer(config)
    if trainer.is_world_process_zero():
        save_resolved(config, out, stage="sft")
    return train_and_save(trainer, out, resume=config.sft.resume, config=config, stage="sft",
                          started=started)  # fmt: skip


def _checkpoint_step(checkpoint: str | Path) -> int | None:
    """The step of a ``checkpoint-N`` folder (None for any other name)."""
    step = Path(checkpoint).name.removeprefix("checkpoint-")
    return int(step) if step.isdigit() else None


def train_and_save(
    trainer: Any,
    output_dir: str | Path,
    *,
    resume: bool,
    config: RunConfig | None = None,
    stage: Stage = "sft",
    started: float | None = None,
) -> Path:
    """Run ``trainer`` (from the last ``checkpoint-*`` in ``output_dir`` when ``resume``) and
    save the final model and processor; returns ``<output_dir>/final``. With ``config``, the
    final folder, and every checkpoint saved on the way, also gets its model card
    (:func:`o3video.train.card.write_training_card`; ``started`` is when the run began, data
    synthesis included)."""
    checkpoint = last_checkpoint(output_dir) if resume else None
    resumed = _checkpoint_step(checkpoint) if checkpoint else None
    if config is not None:  # each checkpoint-N gets the card too
        from o3video.train.card import checkpoint_card_callback

        trainer.add_callback(checkpoint_card_callback(config, stage, started, resumed))
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
        # An adapter checkpoint is loaded right by the Trainer itself (peft's own names).
        if not getattr(trainer, "is_deepspeed_enabled", False) and not is_adapter_model(
            trainer.model
        ):
            load_checkpoint_weights(trainer.model, checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)
    from o3video.train.fastpaths import padding_free_calls

    if calls := padding_free_calls(trainer.model):
        logger.info("language-model forwards: %s", calls)
    final = save_final(trainer, output_dir)
    if config is not None and trainer.is_world_process_zero():
        from o3video.train.card import write_training_card

        wall = time.perf_counter() - started if started is not None else None
        write_training_card(
            final, config, stage, trainer.state, wall_s=wall, resumed_from_step=resumed
        )
    return final


def load_checkpoint_weights(model: Any, checkpoint: str | Path) -> None:
    """Load a ``checkpoint-*`` folder's weights into ``model``, as ``from_pretrained`` reads
    them.

    ``transformers`` 5 saves Qwen-VL weights under their original names (``model.layers.*``,
    ``visual.*``) and ``from_pretrained`` maps them back (``model.language_model.layers.*``,
    ``model.visual.*``), but ``Trainer``'s resume loads the file with
    ``load_state_dict(strict=False)`` without that mapping: no weight matched, and training
    silently went on from the base model. Loaded here first and strictly, the weights are
    right whatever the Trainer's own load then does (it matches nothing and changes nothing).
    Raises ``RuntimeError`` when the checkpoint does not fit the model.
    """
    dtype = next(model.parameters()).dtype
    saved = type(model).from_pretrained(str(checkpoint), dtype=dtype)
    model.load_state_dict(saved.state_dict(), strict=True)
    logger.info("weights of %s loaded", checkpoint)


def save_final(trainer: Any, output_dir: str | Path) -> Path:
    """Save the trained model and its processor to ``<output_dir>/final``."""
    final = Path(output_dir) / FINAL_DIR
    # Every process calls it (ZeRO-3 gathers the shards here); the main process writes the
    # weights and the processor (Trainer._save saves processing_class).
    trainer.save_model(str(final))
    logger.info("final model saved to %s", final)
    return final

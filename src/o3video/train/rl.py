"""Stage 2, RL with GSPO (SPEC §6) on TRL's ``GRPOTrainer``.

GSPO is ``GRPOConfig(importance_sampling_level="sequence")``: the importance ratio of a
completion is ``exp(mean over its tokens of (log π_θ − log π_old))``, clipped to
``[1 − ε, 1 + ε_high]``. It differs from GRPO only off-policy, so the default
``steps_per_generation`` (4) exceeds ``gradient_accumulation_steps`` (1): one rollout batch
feeds four optimizer steps and TRL keeps ``old_per_token_logps`` of the rollout policy.
``importance_sampling_level="token"`` gives GRPO.

Rewards come from :func:`o3video.rewards.registry.build_rewards` (weights from the recipe);
a :class:`Progress` callback publishes ``global_step / max_steps`` so the point-supervision
σ anneals with training (SPEC §5). Rollouts use vLLM with ``use_vllm`` (``colocate`` or
``server``), else ``transformers`` ``generate``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from o3video.train.config import ConfigError, RunConfig, save_resolved
from o3video.train.dataset import ExampleSource, rl_dataset, source_from_config
from o3video.train.launch import check_launch, main_first
from o3video.train.lora import peft_config
from o3video.train.sft import (
    common_args,
    load_policy,
    resolve_model_path,
    scale_vision_lr,
    train_and_save,
)

logger = logging.getLogger(__name__)

RewardFn = Callable[..., list[float]]


class Progress:
    """Training progress p ∈ [0, 1], read by rewards (``progress_fn=progress``).

    Built as a ``transformers.TrainerCallback`` by :meth:`callback`, which sets
    ``p = state.global_step / state.max_steps`` at every step begin.
    """

    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        return self.value

    def callback(self) -> Any:
        """A ``TrainerCallback`` that keeps :attr:`value` up to date."""
        from transformers import TrainerCallback

        progress = self

        class _ProgressCallback(TrainerCallback):
            def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.max_steps > 0:
                    progress.value = min(1.0, state.global_step / state.max_steps)

            def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                progress.value = 1.0

        return _ProgressCallback()


def reward_errors_callback(names: list[str]) -> Any:
    """A ``TrainerCallback`` that adds ``rewards/<name>/errors`` to every log: how many
    items each reward scored 0 because it raised since the last log
    (:data:`o3video.rewards.base.REWARD_ERRORS`), zero included, so a reward that fails is
    seen in the metrics, never a silent 0."""
    from transformers import TrainerCallback

    from o3video.rewards.base import REWARD_ERRORS

    class _RewardErrors(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs is None:
                return
            counts = REWARD_ERRORS.drain()
            for name in sorted({*names, *counts}):
                logs[f"rewards/{name}/errors"] = float(counts.get(name, 0))

    return _RewardErrors()


def build_reward_functions(
    spec: dict[str, Any], progress: Progress
) -> tuple[list[RewardFn], list[float]]:
    """Reward functions and weights of ``spec`` (``o3video.rewards.registry.build_rewards``)."""
    from o3video.rewards.registry import build_rewards

    funcs, weights = build_rewards(spec, progress_fn=progress)
    return list(funcs), list(weights)


def grpo_args(config: RunConfig) -> dict[str, Any]:
    """The ``trl.GRPOConfig`` keyword arguments of ``config.rl``."""
    rl = config.rl
    args = common_args(rl, config.output_dir)
    args.update(
        num_generations=rl.num_generations,
        max_completion_length=rl.max_completion_length,
        temperature=rl.temperature,
        top_p=rl.top_p,
        beta=rl.beta,
        epsilon=rl.epsilon,
        epsilon_high=rl.epsilon_high,
        steps_per_generation=rl.steps_per_generation,
        num_iterations=rl.num_iterations,
        loss_type=rl.loss_type,
        importance_sampling_level=rl.importance_sampling_level,
        scale_rewards=rl.scale_rewards,
        use_vllm=rl.use_vllm,
        vllm_mode=rl.vllm_mode,
        vllm_gpu_memory_utilization=rl.vllm_gpu_memory_utilization,
        log_completions=rl.log_completions,
    )
    if rl.vllm_server_base_url:
        args["vllm_server_base_url"] = rl.vllm_server_base_url
    if rl.use_vllm:
        from o3video.train.plan import context_tokens

        args["vllm_max_model_length"] = rl.vllm_max_model_length or context_tokens(config)
    return args


VISION_TOKENS = (
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""The special tokens that mark where frames go in a Qwen-VL prompt."""


def vision_token_ids(processor: Any) -> list[int]:
    """The ids of :data:`VISION_TOKENS` in ``processor``'s vocabulary, to keep out of sampled
    completions: a completion holding one would make the model's 3D rotary positions count a
    frame that has no pixels (a shape error in the policy's forward pass, mid-training)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    vocab = tokenizer.get_vocab()
    return sorted(vocab[t] for t in VISION_TOKENS if t in vocab)


VLLM_BAN = -100.0
"""The logit bias that bans a token in vLLM rollouts: OpenAI's (and vLLM's server's) lowest
allowed bias; e^-100 leaves no probability to sample it."""


def rollout_generation_kwargs(rl: Any, banned: list[int]) -> dict[str, Any]:
    """TRL's ``generation_kwargs`` that keep the ``banned`` token ids out of rollouts.

    ``transformers`` ``generate`` takes ``suppress_tokens``; vLLM's ``SamplingParams`` (which
    TRL builds from these kwargs in ``colocate`` mode, and whose fields its server reads in
    ``server`` mode) has no such field — it raised ``TypeError`` at the first rollout — so
    with ``use_vllm`` the tokens get a :data:`VLLM_BAN` ``logit_bias`` instead.

    >>> class RL: use_vllm = True
    >>> rollout_generation_kwargs(RL(), [7, 9])
    {'logit_bias': {7: -100.0, 9: -100.0}}
    """
    if rl.use_vllm:
        return {"logit_bias": dict.fromkeys(banned, VLLM_BAN)}
    return {"suppress_tokens": list(banned)}


def build_rl_trainer(
    config: RunConfig,
    source: ExampleSource | None = None,
    *,
    reward_funcs: list[RewardFn] | None = None,
    reward_weights: list[float] | None = None,
    progress: Progress | None = None,
    trainer_cls: type | None = None,
    callbacks: list[Any] | None = None,
) -> Any:
    """A ready ``trl.GRPOTrainer`` for ``config``.

    ``reward_funcs`` default to those of ``config.rl.rewards``; ``trainer_cls`` lets tests and
    benchmarks pass an instrumented subclass of ``GRPOTrainer``.
    """
    from trl import GRPOConfig, GRPOTrainer

    out = Path(config.output_dir)
    progress = progress or Progress()
    if reward_funcs is None:
        reward_funcs, reward_weights = build_reward_functions(config.rl.rewards, progress)
    # The arguments first: they set up the processes and, under DeepSpeed ZeRO-3, make
    # from_pretrained partition the weights as it loads them (o3video.train.launch).
    args = GRPOConfig(**grpo_args(config), reward_weights=reward_weights)
    check_launch(args)
    with main_first(args, "data and base model"):
        if source is None:
            source = source_from_config(config.data, out, stage="rl")
        resolve_model_path(config.model, out)
    model, processor = load_policy(config.model, out)
    # TRL pads rollout prompts on the left, then runs the processor again (its tokenizer's
    # padding side) for the vision inputs of the loss forward; a right-padding tokenizer
    # would misalign the image-token map with the ids whenever two prompts of a batch differ
    # in length (a shape error in the 3D rotary positions).
    getattr(processor, "tokenizer", processor).padding_side = "left"
    # Set after construction: the vision token ids come from the processor, which is loaded
    # after the arguments (the trainer reads generation_kwargs when it is built).
    args.generation_kwargs = rollout_generation_kwargs(config.rl, vision_token_ids(processor))
    extra = list(callbacks or [])
    train_rows = None
    if config.rl.probe_every > 0:
        probe, train_rows = _probe(config, source, processor)
        extra.insert(0, probe.callback(config.rl.probe_every))
    cls = trainer_cls or GRPOTrainer
    trainer = cls(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=rl_dataset(source, train_rows),
        processing_class=processor,
        callbacks=[
            progress.callback(),
            reward_errors_callback([getattr(f, "__name__", "reward") for f in reward_funcs]),
            *extra,
        ],
        peft_config=peft_config(config.model),  # None: full fine-tuning
    )
    scale_vision_lr(trainer, config.model.vision_lr_scale)
    if config.model.fast_paths and getattr(trainer, "ref_model", None) is not None:
        from o3video.train.fastpaths import apply_fast_paths

        apply_fast_paths(trainer.ref_model)  # TRL loads the KL reference itself
    return trainer


def _probe(config: RunConfig, source: Any, processor: Any) -> tuple[Any, list[int] | None]:
    """The probe (:mod:`o3video.train.probe`) and the training rows it leaves (``None``:
    all of them)."""
    import torch.distributed as dist

    from o3video.train.probe import Probe, probe_split

    rl = config.rl
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        raise ConfigError(
            "rl.probe_every needs one process (a generation on one rank of several would "
            "wait for the others); set rl.probe_every=0 or run on one process"
        )
    train_rows: list[int] | None
    if rl.probe_stgr:
        probe_source = _probe_source(config, getattr(source, "stgr_path", ""))
        probe_rows, train_rows = list(range(min(rl.probe_items, len(probe_source)))), None
    else:
        probe_source = source
        try:
            probe_rows, train_rows = probe_split(len(source), rl.probe_items)
        except ValueError as e:
            raise ConfigError(f"rl.probe_items: {e}") from e
    probe = Probe(
        probe_source,
        probe_rows,
        rl.rewards,
        processor=processor,
        out_path=Path(config.output_dir) / "probe.jsonl",
        max_new_tokens=rl.probe_max_new_tokens or rl.max_completion_length,
        suppress_tokens=vision_token_ids(processor),
    )
    return probe, train_rows


def _probe_source(config: RunConfig, training_file: str) -> Any:
    """The examples of ``rl.probe_stgr``: the run's data settings with that file (no
    synthesis, no ``data.limit``). Refused when it is ``training_file`` (the training
    source's STGR file), whose records would then be trained on."""
    import dataclasses

    rl, data = config.rl, config.data
    probe_file = Path(rl.probe_stgr or "")
    if training_file and probe_file.resolve() == Path(training_file).resolve():
        raise ConfigError(
            f"rl.probe_stgr is the training file {training_file}: leave rl.probe_stgr unset to "
            "take the probe from its front (left out of training), or name another file"
        )
    probe_data = dataclasses.replace(
        data, stgr=str(probe_file), media_root=rl.probe_media_root, synth=None, limit=None
    )
    return source_from_config(probe_data, Path(config.output_dir) / "probe", stage="rl")


def run_rl(config: RunConfig) -> Path:
    """Train stage 2 as ``config`` says; returns ``<output_dir>/final``."""
    started = time.perf_counter()
    out = Path(config.output_dir)
    trainer = build_rl_trainer(config)
    if trainer.is_world_process_zero():
        save_resolved(config, out, stage="rl")
    return train_and_save(trainer, out, resume=config.rl.resume, config=config, stage="rl",
                          started=started)  # fmt: skip

"""The model card training writes beside a trained model (``final/o3video.json``).

:mod:`o3video.models.card` reads it; training fills it in:

- ``video``: the frame budget of the run's data section, so that ``o3video ask``, ``eval``
  and ``demo`` show frames as the model was trained on them (SPEC §3);
- ``protocol``: the data section's protocol, the prompts the model was trained under
  (:func:`o3video.protocols.card_protocol` reads it; ``reference-sft`` runs as
  ``reference``);
- ``world``: the synthetic world's settings (``data.synth.world``) when the run trained on
  the synthetic corpus, or the starting model's world otherwise, so that ``o3video demo``
  makes a video like those the model learned from;
- ``training``: one entry per stage, oldest first, the starting model's stages carried over
  (an RL model's card lists its SFT stage too): stage, output folder, command, package version,
  commit and whether the tree had uncommitted changes, training seed, data seed, optimizer
  steps, the trainer's ``train_runtime`` and the run's wall time (data synthesis and model
  loading included; both of the last process only when it resumed from a checkpoint, whose
  step ``resumed_from_step`` gives), and the resolved config;
- ``adapter`` (LoRA runs): the base model the adapter goes on, the quantization it trained
  against and the LoRA settings.

Scores are added by whoever measures them (``scripts/build_embedded.py``), never here.

Every ``checkpoint-N`` a run saves gets the same card, its last entry's ``steps`` being N
(:func:`checkpoint_card_callback`): a checkpoint is evaluated or asked as the model it is a
step of (its frame budget and protocol), not as an unknown model under the defaults.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from o3video.data.world import WorldConfig
from o3video.errors import DataError
from o3video.models.card import CARD_FILE, read_card, write_card
from o3video.train.config import (
    ConfigError,
    RunConfig,
    Stage,
    SynthConfig,
    git_commit,
    git_dirty,
    load_config,
    to_dict,
)


def stage_entry(
    config: RunConfig,
    stage: Stage,
    state: Any,
    wall_s: float | None,
    resumed_from_step: int | None = None,
) -> dict[str, Any]:
    """The ``training`` entry of one finished stage (``state``: the trainer's ``TrainerState``).

    ``resumed_from_step``: the checkpoint step this process resumed from; the runtime and
    wall time then cover only the steps after it, which the entry says."""
    import o3video

    history = getattr(state, "log_history", None) or []
    runtime = next((e["train_runtime"] for e in reversed(history) if "train_runtime" in e), None)
    settings = config.sft if stage == "sft" else config.rl
    synth = config.data.synth
    return {
        "stage": stage,
        "output_dir": str(config.output_dir),
        "command": list(sys.argv),
        "version": o3video.__version__,
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "seed": settings.seed,
        "data_seed": synth.seed if synth is not None else None,
        "steps": getattr(state, "global_step", None),
        "train_runtime_s": round(float(runtime), 1) if runtime is not None else None,
        "wall_s": round(wall_s, 1) if wall_s is not None else None,
        "resumed_from_step": resumed_from_step,
        "config": to_dict(config),
    }


def write_training_card(
    final: str | Path,
    config: RunConfig,
    stage: Stage,
    state: Any,
    *,
    wall_s: float | None,
    resumed_from_step: int | None = None,
) -> Path:
    """Write ``final/o3video.json`` for a finished stage (module docstring); returns its path."""
    start = Path(config.model.path)
    parent = read_card(start) if start.is_dir() else None
    stages = list(parent.get("training", [])) if parent else []
    stages.append(stage_entry(config, stage, state, wall_s, resumed_from_step))
    info: dict[str, Any] = {}
    if config.data.synth is not None:
        info["world"] = dict(config.data.synth.world or {})
    elif parent is not None and "world" in parent:
        info["world"] = parent["world"]
    info["training"] = stages
    if config.model.lora is not None:  # final/ holds an adapter: say on what and how
        from o3video.train.sft import resolve_model_path

        base = resolve_model_path(config.model, config.output_dir)
        info["adapter"] = {
            "base": str(Path(base).resolve()) if Path(base).is_dir() else base,
            "quantization": config.model.quantization,
            **dataclasses.asdict(config.model.lora),
        }
    data = config.data
    return write_card(final, data.video, protocol=data.protocol, **info)


def checkpoint_card_callback(
    config: RunConfig,
    stage: Stage,
    started: float | None = None,
    resumed_from_step: int | None = None,
) -> Any:
    """A ``transformers`` callback that writes the run's card (:func:`write_training_card`)
    into each ``checkpoint-N`` folder as the Trainer saves it (main process only); ``started``
    is the run's ``time.perf_counter()`` start, for the wall time so far."""
    import time

    from transformers import TrainerCallback

    class CheckpointCard(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if not state.is_world_process_zero or not folder.is_dir():
                return
            wall = time.perf_counter() - started if started is not None else None
            write_training_card(
                folder, config, stage, state, wall_s=wall, resumed_from_step=resumed_from_step
            )

    return CheckpointCard()


def world_of(path: str | Path, *, default: WorldConfig | None = None) -> WorldConfig:
    """The synthetic world of a model folder (its card's ``world``) or of a recipe YAML (its
    ``data.synth.world``). A folder whose card has no world gives ``default`` when set.

    :class:`~o3video.errors.DataError` naming the file when it has none or it is invalid.
    """
    path = Path(path)
    if path.is_dir():
        card = read_card(path)
        if card is None or "world" not in card:
            if default is not None:
                return default
            raise DataError(f"{path}: no {CARD_FILE} with a 'world' in it", path=str(path))
        where, world = path / CARD_FILE, card["world"]
        if not isinstance(world, dict):
            raise DataError(f"{where}: world must be an object", path=str(where))
    else:
        try:
            synth = load_config(path).data.synth
        except ConfigError as e:
            raise DataError(str(e), path=str(path)) from e
        if synth is None:
            raise DataError(f"{path}: the recipe has no data.synth section", path=str(path))
        where, world = path, synth.world
    try:
        return SynthConfig(world=world).world_config()
    except ConfigError as e:
        reason = str(e).removeprefix("data.synth.world: ")
        raise DataError(f"{where}: world: {reason}", path=str(where)) from e

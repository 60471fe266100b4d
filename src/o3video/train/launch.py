"""Several training processes on one run: launch checks and main-process-first setup.

A run started by ``accelerate launch`` has one process per device. Three things must then
hold, or the run trains wrong without saying so:

- the processes are the trainer's processes: :func:`check_launch` compares the world size
  the launcher announced (``WORLD_SIZE``, set by torchrun under ``--multi_gpu``) with the one
  the ``TrainingArguments`` found, and refuses ``accelerate launch --cpu --num_processes N``
  (which starts a single process) — both were silent before: two independent trainings
  writing into one folder, or one process where N were asked for;
- shared files are made once: :func:`main_first` runs a block (build the tiny model,
  synthesize data) on the main process first, the others waiting at a barrier and then finding
  the files made (the output folder must be on a filesystem all processes see);
- the weights are loaded after the ``TrainingArguments`` exist, so that with DeepSpeed ZeRO-3
  (``zero3_init_flag``) ``from_pretrained`` partitions them across the processes as it loads
  instead of materialising the whole model in every process (:mod:`o3video.train.sft`,
  :mod:`o3video.train.rl`).

The verified launch commands (README, "Training on several processes"):

- CPU, 2 processes: ``ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2
  $(which o3video) train sft --config RECIPE``;
- GPUs: ``accelerate launch --config_file recipes/accelerate/zero3.yaml $(which o3video) ...``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from o3video.errors import O3VideoError

CPU_LAUNCH = "ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes N"
"""The launch that gives N CPU processes one training (``--cpu --num_processes N`` gives one)."""


class LaunchError(O3VideoError):
    """The processes launched do not form the training asked for."""


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def check_launch(args: Any, environ: dict[str, str] | None = None) -> None:
    """Raise :class:`LaunchError` when the launch and the trainer (``args``: the
    ``TrainingArguments``) disagree on the number of processes.

    >>> class Args: world_size = 1
    >>> check_launch(Args(), {"WORLD_SIZE": "1"})
    >>> check_launch(Args(), {"WORLD_SIZE": "2"})
    Traceback (most recent call last):
    ...
    o3video.train.launch.LaunchError: the launcher started 2 processes (WORLD_SIZE=2) but ...
    """
    env = os.environ if environ is None else environ
    world = getattr(args, "world_size", 1)
    launched = env.get("WORLD_SIZE")
    if launched is not None and int(launched) != world:
        raise LaunchError(
            f"the launcher started {launched} processes (WORLD_SIZE={launched}) but the "
            f"trainer sees a world of {world}: each process would train alone into the same "
            "output folder. On CPU, launch with "
            f"`{CPU_LAUNCH.replace(' N', ' ' + launched)}`; on GPUs, check that torch sees "
            "the GPUs (torch.cuda.is_available())"
        )
    if launched is None and _true(env.get("ACCELERATE_USE_CPU")) and env.get("MASTER_ADDR"):
        raise LaunchError(
            "`accelerate launch --cpu --num_processes N` starts one process, not N; "
            f"for N CPU processes launch with `{CPU_LAUNCH}`"
        )
    if world > 1:
        _release_at_exit()


_registered: list[bool] = []


def _release_at_exit() -> None:
    """Destroy the process group when the process exits (once per process): a process that
    finished first and exited with it alive aborted in the communication library's threads
    ("terminate called without an active exception", SIGABRT: one two-process run in eight),
    which failed the launch although training had finished."""
    if _registered:
        return
    import atexit

    def release() -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()

    atexit.register(release)
    _registered.append(True)


@contextlib.contextmanager
def main_first(args: Any, what: str) -> Iterator[None]:
    """Run the block on the main process (global rank 0) first; the others wait, then run it
    (finding what it made). One process: just runs the block."""
    if getattr(args, "world_size", 1) <= 1:
        yield
        return
    with args.main_process_first(local=False, desc=what):
        yield


@contextlib.contextmanager
def without_zero3_init() -> Iterator[None]:
    """Build a model in one process although ZeRO-3 is configured (the tiny base model, made
    by the main process alone): with the ZeRO-3 config registered, ``transformers`` builds
    every model under ``deepspeed.zero.Init``, whose collective calls wait for the other
    processes — which wait at :func:`main_first`'s barrier: a deadlock. The registration is
    lifted for the block and restored after it."""
    try:
        from transformers.integrations import deepspeed as hf_deepspeed
    except ImportError:
        yield
        return
    ref = getattr(hf_deepspeed, "_hf_deepspeed_config_weak_ref", None)
    config = ref() if ref is not None else None
    if config is None:
        yield
        return
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(config)


def is_main(args: Any) -> bool:
    """Whether this process writes the run's shared files (global rank 0)."""
    return int(getattr(args, "process_index", 0)) == 0

"""SFT then GSPO on two CPU processes (``accelerate launch``), five times in a row: no race,
each process trains on its own records, and every file is written once, by the main process.
Before: the frame cache, the tiny model and the synthetic data were made by every process at
once (a crash in about one run of three), and config, card and processor written twice.

Also: ``accelerate launch --cpu --num_processes 2``, which starts a single process, is
refused with the command that works; and under DeepSpeed ZeRO-3 (when ``deepspeed`` is
installed) the policy is partitioned as it loads. About 90 s on 2 cores."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _accelerate() -> list[str]:
    pytest.importorskip("trl")
    pytest.importorskip("accelerate")
    exe = Path(sys.executable).with_name("accelerate")
    if not exe.exists():
        pytest.skip("no accelerate launcher beside this Python")
    return [str(exe), "launch"]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", **extra)
    return env


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _read(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sft_and_gspo_on_two_cpu_processes_five_times(tmp_path: Path) -> None:
    launch = _accelerate()
    for run in range(5):
        out = tmp_path / f"run{run}"
        cmd = [*launch, "--multi_gpu", "--num_processes", "2", "--main_process_port", _port(),
               str(ROOT / "tests/multiprocess_train.py"), str(out)]  # fmt: skip
        done = subprocess.run(cmd, env=_env(ACCELERATE_USE_CPU="true"), capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, f"run {run}:\n{done.stderr[-4000:]}"
        main, other = _read(out / "log-rank0.jsonl"), _read(out / "log-rank1.jsonl")
        assert not [e for e in other if "write" in e], f"run {run}: rank 1 wrote {other}"
        writes = Counter((e["write"], e["path"]) for e in main if "write" in e)
        assert writes and max(writes.values()) == 1, f"run {run}: written twice: {writes}"
        for stage in ("sft", "rl"):
            assert (out / stage / "final" / "o3video.json").exists()
            assert (out / stage / "run.json").exists() and (out / stage / "config.yaml").exists()
            assert ("save_resolved", str(out / stage)) in writes
            assert ("write_card", str(out / stage / "final")) in writes
            assert ("synthesize", str(out / stage / "data")) in writes
            mine = {r for e in main if e.get("stage") == stage for r in e["records"]}  # type: ignore[attr-defined]
            theirs = {r for e in other if e.get("stage") == stage for r in e["records"]}  # type: ignore[attr-defined]
            assert mine and theirs and not mine & theirs, f"run {run} {stage}: {mine} {theirs}"
        assert ("build_tiny_model", str(out / "sft" / "base-model")) in writes
        shutil.rmtree(out / "sft" / "data", ignore_errors=True)  # keep tmp_path small


def test_cpu_flag_with_several_processes_is_refused(tmp_path: Path) -> None:
    launch = _accelerate()
    recipe = str(ROOT / "recipes/synthetic-tiny-sft.yaml")
    cmd = [*launch, "--cpu", "--num_processes", "2", "--main_process_port", _port(),
           "-m", "o3video.cli.main", "train", "sft", "--config", recipe,
           f"output_dir={tmp_path}", "max_steps=1"]  # fmt: skip
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "starts one process" in done.stderr + done.stdout
    assert "ACCELERATE_USE_CPU=true accelerate launch --multi_gpu" in done.stderr + done.stdout
    assert not (tmp_path / "final").exists()


def test_zero3_partitions_the_policy_as_it_loads(tmp_path: Path) -> None:
    """Every process holds none of the weights after loading (DeepSpeed partitioned them);
    with the weights loaded before the training arguments each held all of them. The tiny
    base model is built by the main process alone, outside ZeRO-3's collective init (inside
    it, the build waited for processes that waited at the barrier: a deadlock)."""
    launch = _accelerate()
    pytest.importorskip("deepspeed")
    cmd = [*launch, "--use_deepspeed", "--deepspeed_config_file",
           str(ROOT / "recipes/accelerate/zero3.json"), "--zero3_init_flag", "true",
           "--num_processes", "2", "--main_process_port", _port(),
           str(ROOT / "tests/zero3_load.py"), str(tmp_path)]  # fmt: skip
    env = _env(ACCELERATE_USE_CPU="true", DS_ACCELERATOR="cpu")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"rank"')]
    assert sorted(r["rank"] for r in rows) == [0, 1]
    assert all(r["local"] == 0 and r["full"] > 200_000 for r in rows), rows

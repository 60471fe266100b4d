"""benchmarks/gpu/check.sh: the dry run (CPU, tiny model) takes the GPU check's whole path —
random model, a LoRA SFT step and a LoRA GSPO step from the 7B LoRA recipes, RESULTS.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_check_refuses_to_run_without_a_gpu(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, str(ROOT / "benchmarks/gpu/check.py"), "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "--dry-run" in done.stderr


@pytest.mark.slow
def test_check_dry_run_passes_on_cpu(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    pytest.importorskip("peft")
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    cmd = ["bash", str(ROOT / "benchmarks/gpu/check.sh"), "--dry-run", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = (tmp_path / "RESULTS.md").read_text()
    assert "dry run on CPU" in results
    rows = [line for line in results.splitlines() if line.startswith(("| sft", "| rl"))]
    assert len(rows) == 2 and all("16 ×" in row for row in rows)

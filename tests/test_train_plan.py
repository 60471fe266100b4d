"""The memory plan (``o3video train plan``): parameter counts from ``config.json`` equal the
model's, the 7B table's weight, gradient and optimizer terms equal a hand calculation, and
on CPU the plan lands within 25 % of a real step's measured peak (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from o3video.cli.main import main
from o3video.train.config import load_config
from o3video.train.plan import GIB, ModelShape, estimate

ROOT = Path(__file__).resolve().parents[1]
QWEN_7B = ROOT.parent / "shared/reference-data/qwen/qwen2_5_vl_7b_instruct/config.json"
if not QWEN_7B.exists():  # a worktree beside the main checkout
    QWEN_7B = Path("/work/shared/reference-data/qwen/qwen2_5_vl_7b_instruct/config.json")

# Qwen2.5-VL-7B by hand, from its config.json: vocabulary V, width H, MLP width MLP, 28 layers,
# 4 KV heads of 128 (KV = 512); vision: 32 blocks of width 1280, MLP 3420, merger 4·1280 → H.
V, H, MLP, L, KV = 152064, 3584, 18944, 28, 512
TEXT = (
    V * H  # embeddings
    + L
    * ((H * H + H) + 2 * (H * KV + KV) + H * H + 3 * H * MLP + 2 * H)  # q,k,v (bias), o, MLP, norms
    + H  # final norm
    + V * H  # LM head (not tied)
)
VISION = (
    3 * 2 * 14 * 14 * 1280  # Conv3d patch embedding, no bias
    + 32
    * (
        (1280 * 3840 + 3840)
        + (1280 * 1280 + 1280)
        + 2 * (1280 * 3420 + 3420)
        + (3420 * 1280 + 1280)
        + 2 * 1280
    )
    + 1280
    + (5120 * 5120 + 5120)
    + (5120 * 3584 + 3584)  # merger
)
P = TEXT + VISION  # 8 292 166 656: the 8.29 B published for the checkpoint
LORA_16 = L * 16 * (2 * (H + H) + 2 * (H + KV) + 3 * (H + MLP))  # r·(in + out), 7 targets


def _shape_7b() -> ModelShape:
    if not QWEN_7B.exists():
        pytest.skip(f"{QWEN_7B} is absent")
    return ModelShape.from_config(json.loads(QWEN_7B.read_text()))


def test_parameter_count_of_the_tiny_model_equals_the_loaded_models(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForImageTextToText

    from o3video.models.tiny import build_tiny_model

    path = build_tiny_model(tmp_path, seed=0, hidden_size=96, num_layers=3, num_heads=6,
                            num_kv_heads=2, vision_hidden_size=48, vision_depth=3)  # fmt: skip
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    shape = ModelShape.from_config(json.loads((path / "config.json").read_text()))
    assert shape.params() == sum(p.numel() for p in model.parameters())
    assert shape.vision_params() == sum(p.numel() for p in model.model.visual.parameters())


def test_7b_terms_equal_the_hand_calculation() -> None:
    shape = _shape_7b()
    assert shape.params() == P == 8_292_166_656
    assert shape.lora_params(16, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                  "up_proj", "down_proj"], vision=False) == LORA_16  # fmt: skip
    cfg = load_config(ROOT / "recipes/qwen2.5-vl-7b-sft.yaml", stage="sft")  # bf16
    n = 8
    # bf16 weights and gradients: 2 bytes; Adam without DeepSpeed: m and v in bf16 (4 bytes);
    # with DeepSpeed: fp32 master, m and v (12 bytes); ZeRO-2 divides gradients and optimizer
    # states by the GPUs, ZeRO-3 the weights too. LoRA: a frozen bf16 base, fp32 adapters.
    expected = {
        "full": (2 * P, 2 * P, 4 * P),
        "zero2": (2 * P, 2 * P / n, 12 * P / n),
        "zero3": (2 * P / n, 2 * P / n, 12 * P / n),
        "lora": (2 * P + 4 * LORA_16, 4 * LORA_16, 8 * LORA_16),
    }
    for mode, (w, g, o) in expected.items():
        e = estimate(cfg, shape, mode, stage="sft", gpus=n)
        assert (e.weights, e.gradients, e.optimizer) == pytest.approx((w, g, o), rel=1e-12), mode


def test_plan_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    _shape_7b()
    argv = ["train", "plan", "--config", str(ROOT / "recipes/qwen2.5-vl-7b-sft.yaml"),
            "--gpus", "8", "--model-config", str(QWEN_7B)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    modes = ("full", "zero2", "zero3", "lora", "qlora")
    rows = {cells[0]: cells[1:] for cells in map(str.split, out.splitlines()) if cells[:1]
            and cells[0] in modes}  # fmt: skip
    assert set(rows) == {"full", "zero2", "zero3", "lora", "qlora"}
    assert [float(x) for x in rows["zero3"][:3]] == pytest.approx(
        [2 * P / 8 / GIB, 2 * P / 8 / GIB, 12 * P / 8 / GIB], abs=0.05
    )
    assert [float(x) for x in rows["full"][:3]] == pytest.approx(
        [2 * P / GIB, 2 * P / GIB, 4 * P / GIB], abs=0.05
    )
    assert "8.292 B" in out and rows["zero3"][-1] == "yes"
    # One GPU of 24 GB: full fine-tuning does not fit, and the plan says what would.
    assert main([*argv[:4], "--gpu-memory", "24", "--model-config", str(QWEN_7B)]) == 0
    small = capsys.readouterr().out
    assert "QLoRA fits" in small or "LoRA fits" in small
    full = next(line for line in small.splitlines() if line.startswith("full"))
    assert full.split()[-1] == "no"


@pytest.mark.slow
def test_plan_is_within_25_percent_of_a_measured_cpu_step(tmp_path: Path) -> None:
    """benchmarks/plan_memory.py: peak RSS of 16 SFT steps of a 24 M-parameter tiny model
    (about 20 s) against the plan's full-fine-tuning total for one CPU process."""
    pytest.importorskip("trl")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/plan_memory.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["steps"] == 16 and result["params"] > 20_000_000
    assert result["planned_mib"] == pytest.approx(result["measured_mib"], rel=0.25), result

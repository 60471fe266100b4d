"""LoRA on the tiny recipes (CPU): SFT saves an adapter with its card, ``o3video ask`` answers
through it, ``o3video train merge`` gives the logits of base + adapter, and GSPO trains a new
adapter on the merged model. QLoRA and misuse fail with errors that say what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from o3video.cli.main import main
from o3video.train.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
LORA = "model.lora={r: 4, alpha: 8, dropout: 0.0}"

pytest.importorskip("trl")
pytest.importorskip("peft")


def test_lora_sft_ask_merge_then_lora_gspo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    from o3video.models.load import load_model

    sft, merged, rl = tmp_path / "sft", tmp_path / "merged", tmp_path / "rl"
    recipe = str(ROOT / "recipes/synthetic-tiny-sft.yaml")
    assert main(["train", "sft", "--config", recipe, f"output_dir={sft}", "max_steps=3", LORA]) == 0
    final = sft / "final"
    assert (final / "adapter_model.safetensors").exists()
    assert not (final / "model.safetensors").exists()  # the adapter only
    saved = load_file(str(final / "adapter_model.safetensors"))
    assert saved and all("language_model.layers" in k for k in saved)  # vision tower frozen
    assert any(k.endswith("lora_B.weight") and v.abs().max() > 0 for k, v in saved.items())
    card = json.loads((final / "o3video.json").read_text())
    base = sft / "base-model"
    assert card["adapter"]["base"] == str(base.resolve()) and card["adapter"]["r"] == 4
    assert card["training"][0]["config"]["model"]["lora"]["r"] == 4

    video = sorted((sft / "data" / "videos").glob("*.mp4"))[0]
    argv = ["ask", str(video), "Where is the red circle?", "--model", str(final),
            "--max-frames", "4", "--max-new-tokens", "6", "--out", str(tmp_path / "ask"),
            "--json"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    answer = json.loads(capsys.readouterr().out)
    assert isinstance(answer["text"], str) and answer["model"] == f"hf:{final}"

    capsys.readouterr()
    assert main(["train", "merge", str(final), "--out", str(merged)]) == 0
    assert (merged / "model.safetensors").exists() and (merged / "o3video.json").exists()
    assert json.loads((merged / "o3video.json").read_text())["merged_from"]["base"] == str(
        base.resolve()
    )
    ids = torch.tensor([[1, 5, 17, 42, 99, 3, 250, 7]])
    with torch.no_grad():
        adapted = load_model(str(final), dtype=torch.float32).eval()(input_ids=ids).logits
        plain = AutoModelForImageTextToText.from_pretrained(merged, dtype=torch.float32)
        merged_logits = plain.eval()(input_ids=ids).logits
        base_logits = AutoModelForImageTextToText.from_pretrained(base).eval()(input_ids=ids).logits
    assert (adapted - base_logits).abs().max() > 1e-4  # the adapter changes the model
    assert torch.allclose(merged_logits, adapted, atol=1e-5, rtol=0)

    gspo = str(ROOT / "recipes/synthetic-tiny-gspo.yaml")
    assert main(["train", "rl", "--config", gspo, f"model.path={merged}", f"output_dir={rl}",
                 "max_steps=1", "max_completion_length=8", LORA]) == 0  # fmt: skip
    rl_adapter = json.loads((rl / "final" / "adapter_config.json").read_text())
    assert rl_adapter["base_model_name_or_path"] == str(merged.resolve())
    # A new adapter on top of an adapter would be saved against the wrong base: refused.
    with pytest.raises(ConfigError, match="train merge"):
        from o3video.train.sft import load_policy

        cfg = load_config(None, [f"model.path={final}", LORA])
        load_policy(cfg.model, tmp_path / "x")


def test_quantization_needs_lora_and_bitsandbytes(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from o3video.train.lora import quantization_config

    with pytest.raises(ConfigError, match=r"needs model\.lora"):
        load_config(None, ["model.quantization=4bit"])
    cfg = load_config(None, ["model.quantization=4bit", LORA])
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name)
    )
    with pytest.raises(ConfigError, match="bitsandbytes"):
        quantization_config(cfg.model)


def test_lora_targets_and_vision_switch() -> None:
    import re

    from o3video.train.lora import target_pattern

    names = ["model.language_model.layers.3.self_attn.q_proj",
             "model.language_model.layers.3.mlp.down_proj",
             "model.visual.blocks.0.attn.qkv", "model.visual.blocks.0.mlp.gate_proj",
             "model.visual.merger.mlp.0", "lm_head"]  # fmt: skip
    text_only = target_pattern(load_config(None, [LORA]).model)
    assert [n for n in names if re.fullmatch(text_only, n)] == names[:2]
    both = target_pattern(load_config(None, [LORA, "model.lora.vision=true"]).model)
    assert [n for n in names if re.fullmatch(both, n)] == names[:4]


def test_lora_run_resumes_from_its_adapter_checkpoint(tmp_path: Path) -> None:
    """The Trainer loads an adapter checkpoint itself (the weight-name workaround of full
    checkpoints is skipped): the resumed step starts from the checkpoint's adapter."""
    import torch
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    from o3video.train.sft import build_sft_trainer, train_and_save

    recipe = ROOT / "recipes/synthetic-tiny-sft.yaml"
    base = [f"output_dir={tmp_path}", "save_steps=1", LORA]
    assert main(["train", "sft", "--config", str(recipe), *base, "max_steps=2"]) == 0
    saved = load_file(str(tmp_path / "checkpoint-2" / "adapter_model.safetensors"))
    seen: dict[str, Any] = {}

    class FirstStep(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if "step" not in seen:
                seen["step"] = state.global_step
                seen["weights"] = {k: v.clone() for k, v in kw["model"].state_dict().items()
                                   if "lora_" in k}  # fmt: skip

    trainer = build_sft_trainer(load_config(recipe, [*base, "max_steps=3"], stage="sft"),
                                callbacks=[FirstStep()])  # fmt: skip
    train_and_save(trainer, tmp_path, resume=True)
    assert seen["step"] == 2 and trainer.state.global_step == 3
    live = {k.replace(".default.", "."): v for k, v in seen["weights"].items()}
    assert set(live) == set(saved)
    assert all(torch.equal(live[k], saved[k]) for k in saved)

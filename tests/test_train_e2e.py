"""End to end: ``o3video train sft`` then ``o3video train rl`` on the tiny synthetic recipes,
and ``o3video.ask.ask`` loads the RL checkpoint and answers (about 10 s on 2 CPU cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from o3video.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def test_sft_then_gspo_then_ask(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    from o3video.ask import ask

    sft_out, rl_out = tmp_path / "sft", tmp_path / "rl"
    assert (
        main(
            [
                "train",
                "sft",
                "--config",
                str(ROOT / "recipes/synthetic-tiny-sft.yaml"),
                "max_steps=2",
                f"output_dir={sft_out}",
            ]
        )
        == 0
    )
    assert (sft_out / "final" / "model.safetensors").exists()
    assert json.loads((sft_out / "run.json").read_text())["stage"] == "sft"
    assert (
        main(
            [
                "train",
                "rl",
                "--config",
                str(ROOT / "recipes/synthetic-tiny-gspo.yaml"),
                f"model.path={sft_out / 'final'}",
                "max_steps=1",
                f"output_dir={rl_out}",
            ]
        )
        == 0
    )
    final = rl_out / "final"
    assert (final / "model.safetensors").exists() and (rl_out / "config.yaml").exists()
    # Each final model carries its card: the frame budget and world of its data, and every
    # stage that made it (the RL card starts with the SFT stage it started from).
    sft_card = json.loads((sft_out / "final" / "o3video.json").read_text())
    card = json.loads((final / "o3video.json").read_text())
    assert card["video"]["max_frames"] == 4 and card["video"]["max_pixels"] == 12544
    assert card["world"] == {} and sft_card["world"] == {}  # the recipe's world: the defaults
    assert [s["stage"] for s in card["training"]] == ["sft", "rl"]
    assert card["training"][0] == sft_card["training"][0]
    rl_stage = card["training"][1]
    assert rl_stage["steps"] == 1 and rl_stage["data_seed"] == 0 and rl_stage["seed"] == 0
    assert rl_stage["git_dirty"] in (True, False, None)
    assert rl_stage["train_runtime_s"] > 0 and rl_stage["wall_s"] >= rl_stage["train_runtime_s"]
    assert rl_stage["config"]["model"]["path"] == str(sft_out / "final")
    assert sft_card["training"][0]["steps"] == 2
    assert sft_card["training"][0]["resumed_from_step"] is None
    video = sorted((rl_out / "data" / "videos").glob("*.mp4"))[0]
    answer = ask(video, "Where is the red circle?", model=final, max_frames=4, max_new_tokens=8)
    assert isinstance(answer.text, str)


def test_sft_resumes_from_its_last_checkpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("trl")
    recipe = str(ROOT / "recipes/synthetic-tiny-sft.yaml")
    out = tmp_path / "sft"
    base = ["train", "sft", "--config", recipe, f"output_dir={out}", "save_steps=1"]
    assert main([*base, "max_steps=2"]) == 0
    assert (out / "checkpoint-2").is_dir()
    # Each checkpoint carries the run's card: evaluated, it is shown frames as it trained.
    card = json.loads((out / "checkpoint-1" / "o3video.json").read_text())
    final = json.loads((out / "final" / "o3video.json").read_text())
    assert (card["video"], card["protocol"]) == (final["video"], final["protocol"])
    assert card["training"][-1]["steps"] == 1 and final["training"][-1]["steps"] == 2
    # A longer run in the same folder picks up at step 2 and trains only step 3.
    with caplog.at_level("INFO", logger="o3video.train.sft"):
        assert main([*base, "max_steps=3"]) == 0
    assert f"resuming from {out / 'checkpoint-2'}" in caplog.text
    assert f"weights of {out / 'checkpoint-2'} loaded" in caplog.text
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    logged_steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert logged_steps.count(3) <= 1 and 1 in logged_steps  # steps 1-2 kept, not redone
    # The card says its times cover only the steps after the checkpoint.
    entry = json.loads((out / "final" / "o3video.json").read_text())["training"][-1]
    assert entry["steps"] == 3 and entry["resumed_from_step"] == 2


def test_rl_scores_a_held_out_probe_set_every_k_steps(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    from o3video.train.config import load_config
    from o3video.train.dataset import source_from_config
    from o3video.train.rl import build_rl_trainer

    out = tmp_path / "rl"
    overrides = [
        "model.path=tiny:0",
        "max_steps=2",
        "rl.steps_per_generation=1",
        "rl.max_completion_length=8",
        "rl.probe_every=1",
        "rl.probe_items=2",
        f"output_dir={out}",
    ]
    assert main(["train", "rl", "--config", str(ROOT / "recipes/synthetic-tiny-gspo.yaml"),
                 *overrides]) == 0  # fmt: skip
    lines = [json.loads(x) for x in (out / "probe.jsonl").read_text().splitlines()]
    # Before the first step and after each of the two.
    assert [x["step"] for x in lines] == [0, 1, 2]
    names = {"answer", "format", "temporal_interval", "temporal_point", "spatial"}
    for line in lines:
        assert set(line["rewards"]) == names
        assert all(0.0 <= v <= 1.0 for v in line["rewards"].values())
        assert line["total"] == pytest.approx(sum(line["rewards"].values()))
        assert len(line["completions"]) == 2
        for name, values in line["items"].items():
            assert len(values) == 2
            assert line["rewards"][name] == pytest.approx(sum(values) / 2)
    assert {x["progress"] for x in lines} == {1.0}  # one yardstick: the final sigma
    # The probe records are never trained on: the training rows start after them.
    config = load_config(ROOT / "recipes/synthetic-tiny-gspo.yaml", overrides, stage="rl")
    trainer = build_rl_trainer(config, source_from_config(config.data, out, stage="rl"))
    positions = trainer.train_dataset.data.column("position").to_pylist()
    assert positions == list(range(2, len(positions) + 2))
    state = [e for e in trainer.state.log_history if "probe/total" in e]
    assert state == []  # a fresh trainer: nothing logged yet


def test_the_probe_can_come_from_a_separate_held_out_file(tmp_path: Path) -> None:
    """``rl.probe_stgr``: the probe is the front of that file (all of it when shorter than
    ``rl.probe_items``) and every record of the training file trains; the training file
    itself as the probe file is refused."""
    pytest.importorskip("trl")
    from o3video.train.config import ConfigError, load_config
    from o3video.train.dataset import source_from_config
    from o3video.train.rl import build_rl_trainer

    recipe = ROOT / "recipes/synthetic-tiny-gspo.yaml"
    out = tmp_path / "rl"
    base = ["model.path=tiny:0", "rl.steps_per_generation=1", "rl.max_completion_length=8",
            f"output_dir={out}"]  # fmt: skip
    config = load_config(recipe, base, stage="rl")
    source = source_from_config(config.data, out, stage="rl")
    rl_file = out / "data" / "stgr_rl.json"
    probe_file = tmp_path / "probe.json"
    probe_file.write_text(json.dumps(json.loads(rl_file.read_text())[:3]))
    overrides = [*base, "max_steps=1", "rl.probe_every=1", "rl.probe_items=5",
                 f"rl.probe_stgr={probe_file}",
                 f"rl.probe_media_root={rl_file.parent}"]  # fmt: skip
    assert main(["train", "rl", "--config", str(recipe), *overrides]) == 0
    lines = [json.loads(x) for x in (out / "probe.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 1]
    assert all(len(x["completions"]) == 3 for x in lines)
    trainer = build_rl_trainer(load_config(recipe, overrides, stage="rl"), source)
    positions = trainer.train_dataset.data.column("position").to_pylist()
    assert positions == list(range(len(source)))
    refused = [*overrides[:-2], f"rl.probe_stgr={rl_file}"]
    with pytest.raises(ConfigError, match=r"rl\.probe_stgr is the training file"):
        build_rl_trainer(load_config(recipe, refused, stage="rl"), source)

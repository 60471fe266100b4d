"""Training config: defaults → YAML → overrides, unknown keys, saved config, shipped recipes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from o3video.cli.main import main
from o3video.train.config import ConfigError, RunConfig, load_config, save_resolved

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def test_defaults_are_off_policy_gspo() -> None:
    cfg = RunConfig()
    assert cfg.rl.importance_sampling_level == "sequence"
    assert cfg.rl.steps_per_generation > cfg.rl.gradient_accumulation_steps
    assert (cfg.sft.max_grad_norm, cfg.sft.learning_rate) == (5.0, 1e-6)


def test_yaml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("rl:\n  learning_rate: 1e-6\n  num_generations: 8\ndata:\n  fps: 1\n")
    cfg = load_config(path, ["rl.num_generations=2", "max_steps=3", "model.path=x"], stage="rl")
    # "1e-6" is a string to YAML 1.1: coerced to the field's float.
    assert cfg.rl.learning_rate == 1e-6 and isinstance(cfg.rl.learning_rate, float)
    assert (cfg.rl.num_generations, cfg.rl.max_steps, cfg.model.path) == (2, 3, "x")
    assert cfg.data.fps == 1.0 and isinstance(cfg.data.fps, float)
    assert cfg.sft.max_steps == -1  # bare key goes to the stage's section only


def test_nested_optional_section(tmp_path: Path) -> None:
    cfg = load_config(None, ["data.synth.n=3"])
    assert cfg.data.synth is not None and (cfg.data.synth.n, cfg.data.synth.seed) == (3, 0)


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("rl:\n  lr: 0.1\n", [], "unknown key 'rl.lr' in {file}"),
        ("bogus: 1\n", [], "unknown key 'bogus' in {file}"),
        ("", ["rl.nope=1"], "unknown key 'rl.nope' in override"),
        ("", ["nope=1"], "unknown key 'nope'"),
        ("rl:\n  importance_sampling_level: seq\n", [], "'rl.importance_sampling_level' in {file}"),
        ("rl:\n  num_generations: many\n", [], "'rl.num_generations' in {file}"),
        ("", ["max_steps"], "not key=value"),
    ],
)
def test_errors_name_key_and_file(
    tmp_path: Path, text: str, overrides: list[str], message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path, overrides, stage="rl")
    assert message.format(file=path) in str(exc.value)


def test_save_resolved(tmp_path: Path) -> None:
    cfg = load_config(None, ["rl.beta=0.1"])
    save_resolved(cfg, tmp_path, stage="rl")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["rl"]["beta"] == 0.1
    assert load_config(tmp_path / "config.yaml") == cfg  # the saved config loads back
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["version"] and run["stage"] == "rl" and "git_commit" in run
    assert run["git_dirty"] in (True, False, None)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_shipped_recipe_loads(recipe: Path) -> None:
    text = recipe.read_text()
    stage = "sft" if "sft" in recipe.name else "rl"
    head = "\n".join(text.splitlines()[:4])
    assert text.startswith("#") and f"train {stage} --config recipes/{recipe.name}" in head
    cfg = load_config(recipe, stage=stage)
    for name in ("zero2.yaml", "zero3.yaml"):
        if name in text:
            acc = ROOT / "recipes" / "accelerate" / name
            assert acc.exists()
            ds = yaml.safe_load(acc.read_text())["deepspeed_config"]["deepspeed_config_file"]
            assert json.loads((ROOT / ds).read_text())["zero_optimization"]["stage"] in (2, 3)
    if "lora" in recipe.name:  # one 80 GB GPU: LoRA adapters, the plan says it fits
        from o3video.train.plan import GIB, ModelShape, estimate

        qwen = ROOT.parent / "shared/reference-data/qwen/qwen2_5_vl_7b_instruct/config.json"
        qwen = (
            qwen
            if qwen.exists()
            else Path("/work/shared") / qwen.relative_to(ROOT.parent / "shared")
        )
        train = cfg.sft if stage == "sft" else cfg.rl
        assert cfg.model.lora is not None and train.bf16 and train.gradient_checkpointing
        if qwen.exists():
            shape = ModelShape.from_config(json.loads(qwen.read_text()))
            assert estimate(cfg, shape, "lora", stage=stage).total < 80 * GIB
    elif "7b" in recipe.name:
        if stage == "sft":
            assert (cfg.sft.learning_rate, cfg.sft.max_grad_norm) == (1e-6, 5.0)
            assert cfg.sft.bf16 and cfg.sft.gradient_checkpointing
        else:
            rl = cfg.rl
            assert (rl.num_generations, rl.learning_rate, rl.beta, rl.epsilon) == (
                4,
                1e-6,
                0.04,
                0.2,
            )
            assert (rl.max_completion_length, rl.temperature, rl.top_p) == (768, 1.0, 0.95)
            assert (rl.lr_scheduler_type, rl.weight_decay) == ("cosine", 0.01)
            assert rl.use_vllm and rl.importance_sampling_level == "sequence"
            assert rl.steps_per_generation > rl.gradient_accumulation_steps


def test_cli_config_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sft:\n  lr: 1\n")
    assert main(["train", "sft", "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'sft.lr'" in err and str(path) in err


def test_cli_print_config(capsys: pytest.CaptureFixture[str]) -> None:
    recipe = ROOT / "recipes" / "synthetic-tiny-gspo.yaml"
    assert main(["train", "rl", "--config", str(recipe), "max_steps=5", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["rl"]["max_steps"] == 5


def test_synth_world_and_tiny_size_from_a_recipe(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "model:\n  tiny: {hidden_size: 96, num_layers: 3, vision_depth: 3}\n"
        "data:\n  synth:\n    n: 2\n"
        "    world: {width: 112, height: 112, num_objects: [1, 3], background: gradient}\n"
    )
    cfg = load_config(path, ["data.synth.world.duration_s=6"])
    assert (cfg.model.tiny.hidden_size, cfg.model.tiny.num_layers) == (96, 3)
    assert cfg.model.tiny.vision_depth == 3 and cfg.model.tiny.vision_hidden_size == 32
    assert cfg.data.synth is not None
    world = cfg.data.synth.world_config()
    assert (world.width, world.height, world.duration_s) == (112, 112, 6)
    assert world.num_objects == (1, 3) and world.background == "gradient"
    assert load_config(None, ["data.synth.n=1"]).data.synth.world_config().width == 224  # type: ignore[union-attr]
    # An override inside a mapping sets one key and keeps the others.
    rewards = load_config(None, ["rl.rewards.answer=2.0"]).rl.rewards
    assert rewards["answer"] == 2.0 and rewards["spatial"] == 1.0
    # An option set inside a reward given as a bare weight keeps that weight.
    rewards = load_config(
        None, ["rl.rewards.spatial=2.5", "rl.rewards.spatial.gate=none"]
    ).rl.rewards
    assert rewards["spatial"] == {"weight": 2.5, "gate": "none"} and rewards["answer"] == 1.0
    with pytest.raises(ConfigError, match=r"rl\.rewards\.spatial is 'x', not a mapping"):
        load_config(None, ["rl.rewards.spatial=x", "rl.rewards.spatial.gate=none"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.synth.world.colour=red", "unknown key 'data.synth.world.colour'"),
        ("data.synth.world.background=stripes", "data.synth.world: background must be"),
        ("data.synth.world.width=223", "data.synth.world: H.264"),
        ("model.tiny.depth=2", "unknown key 'model.tiny.depth'"),
    ],
)
def test_bad_world_or_tiny_keys_are_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_a_tiny_base_model_is_not_silently_reused_with_another_size(tmp_path: Path) -> None:
    from o3video.train.config import ModelConfig, TinyModelConfig
    from o3video.train.sft import resolve_model_path

    small = ModelConfig(path="tiny:0", tiny=TinyModelConfig(hidden_size=32))
    path = resolve_model_path(small, tmp_path)
    assert resolve_model_path(small, tmp_path) == path  # the same one: reused
    with pytest.raises(ConfigError, match="holds a tiny model built as"):
        resolve_model_path(ModelConfig(path="tiny:1", tiny=small.tiny), tmp_path)


def test_data_tasks_keeps_only_those_records(tmp_path: Path) -> None:
    from o3video.train.dataset import source_from_config

    world = "{width: 56, height: 56, duration_s: 1, fps: 8, num_objects: [3, 3], size_px: [12, 20]}"
    cfg = load_config(None, ["data.synth.n=4", f"data.synth.world={world}"])
    every = source_from_config(cfg.data, tmp_path, stage="sft")
    assert len({r.task for r in every.records}) > 1
    cfg = load_config(
        None, ["data.synth.n=4", f"data.synth.world={world}", "data.tasks=[visual QA]"]
    )
    assert cfg.data.tasks == ["visual QA"]
    only = source_from_config(cfg.data, tmp_path, stage="sft")  # the corpus is reused
    assert only.records and {r.task for r in only.records} == {"visual QA"}
    assert len(only) == sum(r.task == "visual QA" for r in every.records)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.tasks=[visual]", r"data.tasks: unknown task\(s\) \['visual'\]; known: visual QA"),
        ("data.tasks=[]", "data.tasks: no task named"),
        ("data.tasks=visual QA", "'data.tasks' .* expected a list of strings"),
    ],
)
def test_unknown_data_tasks_are_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_git_dirty_says_whether_tracked_files_changed(tmp_path: Path) -> None:
    import subprocess

    from o3video.train.config import git_commit, git_dirty

    assert git_dirty(tmp_path) is None and git_commit(tmp_path) is None  # not a checkout
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.txt").write_text("a\n")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], check=True)
    (tmp_path / "new.txt").write_text("untracked files do not count\n")
    assert git_dirty(tmp_path) is False and git_commit(tmp_path)
    (tmp_path / "a.txt").write_text("b\n")
    assert git_dirty(tmp_path) is True


def test_data_protocol_reaches_the_examples_the_cache_key_and_the_card(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from o3video.errors import DataError
    from o3video.protocols import card_protocol
    from o3video.train.card import write_training_card
    from o3video.train.dataset import source_from_config

    assert RunConfig().data.protocol == "o3video"
    world = "{width: 56, height: 56, duration_s: 1, fps: 8, num_objects: [3, 3], size_px: [12, 20]}"
    synth = ["data.synth.n=4", f"data.synth.world={world}"]
    # The synthetic SFT corpus holds temporal MCQ and V-STaR protocol records: the reference
    # SFT stage has no prompt for either, and this is said before any training.
    cfg = load_config(None, [*synth, "data.protocol=reference-sft"])
    assert cfg.data.protocol == "reference-sft"
    with pytest.raises(DataError, match=r"of task 'temporal QA \(MCQ\)'.*data\.tasks") as exc:
        source_from_config(cfg.data, tmp_path, stage="sft")
    assert exc.value.field == "task"
    tasks = "data.tasks=[temporal QA, General video QA Free-form, visual QA]"
    ours = source_from_config(load_config(None, [*synth, tasks]).data, tmp_path, stage="sft")
    cfg = load_config(None, [*synth, tasks, "data.protocol=reference-sft"])
    ref = source_from_config(cfg.data, tmp_path, stage="sft")
    assert ref.protocol == "reference-sft" and len(ref) == len(ours) > 0
    i = next(k for k, r in enumerate(ref.records) if r.task == "temporal QA")
    assert ref.key(i) != ours.key(i)
    texts = [t["text"] for t in ref.sft_row(i)["prompt"][1]["content"] if t["type"] == "text"]
    assert texts[-1].startswith("Question: ") and texts[0].endswith(": ")
    assert not texts[0].endswith("s: ")  # the SFT stage's labels have no "s"
    assert ref.sft_row(i)["completion"][0]["content"][0]["text"].endswith(
        f"<answer>{ref.records[i].answer}</answer>"
    )
    final = tmp_path / "final"
    final.mkdir()
    state = SimpleNamespace(log_history=[], global_step=1)
    write_training_card(final, cfg, "sft", state, wall_s=None)
    assert json.loads((final / "o3video.json").read_text())["protocol"] == "reference-sft"
    assert card_protocol(final) == "reference-sft"


def test_unknown_data_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"'data.protocol' .* one of \('o3video', 'reference'"):
        load_config(None, ["data.protocol=paper"])


def test_the_example_cache_key_changes_with_everything_that_shapes_an_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached example is reused only for the same STGR content, frame budget (all of it)
    and package version: after a change to the data or to the prompt code, nothing stale."""
    import o3video
    from o3video.models.card import VideoSettings
    from o3video.train.dataset import ExampleSource

    records = [{"task": "temporal QA", "question": "When?", "answer": "[0.5, 1.5]",
                "video_path": "v.mp4", "source": "s"}]  # fmt: skip
    stgr = tmp_path / "stgr.json"
    stgr.write_text(json.dumps(records))
    from o3video.data.load import load_stgr

    loaded = list(load_stgr(stgr, tmp_path, check_media=False).records)

    def key(**kw: Any) -> str:
        return ExampleSource(loaded, tmp_path, stgr_path=stgr, **kw).key(0)

    first = key()
    assert key() == first
    assert key(video=VideoSettings(min_pixels=8 * 28 * 28)) != first
    assert key(max_frames=8) != first and key(protocol="reference") != first
    monkeypatch.setattr(o3video, "__version__", "0.0.0-other")
    assert key() != first
    monkeypatch.undo()
    stgr.write_text(json.dumps(records) + "\n")  # same records, other bytes
    assert key() != first
    assert RunConfig().data.video == VideoSettings(max_frames=16, max_pixels=128 * 28 * 28)

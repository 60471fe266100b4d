"""One SFT and one GSPO step on the tiny random Qwen2.5-VL with synthetic data (CPU).

SFT: only the assistant reply carries labels (SPEC §6: the reference trained on the prompt).
RL: with ``steps_per_generation > gradient_accumulation_steps`` the rollout batch is reused
after an optimizer step, so the sequence importance ratio leaves 1 and GSPO's loss differs
from GRPO's on the same batch (SPEC §6: the reference was always on-policy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from o3video.data.synthetic import synthesize  # noqa: E402
from o3video.train.config import RunConfig, load_config  # noqa: E402
from o3video.train.dataset import ExampleSource, source_from_config  # noqa: E402

TINY = ["data.max_frames=2", "data.min_frames=2", "data.max_pixels=12544", "data.limit=4"]


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    synthesize(out, 2, seed=0)
    return out


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from o3video.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0)


def _config(stage: str, synth: Path, tiny: Path, out: Path, *extra: str) -> RunConfig:
    return load_config(
        None,
        [
            f"output_dir={out}",
            f"model.path={tiny}",
            f"data.stgr={synth / f'stgr_{stage}.json'}",
            *TINY,
            f"{stage}.learning_rate=0.01",
            f"{stage}.save_steps=1000",
            *extra,
        ],
        stage=stage,  # type: ignore[arg-type]
    )


def _params(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _changed(before: dict[str, Any], model: Any) -> int:
    return sum(not torch.equal(before[n], p) for n, p in model.named_parameters())


def test_frames_decoded_once(synth_dir: Path, tiny_dir: Path, tmp_path: Path) -> None:
    cfg = _config("rl", synth_dir, tiny_dir, tmp_path)
    source = source_from_config(cfg.data, tmp_path, stage="rl")
    for _ in range(3):
        source.rl_row(1)
    assert source.decodes == 1
    # Every row: each video is decoded once, however many records (tasks) it has.
    for i in range(len(source)):
        source.rl_row(i)
    videos = {r.video_path for r in source.records if hasattr(r, "video_path")}
    assert len(videos) < len(source) - len(videos)  # several records a video: the case at hand
    assert source.decodes == len(videos)
    cached = load_config(
        None,
        [*TINY, f"data.stgr={synth_dir / 'stgr_rl.json'}", f"data.cache_dir={tmp_path / 'cache'}"],
    )
    first = source_from_config(cached.data, tmp_path, stage="rl")
    first.rl_row(0)
    again = source_from_config(cached.data, tmp_path, stage="rl")
    row = again.rl_row(0)
    assert again.decodes == 0 and row["task"] == first.rl_row(0)["task"]


def test_decoded_frames_are_bounded_by_bytes(
    synth_dir: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    """The per-video frame cache keeps at most ``video_bytes`` of frames (least recently used
    out): with room for one clip, going back to an evicted video decodes it again."""
    cfg = _config("rl", synth_dir, tiny_dir, tmp_path, "data.limit=null")
    source = source_from_config(cfg.data, tmp_path, stage="rl")  # both videos
    first_record: dict[str, int] = {}  # video -> its first record
    for i, r in enumerate(source.records):
        if getattr(r, "video_path", None):
            first_record.setdefault(str(r.video_path), i)
    a, b = list(first_record.values())[:2]
    one = source.example(a).clip.frames.nbytes
    small = ExampleSource(source.records, source.media_root, min_frames=2, max_frames=2,
                          max_pixels=12544, memory_items=0, video_bytes=one)  # fmt: skip
    for i in (a, a, b, b, a):
        small.example(i)
    assert small.decodes == 3 and len(small._clips) == 1  # a, b, then a again
    roomy = ExampleSource(source.records, source.media_root, min_frames=2, max_frames=2,
                          max_pixels=12544, memory_items=0)  # fmt: skip
    for i in (a, b, a, b):
        roomy.example(i)
    assert roomy.decodes == 2


def test_sft_labels_only_the_assistant_reply_and_step_changes_weights(
    synth_dir: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    from o3video.train.sft import build_sft_trainer

    cfg = _config(
        "sft", synth_dir, tiny_dir, tmp_path, "sft.max_steps=1", "sft.gradient_checkpointing=false"
    )
    trainer = build_sft_trainer(cfg)
    rows = [trainer.train_dataset[i] for i in range(2)]
    batch = trainer.data_collator([dict(r) for r in rows])
    tok = trainer.processing_class.tokenizer
    for k, row in enumerate(rows):
        ids, labels = batch["input_ids"][k], batch["labels"][k]
        labelled = (labels != -100).nonzero().flatten()
        first, last = int(labelled[0]), int(labelled[-1])
        # Everything before the reply (system prompt, frames, question, the assistant
        # header) is -100; every token from the reply through <|im_end|> is labelled.
        assert tok.decode(ids[:first]).endswith("<|im_start|>assistant\n")
        assert bool((labels[:first] == -100).all())
        assert bool((labels[first : last + 1] == ids[first : last + 1]).all())
        target = row["completion"][0]["content"][0]["text"]
        assert tok.decode(ids[first : last + 1]).startswith(target)
        assert "<|im_end|>" in tok.decode(ids[first : last + 1])
    before = _params(trainer.model)
    trainer.train()
    assert _changed(before, trainer.model) > 0


def test_freeze_vision_keeps_the_tower_and_trains_the_rest(
    synth_dir: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    """``model.freeze_vision``: after SFT steps every ``model.visual`` weight is as loaded,
    and the language model's weights moved."""
    from o3video.train.sft import build_sft_trainer

    cfg = _config("sft", synth_dir, tiny_dir, tmp_path, "sft.max_steps=2",
                  "sft.gradient_checkpointing=false", "model.freeze_vision=true")  # fmt: skip
    trainer = build_sft_trainer(cfg)
    before = _params(trainer.model)
    trainer.train()
    moved = {n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p)}
    tower = {n for n, _ in trainer.model.named_parameters() if n.startswith("model.visual.")}
    assert tower and not moved & tower
    assert any(n.startswith("model.language_model.") for n in moved)


def test_vision_lr_scale_trains_the_tower_at_its_fraction_of_the_rate(
    synth_dir: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    """``model.vision_lr_scale``: the optimizer holds the tower in groups of their own at the
    scaled rate, every other weight at the recipe's, through the schedule; the tower still
    trains, and its first step (Adam: about the rate per weight) is smaller than at scale 1."""
    from o3video.train.sft import build_sft_trainer

    def first_step(scale: float, out: str) -> tuple[Any, float]:
        cfg = _config("sft", synth_dir, tiny_dir, tmp_path / out, "sft.max_steps=1",
                      "sft.gradient_checkpointing=false", "sft.warmup_steps=0",
                      "sft.lr_scheduler_type=constant", "sft.weight_decay=0.0",
                      f"model.vision_lr_scale={scale}")  # fmt: skip
        trainer = build_sft_trainer(cfg)
        before = _params(trainer.model)
        trainer.train()
        moved = max(
            float((p.detach() - before[n]).abs().max())
            for n, p in trainer.model.named_parameters()
            if n.startswith("model.visual.")
        )
        return trainer, moved

    trainer, scaled_move = first_step(0.1, "scaled")
    tower = {id(p) for p in trainer.model.model.visual.parameters()}
    rate = trainer.args.learning_rate
    groups = trainer.optimizer.param_groups
    assert {id(p) for g in groups for p in g["params"]} == {
        id(p) for p in trainer.model.parameters() if p.requires_grad
    }
    for g in groups:
        inside = {id(p) in tower for p in g["params"]}
        assert len(inside) == 1  # a group is all tower or none of it
        assert g["lr"] == pytest.approx(rate * 0.1 if inside == {True} else rate)
    assert any(id(p) in tower for g in groups for p in g["params"])
    _, full_move = first_step(1.0, "full")
    assert 0 < scaled_move < 0.5 * full_move


def test_the_rl_trainer_scales_the_tower_rate_too(
    synth_dir: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    from o3video.train.rl import build_rl_trainer

    cfg = _config("rl", synth_dir, tiny_dir, tmp_path, "rl.max_steps=1",
                  "model.vision_lr_scale=0.25")  # fmt: skip
    trainer = build_rl_trainer(cfg, reward_funcs=[_reward])
    optimizer = trainer.create_optimizer()
    tower = {id(p) for p in trainer.model.model.visual.parameters()}
    rate = trainer.args.learning_rate
    rates = {
        (id(g["params"][0]) in tower, round(g["lr"] / rate, 9))
        for g in optimizer.param_groups
        if g["params"]
    }
    assert rates == {(False, 1.0), (True, 0.25)}


def test_vision_lr_scale_is_checked() -> None:
    from o3video.train.config import ConfigError

    for bad in ("0", "-1", "true"):
        with pytest.raises(ConfigError, match=r"model\.vision_lr_scale"):
            load_config(None, [f"model.vision_lr_scale={bad}"], stage="sft")
    with pytest.raises(ConfigError, match=r"with model\.freeze_vision"):
        load_config(None, ["model.vision_lr_scale=0.1", "model.freeze_vision=true"], stage="sft")
    with pytest.raises(ConfigError, match=r"with model\.lora"):
        load_config(None, ["model.vision_lr_scale=0.1", "model.lora.r=4"], stage="sft")
    assert load_config(None, ["model.vision_lr_scale=0.1"], stage="rl").model.vision_lr_scale == 0.1


def test_freeze_vision_is_refused_with_vision_adapters() -> None:
    from o3video.train.config import ConfigError

    with pytest.raises(ConfigError, match=r"model\.freeze_vision with model\.lora\.vision"):
        load_config(None, ["model.freeze_vision=true", "model.lora.vision=true"], stage="sft")


def _reward(completions: list[Any], **columns: Any) -> list[float]:
    """A trivial reward: length of the completion text mod 5 (varies across a group)."""
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    assert len(columns["task"]) == len(texts)
    return [float(len(t) % 5) for t in texts]


def _recording_trainer() -> type:
    from trl import GRPOTrainer

    class RecordingGRPOTrainer(GRPOTrainer):  # type: ignore[misc]
        """Records the sequence ratio exp(mean(log π_θ − log π_old)) of every loss call."""

        ratios: list[Any]

        def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Any:
            captured: dict[str, Any] = {}
            original = self._get_per_token_logps_and_entropies

            def spy(*args: Any, **kwargs: Any) -> Any:
                out = original(*args, **kwargs)
                captured["logps"] = out[0]
                return out

            self._get_per_token_logps_and_entropies = spy
            try:
                loss = super()._compute_loss(model, inputs)
            finally:
                del self._get_per_token_logps_and_entropies
            old, mask = inputs.get("old_per_token_logps"), inputs["completion_mask"]
            if old is not None:
                delta = ((captured["logps"].detach() - old) * mask).sum(-1)
                self.ratios.append(torch.exp(delta / mask.sum(-1).clamp(min=1)))
            return loss

    return RecordingGRPOTrainer


def test_gspo_off_policy_ratio_and_grpo_differs(
    synth_dir: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    from o3video.train.rl import build_rl_trainer

    cfg = _config(
        "rl",
        synth_dir,
        tiny_dir,
        tmp_path,
        "rl.max_steps=2",
        "rl.steps_per_generation=2",
        "rl.gradient_accumulation_steps=1",
        "rl.num_generations=2",
        "rl.per_device_train_batch_size=2",
        "rl.max_completion_length=8",
        "rl.beta=0.0",
    )
    trainer = build_rl_trainer(cfg, reward_funcs=[_reward], trainer_cls=_recording_trainer())
    trainer.ratios = []
    assert trainer.args.importance_sampling_level == "sequence"
    before = _params(trainer.model)
    trainer.train()
    assert _changed(before, trainer.model) > 0
    # Step 1 is on-policy (ratio 1); step 2 reuses the rollout after an update (ratio ≠ 1).
    assert len(trainer.ratios) == 2
    assert torch.allclose(trainer.ratios[0], torch.ones_like(trainer.ratios[0]), atol=1e-5)
    assert float((trainer.ratios[1] - 1).abs().max()) > 1e-4
    inputs = trainer._buffered_inputs[1]
    losses = {}
    for level in ("sequence", "token"):
        trainer.importance_sampling_level = level
        with torch.no_grad():
            losses[level] = float(trainer._compute_loss(trainer.model, inputs))
    assert losses["sequence"] != pytest.approx(losses["token"], abs=1e-7)


def test_checkpoint_weights_are_loaded_back_under_their_model_names(tmp_path: Path) -> None:
    """The saved file uses the original names; a plain load_state_dict matches none of them
    (what Trainer's resume did), load_checkpoint_weights restores every weight."""
    import torch
    from safetensors.torch import load_file
    from transformers import Qwen2_5_VLForConditionalGeneration

    from o3video.models.tiny import build_tiny_model
    from o3video.train.sft import load_checkpoint_weights

    path = build_tiny_model(tmp_path / "a", seed=1)
    trained = Qwen2_5_VLForConditionalGeneration.from_pretrained(path)
    fresh = Qwen2_5_VLForConditionalGeneration.from_pretrained(build_tiny_model(tmp_path / "b"))
    raw = load_file(str(path / "model.safetensors"))
    result = fresh.load_state_dict(raw, strict=False)
    assert len(result.missing_keys) > len(raw) // 2  # the names do not match
    load_checkpoint_weights(fresh, path)
    for (name, a), b in zip(trained.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_rollouts_cannot_sample_vision_tokens(
    synth_dir: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    # A sampled <|vision_start|> makes the policy's 3D rotary positions count a frame that has
    # no pixels: the loss forward then fails with a shape error, mid-training.
    from o3video.train.rl import VISION_TOKENS, build_rl_trainer

    cfg = _config("rl", synth_dir, tiny_dir, tmp_path, "rl.max_steps=1")
    trainer = build_rl_trainer(cfg, reward_funcs=[_reward])
    vocab = trainer.processing_class.tokenizer.get_vocab()
    wanted = {vocab[t] for t in VISION_TOKENS if t in vocab}
    assert {vocab["<|vision_start|>"], vocab["<|image_pad|>"], vocab["<|video_pad|>"]} <= wanted
    assert set(trainer.generation_config.suppress_tokens) == wanted


def test_gspo_step_with_prompts_of_different_lengths(
    synth_dir: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    # Rollout prompts are left-padded; the loss forward re-processes them for the vision
    # inputs, whose image-token map must mark exactly the image tokens of the padded ids.
    from trl import GRPOTrainer

    from o3video.train.rl import build_rl_trainer

    class Checking(GRPOTrainer):
        seen: list[tuple[Any, Any, Any]]

        def _get_per_token_logps_and_entropies(  # type: ignore[no-untyped-def]
            self, model, input_ids, attention_mask, *args, **kwargs
        ):
            self.seen.append((input_ids, attention_mask, kwargs.get("mm_token_type_ids")))
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, *args, **kwargs
            )

    cfg = _config(
        "rl",
        synth_dir,
        tiny_dir,
        tmp_path,
        "data.limit=8",
        "rl.max_steps=2",
        "rl.steps_per_generation=1",
        "rl.gradient_accumulation_steps=1",
        "rl.num_generations=2",
        "rl.per_device_train_batch_size=8",
        "rl.max_completion_length=4",
    )
    trainer = build_rl_trainer(cfg, reward_funcs=[_reward], trainer_cls=Checking)
    trainer.seen = []
    trainer.train()
    assert trainer.state.global_step == 2
    image_id = trainer.processing_class.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    padded = 0
    for ids, mask, mm in trainer.seen:
        assert mm is not None and mm.shape == ids.shape
        assert torch.equal(mm == 1, ids == image_id)
        padded += int((mask[:, 0] == 0).sum())
    assert padded > 0, "the fixture's prompts must differ in length"

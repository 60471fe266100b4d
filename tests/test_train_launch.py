"""Training as launched for real: vLLM sampling arguments and context length, the frame cache
shared by several processes, the launch checks, and the policy loaded after the arguments
(ZeRO-3 partitions at load only then)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from o3video.train.config import load_config
from o3video.train.launch import LaunchError, check_launch

ROOT = Path(__file__).resolve().parents[1]

# vLLM is not installed here: the fields of vllm.SamplingParams as recorded from
# vllm-project/vllm, vllm/sampling_params.py at commit 00388f6573ccfcffad607b8c9ecdf341a4669ceb
# (the input fields of the class; the underscored ones are set by its __post_init__).
_FIELDS = """n presence_penalty frequency_penalty repetition_penalty temperature top_p top_k min_p
    seed stop stop_token_ids ignore_eos max_tokens min_tokens logprobs prompt_logprobs
    prompt_logprob_token_ids prompt_logprob_start logprob_token_ids flat_logprobs detokenize
    skip_special_tokens spaces_between_special_tokens include_stop_str_in_output output_kind
    stream_interval skip_clone output_text_buffer_length structured_outputs logit_bias
    allowed_token_ids extra_args bad_words skip_reading_prefix_cache thinking_token_budget
    repetition_detection routed_experts_prompt_start trace_decode_token_ids"""
VLLM_SAMPLING_PARAMS_FIELDS = frozenset(_FIELDS.split())
# What TRL 1.16 puts into SamplingParams itself in colocate mode, before generation_kwargs
# (trl/generation/vllm_generation.py, VLLMGeneration.generate).
TRL_COLOCATE_KEYS = {"n", "repetition_penalty", "temperature", "top_p", "top_k", "min_p",
                     "max_tokens", "logprobs"}  # fmt: skip


def _rl_config(*overrides: str) -> Any:
    return load_config(ROOT / "recipes/qwen2.5-vl-7b-gspo.yaml", list(overrides), stage="rl")


def test_vllm_rollouts_pass_only_sampling_params_fields() -> None:
    from o3video.train.rl import VLLM_BAN, rollout_generation_kwargs

    banned = [151652, 151653, 151654, 151655, 151656]
    cfg = _rl_config()
    assert cfg.rl.use_vllm and cfg.rl.vllm_mode == "colocate"  # the shipped 7B recipe
    kwargs = rollout_generation_kwargs(cfg.rl, banned)
    assert set(kwargs) | TRL_COLOCATE_KEYS <= VLLM_SAMPLING_PARAMS_FIELDS
    assert kwargs["logit_bias"] == dict.fromkeys(banned, VLLM_BAN)
    # The transformers path keeps suppress_tokens (a GenerationConfig field, not vLLM's).
    hf = rollout_generation_kwargs(_rl_config("rl.use_vllm=false").rl, banned)
    assert hf == {"suppress_tokens": banned}
    assert "suppress_tokens" not in VLLM_SAMPLING_PARAMS_FIELDS


def test_vllm_context_length_defaults_to_the_runs_need() -> None:
    pytest.importorskip("trl")
    from trl import GRPOConfig

    from o3video.train.rl import grpo_args

    cfg = _rl_config("output_dir=/nonexistent/x", "rl.bf16=false")
    # (16 frames + 4 key frames) × (100352 / 28² = 128 vision tokens + 14 label and marker
    # tokens) + 512 text + 768 completion = 4120, rounded up to 256: 4352 (not 128 000).
    args = GRPOConfig(**grpo_args(cfg))
    assert args.vllm_max_model_length == 4352
    cfg = _rl_config("output_dir=/nonexistent/x", "rl.bf16=false", "vllm_max_model_length=8192")
    assert GRPOConfig(**grpo_args(cfg)).vllm_max_model_length == 8192
    off = _rl_config("output_dir=/x", "rl.use_vllm=false")
    assert "vllm_max_model_length" not in grpo_args(off)


def test_frame_cache_writers_never_share_a_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes write the same example at once: the second finishes while the first is
    still writing. With one ``<key>.tmp`` for both, the second moved the first's file away
    and the first's rename then failed (FileNotFoundError)."""
    from o3video.data.synthetic import synthesize
    from o3video.train import dataset

    synthesize(tmp_path / "data", 1, seed=0)
    cfg = load_config(
        None,
        [f"data.stgr={tmp_path / 'data' / 'stgr_rl.json'}", f"data.cache_dir={tmp_path / 'c'}",
         "data.max_frames=2", "data.min_frames=2", "data.max_pixels=3136", "data.limit=1"],
    )  # fmt: skip
    first = dataset.source_from_config(cfg.data, tmp_path, stage="rl")
    other = dataset.source_from_config(cfg.data, tmp_path, stage="rl")
    real_dump = pickle.dump
    calls = []

    def dump(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(f.name)
        if len(calls) == 1:  # the other process writes the same key meanwhile
            other.example(0)
        real_dump(obj, f, *args, **kwargs)

    monkeypatch.setattr(dataset.pickle, "dump", dump)
    example = first.example(0)
    assert len(calls) == 2 and calls[0] != calls[1]
    cached = list((tmp_path / "c").iterdir())
    assert [p.suffix for p in cached] == [".pkl"]  # no temporary file left behind
    with cached[0].open("rb") as f:
        assert pickle.load(f).record.index == example.record.index


class _Args:
    def __init__(self, world_size: int) -> None:
        self.world_size = world_size


@pytest.mark.parametrize(
    ("world", "environ", "message"),
    [
        (1, {}, None),
        (2, {"WORLD_SIZE": "2", "RANK": "1"}, None),
        (1, {"ACCELERATE_USE_CPU": "True"}, None),  # accelerate launch --cpu, one process
        # --multi_gpu without ACCELERATE_USE_CPU on a machine without GPUs: two trainings.
        (1, {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1"}, "started 2 processes"),
        # --cpu --num_processes 2: accelerate starts one process.
        (1, {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1"}, "starts one process"),
    ],
)
def test_launch_and_trainer_must_agree(
    world: int, environ: dict[str, str], message: str | None
) -> None:
    if message is None:
        check_launch(_Args(world), environ)
    else:
        with pytest.raises(LaunchError, match=message) as err:
            check_launch(_Args(world), environ)
        assert "ACCELERATE_USE_CPU=true accelerate launch --multi_gpu" in str(err.value)


@pytest.mark.parametrize("stage", ["sft", "rl"])
def test_policy_is_loaded_after_the_training_arguments(
    stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DeepSpeed ZeRO-3 partitions weights at load (``zero3_init_flag``) only if the
    ``TrainingArguments`` holding its config exist when ``from_pretrained`` runs; loaded
    before them, every process materialised the whole model."""
    pytest.importorskip("trl")
    import transformers

    from o3video.train.rl import build_rl_trainer
    from o3video.train.sft import build_sft_trainer

    events: list[str] = []
    post_init = transformers.TrainingArguments.__post_init__
    load = transformers.AutoModelForImageTextToText.from_pretrained.__func__  # type: ignore[attr-defined]

    def recording_post_init(self: Any) -> None:
        events.append("arguments")
        post_init(self)

    def recording_load(cls: Any, *args: Any, **kwargs: Any) -> Any:
        events.append("weights")
        return load(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.TrainingArguments, "__post_init__", recording_post_init)
    monkeypatch.setattr(
        transformers.AutoModelForImageTextToText, "from_pretrained", classmethod(recording_load)
    )
    cfg = load_config(
        ROOT / f"recipes/synthetic-tiny-{'sft' if stage == 'sft' else 'gspo'}.yaml",
        [f"output_dir={tmp_path}", "model.path=tiny:0", "data.synth.n=1", "data.limit=2"],
        stage=stage,  # type: ignore[arg-type]
    )
    if stage == "sft":
        build_sft_trainer(cfg)
    else:
        build_rl_trainer(cfg, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)])
    assert events[:2] == ["arguments", "weights"], events


def test_flash_attention_without_its_package_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from o3video.train.config import ConfigError
    from o3video.train.sft import check_attention

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "flash_attn" else real(name)
    )
    with pytest.raises(ConfigError, match=r"o3video\[flash\]"):
        check_attention("flash_attention_2")
    check_attention("sdpa")
    text = (ROOT / "pyproject.toml").read_text()
    assert 'flash = ["flash-attn' in text  # the extra the message names


def test_a_model_built_by_one_process_escapes_zero3_init() -> None:
    """With a ZeRO-3 config registered, transformers builds models under deepspeed.zero.Init
    (collective); the tiny base model, built by the main process alone, must not be."""
    pytest.importorskip("transformers")
    from transformers.integrations import deepspeed as hf_deepspeed

    from o3video.train.launch import without_zero3_init

    class Zero3:
        def is_zero3(self) -> bool:
            return True

    registered = Zero3()
    hf_deepspeed.set_hf_deepspeed_config(registered)
    try:
        assert hf_deepspeed.is_deepspeed_zero3_enabled()
        with without_zero3_init():
            assert not hf_deepspeed.is_deepspeed_zero3_enabled()
        assert hf_deepspeed.is_deepspeed_zero3_enabled()  # restored
    finally:
        hf_deepspeed.unset_hf_deepspeed_config()
    with without_zero3_init():  # nothing registered: nothing to do
        assert not hf_deepspeed.is_deepspeed_zero3_enabled()

"""Training configuration: one dataclass per concern, defaults → YAML → ``a.b=value`` overrides.

A run is a :class:`RunConfig`: ``output_dir``, ``model`` (:class:`ModelConfig`), ``data``
(:class:`DataConfig`), and the hyper-parameters of each stage, ``sft`` (:class:`SFTConfig`)
and ``rl`` (:class:`RLConfig`). A recipe YAML sets any subset of these; unknown keys are an
error naming the key and the file (lingua style). An override ``a.b=value`` sets one field;
a bare ``key=value`` is looked up in the top level, then the stage's section (``sft`` or
``rl``), then ``model`` and ``data``. Values are parsed as YAML and coerced to the field's type
(``lr=1e-6`` is a float even though YAML 1.1 reads ``1e-6`` as a string).

:func:`save_resolved` writes ``config.yaml`` (the resolved config) and ``run.json`` (package
version, git commit, command line) into the run's folder.

>>> cfg = load_config(None, ["rl.num_generations=8", "max_steps=3"], stage="rl")
>>> cfg.rl.num_generations, cfg.rl.max_steps
(8, 3)
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from o3video.errors import O3VideoError
from o3video.models.card import VideoSettings
from o3video.protocols import ProtocolName

Stage = Literal["sft", "rl"]

DEFAULT_REWARDS: dict[str, float | dict[str, Any]] = {
    "answer": 1.0,
    "format": 1.0,
    "temporal_interval": 1.0,
    "temporal_point": 1.0,
    "spatial": 1.0,
}
"""SPEC §5: r = r_acc + r_fmt + r_t + r_s, every weight 1 by default."""


class ConfigError(O3VideoError):
    """A recipe or override is invalid: unknown key, wrong type, missing file."""


@dataclass
class TinyModelConfig:
    """The size of the ``tiny:<seed>`` model (:func:`o3video.models.tiny.tiny_config`).

    The defaults are the test model (about 1 MB). ``hidden_size / num_heads`` must be a
    multiple of 8; ``vision_hidden_size / vision_num_heads`` too.
    """

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    vision_hidden_size: int = 32
    vision_depth: int = 2
    vision_num_heads: int = 2
    vocab_size: int = 1024


LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
"""Every linear layer of a Qwen decoder layer: attention and MLP."""


@dataclass
class LoraConfig:
    """LoRA adapters (``peft``) instead of full fine-tuning: ``W + (alpha / r)·B·A`` on the
    ``target_modules`` of the language model; the vision tower stays frozen unless ``vision``
    (then its blocks' ``qkv``, ``proj`` and MLP get adapters too)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    vision: bool = False


@dataclass
class ModelConfig:
    """The policy to train: a checkpoint path/name, or ``tiny:<seed>`` for the tiny random
    Qwen2.5-VL (:func:`o3video.models.tiny.build_tiny_model`), built in the output folder
    at the size ``tiny`` gives (ignored for any other ``path``).

    ``lora`` trains LoRA adapters only (:class:`LoraConfig`); ``quantization`` (``4bit`` or
    ``8bit``, with ``lora``: QLoRA) loads the frozen base's language-model layers quantized
    by bitsandbytes (CUDA only). ``freeze_vision`` trains everything but the vision tower
    and its merger (``model.visual``), which keep the weights they were loaded with;
    ``vision_lr_scale`` trains them at that fraction of the learning rate instead (1.0: the
    same rate as the rest; the schedule scales both alike). ``fast_paths`` installs exact
    shortcuts for the attention mask of right-padded batches and the patch embedding
    (:mod:`o3video.train.fastpaths`); ``false`` trains with the stock modules."""

    path: str = "tiny:0"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    attn_implementation: str | None = None
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    lora: LoraConfig | None = None
    quantization: Literal["4bit", "8bit"] | None = None
    freeze_vision: bool = False
    vision_lr_scale: float = 1.0
    fast_paths: bool = True


@dataclass
class SynthConfig:
    """Synthesize the data (:func:`o3video.data.synthetic.synthesize`) when ``stgr`` is absent.

    ``world`` overrides fields of :class:`o3video.data.world.WorldConfig` (lists become
    tuples), e.g. ``{width: 112, height: 112, num_objects: [1, 3], background: gradient}``;
    an unknown field or a bad value is a :class:`ConfigError` naming it.
    """

    n: int = 16
    seed: int = 0
    world: dict[str, Any] | None = None

    def world_config(self) -> Any:
        """The :class:`~o3video.data.world.WorldConfig` this asks for (defaults + ``world``)."""
        from o3video.data.world import WorldConfig

        overrides = dict(self.world or {})
        known = {f.name for f in dataclasses.fields(WorldConfig)}
        for key in overrides:
            if key not in known:
                raise ConfigError(
                    f"unknown key 'data.synth.world.{key}'; known keys here: "
                    f"{', '.join(sorted(known))}"
                )
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()
        }
        try:
            return WorldConfig(**values)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"data.synth.world: {e}") from e


@dataclass
class DataConfig:
    """STGR records and the frame budget the model sees (SPEC §3).

    ``stgr`` is relative to the working directory; ``media_root`` defaults to the STGR file's
    folder. With ``synth`` set and ``stgr`` absent, a synthetic corpus is written into
    ``<output_dir>/data`` and ``stgr`` names a file in it (``stgr_sft.json``/``stgr_rl.json``).
    ``cache_dir`` keeps decoded examples on disk across runs (default: memory only).
    ``tasks`` keeps only the records of these STGR tasks (e.g. ``["visual QA"]``; default:
    all); an unknown task name is a :class:`ConfigError`. ``protocol`` is the text the
    examples are written in (:mod:`o3video.protocols.training`): ``o3video`` (ours),
    ``reference`` (the reference RL stage's prompts) or ``reference-sft`` (its SFT stage's
    prompts and targets); the trained model's card records it.
    """

    stgr: str = ""
    media_root: str | None = None
    family: str = "qwen2_5_vl"
    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 16
    max_pixels: int = 128 * 28 * 28
    limit: int | None = None
    cache_dir: str | None = None
    synth: SynthConfig | None = None
    tasks: list[str] | None = None
    protocol: ProtocolName = "o3video"

    @property
    def video(self) -> VideoSettings:
        """The frame budget as the one type every command uses (the minimum pixels are the
        default's)."""
        return VideoSettings(
            fps=self.fps,
            min_frames=self.min_frames,
            max_frames=self.max_frames,
            max_pixels=self.max_pixels,
        )


@dataclass
class TrainConfig:
    """Optimisation settings shared by both stages (names as in ``transformers``)."""

    learning_rate: float = 1e-6
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: str = "constant"
    warmup_steps: float = 0.0
    """Steps, or a fraction of all steps when < 1 (transformers 5)."""
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    bf16: bool = False
    gradient_checkpointing: bool = False
    seed: int = 0
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 1
    report_to: str = "none"
    dataloader_num_workers: int = 0
    resume: bool = True


@dataclass
class SFTConfig(TrainConfig):
    """Stage 1 (SPEC §6): loss on the assistant tokens only; ``max_length`` truncates."""

    max_length: int | None = None
    max_grad_norm: float = 5.0
    gradient_checkpointing: bool = True


@dataclass
class RLConfig(TrainConfig):
    """Stage 2 (SPEC §6): GSPO (``importance_sampling_level="sequence"``) or GRPO (``"token"``).

    Off-policy by default: ``steps_per_generation`` (4) > ``gradient_accumulation_steps`` (1)
    means four optimizer steps per rollout batch, so the importance ratio leaves 1 — the only
    case in which GSPO differs from GRPO. ``rewards`` maps reward names of
    :func:`o3video.rewards.registry.build_rewards` to a weight or an options dict.
    """

    num_generations: int = 4
    max_completion_length: int = 768
    temperature: float = 1.0
    top_p: float = 0.95
    beta: float = 0.04
    epsilon: float = 0.2
    epsilon_high: float | None = None
    steps_per_generation: int = 4
    num_iterations: int = 1
    loss_type: str = "grpo"
    importance_sampling_level: Literal["sequence", "token"] = "sequence"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    rewards: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_REWARDS))
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: float = 0.3
    vllm_server_base_url: str | None = None
    vllm_max_model_length: int | None = None
    """vLLM's context length (prompt + completion); ``None``: the run's own need,
    :func:`o3video.train.plan.context_tokens` (frames × tokens per frame + text + completion),
    instead of the model's 128k, whose KV cache would not fit beside the weights."""
    log_completions: bool = False
    probe_every: int = 0
    """Score the policy on a held-out probe set every this many optimizer steps (and before
    the first): greedy answers, every reward, ``<output_dir>/probe.jsonl``
    (:mod:`o3video.train.probe`); 0: no probe."""
    probe_items: int = 16
    """The probe set: the first this many records of the RL file, left out of training; with
    ``probe_stgr`` set, the first this many of that file (all of it if it has fewer)."""
    probe_stgr: str | None = None
    """A separate STGR file for the probe (e.g. the When records of a held-out corpus), read
    with the run's frame budget and ``data.tasks``; then every record of ``data.stgr``
    trains. ``None``: the probe is taken from the front of ``data.stgr``."""
    probe_media_root: str | None = None
    """The probe file's media folder; ``None``: the probe file's folder."""
    probe_max_new_tokens: int | None = None
    """New tokens per probe answer; ``None``: ``max_completion_length``."""


@dataclass
class RunConfig:
    """A whole run: where it writes, what model, what data, each stage's settings."""

    output_dir: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rl: RLConfig = field(default_factory=RLConfig)


def load_config(
    path: str | Path | None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    stage: Stage | None = None,
) -> RunConfig:
    """Defaults, then the YAML at ``path`` (if any), then ``overrides`` (``a.b=value``).

    Raises :class:`ConfigError` naming the key and the file for unknown keys or bad values.
    """
    import yaml  # type: ignore[import-untyped]

    config = RunConfig()
    if path is not None:
        source = str(path)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read config {source}: {e}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"{source}: invalid YAML: {e}") from e
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{source}: the top level must be a mapping, got {type(data).__name__}"
            )
        _merge(config, data, "", source)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value")
        dotted = _resolve_key(config, key.strip(), stage)
        value = yaml.safe_load(raw) if raw.strip() else None
        parts = dotted.split(".")
        value = _into_mapping(config, parts, value)
        nested: dict[str, Any] = {}
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        _merge(config, nested, "", f"override {item!r}")
    if config.model.quantization is not None and config.model.lora is None:
        raise ConfigError(
            f"model.quantization {config.model.quantization!r} needs model.lora: a quantized "
            "base is frozen, only LoRA adapters can train on it (QLoRA)"
        )
    if config.model.freeze_vision and config.model.lora is not None and config.model.lora.vision:
        raise ConfigError(
            "model.freeze_vision with model.lora.vision: the vision tower cannot be frozen and "
            "get adapters; drop one of them"
        )
    scale = config.model.vision_lr_scale
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale <= 1e3:
        raise ConfigError(
            f"model.vision_lr_scale {scale!r}: a number above 0 and at most 1000 (the vision "
            "tower's learning rate as a fraction of the rest's); to stop training the tower use "
            "model.freeze_vision=true"
        )
    if scale != 1.0 and (config.model.freeze_vision or config.model.lora is not None):
        what = "model.freeze_vision" if config.model.freeze_vision else "model.lora"
        raise ConfigError(
            f"model.vision_lr_scale {scale} with {what}: the vision tower's own weights do not "
            "train, so there is no rate of theirs to scale; drop one of them"
        )
    if config.data.synth is not None:
        config.data.synth.world_config()  # unknown or bad world fields fail here, not mid-run
    if config.data.tasks is not None:
        from o3video.data.stgr import STGR_TASK_NAMES

        unknown = [t for t in config.data.tasks if t not in STGR_TASK_NAMES]
        if unknown or not config.data.tasks:
            what = f"unknown task(s) {unknown!r}" if unknown else "no task named (null: all)"
            raise ConfigError(f"data.tasks: {what}; known: {', '.join(STGR_TASK_NAMES)}")
    return config


def _into_mapping(config: RunConfig, parts: list[str], value: Any) -> Any:
    """An override reaching inside a mapping field (``data.synth.world.width=112``) sets one
    key of the mapping and keeps the others: ``parts`` is cut back to the field and the
    merged mapping returned; any other override is returned unchanged."""
    obj: Any = config
    for i, part in enumerate(parts[:-1]):
        if obj is None or not dataclasses.is_dataclass(obj):
            return value
        hints = typing.get_type_hints(type(obj))
        if part not in hints:
            return value  # _merge names the unknown key
        if _dataclass_of(hints[part]) is not None:
            obj = getattr(obj, part)
            continue
        current = getattr(obj, part)
        if current is not None and not isinstance(current, dict):
            return value
        merged: dict[str, Any] = dict(current or {})
        node = merged
        for key in parts[i + 1 : -1]:
            child = node.get(key)
            if isinstance(child, bool) or not isinstance(child, dict | int | float | None):
                raise ConfigError(
                    f"override {'.'.join(parts)}: {'.'.join(parts[: i + 1])}.{key} is"
                    f" {child!r}, not a mapping; set it whole instead"
                )
            # A bare number is a reward's weight (rl.rewards.spatial: 1.0): an option set
            # inside it keeps that weight instead of dropping it.
            node[key] = dict(child) if isinstance(child, dict) else {}
            if isinstance(child, int | float):
                node[key]["weight"] = child
            node = node[key]
        node[parts[-1]] = value
        del parts[i + 1 :]
        return merged
    return value


def _resolve_key(config: RunConfig, key: str, stage: Stage | None) -> str:
    if "." in key:
        return key
    sections = ["", *([stage] if stage else []), "model", "data"]
    for section in sections:
        obj = getattr(config, section) if section else config
        if key in {f.name for f in dataclasses.fields(obj)}:
            return f"{section}.{key}" if section else key
    raise ConfigError(
        f"unknown key {key!r} in overrides (looked in: top level, {', '.join(sections[1:])})"
    )


def _merge(obj: Any, data: dict[str, Any], prefix: str, source: str) -> None:
    """Set ``obj``'s fields from ``data`` recursively; ``source`` names the YAML or override."""
    fields = {f.name: f for f in dataclasses.fields(obj)}
    hints = typing.get_type_hints(type(obj))
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(
                f"unknown key {dotted!r} in {source}; known keys here: {', '.join(sorted(fields))}"
            )
        hint = hints[key]
        current = getattr(obj, key)
        target = _dataclass_of(hint)
        if target is not None and isinstance(value, dict):
            if current is None:
                current = target()
                setattr(obj, key, current)
            _merge(current, value, f"{dotted}.", source)
            continue
        setattr(obj, key, _coerce(value, hint, dotted, source))


def _dataclass_of(hint: Any) -> type | None:
    for option in _options(hint):
        if dataclasses.is_dataclass(option) and isinstance(option, type):
            return option
    return None


def _options(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    options = _options(hint)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{key!r} in {source} may not be null")
    errors = []
    for option in options:
        if option is type(None):
            continue
        origin = typing.get_origin(option)
        try:
            if origin is Literal:
                if value in typing.get_args(option):
                    return value
                errors.append(f"one of {typing.get_args(option)}")
            elif option is bool:
                if isinstance(value, bool):
                    return value
                errors.append("true or false")
            elif option is int:
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
                if isinstance(value, str):
                    return int(value)
                errors.append("an integer")
            elif option is float:
                if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                    return float(value)
                errors.append("a number")
            elif option is str:
                if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                    return str(value)
                errors.append("a string")
            elif origin is list or option is list:
                if isinstance(value, list) and all(isinstance(v, str) for v in value):
                    return list(value)
                errors.append("a list of strings")
            elif origin is dict or option is dict:
                if isinstance(value, dict):
                    return dict(value)
                errors.append("a mapping")
            else:
                errors.append(str(option))
        except ValueError:
            errors.append(getattr(option, "__name__", str(option)))
    raise ConfigError(f"{key!r} in {source}: expected {' or '.join(errors)}, got {value!r}")


def to_dict(config: RunConfig) -> dict[str, Any]:
    """The config as plain data (what ``config.yaml`` holds)."""
    return dataclasses.asdict(config)


def git_dirty(cwd: str | Path | None = None) -> bool | None:
    """Whether the checkout at ``cwd`` (default: this package's) has uncommitted changes to
    tracked files; ``None`` outside a git checkout."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=5,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the checkout at ``cwd`` (default: this package's), or ``None``."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def save_resolved(config: RunConfig, out_dir: str | Path, stage: Stage | None = None) -> Path:
    """Write ``config.yaml`` and ``run.json`` (version, git commit and whether the tree had
    uncommitted changes, command) into ``out_dir``."""
    import yaml

    import o3video

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(
        yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8"
    )
    run = {
        "package": "o3video",
        "version": o3video.__version__,
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "stage": stage,
        "command": list(sys.argv),
    }
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    return out / "config.yaml"

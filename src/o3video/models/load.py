"""Open a model by local path or hub name: checks that fail fast and clearly, and one factory.

- :func:`check_model_source` tells a local checkpoint from a hub name without touching the
  network: an existing directory is local; a string that can only be a path (absolute,
  ``./``, ``~``, two or more ``/``) but names nothing raises :class:`BackendError` naming it;
  anything else (``org/name``) is a hub name.
- :func:`model_config` reads ``config.json`` through ``AutoConfig``; a hub name that is not
  in the cache fails at once under ``HF_HUB_OFFLINE=1`` with a message that says so.
- :func:`model_family` is the :class:`~o3video.families.ModelFamily` of a checkpoint, read
  from its config alone (cheap: no weights), so a caller can size frames before loading.
- A LoRA adapter folder (``adapter_config.json``, what ``o3video train`` writes with
  ``model.lora``) is a model too: :func:`adapter_base` names its base, :func:`model_config`
  reads the base's config, :func:`load_model` loads base + adapter (``peft``).
- :func:`load_backend` builds a backend by kind: ``"hf"`` (:class:`~o3video.models.hf.HFBackend`),
  ``"vllm"`` (:class:`~o3video.models.vllm.VLLMBackend`), ``"openai"``
  (:class:`~o3video.models.openai.OpenAIBackend`, needs ``base_url``).

>>> looks_like_path("Qwen/Qwen2.5-VL-7B-Instruct"), looks_like_path("./ckpt/qwen")
(False, True)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal, get_args

from o3video.families import ModelFamily, family_for_config
from o3video.models.base import Backend, BackendError

logger = logging.getLogger(__name__)

BackendKind = Literal["hf", "vllm", "openai"]
BACKENDS: tuple[str, ...] = get_args(BackendKind)


def looks_like_path(name: str) -> bool:
    """Whether ``name`` can only be a filesystem path, never a hub id (``org/name``)."""
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or "\\" in name
        or name.count("/") >= 2
        or name.endswith("/")
    )


def check_model_source(name_or_path: str | os.PathLike[str], backend: str = "hf") -> str:
    """The local directory (expanded) or the hub name to load ``name_or_path`` from.

    Raises :class:`BackendError` (naming the path) for a path that does not exist, that is
    not a directory, or that has no ``config.json``.
    """
    name = os.fspath(name_or_path)
    label = f"{backend}:{name}"
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BackendError(label, f"{path} is not a model directory (a file)")
        if not (path / "config.json").is_file() and not (path / ADAPTER_CONFIG).is_file():
            raise BackendError(
                label, f"{path} has no config.json (nor {ADAPTER_CONFIG}): not a saved model"
            )
        return str(path)
    if looks_like_path(name):
        raise BackendError(label, f"no model at {path}: no such directory")
    return name


ADAPTER_CONFIG = "adapter_config.json"
"""The file that makes a folder a ``peft`` adapter (LoRA) rather than a whole model."""


def adapter_base(name_or_path: str | os.PathLike[str], backend: str = "hf") -> str | None:
    """The base model of a LoRA adapter folder (its ``base_model_name_or_path``), or ``None``
    for anything that is not an adapter folder. :class:`BackendError` naming the file when the
    adapter's config is unreadable or names no base."""
    import json

    path = Path(os.fspath(name_or_path)).expanduser()
    config = path / ADAPTER_CONFIG
    if not config.is_file() or (path / "config.json").is_file():
        return None
    label = f"{backend}:{os.fspath(name_or_path)}"
    try:
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError) as e:
        raise BackendError(label, f"{config}: unreadable adapter config: {e}") from e
    if not isinstance(base, str) or not base:
        raise BackendError(label, f"{config}: names no base_model_name_or_path")
    return base


def load_model(source: str, **kwargs: Any) -> Any:
    """``AutoModelForImageTextToText.from_pretrained(source, **kwargs)``; for a LoRA adapter
    folder, its base loaded so and the adapter put on it (``peft.PeftModel``, not merged:
    ``o3video train merge`` writes merged weights)."""
    from transformers import AutoModelForImageTextToText

    base = adapter_base(source)
    if base is None:
        return AutoModelForImageTextToText.from_pretrained(source, **kwargs)
    try:
        from peft import PeftModel
    except ImportError as e:
        raise BackendError(
            f"hf:{source}", "a LoRA adapter folder needs peft: pip install 'o3video[train]'"
        ) from e
    model = AutoModelForImageTextToText.from_pretrained(check_model_source(base), **kwargs)
    logger.info("%s: LoRA adapter on %s", source, base)
    return PeftModel.from_pretrained(model, source)


def model_config(name_or_path: str | os.PathLike[str], backend: str = "hf") -> Any:
    """The ``transformers`` config of a checkpoint (of its base, for a LoRA adapter folder);
    :class:`BackendError` when it cannot be read."""
    from transformers import AutoConfig

    source = check_model_source(name_or_path, backend)
    base = adapter_base(source, backend)
    if base is not None:
        source = check_model_source(base, backend)
    try:
        return AutoConfig.from_pretrained(source)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = (
            f"local model {source}"
            if Path(source).exists()
            else f"{source!r} (not a local directory; looked up as a hub name"
            + (", offline: HF_HUB_OFFLINE=1 loads only cached models)" if _offline() else ")")
        )
        raise BackendError(
            f"{backend}:{source}", f"cannot read the config of {where}: {first}"
        ) from e


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def model_family(name_or_path: str | os.PathLike[str], backend: str = "hf") -> ModelFamily:
    """The model family of a checkpoint, from its config (no weights are loaded)."""
    return family_for_config(model_config(name_or_path, backend))


def load_backend(
    name_or_path: str | os.PathLike[str], backend: BackendKind | str = "hf", **options: Any
) -> Backend:
    """A backend for ``name_or_path``; ``options`` go to the backend's constructor.

    ``"openai"`` takes ``base_url`` (required) and the served model's name as
    ``name_or_path``. Heavy imports (torch, vllm) happen only for the backend asked for.
    """
    if backend == "hf":
        from o3video.models.hf import HFBackend

        return HFBackend(name_or_path, **options)
    if backend == "vllm":
        from o3video.models.vllm import VLLMBackend

        return VLLMBackend(name_or_path, **options)
    if backend == "openai":
        from o3video.models.openai import OpenAIBackend

        base_url = options.pop("base_url", None)
        if not base_url:
            raise BackendError(f"openai:{name_or_path}", "the openai backend needs a base_url")
        return OpenAIBackend(base_url, os.fspath(name_or_path), **options)
    raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")

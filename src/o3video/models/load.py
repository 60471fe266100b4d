"""Open a model by local path or hub name: checks that fail fast and clearly, and one factory.

- :func:`check_model_source` tells a local checkpoint from a hub name without touching the
  network: an existing directory is local; a string that can only be a path (absolute,
  ``./``, ``~``, two or more ``/``) but names nothing raises :class:`BackendError` naming it;
  anything else (``org/name``) is a hub name.
- :func:`model_config` reads ``config.json`` through ``AutoConfig``; a hub name that is not
  in the cache fails at once under ``HF_HUB_OFFLINE=1`` with a message that says so.
- :func:`model_family` is the :class:`~o3video.families.ModelFamily` of a checkpoint, read
  from its config alone (cheap: no weights), so a caller can size frames before loading.
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
        if not (path / "config.json").is_file():
            raise BackendError(label, f"{path} has no config.json: not a saved model")
        return str(path)
    if looks_like_path(name):
        raise BackendError(label, f"no model at {path}: no such directory")
    return name


def model_config(name_or_path: str | os.PathLike[str], backend: str = "hf") -> Any:
    """The ``transformers`` config of a checkpoint; :class:`BackendError` when it cannot be read."""
    from transformers import AutoConfig

    source = check_model_source(name_or_path, backend)
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

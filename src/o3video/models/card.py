"""A checkpoint's own account of itself: ``o3video.json`` beside its weights.

Training writes it into every saved model folder (``final/``): the frame budget the model was
trained with (:class:`VideoSettings`: frames are best shown to a model as in its training,
SPEC §3), the recipe, seeds and commit, and, for the embedded model, its scores. Commands that
run a model (``o3video demo``, ``o3video eval``) take their frame defaults from it; a
checkpoint without one (a hub model) gets the defaults below.

>>> VideoSettings().max_frames
16
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from o3video.errors import DataError
from o3video.protocols.frames import SAMPLERS, Sampler, sample_reference_vstar
from o3video.video import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    MAX_SOURCE_PIXELS,
    Clip,
    sample_frames,
)

CARD_FILE = "o3video.json"


@dataclass(frozen=True)
class VideoSettings:
    """The frame budget: how frames are sampled for a model (as in its training) — rate,
    frame count bounds, the per-frame pixel budget of ``smart_resize`` (SPEC §3) and which
    frames (``sampler``, :mod:`o3video.protocols.frames`). The one type every command that
    shows a model frames uses (``ask``, ``serve``, ``eval``, ``train``, ``demo``)."""

    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 16
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    sampler: Sampler = "true_time"

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; known: {', '.join(SAMPLERS)}")

    def sample(self, source: Any, *, factor: int, **window: Any) -> Clip:
        """:func:`~o3video.video.sample_frames` of ``source`` with this budget and the model
        family's resize ``factor``; ``window`` passes on ``start_s``, ``end_s``, ``times_s``.
        The ``reference_vstar`` sampler takes a whole video file and no window."""
        if self.sampler == "reference_vstar":
            limit = window.pop("max_source_pixels", MAX_SOURCE_PIXELS)
            if any(v is not None for v in window.values()):
                raise ValueError("the reference_vstar sampler reads whole videos, no window")
            return sample_reference_vstar(
                source,
                fps=self.fps,
                max_frames=self.max_frames,
                min_pixels=self.min_pixels,
                max_pixels=self.max_pixels,
                factor=factor,
                max_source_pixels=limit,
            )
        return sample_frames(
            source,
            fps=self.fps,
            min_frames=self.min_frames,
            max_frames=self.max_frames,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
            factor=factor,
            **window,
        )

    @classmethod
    def from_dict(cls, raw: Any, where: str = "video settings") -> VideoSettings:
        """From a JSON object; :class:`DataError` naming ``where`` and the bad field."""
        if not isinstance(raw, dict):
            raise DataError(f"{where}: expected an object, got {type(raw).__name__}")
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise DataError(f"{where}: unknown field(s) {', '.join(unknown)}", field=unknown[0])
        for name, value in raw.items():
            if name == "sampler":
                if value not in SAMPLERS:
                    raise DataError(f"{where}: sampler must be one of {SAMPLERS}", field=name)
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise DataError(f"{where}: {name} must be a positive number", field=name)
        return cls(**raw)


def read_card(model_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``o3video.json`` of a model folder, or ``None`` when it has none (or the model is
    not a local folder). :class:`DataError` when it exists but cannot be read."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable model card: {exc}", path=str(path)) from exc
    if not isinstance(card, dict):
        raise DataError(f"{path}: the model card must be a JSON object", path=str(path))
    return card


def video_settings_for(model_dir: str | os.PathLike[str]) -> VideoSettings | None:
    """The frame budget a model folder's card records, or ``None``."""
    card = read_card(model_dir)
    if card is None or "video" not in card:
        return None
    return VideoSettings.from_dict(card["video"], f"{Path(model_dir) / CARD_FILE}: video")


def video_settings(model: str | os.PathLike[str], **given: Any) -> VideoSettings:
    """The frame budget to show ``model`` frames with: each value given (not ``None``), else
    its card's (a local model folder with ``o3video.json``: the budget it was trained with),
    else the defaults of :class:`VideoSettings`.

    >>> video_settings("Qwen/Qwen2.5-VL-7B-Instruct", max_frames=8, fps=None).max_frames
    8
    """
    card = video_settings_for(model) if Path(model).is_dir() else None
    chosen = {k: v for k, v in given.items() if v is not None}
    return dataclasses.replace(card or VideoSettings(), **chosen)


def write_card(model_dir: str | os.PathLike[str], video: VideoSettings, **info: Any) -> Path:
    """Write (replace) ``o3video.json`` in ``model_dir``: the frame budget and ``info``
    (JSON-ready: recipe, seeds, commit, scores...)."""
    path = Path(model_dir) / CARD_FILE
    card = {"video": dataclasses.asdict(video), **info}
    path.write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


FrameBudget = VideoSettings
"""The frame budget's name where no model card is involved."""

"""Model families: per family, its box space, resize factor and how it sees time in a video.

This module is the one place that knows a model's box convention (DESIGN principle 1):
everything else speaks source pixels (``source_px``) and calls
:meth:`ModelFamily.to_source_box` / :meth:`ModelFamily.from_source_box` at the model border.

- **Qwen2.5-VL** writes boxes in pixels of the resized frame it was shown (``frame_px``),
  resizes to multiples of 28 (patch 14 × merge 2), and places native-video frames on an
  absolute time axis through mRoPE (``second_per_grid_ts``).
- **Qwen3-VL** writes boxes on a 0–1000 grid (``rel1000``), resizes to multiples of 32
  (patch 16 × merge 2), and tells native-video time as text timestamps (``<1.5 seconds>``).
- **Qwen2-VL** writes 0–1000 boxes, resizes to multiples of 28, and knows only frame order.

>>> fam = family_for_config({"model_type": "qwen2_5_vl"})
>>> fam.to_source_box((0, 0, 210, 112), source_wh=(1280, 720), frame_wh=(420, 224))
(0.0, 0.0, 640.0, 360.0)
>>> get_family("qwen3_vl").to_source_box((500, 0, 1000, 1000), source_wh=(1280, 720))
(640.0, 0.0, 1280.0, 720.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from o3video.boxes import WH, XYXY, BoxSpace, convert_xyxy
from o3video.errors import UnknownFamilyError
from o3video.video import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, Clip, smart_resize

VideoTime = Literal["mrope_absolute_time", "text_timestamps", "frame_order"]
"""How a family's native video input conveys when each frame was taken.

- ``mrope_absolute_time``: temporal position ids advance by ``tokens_per_second ×
  second_per_grid_ts`` per temporal patch; the processor derives ``second_per_grid_ts`` from
  the video metadata's sampling rate (Qwen2.5-VL).
- ``text_timestamps``: the processor writes ``<t seconds>`` before each temporal patch,
  computed from the metadata's ``frames_indices / fps`` (Qwen3-VL).
- ``frame_order``: no time information beyond the order of frames (Qwen2-VL).
"""


@dataclass(frozen=True)
class ModelFamily:
    """What the rest of the project must know about one family of video language models.

    - ``name``: registry key (``"qwen2_5_vl"``, ``"qwen3_vl"``, ``"qwen2_vl"``).
    - ``box_space``: the space the model writes boxes in.
    - ``factor``: ``smart_resize`` rounds frame sides to multiples of it (patch × merge).
    - ``patch_size``, ``merge_size``, ``temporal_patch_size``: the vision encoder's geometry.
    - ``model_types``: the ``config.model_type`` values this family handles.
    - ``video_time``: how native video input conveys time (see :data:`VideoTime`).
    - ``processor_classes``: class names of the ``transformers`` processors of this family.
    """

    name: str
    box_space: BoxSpace
    factor: int
    patch_size: int
    merge_size: int
    temporal_patch_size: int
    model_types: tuple[str, ...]
    video_time: VideoTime
    processor_classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.factor != self.patch_size * self.merge_size:
            raise ValueError(
                f"family {self.name!r}: factor {self.factor} must equal patch_size "
                f"{self.patch_size} × merge_size {self.merge_size}"
            )

    def smart_resize(
        self,
        height: int,
        width: int,
        min_pixels: int = DEFAULT_MIN_PIXELS,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> tuple[int, int]:
        """``(height, width)`` this family's processor would use: :func:`video.smart_resize`
        with the family's factor.

        >>> get_family("qwen2_5_vl").smart_resize(720, 1280)
        (224, 420)
        """
        return smart_resize(
            height, width, factor=self.factor, min_pixels=min_pixels, max_pixels=max_pixels
        )

    def to_source_box(
        self,
        xyxy: Sequence[float],
        clip: Clip | None = None,
        *,
        source_wh: WH | None = None,
        frame_wh: WH | None = None,
    ) -> XYXY:
        """A box as the model wrote it → source pixels of the original video.

        The sizes come from ``clip`` (``source_wh`` and ``frame_wh`` of the frames shown) or
        from the keyword arguments, which take precedence. ``frame_wh`` is only needed by
        families that write ``frame_px``. The box is converted as written, not clamped.
        """
        src, frm = _sizes(clip, source_wh, frame_wh)
        return convert_xyxy(xyxy, self.box_space, "source_px", source_wh=src, frame_wh=frm)

    def from_source_box(
        self,
        xyxy: Sequence[float],
        clip: Clip | None = None,
        *,
        source_wh: WH | None = None,
        frame_wh: WH | None = None,
    ) -> XYXY:
        """A box in source pixels → the space this model writes (e.g. for SFT targets).

        >>> get_family("qwen2_5_vl").from_source_box(
        ...     (0, 0, 640, 360), source_wh=(1280, 720), frame_wh=(420, 224))
        (0.0, 0.0, 210.0, 112.0)
        """
        src, frm = _sizes(clip, source_wh, frame_wh)
        return convert_xyxy(xyxy, "source_px", self.box_space, source_wh=src, frame_wh=frm)


def _sizes(
    clip: Clip | None, source_wh: WH | None, frame_wh: WH | None
) -> tuple[WH | None, WH | None]:
    if clip is not None:
        source_wh = source_wh if source_wh is not None else clip.source_wh
        frame_wh = frame_wh if frame_wh is not None else clip.frame_wh
    return source_wh, frame_wh


QWEN2_5_VL = ModelFamily(
    name="qwen2_5_vl",
    box_space="frame_px",
    factor=28,
    patch_size=14,
    merge_size=2,
    temporal_patch_size=2,
    model_types=("qwen2_5_vl",),
    video_time="mrope_absolute_time",
    processor_classes=("Qwen2_5_VLProcessor",),
)
QWEN3_VL = ModelFamily(
    name="qwen3_vl",
    box_space="rel1000",
    factor=32,
    patch_size=16,
    merge_size=2,
    temporal_patch_size=2,
    model_types=("qwen3_vl", "qwen3_vl_moe"),
    video_time="text_timestamps",
    processor_classes=("Qwen3VLProcessor",),
)
QWEN2_VL = ModelFamily(
    name="qwen2_vl",
    box_space="rel1000",
    factor=28,
    patch_size=14,
    merge_size=2,
    temporal_patch_size=2,
    model_types=("qwen2_vl",),
    video_time="frame_order",
    processor_classes=("Qwen2VLProcessor",),
)

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (QWEN2_5_VL, QWEN3_VL, QWEN2_VL)}


def _known() -> str:
    return ", ".join(
        f"{f.name} (model_type {' / '.join(f.model_types)})" for f in FAMILIES.values()
    )


def get_family(name: str) -> ModelFamily:
    """The family registered under ``name``; :class:`UnknownFamilyError` otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnknownFamilyError(f"unknown model family {name!r}; known: {_known()}") from None


def _model_type_of(config: Any) -> str | None:
    if isinstance(config, str):
        return config
    if isinstance(config, Mapping):
        value = config.get("model_type")
        return value if isinstance(value, str) else None
    value = getattr(config, "model_type", None)
    if value is None:  # a model: look at its config
        value = getattr(getattr(config, "config", None), "model_type", None)
    return value if isinstance(value, str) else None


def family_for_config(config: Any) -> ModelFamily:
    """The family of a model, from its config, its ``config.json`` dict, or a model_type.

    Accepts a ``transformers`` config (anything with ``model_type``), a model (anything with
    ``.config``), a mapping with a ``"model_type"`` key, or a string that is a model_type or a
    family name. Raises :class:`UnknownFamilyError` naming the known families otherwise.

    >>> family_for_config("qwen3_vl_moe").name
    'qwen3_vl'
    """
    model_type = _model_type_of(config)
    if model_type is None:
        raise UnknownFamilyError(
            f"cannot tell the model family of {type(config).__name__} (no model_type); "
            f"known: {_known()}"
        )
    for family in FAMILIES.values():
        if model_type in family.model_types or model_type == family.name:
            return family
    raise UnknownFamilyError(
        f"no model family handles model_type {model_type!r}; known: {_known()}"
    )


def family_for_processor(processor: Any) -> ModelFamily:
    """The family of a ``transformers`` processor, from its class name.

    Raises :class:`UnknownFamilyError` for a processor of no registered family.
    """
    cls_name = type(processor).__name__
    for family in FAMILIES.values():
        if cls_name in family.processor_classes:
            return family
    raise UnknownFamilyError(
        f"no model family handles processor {cls_name}; known: "
        + ", ".join(f"{f.name} ({' / '.join(f.processor_classes)})" for f in FAMILIES.values())
    )

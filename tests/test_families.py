"""Model families: registry lookup and box conversion at the model border (SPEC §2)."""

from __future__ import annotations

import numpy as np
import pytest

from o3video.errors import BoxSpaceError, UnknownFamilyError
from o3video.families import (
    FAMILIES,
    QWEN2_5_VL,
    QWEN3_VL,
    ModelFamily,
    family_for_config,
    family_for_processor,
    get_family,
)
from o3video.video import Clip


class _Config:
    """Stands in for a transformers config: only ``model_type`` is read."""

    def __init__(self, model_type: str) -> None:
        self.model_type = model_type


class _Model:
    def __init__(self, model_type: str) -> None:
        self.config = _Config(model_type)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("qwen2_5_vl", "qwen2_5_vl"),
        ("qwen3_vl", "qwen3_vl"),
        ("qwen3_vl_moe", "qwen3_vl"),
        ("qwen2_vl", "qwen2_vl"),
        (
            {"model_type": "qwen2_5_vl", "architectures": ["Qwen2_5_VLForConditionalGeneration"]},
            "qwen2_5_vl",
        ),
        ({"model_type": "qwen3_vl_moe"}, "qwen3_vl"),
        (_Config("qwen3_vl"), "qwen3_vl"),
        (_Model("qwen2_5_vl"), "qwen2_5_vl"),
    ],
)
def test_family_for_config(config: object, expected: str) -> None:
    assert family_for_config(config).name == expected


@pytest.mark.parametrize(
    "config", ["llava", {"model_type": "llama"}, {"architectures": []}, _Config("gemma3"), 42]
)
def test_unknown_family_raises_with_known_list(config: object) -> None:
    with pytest.raises(UnknownFamilyError) as err:
        family_for_config(config)
    message = str(err.value)
    assert "qwen2_5_vl" in message and "qwen3_vl" in message


def test_get_family() -> None:
    assert get_family("qwen2_5_vl") is QWEN2_5_VL
    assert get_family("qwen3_vl") is QWEN3_VL
    with pytest.raises(UnknownFamilyError, match=r"unknown model family 'qwen9'.*qwen2_5_vl"):
        get_family("qwen9")


def test_family_for_processor_by_class_name() -> None:
    class Qwen2_5_VLProcessor:  # mimics the transformers class name
        pass

    class LlavaProcessor:
        pass

    assert family_for_processor(Qwen2_5_VLProcessor()) is QWEN2_5_VL
    with pytest.raises(UnknownFamilyError, match="LlavaProcessor"):
        family_for_processor(LlavaProcessor())


@pytest.mark.parametrize(
    ("name", "box_space", "factor", "patch", "video_time"),
    [
        ("qwen2_5_vl", "frame_px", 28, 14, "mrope_absolute_time"),
        ("qwen3_vl", "rel1000", 32, 16, "text_timestamps"),
        ("qwen2_vl", "rel1000", 28, 14, "frame_order"),
    ],
)
def test_family_constants(
    name: str, box_space: str, factor: int, patch: int, video_time: str
) -> None:
    fam = FAMILIES[name]
    assert (fam.box_space, fam.factor, fam.patch_size, fam.merge_size) == (
        box_space,
        factor,
        patch,
        2,
    )
    assert (fam.temporal_patch_size, fam.video_time) == (2, video_time)


def test_inconsistent_factor_is_rejected() -> None:
    with pytest.raises(ValueError, match="factor"):
        ModelFamily("x", "rel1000", 30, 14, 2, 2, ("x",), "frame_order")


def _clip_1280x720() -> Clip:
    frames = np.zeros((2, 224, 420, 3), dtype=np.uint8)
    return Clip(
        frames, (0.0, 0.5), source_wh=(1280, 720), frame_wh=(420, 224), fps=30.0, duration_s=1.0
    )


def test_qwen25_frame_px_round_trip() -> None:
    # 1280x720 shown at 420x224: x scales by 1280/420, y by 720/224.
    clip = _clip_1280x720()
    assert QWEN2_5_VL.to_source_box((0, 0, 210, 112), clip) == (0.0, 0.0, 640.0, 360.0)
    assert QWEN2_5_VL.from_source_box((0, 0, 640, 360), clip) == pytest.approx(
        (0.0, 0.0, 210.0, 112.0)
    )
    box = (42.0, 28.0, 399.0, 200.0)
    assert QWEN2_5_VL.from_source_box(QWEN2_5_VL.to_source_box(box, clip), clip) == pytest.approx(
        box
    )


def test_qwen3_rel1000_round_trip() -> None:
    clip = _clip_1280x720()
    assert QWEN3_VL.to_source_box((500, 0, 1000, 1000), clip) == (640.0, 0.0, 1280.0, 720.0)
    assert QWEN3_VL.from_source_box((640, 0, 1280, 720), clip) == (500.0, 0.0, 1000.0, 1000.0)
    # rel1000 does not depend on the resized size: no frame_wh needed
    assert QWEN3_VL.to_source_box((500, 0, 1000, 1000), source_wh=(1280, 720)) == (
        640.0,
        0.0,
        1280.0,
        720.0,
    )


def test_explicit_sizes_override_clip() -> None:
    clip = _clip_1280x720()
    assert QWEN2_5_VL.to_source_box((0, 0, 210, 112), clip, frame_wh=(210, 112)) == (
        0.0,
        0.0,
        1280.0,
        720.0,
    )


def test_missing_sizes_raise_box_space_error() -> None:
    with pytest.raises(BoxSpaceError, match="frame_wh"):
        QWEN2_5_VL.to_source_box((0, 0, 10, 10), source_wh=(1280, 720))
    with pytest.raises(BoxSpaceError, match="source_wh"):
        QWEN3_VL.to_source_box((0, 0, 10, 10))


@pytest.mark.parametrize(
    ("family", "hw", "expected"),
    [
        (QWEN2_5_VL, (720, 1280), (224, 420)),
        (QWEN2_5_VL, (480, 640), (252, 364)),
        (QWEN3_VL, (720, 1280), (224, 416)),
    ],
)
def test_family_smart_resize(
    family: ModelFamily, hw: tuple[int, int], expected: tuple[int, int]
) -> None:
    # Qwen3 at 100,352 pixels: sqrt(921600/100352)=3.03 → 720/3.03=237.6→224, 1280/3.03=422.4→416
    assert family.smart_resize(*hw) == expected
    h, w = family.smart_resize(*hw)
    assert h % family.factor == 0 and w % family.factor == 0

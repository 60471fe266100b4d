"""Box geometry and box-space conversions, with hand-derived expected values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from o3video.boxes import (
    Box,
    BoxSpace,
    area,
    clamp_xyxy,
    convert_xyxy,
    interval_hull,
    interval_iou,
    interval_union,
    iou,
    order_xyxy,
)
from o3video.errors import BoxSpaceError
from o3video.video import smart_resize

# ---- geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # identical boxes
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        # half overlap along x: inter 50, union 150
        ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),
        # corner overlap: inter 1, union 4 + 4 - 1 = 7
        ((0, 0, 2, 2), (1, 1, 3, 3), 1 / 7),
        # disjoint
        ((0, 0, 1, 1), (2, 2, 3, 3), 0.0),
        # touching edges only: zero-area intersection
        ((0, 0, 1, 1), (1, 0, 2, 1), 0.0),
        # one inside the other: inter 4, union 100
        ((0, 0, 10, 10), (4, 4, 6, 6), 4 / 100),
        # corners given in the wrong order are ordered first
        ((10, 10, 0, 0), (0, 0, 10, 10), 1.0),
        ((10, 0, 0, 10), (5, 0, 15, 10), 50 / 150),
        # two degenerate boxes: nothing to match, not a division by zero
        ((1, 1, 1, 1), (1, 1, 1, 1), 0.0),
        # float boxes: inter 0.5*1, union 1 + 1 - 0.5
        ((0.0, 0.0, 1.0, 1.0), (0.5, 0.0, 1.5, 1.0), 0.5 / 1.5),
        # non-finite coordinates score 0
        ((0, 0, math.inf, 10), (0, 0, 10, 10), 0.0),
        ((0, 0, math.nan, 10), (0, 0, 10, 10), 0.0),
    ],
)
def test_iou(a: tuple[float, ...], b: tuple[float, ...], expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


def test_order_clamp_area() -> None:
    assert order_xyxy((5, 8, 1, 2)) == (1.0, 2.0, 5.0, 8.0)
    # clamp into a 100x50 frame after ordering
    assert clamp_xyxy((120, -5, 40, 30), (100, 50)) == (40.0, 0.0, 100.0, 30.0)
    # a box fully outside collapses onto the border: zero area
    assert area(clamp_xyxy((150, 10, 200, 20), (100, 50))) == 0.0
    assert area((0, 0, 4, 2.5)) == 10.0
    assert area((4, 0, 0, 2)) == 0.0  # inverted: area of an unordered box is 0
    with pytest.raises(ValueError, match="4 numbers"):
        order_xyxy((1, 2, 3))


# ---- spaces --------------------------------------------------------------------------------

SRC = (1280, 720)


def test_qwen25_frame_space_for_a_16_9_video() -> None:
    # Qwen2.5-VL shows a 1280x720 video at 420x224 under the published budget (128*28*28 px).
    h, w = smart_resize(720, 1280, factor=28, max_pixels=128 * 28 * 28)
    frame = (w, h)
    assert frame == (420, 224)
    # The left-top quarter of the source: x scale 420/1280, y scale 224/720.
    assert convert_xyxy(
        (0, 0, 640, 360), "source_px", "frame_px", source_wh=SRC, frame_wh=frame
    ) == (0.0, 0.0, 210.0, 112.0)
    # A model box (42, 56, 210, 112) in the 420x224 frame: x*1280/420, y*720/224.
    got = convert_xyxy((42, 56, 210, 112), "frame_px", "source_px", source_wh=SRC, frame_wh=frame)
    assert got == pytest.approx((128.0, 180.0, 640.0, 360.0))


def test_rel1000_space_for_qwen3() -> None:
    # Qwen3-VL writes 0-1000: (500, 0, 1000, 1000) is the right half of the frame.
    got = convert_xyxy((500, 0, 1000, 1000), "rel1000", "source_px", source_wh=SRC)
    assert got == (640.0, 0.0, 1280.0, 720.0)
    # 0-1000 does not depend on the resized frame at all: no frame_wh needed.
    back = convert_xyxy((320, 180, 960, 540), "source_px", "rel1000", source_wh=SRC)
    assert back == pytest.approx((250.0, 250.0, 750.0, 750.0))


def test_rel1_space_and_box_value() -> None:
    b = Box((0.25, 0.5, 0.75, 1.0), "rel1")
    assert b.to("source_px", source_wh=(400, 200)).xyxy == (100.0, 100.0, 300.0, 200.0)
    assert b.to("rel1000").xyxy == (250.0, 500.0, 750.0, 1000.0)
    assert b.to("rel1") is b
    # 4:3 video (640x480) shown at 364x252: a normalized box lands on frame pixels.
    f = b.to("frame_px", frame_wh=(364, 252)).xyxy
    assert f == pytest.approx((91.0, 126.0, 273.0, 252.0))


def test_conversion_errors_are_clear() -> None:
    with pytest.raises(BoxSpaceError, match="frame_wh"):
        convert_xyxy((0, 0, 1, 1), "frame_px", "source_px", source_wh=SRC)
    with pytest.raises(BoxSpaceError, match="source_wh"):
        convert_xyxy((0, 0, 1, 1), "rel1", "source_px")
    with pytest.raises(BoxSpaceError, match="unknown box space"):
        convert_xyxy((0, 0, 1, 1), "pixels", "rel1")  # type: ignore[arg-type]
    with pytest.raises(BoxSpaceError, match="positive"):
        convert_xyxy((0, 0, 1, 1), "rel1", "source_px", source_wh=(0, 720))
    with pytest.raises(BoxSpaceError):
        Box((0, 0, 1, 1), "nope")  # type: ignore[arg-type]


finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)
sizes = st.tuples(st.integers(1, 4000), st.integers(1, 4000))


@given(st.tuples(finite, finite, finite, finite), sizes, sizes)
def test_conversion_round_trips(
    xyxy: tuple[float, ...], src: tuple[int, int], frm: tuple[int, int]
) -> None:
    spaces: tuple[BoxSpace, ...] = ("frame_px", "rel1000", "rel1")
    for space in spaces:
        there = convert_xyxy(xyxy, "source_px", space, source_wh=src, frame_wh=frm)
        back = convert_xyxy(there, space, "source_px", source_wh=src, frame_wh=frm)
        assert back == pytest.approx(xyxy, abs=1e-6)


@given(st.tuples(finite, finite, finite, finite), st.tuples(finite, finite, finite, finite))
def test_iou_is_a_fraction_and_symmetric(a: tuple[float, ...], b: tuple[float, ...]) -> None:
    v = iou(a, b)
    assert 0.0 <= v <= 1.0
    assert v == iou(b, a)


# ---- time intervals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 10), (5, 15), 5 / 15),
        ((0, 10), (0, 10), 1.0),
        ((0, 10), (2, 4), 2 / 10),
        ((0, 1), (2, 3), 0.0),
        ((3, 1), (0, 10), 0.0),  # reversed prediction is invalid, not flipped
        ((0, 10), (10, 20), 0.0),
        ((5, 5), (0, 10), 0.0),  # zero-length span
        ((0, math.nan), (0, 10), 0.0),
    ],
)
def test_interval_iou(a: tuple[float, float], b: tuple[float, float], expected: float) -> None:
    assert interval_iou(a, b) == pytest.approx(expected)


def test_interval_hull_and_union() -> None:
    assert interval_hull([(3, 4), (1, 2), (6, 5)]) == (1.0, 6.0)
    assert interval_union([(5, 7), (0, 2), (1, 3), (3, 4)]) == [(0.0, 4.0), (5.0, 7.0)]
    assert interval_union([]) == []
    with pytest.raises(ValueError):
        interval_hull([])

"""V-STaR scoring (SPEC §7): parsers, per-item scores, aggregates, official vs default mode.

Every expected number is derived by hand in a comment. The ground truth of the shared items:
span [2, 6] s, boxes (0, 0, 10, 10) at seconds 3 and 4, in a 100×100 frame.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from o3video.errors import BoxSpaceError, DataError
from o3video.eval.vstar_parse import (
    official_best_iou,
    official_temporal_iou,
    official_time_answer,
    parse_box_answer,
    parse_time_answer,
)
from o3video.eval.vstar_score import ScoreConfig, duration_class, score_vstar

GT_BOX = [0, 0, 10, 10]


def record(
    domain: str = "a", *, fps: float = 10.0, frame_count: int = 300, **answers: Any
) -> dict[str, Any]:
    """A V-STaR item (30 s at the defaults) with the given answers (missing ones empty)."""
    base: dict[str, Any] = {
        "vid": "v",
        "domain": domain,
        "fps": fps,
        "width": 100,
        "height": 100,
        "frame_count": frame_count,
        "question": "q",
        "answer": "a",
        "temporal_question": "tq",
        "timestamps": [2, 6],
        "spatial_question": "sq",
        "spatial_question_2": "sq2",
        "bboxes": [
            {"timestamp": t, "frame_index": 10 * t, "xmin": 0, "ymin": 0, "xmax": 10, "ymax": 10}
            for t in (3, 4)
        ],
    }
    for key in (
        "answer_vqa",
        "answer_temporal",
        "answer_spatial",
        "answer_spatial_2",
        "answer_temporal_2",
    ):
        base[key] = answers.get(key, "")
    return base


PERFECT = {"3": GT_BOX, "4": GT_BOX}
# R0: What rated 3 (correct). When1 [4, 8] vs [2, 6]: overlap 2 / union 6 = 1/3. When2 the string
#     "[2, 6]" = 1. Where1: "3" hits (IoU 1), "4.0" ≠ "4" officially (0) but matches by number in
#     default mode (1); "9" is an extra second, ignored. Where2: second 3 holds two boxes, the best
#     IoU is 1; second 4 missing → 0; so 0.5 in both modes.
# R1: no What answer (rating null), every other answer perfect.
# R2: What unparsable (-1, wrong). When1 reversed [6, 2] → 0. When2 in text: official cannot
#     literal_eval it → 0; default reads [2, 4] → 2/4 = 0.5. No boxes → 0. A 200 s video (long).
RECORDS = [
    record(
        answer_vqa="x",
        answer_temporal=[4, 8],
        answer_temporal_2="[2, 6]",
        answer_spatial={"3": GT_BOX, "4.0": GT_BOX, "9": GT_BOX},
        answer_spatial_2={"3": [[0, 0, 5, 10], GT_BOX]},
    ),
    record(
        answer_temporal=[2, 6],
        answer_temporal_2=[2, 6],
        answer_spatial=PERFECT,
        answer_spatial_2=PERFECT,
    ),
    record(
        "b",
        frame_count=2000,
        answer_vqa="y",
        answer_temporal=[6, 2],
        answer_temporal_2="From <t>2</t>s to <t>4</t>s",
        answer_spatial={},
        answer_spatial_2=None,
    ),
]
RATINGS = [3, None, -1]


def lgm(*xs: float) -> float:
    return -sum(math.log(1 - x) for x in xs) / 3


def test_official_mode_reproduces_the_script() -> None:
    s = score_vstar(RECORDS, RATINGS, ScoreConfig(mode="official"))
    o = s.overall
    # Acc = 1 correct / 3 items: the item without a What answer stays in the denominator.
    assert o.acc == pytest.approx(1 / 3)
    # ...but it is left out of every IoU mean: only R0 and R2 count.
    assert (o.n, o.n_scored) == (3, 2)
    assert o.tiou[0] == pytest.approx((1 / 3 + 0) / 2)  # 1/6
    assert o.tiou[1] == pytest.approx((1 + 0) / 2)  # the text span is unreadable officially
    assert o.viou[0] == pytest.approx((0.5 + 0) / 2)  # "4.0" never matches "4"
    assert o.viou[1] == pytest.approx((0.5 + 0) / 2)
    # AM1 = (1/3 + 1/6 + 1/4)/3 = (9/12)/3 = 1/4; AM2 = (1/3 + 1/2 + 1/4)/3 = 13/36.
    assert o.am[0] == pytest.approx(1 / 4) and o.am[1] == pytest.approx(13 / 36)
    assert o.mam == pytest.approx((9 / 36 + 13 / 36) / 2)
    assert o.lgm[0] == pytest.approx(lgm(1 / 3, 1 / 6, 1 / 4))
    assert o.mlgm == pytest.approx((lgm(1 / 3, 1 / 6, 1 / 4) + lgm(1 / 3, 1 / 2, 1 / 4)) / 2)
    # R1 over tIoUs [1/3, 0] and [1, 0]; vIoU@t: R0's boxes [1, 0] → 1/2 at every t, R2 → 0.
    assert o.r1 == ((0.5, 0.0, 0.0), (0.5, 0.5, 0.5))
    assert o.viou_at[0] == pytest.approx((0.25,) * 5)
    assert o.mean_rating == pytest.approx((3 + 0) / 2)  # -1 counts as 0
    # Domain "a" holds R0 and R1; its accuracy denominator is the items scored (1): 1/1 → ln 0,
    # which crashes the official script: undefined here.
    a = s.by_domain["a"]
    assert (a.n, a.n_scored, a.acc, a.lgm[0], a.mlgm) == (2, 1, 1.0, None, None)
    assert s.by_domain["b"].acc == 0.0
    assert set(s.by_duration) == {"short", "long"}
    assert any("math domain error" in n for n in s.notes)
    assert any("left out of every IoU mean" in n for n in s.notes)


def test_default_mode_fixes_the_quirks() -> None:
    s = score_vstar(RECORDS, RATINGS, ScoreConfig(mode="default"))
    o = s.overall
    assert (o.n, o.n_scored) == (3, 3)  # the item without a What answer is kept everywhere
    assert o.acc == pytest.approx(1 / 3)  # ... and counted wrong
    assert o.tiou[0] == pytest.approx((1 / 3 + 1 + 0) / 3)  # 4/9
    assert o.tiou[1] == pytest.approx((1 + 1 + 0.5) / 3)  # 5/6: the text span is read
    assert o.viou[0] == pytest.approx((1 + 1 + 0) / 3)  # "4.0" is second 4
    assert o.viou[1] == pytest.approx((0.5 + 1 + 0) / 3)
    # AM1 = (3/9 + 4/9 + 6/9)/3 = 13/27; AM2 = (2/6 + 5/6 + 3/6)/3 = 5/9; mAM = 14/27.
    assert o.am[0] == pytest.approx(13 / 27) and o.am[1] == pytest.approx(5 / 9)
    assert o.mam == pytest.approx(14 / 27)
    assert o.lgm[1] == pytest.approx(lgm(1 / 3, 5 / 6, 1 / 2))
    assert s.by_domain["a"].acc == pytest.approx(1 / 2)  # group denominator = group size
    assert any("seconds matched as numbers" in n for n in s.notes)


def test_lgm_at_one() -> None:
    perfect = [
        record(
            answer_vqa="x",
            answer_temporal=[2, 6],
            answer_temporal_2=[2, 6],
            answer_spatial=PERFECT,
            answer_spatial_2=PERFECT,
        )
    ]
    d = score_vstar(perfect, [3]).overall
    # Every term is 1: default clamps to 1 - 1e-9, so LGM = -ln(1e-9) ≈ 20.72 (and says so).
    assert d.lgm[0] == pytest.approx(-math.log(1e-9), rel=1e-6) and d.mam == pytest.approx(1.0)
    off = score_vstar(perfect, [3], ScoreConfig(mode="official"))
    assert off.overall.lgm == (None, None) and off.overall.am[0] == pytest.approx(1.0)
    assert any("clamped" in n for n in score_vstar(perfect, [3]).notes)


def test_duration_classes_and_official_rounding() -> None:
    assert [duration_class(t) for t in (59.99, 60, 179.9, 180)] == [
        "short",
        "medium",
        "medium",
        "long",
    ]
    # 1799 frames at 29.985 fps = 59.9967 s: short, but the official round(…, 2) makes it 60.0.
    rec = [record(fps=29.985, frame_count=1799, answer_vqa="x")]
    assert score_vstar(rec, [2]).items[0].duration == "short"
    assert score_vstar(rec, [2], ScoreConfig(mode="official")).items[0].duration == "medium"


def test_boxes_mapped_from_the_model_space() -> None:
    rec = record(answer_vqa="x")
    rec.update(width=1280, height=720)
    rec["bboxes"] = [
        {"timestamp": 3, "frame_index": 30, "xmin": 0, "ymin": 0, "xmax": 640, "ymax": 360}
    ]
    # smart_resize(720, 1280) = (224, 420): the GT box is (0, 0, 210, 112) in the model's frame.
    rec["answer_spatial"] = {"3": [0, 0, 210, 112]}
    rec["answer_spatial_2"] = {"3": [0, 0, 500, 500]}
    px = score_vstar([rec], [3], ScoreConfig(box_space="frame_px")).overall
    assert px.viou[0] == pytest.approx(1.0)
    rel = score_vstar([rec], [3], ScoreConfig(box_space="rel1000")).overall
    assert rel.viou[1] == pytest.approx(1.0)
    # Unmapped (official): (0,0,210,112) vs (0,0,640,360) = 23520 / 230400.
    off = score_vstar([rec], [3], ScoreConfig(mode="official")).overall
    assert off.viou[0] == pytest.approx(210 * 112 / (640 * 360))
    with pytest.raises(BoxSpaceError):
        ScoreConfig(mode="official", box_space="frame_px")


def test_string_gt_timestamps_officially() -> None:
    rec = record(answer_vqa="x", answer_spatial={"3": GT_BOX, "4": GT_BOX})
    rec["bboxes"][0]["timestamp"] = 3.0  # str(3.0) == "3.0" never matches the key "3"
    # Official: box at 3 → 0, box at 4 → 1 → 0.5; default: both → 1.
    assert score_vstar([rec], [3], ScoreConfig(mode="official")).overall.viou[0] == 0.5
    assert score_vstar([rec], [3]).overall.viou[0] == 1.0


@pytest.mark.parametrize(
    ("ratings", "message"),
    [
        ([3], "1 ratings for 3 results"),
        ([3, None, 4], "rating 2 must be 0-3"),
        ([3, None, True], "rating 2 must be 0-3"),
        ([None, None, -1], "rating 0 is None but item 0 has What answer"),
        ([3, 1, -1], "rating 1 is 1 but item 1 has no What answer"),
    ],
)
def test_bad_ratings(ratings: list[Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        score_vstar(RECORDS, ratings)


def test_bad_records() -> None:
    with pytest.raises(DataError, match="record 0 has none of answer_vqa"):
        score_vstar([{"vid": "v"}], [None])
    bad = record(answer_vqa="x")
    bad["timestamps"] = [6, 2]
    with pytest.raises(DataError, match="record 0, timestamps"):
        score_vstar([bad], [3])


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ([3, 7.5], (3.0, 7.5)),
        (["3", "7"], (3.0, 7.0)),
        ("[2.5, 4]", (2.5, 4.0)),
        ("From <t>2.5</t>s to <t>7</t>s", (2.5, 7.0)),
        ("<answer>from 1:05 to 1:10</answer>", (65.0, 70.0)),
        ("0:01:05 - 0:01:10", (65.0, 70.0)),
        ("The event lasts from 3 to 5 seconds, about 2 s.", (3.0, 5.0)),
        ("[6, 2]", (6.0, 2.0)),  # reversed: kept as written, scored 0
        ("around 5 s", None),
        ([1, 2, 3], None),
        (None, None),
        ({"start": 1}, None),
    ],
)
def test_parse_time_answer(answer: Any, expected: tuple[float, float] | None) -> None:
    assert parse_time_answer(answer) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ([3, 5], (3.0, 5.0)),
        ("[3, 5]", (3.0, 5.0)),
        ("3, 5", (3.0, 5.0)),  # literal_eval gives a tuple
        ([True, 5], (1.0, 5.0)),  # bool is an int to isinstance
        (["3", "5"], None),
        ("From <t>3</t>s to <t>5</t>s", None),
        ([1, 2, 3], None),
        ([], None),
    ],
)
def test_official_time_answer(answer: Any, expected: tuple[float, float] | None) -> None:
    assert official_time_answer(answer) == expected


def test_official_temporal_iou() -> None:
    assert official_temporal_iou((2, 6), (4, 8)) == pytest.approx(2 / 6)
    assert official_temporal_iou((4, 8), (10, 5)) == 0.0  # reversed: no overlap
    assert official_temporal_iou((2, 6), None) == 0.0


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"3": [1, 2, 3, 4]}, {3.0: ((1.0, 2.0, 3.0, 4.0),)}),
        ('```json\n{"3.0": [1, 2, 3, 4]}\n```', {3.0: ((1.0, 2.0, 3.0, 4.0),)}),
        ('Here: {"3s": [1, 2, 3, 4]} done', {3.0: ((1.0, 2.0, 3.0, 4.0),)}),
        ("{'3': [1, 2, 3, 4]}", {3.0: ((1.0, 2.0, 3.0, 4.0),)}),
        ({"3": {"bbox_2d": [1, 2, 3, 4]}}, {3.0: ((1.0, 2.0, 3.0, 4.0),)}),
        (
            {"3": [[0, 0, 1, 1], {"bbox_2d": [1, 1, 2, 2]}]},
            {3.0: ((0.0, 0.0, 1.0, 1.0), (1.0, 1.0, 2.0, 2.0))},
        ),
        ([{"timestamp": 4, "bbox_2d": [1, 2, 3, 4]}], {4.0: ((1.0, 2.0, 3.0, 4.0),)}),
        ({"3": [1, 2, 3]}, {}),
        ({"x": [1, 2, 3, 4]}, {}),
        ("no json here", {}),
        ('{"3": [1, 2, 3, ', {}),
        (None, {}),
    ],
)
def test_parse_box_answer(answer: Any, expected: dict[float, tuple[Any, ...]]) -> None:
    assert parse_box_answer(answer) == expected


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        ([0, 0, 10, 10], 1.0),
        ([[0, 0, 5, 10], [0, 0, 10, 10]], 1.0),  # several boxes: the best
        ([0, 0, 5, 10], 0.5),
        ([10, 10, 0, 0], 0.0),  # corners not ordered officially
        ({"bbox_2d": [0, 0, 10, 10]}, 0.0),
        ([["a", 0, 1, 1]], 0.0),  # an error inside is swallowed → 0
        ([], 0.0),
    ],
)
def test_official_best_iou(pred: Any, expected: float) -> None:
    assert official_best_iou((0, 0, 10, 10), pred) == pytest.approx(expected)

"""V-STaR items (SPEC §7): a valid item, each invalid form reported with its exact item index,
field and kind; files (strict and not), media lookup and decoding; ``o3video data check``.

The item is written by hand below (``item()``); each case changes one thing.
"""

from __future__ import annotations

import copy
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_stgr import JSON, changed

from o3video.cli.main import main
from o3video.data import VStarBox, load_vstar
from o3video.data.vstar import is_vstar_file, item_from_dict
from o3video.errors import DataError

# 10 fps, 80 frames: an 8 s video of 224x160; span 1.5-3.2 s holds the whole seconds 2 and 3.
VALID: dict[str, Any] = {
    "vid": "clip_01",
    "domain": "Daily Life",
    "fps": 10.0,
    "width": 224,
    "height": 160,
    "frame_count": 80,
    "question": "Which shape stands still?",
    "answer": "the red circle",
    "temporal_question": "When does the red circle stand still?",
    "timestamps": [1.5, 3.2],
    "spatial_question": "Where is the red circle while it stands still?",
    "spatial_question_2": "Where is the red circle standing still?",
    "bboxes": [
        {"timestamp": 2, "frame_index": 20, "xmin": 10, "ymin": 20, "xmax": 50.5, "ymax": 60},
        {"timestamp": 3, "frame_index": 30, "xmin": 12, "ymin": 20, "xmax": 52.5, "ymax": 60},
    ],
}


def item(**changes: Any) -> dict[str, Any]:
    """The valid item with ``changes`` applied (``None`` deletes a field)."""
    return changed(VALID, **changes)


def box(j: int, **changes: Any) -> list[dict[str, Any]]:
    """The valid bboxes with box ``j`` changed."""
    boxes = copy.deepcopy(VALID["bboxes"])
    boxes[j].update(changes)
    return boxes


def write(tmp_path: Path, items: Any, name: str = "vstar.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


def test_valid_item() -> None:
    got, issues = item_from_dict(item(), 3)
    assert issues == [] and got is not None
    assert (got.index, got.vid, got.domain, got.fps, got.frame_wh) == (
        3,
        "clip_01",
        "Daily Life",
        10.0,
        (224, 160),
    )
    assert got.span_s == (1.5, 3.2) and got.duration_s == 8.0
    assert got.boxes == (
        VStarBox(2, 20, (10.0, 20.0, 50.5, 60.0)),
        VStarBox(3, 30, (12.0, 20.0, 52.5, 60.0)),
    )


def test_readme_box_form_and_int_vid_and_extra_fields_are_read() -> None:
    readme = [{"2_20": {"xmin": 10, "ymin": 20, "xmax": 50.5, "ymax": 60}}]
    got, issues = item_from_dict(item(bboxes=readme, vid=10015, chain="<think>…", object="x"), 0)
    assert issues == [] and got is not None
    assert got.vid == "10015" and got.boxes == (VStarBox(2, 20, (10.0, 20.0, 50.5, 60.0)),)


@pytest.mark.parametrize(
    ("changes", "field", "kind"),
    [
        ({"vid": None}, "vid", "missing_field"),
        ({"width": "224"}, "width", "wrong_type"),
        ({"fps": 0}, "fps", "bad_value"),
        ({"frame_count": -80}, "frame_count", "bad_value"),
        ({"spatial_question_2": " "}, "spatial_question_2", "missing_field"),
        ({"answer": 3}, "answer", "wrong_type"),
        ({"timestamps": [3.2]}, "timestamps", "wrong_type"),
        ({"timestamps": [3.2, 1.5]}, "timestamps", "bad_time"),
        ({"timestamps": [-1, 3.2]}, "timestamps[0]", "bad_time"),
        ({"timestamps": [1.5, 9.0]}, "timestamps[1]", "time_out_of_range"),  # 8 s video
        ({"bboxes": []}, "bboxes", "missing_field"),
        ({"bboxes": {"2": [1, 2, 3, 4]}}, "bboxes", "wrong_type"),
        ({"bboxes": ["x"]}, "bboxes[0]", "wrong_type"),
        ({"bboxes": box(1, timestamp=2.5)}, "bboxes[1].timestamp", "bad_time"),
        ({"bboxes": box(1, timestamp=4)}, "bboxes[1].timestamp", "time_out_of_range"),
        ({"bboxes": box(0, timestamp=1)}, "bboxes[0].timestamp", "time_out_of_range"),
        ({"bboxes": box(1, timestamp=None)}, "bboxes[1].timestamp", "missing_field"),
        ({"bboxes": box(0, frame_index=2.0)}, "bboxes[0].frame_index", "wrong_type"),
        ({"bboxes": box(1, xmax=230)}, "bboxes[1]", "box_out_of_range"),  # W = 224
        ({"bboxes": box(0, ymin=70)}, "bboxes[0]", "box_unordered"),
        ({"bboxes": box(0, ymax=None)}, "bboxes[0]", "missing_field"),
        ({"bboxes": box(0, timestamp=3)}, "bboxes[1].timestamp", "unordered_boxes"),  # 3, 3
        ({"bboxes": VALID["bboxes"][::-1]}, "bboxes[1].timestamp", "unordered_boxes"),  # 3, 2
    ],
)
def test_invalid_item_reports_index_field_and_kind(
    changes: dict[str, Any], field: str, kind: str
) -> None:
    raw = item(**changes)
    for key in [k for k, v in changes.items() if v is None]:
        assert key not in raw
    got, issues = item_from_dict(raw, 7)
    assert got is None
    assert [(i.index, i.field, i.kind, i.severity) for i in issues] == [(7, field, kind, "error")]


def test_box_deleted_key_and_not_an_object() -> None:
    boxes = box(1)
    del boxes[1]["timestamp"]
    assert [(i.field, i.kind) for i in item_from_dict(item(bboxes=boxes), 0)[1]] == [
        ("bboxes[1].timestamp", "missing_field")
    ]
    _, issues = item_from_dict(["not", "an", "item"], 5)
    assert [(i.index, i.field, i.kind) for i in issues] == [(5, "<record>", "not_an_object")]


def test_frame_index_outside_the_video_is_only_a_warning() -> None:
    got, issues = item_from_dict(item(bboxes=box(1, frame_index=80)), 2)
    assert got is not None
    assert [(i.field, i.kind, i.severity) for i in issues] == [
        ("bboxes[1].frame_index", "time_out_of_range", "warning")
    ]


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(sorted(VALID)), value=JSON)
def test_any_field_value_gives_issues_never_an_exception(key: str, value: Any) -> None:
    got, issues = item_from_dict(item(**{key: value}), 0)
    assert got is not None or any(i.severity == "error" for i in issues)
    got, issues = item_from_dict(item(bboxes=[value]), 0)
    assert got is not None or any(i.severity == "error" for i in issues)


def test_load_skips_and_strict_raises_naming_the_first_bad_item(tmp_path: Path) -> None:
    path = write(tmp_path, [item(), item(fps=0), item(vid="b")])
    data = load_vstar(path)
    assert (data.total, len(data), [s.index for s in data.skipped]) == (3, 2, [1])
    assert [i.vid for i in data] == ["clip_01", "b"]
    assert data.report()["skipped_records"][0]["source"] == "Daily Life"
    with pytest.raises(DataError) as exc:
        load_vstar(path, strict=True)
    assert (exc.value.index, exc.value.field) == (1, "fps")
    assert is_vstar_file(path) and not is_vstar_file(write(tmp_path, [{"task": "x"}], "s.json"))


def test_media_lookup_and_decoding(tmp_path: Path) -> None:
    from videos import encode_video

    path = write(tmp_path, [item(), item(vid="b"), item(vid="c")])
    (tmp_path / "videos").mkdir()
    (tmp_path / "clip_01.mp4").write_bytes(b"not a video")
    encode_video(tmp_path / "videos/b.mp4", list(range(80)), Fraction(1, 10), rate=10)
    data = load_vstar(path, tmp_path)
    assert [(i.index, i.field, i.kind, i.path) for i in data.issues] == [
        (2, "vid", "missing_media", str(tmp_path / "c.mp4"))
    ]
    assert "nor " + str(tmp_path / "videos/c.mp4") in data.issues[0].message
    data = load_vstar(path, tmp_path, decode_media=True)
    assert [(i.index, i.field, i.kind) for i in data.issues] == [
        (0, "vid", "undecodable_media"),
        (2, "vid", "missing_media"),
    ]
    assert [i.vid for i in data] == ["b"]


def test_data_check_recognises_vstar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, [item(), item(bboxes=box(1, xmax=230)), item(domain="Indoor")])
    assert main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: 3 V-STaR items, 2 usable, 1 skipped, 0 warnings" in out
    assert "  domain                             total  usable  skipped" in out
    assert "  Daily Life                             2       1        1" in out
    assert "record 1, bboxes[1]: box [12, 20, 230, 60] is outside the 224x160 image" in out
    assert main(["data", "check", str(path), "--json"]) == 1
    got = json.loads(capsys.readouterr().out)
    assert got["domains"] == {
        "Daily Life": {"total": 2, "usable": 1, "skipped": 1},
        "Indoor": {"total": 1, "usable": 1, "skipped": 0},
    }
    assert main(["data", "check", str(write(tmp_path, [item()])), "--format", "stgr"]) == 1
    assert "0 usable" in capsys.readouterr().out
    assert main(["data", "stats", str(path)]) == 1
    assert "a V-STaR file" in capsys.readouterr().err

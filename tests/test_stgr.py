"""STGR records: valid records of every task, each invalid form reported with its exact
record index, field and kind; malformed JSON; strict and non-strict loading; missing media.

Records are written by hand below (``valid(task)``); each test changes one thing.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from o3video.data import (
    MediaLayout,
    SourceRoot,
    SpatioTemporalRecord,
    TemporalMCQRecord,
    TemporalQARecord,
    VideoFreeFormRecord,
    VideoMCQRecord,
    VisualQARecord,
    iter_stgr,
    load_stgr,
    record_from_dict,
)
from o3video.errors import DataError

VALID: dict[str, dict[str, Any]] = {
    "visual QA": {
        "task": "visual QA",
        "question": "Where is the cup?",
        "answer": "<obj>cup</obj><box>[64,48,320,240]</box>",
        "reasoning_process": "The cup <obj>cup</obj><box>[64,48,320,240]</box> is on the left.",
        "source": "gqa",
        "image_path": "img/1.jpg",
        "image_size": [640, 480],
    },
    "temporal QA": {
        "task": "temporal QA",
        "question": "When does the man jump?",
        "answer": "[1.5, 3.0]",
        "reasoning_process": "He crouches at <t>1.4</t>s and lands at <t>3.0</t>s.",
        "source": "TVG_tacos",
        "video_path": "v/t.mp4",
    },
    "temporal QA (MCQ)": {
        "task": "temporal QA (MCQ)",
        "question": "When does he jump? A. twice B. once",
        "answer": "B\n[0.5, 1.5]",
        "source": "TVG_activitynet",
        "video_path": "v/m.mp4",
    },
    "temporal-spatial free-form QA": {
        "task": "temporal-spatial free-form QA",
        "question": "What does the dog chase?",
        "answer": "A cat.",
        "reasoning_process": "<obj>dog</obj><box>[0.25,0.5,0.75,1.0]</box>at<t>0.75</t>s runs.",
        "source": "STR_coin",
        "video_path": "v/st.mp4",
        "key_frames": [{"path": "st_0.jpg", "time": 0.75, "idx": 0}],
        "key_items": {"0": {"dog": [[0.25, 0.5, 0.75, 1.0]]}},
    },
    "General video QA MCQ": {
        "task": "General video QA MCQ",
        "question": "What colour? A. red B. blue C. green",
        "answer": "C",
        "source": "videor1_mcq",
        "video_path": "g/mcq.mp4",
    },
    "General video QA Free-form": {
        "task": "General video QA Free-form",
        "question": "What happens?",
        "answer": "A man cooks.",
        "source": "videor1_free_from",
        "video_path": "g/ff.mp4",
    },
}


def changed(base: dict[str, Any], /, **changes: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with ``changes`` applied (``None`` deletes a field)."""
    raw = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def valid(task: str, /, **changes: Any) -> dict[str, Any]:
    """A valid record of ``task`` with ``changes`` applied (``None`` deletes a field)."""
    return changed(VALID[task], **changes)


FIELDS = sorted({k for raw in VALID.values() for k in raw} | {"id", "duration", "image_size"})


def write(tmp_path: Path, records: Any, name: str = "stgr.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("task", "cls", "parsed"),
    [
        ("visual QA", VisualQARecord, {"answer_box": (64.0, 48.0, 320.0, 240.0)}),
        ("temporal QA", TemporalQARecord, {"span_s": (1.5, 3.0)}),
        ("temporal QA (MCQ)", TemporalMCQRecord, {"letter": "B", "span_s": (0.5, 1.5)}),
        ("temporal-spatial free-form QA", SpatioTemporalRecord, {}),
        ("General video QA MCQ", VideoMCQRecord, {"letter": "C"}),
        ("General video QA Free-form", VideoFreeFormRecord, {}),
    ],
)
def test_valid_record_of_every_task(task: str, cls: type, parsed: dict[str, Any]) -> None:
    record, issues = record_from_dict(valid(task), 4)
    assert issues == []
    assert isinstance(record, cls)
    assert record.index == 4 and record.task == task
    for name, value in parsed.items():
        assert getattr(record, name) == value
    if isinstance(record, SpatioTemporalRecord):
        (kf,) = record.key_frames
        assert (kf.path, kf.time_s, kf.idx) == ("st_0.jpg", 0.75, 0)
        assert kf.objects == {"dog": ((0.25, 0.5, 0.75, 1.0),)}


ST = "temporal-spatial free-form QA"
BAD: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    ("temporal QA", {"question": 5}, [("question", "wrong_type")]),
    ("temporal QA", {"question": "  "}, [("question", "missing_field")]),
    ("General video QA MCQ", {"task": "video QA"}, [("task", "unknown_task")]),
    ("temporal QA", {"answer": "from 1.5 to 3"}, [("answer", "bad_answer")]),
    ("temporal QA", {"answer": "[3, 1]"}, [("answer", "bad_time")]),
    ("temporal QA", {"video_path": None}, [("video_path", "missing_field")]),
    ("temporal QA (MCQ)", {"answer": "B [0.5, 1.5]"}, [("answer", "bad_answer")]),
    ("General video QA MCQ", {"answer": "blue"}, [("answer", "bad_answer")]),
    ("General video QA Free-form", {"source": 3}, [("source", "wrong_type")]),
    ("visual QA", {"answer": "<box>[64,48,700,240]</box>"}, [("answer", "box_out_of_range")]),
    ("visual QA", {"answer": "the cup"}, [("answer", "bad_answer")]),
    ("visual QA", {"image_size": None}, [("image_size", "missing_field")]),
    ("visual QA", {"image_size": [640]}, [("image_size", "wrong_type")]),
    (ST, {"key_frames": "x"}, [("key_frames", "wrong_type")]),
    (ST, {"key_frames": []}, [("key_frames", "missing_field"), ("key_items.0", "key_mismatch")]),
    (ST, {"key_items": None}, [("key_items", "missing_field")]),
    (
        ST,
        {"key_items": {"0": {"dog": [[0.75, 0.5, 0.25, 1.0]]}}},
        [("key_items.0.dog[0]", "box_unordered")],
    ),
    (
        ST,
        {"key_items": {"0": {"dog": [[0.2, 0.5, 1.5, 1.0]]}}},
        [("key_items.0.dog[0]", "box_out_of_range")],
    ),
    (ST, {"key_items": {"0": {"dog": [[0.2, 0.5, 1.0]]}}}, [("key_items.0.dog[0]", "bad_box")]),
    (ST, {"key_items": {"0": {"dog": [0.2, 0.5, 0.6, 1.0]}}}, [("key_items.0.dog", "wrong_type")]),
    (
        ST,
        {"key_frames": [{"path": "a.jpg", "time": 0.75, "idx": 1}]},
        [("key_frames[0].idx", "key_mismatch"), ("key_items.0", "key_mismatch")],
    ),
    (
        ST,
        {
            "key_frames": [
                {"path": "a.jpg", "time": 1, "idx": 0},
                {"path": "b.jpg", "time": 2, "idx": 0},
            ]
        },
        [("key_frames[1].idx", "duplicate_key_frame")],
    ),
    (
        ST,
        {"key_frames": [{"path": "a.jpg", "time": -1, "idx": 0}]},
        [("key_frames[0].time", "bad_time")],
    ),
    (
        ST,
        {"key_frames": [{"path": "a.jpg", "time": "1", "idx": 0}]},
        [("key_frames[0].time", "wrong_type")],
    ),
    (ST, {"key_frames": [{"path": "a.jpg", "idx": 0}]}, [("key_frames[0].time", "missing_field")]),
    (
        ST,
        {"key_frames": [{"path": 7, "time": 1, "idx": 0}]},
        [("key_frames[0].path", "wrong_type")],
    ),
    (
        ST,
        {"duration": 0.2},  # the key frame and the reasoning's claim are at 0.75 s
        [("key_frames[0].time", "time_out_of_range"), ("reasoning_process", "time_out_of_range")],
    ),
    (
        "temporal QA",
        {"duration": 2.0},  # the span ends at 3 s, and the reasoning says 3 s
        [("answer", "time_out_of_range"), ("reasoning_process", "time_out_of_range")],
    ),
    (
        "temporal QA",
        {"reasoning_process": "<think>x</think>"},
        [("reasoning_process", "unusable_trace")],
    ),
    (
        ST,
        {"reasoning_process": "<obj>dog</obj><box>[10,20,30,40]</box>at<t>1</t>s"},
        [("reasoning_process", "box_out_of_range")],
    ),
    (
        ST,
        {"reasoning_process": "<obj>dog</obj><box>[1,2]</box>at<t>1</t>s"},
        [("reasoning_process", "unusable_trace")],
    ),
    (
        "visual QA",
        {"reasoning_process": "<obj>cup</obj><box>[0,0,900,10]</box>"},
        [("reasoning_process", "box_out_of_range")],
    ),
]


@pytest.mark.parametrize(("task", "changes", "expected"), BAD, ids=lambda v: str(v)[:40])
def test_each_invalid_record_is_reported_with_index_field_and_kind(
    tmp_path: Path, task: str, changes: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    path = write(tmp_path, [valid("General video QA MCQ"), valid(task, **changes)])
    data = load_stgr(path)
    errors = [(i.index, i.field, i.kind) for i in data.issues if i.severity == "error"]
    assert errors == [(1, field, kind) for field, kind in expected]
    assert [s.index for s in data.skipped] == [1]
    assert [r.index for r in data.records] == [0]


def test_not_an_object_and_several_problems_in_one_record(tmp_path: Path) -> None:
    bad = valid("temporal QA", question=5, answer="soon", video_path=None)
    data = load_stgr(write(tmp_path, [5, bad]))
    got = [(i.index, i.field, i.kind) for i in data.issues]
    assert got == [
        (0, "<record>", "not_an_object"),
        (1, "question", "wrong_type"),
        (1, "video_path", "missing_field"),
        (1, "answer", "bad_answer"),
    ]


@pytest.mark.parametrize(
    ("changes", "field", "kind"),
    [
        (
            {"reasoning_process": "<obj>dog</obj><box>[0.1,0.1,0.2,0.2]</box> runs"},
            "reasoning_process",
            "trace_problem",
        ),
        (
            {"reasoning_process": "<obj>d</obj><box>[0.3,0.1,0.2,0.2]</box>at<t>1</t>s"},
            "reasoning_process",
            "box_unordered",
        ),
        (
            {"key_items": {"0": {"dog": [[0.25, 0.5, 0.75, 1.0]], "cat": None}}},
            "key_items.0.cat",
            "null_key_item",
        ),
        ({"key_items": {"0": None}}, "key_items.0", "null_key_item"),
    ],
)
def test_warnings_keep_the_record(changes: dict[str, Any], field: str, kind: str) -> None:
    record, issues = record_from_dict(valid(ST, **changes), 0)
    assert record is not None
    assert [(i.field, i.kind, i.severity) for i in issues] == [(field, kind, "warning")]


def test_key_items_null_gives_a_key_frame_without_boxes() -> None:
    record, _ = record_from_dict(valid(ST, key_items={"0": None}), 0)
    assert isinstance(record, SpatioTemporalRecord)
    assert record.key_frames[0].objects == {}


def test_unused_key_frames_on_other_tasks_are_a_warning() -> None:
    record, issues = record_from_dict(valid("General video QA MCQ", key_frames=[{"x": 1}]), 0)
    assert record is not None
    assert [(i.field, i.kind, i.severity) for i in issues] == [
        ("key_frames", "ignored_field", "warning")
    ]


def test_record_fields_are_read_back() -> None:
    record, _ = record_from_dict(valid("visual QA", id=17, duration=None), 9)
    assert isinstance(record, VisualQARecord)
    assert (record.id, record.image_size, record.answer_object) == ("17", (640, 480), "cup")
    assert record.prompt_task == "spatial_image"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[\n {"task": "temporal QA"},\n {"task": ]\n', "line 3, column 11 (record 1)"),
        ('[{"task": "temporal QA"}, {"task": "x"}', "line 1, column 40 (record 2)"),
        ('[{"task": "temporal QA"} {"task": "x"}]', "line 1, column 26 (record 1)"),
        ("[{}] x", "line 1, column 6 (record 1)"),
        ('{"a": 1}\n{"b": }\n', "line 2, column 7 (record 1)"),
    ],
)
def test_malformed_json_names_file_line_and_column(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as exc:
        load_stgr(path)
    assert str(exc.value).startswith(f"{path}: malformed JSON at {where}")
    assert exc.value.path == str(path)


def test_unreadable_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        load_stgr(tmp_path / "absent.json")
    (tmp_path / "latin.json").write_bytes(b'["\xff"]')
    with pytest.raises(DataError, match="cannot read"):
        load_stgr(tmp_path / "latin.json")


def test_json_lines_and_empty_list(tmp_path: Path) -> None:
    lines = "\n".join(json.dumps(valid(t)) for t in VALID)
    (tmp_path / "a.jsonl").write_text(lines + "\n", encoding="utf-8")
    data = load_stgr(tmp_path / "a.jsonl")
    assert [r.task for r in data] == list(VALID)
    assert load_stgr(write(tmp_path, [])).total == 0


def test_strict_raises_naming_the_first_bad_record_and_listing_all(tmp_path: Path) -> None:
    records = [valid("temporal QA"), valid("temporal QA", question=5), valid(ST, key_frames="x")]
    with pytest.raises(DataError) as exc:
        load_stgr(write(tmp_path, records), strict=True)
    err = exc.value
    assert (err.index, err.field) == (1, "question")
    assert "2 of 3 records are unusable" in str(err)
    assert "record 1, field 'question'" in str(err)
    assert "record 2, key_frames: 'key_frames' must be a list, got a string 'x'" in str(err)
    assert [(i.index, i.field) for i in err.issues] == [(1, "question"), (2, "key_frames")]


def test_non_strict_skips_reports_and_drops_nothing_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = [valid(t) for t in VALID] + [valid("temporal QA", answer="x"), "junk"]
    report = tmp_path / "report.json"
    with caplog.at_level(logging.WARNING, logger="o3video.data.load"):
        data = load_stgr(write(tmp_path, records), report_path=report)
    assert data.total == len(records) == len(data) + len(data.skipped)
    assert [s.index for s in data.skipped] == [6, 7]
    assert "skipped 2 of 8 records" in caplog.text and str(report) in caplog.text
    got = json.loads(report.read_text(encoding="utf-8"))
    assert (got["total"], got["valid"], got["skipped"]) == (8, 6, 2)
    assert got["skipped_records"][0] == {
        "index": 6,
        "id": None,
        "task": "temporal QA",
        "source": "TVG_tacos",
        "issues": [
            {
                "index": 6,
                "field": "answer",
                "kind": "bad_answer",
                "message": "'temporal QA' answers are \"[start, end]\", got 'x'",
                "severity": "error",
            }
        ],
    }
    assert got["skipped_records"][1]["issues"][0]["kind"] == "not_an_object"


def make_media(root: Path) -> None:
    """Media of the VALID records under the published layout, except the key frame."""
    for rel in ("tvg_r1/v/t.mp4", "tvg_r1/v/m.mp4", "stgr/temporal_grounding/videos/v/st.mp4"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"not really a video")
    (root / "gqa/img").mkdir(parents=True)
    Image.new("RGB", (640, 480)).save(root / "gqa/img/1.jpg")


def test_missing_media_are_listed_with_path_and_folder(tmp_path: Path) -> None:
    media = tmp_path / "videos"
    make_media(media)
    data = load_stgr(write(tmp_path, [valid(t) for t in VALID]), media)
    missing = [(i.index, i.field, i.kind, i.path, i.root) for i in data.issues]
    kfs, r1 = media / "stgr/temporal_grounding/kfs", media / "videor1"
    assert missing == [
        (3, "key_frames[0].path", "missing_media", str(kfs / "st_0.jpg"), str(kfs)),
        (4, "video_path", "missing_media", str(r1 / "g/mcq.mp4"), str(r1)),
        (5, "video_path", "missing_media", str(r1 / "g/ff.mp4"), str(r1)),
    ]
    assert [r.index for r in data] == [0, 1, 2]
    assert len(load_stgr(write(tmp_path, [valid(t) for t in VALID]), media, check_media=False)) == 6


def test_decode_finds_undecodable_media(tmp_path: Path) -> None:
    media = tmp_path / "videos"
    make_media(media)
    records = [valid("visual QA"), valid("temporal QA")]
    data = load_stgr(write(tmp_path, records), media, decode_media=True)
    assert [(i.index, i.field, i.kind) for i in data.issues] == [
        (1, "video_path", "undecodable_media")
    ]
    assert str(media / "tvg_r1/v/t.mp4") in data.issues[0].message


def test_iter_stgr_is_lazy(tmp_path: Path) -> None:
    path = write(tmp_path, [valid("temporal QA"), valid("temporal QA", answer="?")])
    entries = iter_stgr(path)
    first = next(entries)
    assert first.record is not None and first.issues == ()
    second = next(entries)
    assert second.record is None and second.task == "temporal QA"
    with pytest.raises(ValueError, match="media_root"):
        next(iter_stgr(path, check_media=True))


def test_media_layout_defaults_and_overrides(tmp_path: Path) -> None:
    layout = MediaLayout(tmp_path)
    cases = {
        "videoespresso_train_video": ("videoespresso/videos", "videoespresso/kfs"),
        "STR_plm_rdcap": ("stgr/plm/videos", "stgr/plm/kfs"),
        "STR_didemo": ("stgr/temporal_grounding/videos", "stgr/temporal_grounding/kfs"),
        "TVG_QVhighlight": ("tvg_r1", "tvg_r1"),
        "tvg_queryd": ("tvg_r1", "tvg_r1"),
        "videor1_free_from": ("videor1", "videor1"),
        "TreeVGR": ("treevgr", "treevgr"),
        "gqa": ("gqa", "gqa"),
        "timerft": ("timerft", "timerft"),
        "synthetic": ("", ""),
        "brand_new": ("brand_new", "brand_new"),
    }
    for source, (media, kfs) in cases.items():
        assert layout.root(source) == tmp_path / media, source
        assert layout.root(source, key_frame=True) == tmp_path / kfs, source
    mine = MediaLayout(tmp_path, {"STR_*": SourceRoot("st", "st/k"), "gqa": "images"})
    assert mine.path("STR_coin", "a.mp4") == tmp_path / "st/a.mp4"
    assert mine.path("STR_plm_rdcap", "a.jpg", key_frame=True) == tmp_path / "stgr/plm/kfs/a.jpg"
    assert mine.path("gqa", "1.jpg") == tmp_path / "images/1.jpg"
    bare = MediaLayout(tmp_path, defaults=False)
    assert bare.path("STR_coin", "a.mp4") == tmp_path / "STR_coin/a.mp4"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(task=st.sampled_from(list(VALID)), key=st.sampled_from(FIELDS), value=JSON)
def test_any_field_value_gives_issues_never_an_exception(task: str, key: str, value: Any) -> None:
    raw = valid(task)
    raw[key] = value
    record, issues = record_from_dict(raw, 0)
    assert record is not None or any(i.severity == "error" for i in issues)


@settings(max_examples=100, deadline=None)
@given(value=JSON)
def test_any_key_frame_or_key_items_shape_is_handled(value: Any) -> None:
    for key in ("key_frames", "key_items"):
        record_from_dict(valid(ST, **{key: value}), 0)
    record_from_dict(valid(ST, key_frames=[value]), 0)
    record_from_dict(valid(ST, key_items={"0": value}), 0)
    record_from_dict(valid(ST, key_items={"0": {"dog": value}}), 0)

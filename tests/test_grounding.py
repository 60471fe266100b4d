"""Temporal grounding benchmarks: Charades-STA and TVGBench loaders on tiny files in their
public formats, span reading, mIoU and R1@m derived by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from o3video.errors import DataError
from o3video.eval.benchmarks import (
    BenchItem,
    load_benchmark,
    parse_prediction,
    prompt_for,
    score_benchmark,
)
from o3video.eval.grounding import (
    grounding_question,
    load_charades_sta,
    load_tvgbench,
    parse_grounding,
    score_grounding,
)

CHARADES = """AO8RW 0.0 6.9##a person is putting a book on a shelf.
AO8RW 5.9 13.6##person begins to play on a phone.

Y6R7T 20.8 30.0##person closes the door.
"""


def touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


@pytest.fixture
def charades(tmp_path: Path) -> Path:
    root = tmp_path / "Charades"
    root.mkdir()
    (root / "charades_sta_test.txt").write_text(CHARADES, encoding="utf-8")
    touch(root / "Charades_v1_480" / "AO8RW.mp4", root / "Charades_v1_480" / "Y6R7T.mp4")
    return root


def test_charades_txt(charades: Path) -> None:
    items = load_charades_sta(charades)
    # ids use the 0-based line number: the blank line 2 is skipped, not renumbered
    assert [it.id for it in items] == ["AO8RW#0", "AO8RW#1", "Y6R7T#3"]
    assert items[1].span_s == (5.9, 13.6) and items[1].kind == "grounding"
    assert items[2].question == "person closes the door."
    assert items[2].video == charades / "Charades_v1_480" / "Y6R7T.mp4"
    assert load_benchmark("charades_sta", charades / "charades_sta_test.txt")[0].span_s == (
        0.0,
        6.9,
    )


def test_charades_json_export(tmp_path: Path) -> None:
    root = tmp_path / "charades_sta"
    rows = [{"video": "AO8RW.mp4", "caption": "a person sits", "timestamp": [1.5, 4.0]}]
    (root / "Charades_anno").mkdir(parents=True)
    (root / "Charades_anno" / "charades_sta_test.json").write_text(json.dumps(rows))
    items = load_charades_sta(root, check_videos=False)
    assert [(it.id, it.span_s) for it in items] == [("AO8RW#0", (1.5, 4.0))]
    rows[0]["timestamp"] = [1.5]
    (root / "Charades_anno" / "charades_sta_test.json").write_text(json.dumps(rows))
    with pytest.raises(DataError, match=r"record 0, field 'timestamp': expected \[start, end\]"):
        load_charades_sta(root, check_videos=False)


def test_charades_errors(charades: Path, tmp_path: Path) -> None:
    path = charades / "charades_sta_test.txt"
    path.write_text(CHARADES + "Y6R7T 3.0##no end time\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_charades_sta(charades)
    assert str(e.value).startswith(f"{path}: record 4, field 'line': expected 'vid start end##")
    path.write_text("Y6R7T 9.0 3.0##reversed\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"record 0, field 'start': span \[9.0, 3.0\] s is"):
        load_charades_sta(charades)
    path.write_text("Y6R7T 1.0 x##bad end\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"record 0, field 'end': expected a finite number, got 'x'"
    ):
        load_charades_sta(charades)
    path.write_text("ZZZZZ 1.0 2.0##no video\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"1 of 1 charades_sta items have no video; first: .*ZZZZZ"):
        load_charades_sta(charades)
    with pytest.raises(DataError, match="no Charades-STA annotation file; expected one of: "):
        load_charades_sta(tmp_path / "Charades" / "Charades_v1_480")


def test_charades_txt_with_a_fourth_field(tmp_path: Path) -> None:
    path = tmp_path / "charades_sta_test.txt"
    path.write_text(
        "3MSZA 24.3 30.4 0##person turn a light on.\nAO8RW 5.9 13.6##person plays.\n",
        encoding="utf-8",
    )
    items = load_charades_sta(path, check_videos=False)
    assert [(it.id, it.span_s, it.question) for it in items] == [
        ("3MSZA#0", (24.3, 30.4), "person turn a light on."),
        ("AO8RW#1", (5.9, 13.6), "person plays."),
    ]
    assert items[0].extra == {"field_4": "0"} and items[1].extra == {}
    path.write_text("3MSZA 24.3 30.4 0 1##too many fields\n", encoding="utf-8")
    with pytest.raises(DataError, match="record 0, field 'line': expected 'vid start end##"):
        load_charades_sta(path, check_videos=False)


def reference_benchmarks() -> Path:
    """``../shared/reference-data/benchmarks`` beside the repository (real files, README)."""
    folder = Path(__file__).resolve().parents[1].parent / "shared/reference-data/benchmarks"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: the real benchmark slices are not on this machine")
    return folder


def test_real_charades_sta_slice_loads_every_line() -> None:
    path = reference_benchmarks() / "charades_sta" / "charades_sta_test.txt"
    items = load_charades_sta(path, check_videos=False)
    assert len(items) == 60 == len(path.read_text(encoding="utf-8").splitlines())
    assert (items[0].id, items[0].span_s) == ("3MSZA#0", (24.3, 30.4))
    assert items[0].question == "person turn a light on."
    assert items[4].question == "a person is putting a picture onto the wall."


def test_real_tvgbench_slice_loads_every_record_without_windows() -> None:
    path = reference_benchmarks() / "tvgbench" / "annotations" / "tvgbench.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    items = load_tvgbench(path.parents[1], check_videos=False)
    assert len(items) == len(raw) == 52
    assert all(it.start_s is None and it.end_s is None for it in items)
    with_bounds = [k for k, r in enumerate(raw) if r["start"] is not None]
    assert with_bounds  # the slice holds records with start/end set ...
    for k in with_bounds:  # ... kept for reference only, and the truth is outside some
        assert items[k].extra["record_start_s"] == raw[k]["start"]
    # The 99.37 s video whose truth is 9.9-45.9 s would have been shown only 53-152 s.
    k = next(k for k, r in enumerate(raw) if r["start"] and r["start"] > 50)
    assert items[k].span_s[0] < raw[k]["start"]
    datasets = {it.group["dataset"] for it in items}
    assert datasets == {"charades", "hirest", "tacos", "anet", "egonlq"}
    nlq = [it for it, r in zip(items, raw, strict=True) if "dataset_name" not in r]
    assert len(nlq) == 12 and {it.group["dataset"] for it in nlq} == {"egonlq"}
    scores = score_grounding(items, {it.id: "From <t>0</t>s to <t>1</t>s" for it in items})
    assert sum(s.n for s in scores.groups["dataset"].values()) == 52


def test_tvgbench_record_without_a_dataset_is_an_error(tvgbench: Path) -> None:
    path = tvgbench / "annotations" / "tvgbench.json"
    records = json.loads(path.read_text())
    del records[2]["dataset_name"]
    path.write_text(json.dumps(records))
    assert load_tvgbench(tvgbench)[2].group["dataset"] == "activitynet"  # from bins.dataset
    del records[2]["bins"]
    path.write_text(json.dumps(records))
    with pytest.raises(DataError, match="record 2, field 'dataset_name': missing, and no 'bins"):
        load_tvgbench(tvgbench)


def tvg_record(name: str, answer: str, dataset: str = "charades") -> dict[str, Any]:
    return {
        "path": f"./dataset/timer1/videos/tvgbench_data/{name}.mp4",
        "question": "a person was sitting at a table.",
        "answer": answer,
        "start": None,
        "end": None,
        "duration": 30.12,
        "question_type": "video temporal grounding",
        "source": "./dataset/timer1/videos/annotations/tvgbench/raw_data/Charades_sta_test.json",
        "dataset_name": dataset,
        "qsemtype": "Human Pose",
        "bins": {"videolen": 1, "qcenter": 6, "qlen": 7, "dataset": dataset, "qsemtype": "HP"},
    }


@pytest.fixture
def tvgbench(tmp_path: Path) -> Path:
    root = tmp_path / "timer1"
    (root / "annotations").mkdir(parents=True)
    records = [
        tvg_record("KWZSA", "0.0-10.0"),
        tvg_record("OHOFG", "0.0-10.0"),
        tvg_record("4K0BP", "10.0-20.0", "activitynet"),
        tvg_record("P6JGZ", "0.0-10.0", "activitynet"),
        tvg_record("QZZPS", "0-10", "activitynet"),
    ]
    (root / "annotations" / "tvgbench.json").write_text(json.dumps(records, indent=1))
    touch(*(root / "videos" / "tvgbench_data" / f"{n}.mp4" for n in ("KWZSA", "OHOFG")))
    touch(*(root / "videos" / "tvgbench_data" / f"{n}.mp4" for n in ("4K0BP", "P6JGZ", "QZZPS")))
    return root


def test_tvgbench(tvgbench: Path) -> None:
    items = load_tvgbench(tvgbench)
    assert [it.id for it in items] == ["KWZSA#0", "OHOFG#1", "4K0BP#2", "P6JGZ#3", "QZZPS#4"]
    first = items[0]
    assert first.span_s == (0.0, 10.0) and first.start_s is None
    assert first.video == tvgbench / "videos" / "tvgbench_data" / "KWZSA.mp4"
    assert first.group == {"dataset": "charades", "qsemtype": "Human Pose"}
    assert first.extra == {"duration_s": 30.12, "record_start_s": None, "record_end_s": None}
    # the annotation file itself as root: videos found in ../videos/tvgbench_data
    assert len(load_tvgbench(tvgbench / "annotations" / "tvgbench.json")) == 5


def test_tvgbench_errors(tvgbench: Path) -> None:
    path = tvgbench / "annotations" / "tvgbench.json"
    records = json.loads(path.read_text())
    records[3]["answer"] = "13.4 to 28.1"
    path.write_text(json.dumps(records))
    with pytest.raises(DataError) as e:
        load_tvgbench(tvgbench)
    assert str(e.value) == (
        f"{path}: record 3, field 'answer': expected 'start-end' in seconds, got '13.4 to 28.1'"
    )
    assert (e.value.index, e.value.field) == (3, "answer")
    records[3]["answer"] = "1-2"
    del records[1]["question"]
    path.write_text(json.dumps(records))
    with pytest.raises(DataError, match="record 1, field 'question': missing"):
        load_tvgbench(tvgbench)
    path.write_text("[{]")
    with pytest.raises(DataError, match="malformed JSON at line 1"):
        load_tvgbench(tvgbench)


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("From <t>2.5</t>s to <t>7</t>s", [2.5, 7.0]),
        ("<think>at <t>1</t>s</think><answer>From <t>3</t>s to <t>8</t>s.</answer>", [3.0, 8.0]),
        ("<think>From <t>1</t>s to <t>2</t>s</think>between 0:12 and 0:20", [12.0, 20.0]),
        ("<answer>[4, 9.5]</answer>", [4.0, 9.5]),
        ("The event happens from 10 to 15 seconds.", [10.0, 15.0]),
        ("From <t>9</t>s to <t>3</t>s", [9.0, 3.0]),  # kept as written; scores 0
        ("around 5 s", None),
        ("", None),
        ("<answer></answer>", None),
    ],
)
def test_parse_grounding(text: str, span: list[float] | None) -> None:
    parsed = parse_grounding(text)
    assert parsed["span_s"] == span
    if span is None:
        assert parsed["problem"] == "no_span"
    elif span[1] < span[0]:
        assert parsed["problem"] == "reversed_span"
    else:
        assert "problem" not in parsed


def test_scores_by_hand(tvgbench: Path) -> None:
    items = load_tvgbench(tvgbench)
    texts = {
        "KWZSA#0": "<answer>From <t>0</t>s to <t>10</t>s</answer>",  # gt 0-10: IoU 1
        "OHOFG#1": "From <t>5</t>s to <t>15</t>s",  # gt 0-10: 5 / 15 = 1/3
        "4K0BP#2": "From <t>12</t>s to <t>18</t>s",  # gt 10-20: 6 / 10 = 0.6
        "P6JGZ#3": "From <t>8</t>s to <t>2</t>s",  # reversed: 0
        "QZZPS#4": "I am not sure.",  # unparsable: 0
    }
    s = score_grounding(items, texts)
    # mIoU = (1 + 1/3 + 0.6 + 0 + 0) / 5 = 0.38667
    assert s.overall.miou == pytest.approx((1 + 1 / 3 + 0.6) / 5)
    # R1@0.3: {1, 1/3, 0.6} = 3/5; R1@0.5: {1, 0.6} = 2/5; R1@0.7: {1} = 1/5
    assert s.overall.r1 == pytest.approx((0.6, 0.4, 0.2))
    assert (s.overall.n, s.overall.unparsable, s.overall.reversed) == (5, 1, 1)
    # charades: (1 + 1/3) / 2; activitynet: (0.6 + 0 + 0) / 3 = 0.2
    assert s.groups["dataset"]["charades"].miou == pytest.approx(2 / 3)
    assert s.groups["dataset"]["activitynet"].miou == pytest.approx(0.2)
    assert s.groups["dataset"]["activitynet"].r1 == pytest.approx((1 / 3, 1 / 3, 0.0))
    assert s.ious["OHOFG#1"] == pytest.approx(1 / 3)
    parsed = {it.id: parse_prediction(it, texts[it.id]) for it in items}
    assert parsed["QZZPS#4"] == {"kind": "grounding", "span_s": None, "problem": "no_span"}
    report = score_benchmark("tvgbench", items, parsed)
    assert report["benchmark"] == "tvgbench"
    assert report["miou"] == pytest.approx(0.38667, abs=1e-5)
    assert (report["r1@0.3"], report["r1@0.5"], report["r1@0.7"]) == pytest.approx((0.6, 0.4, 0.2))
    assert (report["unparsable"], report["reversed"], report["missing"]) == (1, 1, 0)
    json.dumps(report)


def test_missing_and_boundaries() -> None:
    items = [
        BenchItem(f"q{k}", "charades_sta", Path("v"), "?", span_s=(0.0, 10.0)) for k in range(3)
    ]
    with pytest.raises(ValueError, match="1 items have no prediction; first: 'q2'"):
        score_grounding(items, {"q0": "0 3", "q1": "0 5"})
    s = score_grounding(items, {"q0": "0 3", "q1": "0 5"}, allow_missing=True)
    # IoUs 0.3, 0.5 (exactly at the thresholds: counted) and 0 (missing)
    assert s.overall.r1 == pytest.approx((2 / 3, 1 / 3, 0.0))
    assert (s.overall.missing, s.overall.unparsable) == (1, 0)
    assert score_grounding([], {}).overall.miou is None
    with pytest.raises(ValueError, match="not grounding"):
        score_grounding(items[:1], {"q0": {"kind": "mcq", "letter": "A"}})


def test_prompt() -> None:
    item = BenchItem("q", "charades_sta", Path("v"), "person closes the door.", span_s=(1, 2))
    assert prompt_for(item) == ("temporal", grounding_question(item))
    assert grounding_question(item) == (
        'When does this happen in the video: "person closes the door"? '
        "Give the start and end time in seconds."
    )


def test_module_doctests() -> None:
    import doctest

    from o3video.eval import grounding

    assert doctest.testmod(grounding).failed == 0

"""Multiple-choice benchmarks: loaders on tiny files in each public format, answer reading,
scores derived by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from o3video.errors import DataError
from o3video.eval.benchmarks import (
    BENCHMARKS,
    BenchItem,
    load_benchmark,
    parse_prediction,
    prompt_for,
    score_benchmark,
    strip_letters,
)
from o3video.eval.mcq import extract_letter, open_match, read_letter, score_mcq
from o3video.eval.mcq_loaders import (
    MVBENCH_TASKS,
    load_mvbench,
    load_star,
    load_videomme,
    load_videommmu,
    load_worldsense,
)
from o3video.prompts import TASKS

OPTS4 = ("a red ball", "a blue cube", "a green cone", "a dog")


def write_json(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


# --- answer reading -------------------------------------------------------------------------

LETTER_CASES = [
    ("B", "B"),
    ("  b  ", "B"),
    ("(B)", "B"),
    ("B.", "B"),
    ("[C]", "C"),
    ("**D**", "D"),
    ("B) a blue cube", "B"),
    ("(B) a blue cube", "B"),
    ("C. a green cone", "C"),
    ("D: a dog", "D"),
    ("B\nBecause the cube is blue.", "B"),
    ("(C)\nThe cone.", "C"),
    ("The answer is B", "B"),
    ("The answer is (C).", "C"),
    ("Answer: D", "D"),
    ("The correct option is A because it is red.", "A"),
    ("Correct Option: C", "C"),
    ("I choose option B.", "B"),
    ("I think (D) fits best.", "D"),
    ("<think>Maybe A? No.</think><answer>C</answer>", "C"),
    ("<think>A or B</think>\nThe answer is B.", "B"),
    ("<answer>a dog.</answer>", "D"),  # the text of exactly one option
    ("<answer>A Blue  Cube</answer>", "B"),  # case and spacing ignored
    ("A dog", "D"),  # not the letter A: the text of option D
    ("A cat", None),  # no option, and "A" here is an article
    ("E", None),  # out of range for 4 options
    ("The answer is E.", None),  # out of range
    ("A or B", None),  # ambiguous
    ("B, C", None),  # ambiguous
    ("The answer is A, or maybe the answer is C.", None),  # ambiguous
    ("Option B, though option D is close.", None),  # ambiguous
    ("", None),
    ("<answer></answer>", None),
    ("<answer>  </answer>", None),
    ("I don't know.", None),
    ("<think>The answer is A.</think>", None),  # reasoning only, no answer
    ("AB", None),
]


@pytest.mark.parametrize(("text", "letter"), LETTER_CASES)
def test_extract_letter(text: str, letter: str | None) -> None:
    assert extract_letter(text, 4, OPTS4) == letter


def test_letter_problems_say_why() -> None:
    assert read_letter("A or B", 4) == (None, "ambiguous")
    assert read_letter("E", 4) == (None, "letter_out_of_range")
    assert read_letter("<answer></answer>", 4) == (None, "empty_answer")
    assert read_letter("no idea", 4) == (None, "no_letter")
    assert read_letter("(b)", 2) == ("B", None)
    assert extract_letter("I", 10) == "I"  # the ninth of ten options, not a pronoun here
    with pytest.raises(ValueError, match="2 options given"):
        read_letter("A", 4, ("x", "y"))


@pytest.mark.parametrize(
    ("pred", "gt", "right"),
    [
        ("Mitochondria", "mitochondria", True),
        ('"The  Mitochondria."', "the mitochondria", True),
        ("the nucleus", "mitochondria", False),
        ("42", "42", True),
        ("42.3", "42", True),  # |0.3| <= 0.42
        ("42.5", "42", False),  # |0.5| > 0.42
        ("The total is 1,210 dollars.", "1200", True),  # |10| <= 12
        ("$3.00", "3", True),
        ("25", "25%", True),
        ("0", "0", True),
        ("0.001", "0", False),  # a ground truth of 0 needs 0
        ("3 or 4", "3", False),  # two different numbers
        ("3, then 3 again", "3", True),  # one distinct number
        ("three", "3", False),  # number words are not read
        ("", "x", False),
    ],
)
def test_open_match(pred: str, gt: str, right: bool) -> None:
    assert open_match(pred, gt) is right


def test_strip_letters() -> None:
    assert strip_letters(["A. x", "B. y"]) == ("x", "y")
    assert strip_letters(["(A) x", "(B) y"]) == ("x", "y")
    assert strip_letters(["A. x", "C. y"]) == ("A. x", "C. y")  # letters out of order: kept


# --- loaders --------------------------------------------------------------------------------


def videomme_records() -> list[dict[str, Any]]:
    rows = []
    for k, (duration, answer) in enumerate(
        [
            ("short", "A"),
            ("short", "B"),
            ("medium", "C"),
            ("medium", "D"),
            ("long", "A"),
            ("long", "B"),
        ]
    ):
        rows.append(
            {
                "video_id": f"{k:03d}",
                "duration": duration,
                "domain": "Knowledge",
                "sub_category": "Humanity & History",
                "url": "https://www.youtube.com/watch?v=x",
                "videoID": f"vid{k // 2}",
                "question_id": f"{k // 2:03d}-{k % 2 + 1}",
                "task_type": "Counting Problem" if k % 2 else "Object Recognition",
                "question": f"Question {k}?",
                "options": [f"{x}. {o}" for x, o in zip("ABCD", OPTS4, strict=True)],
                "answer": answer,
            }
        )
    return rows


@pytest.fixture
def videomme(tmp_path: Path) -> Path:
    root = tmp_path / "Video-MME"
    write_jsonl(root / "videomme.jsonl", videomme_records())
    touch(*(root / "data" / f"vid{k}.mp4" for k in range(3)))
    return root


def test_videomme_jsonl(videomme: Path) -> None:
    items = load_videomme(videomme)
    assert [it.id for it in items] == ["000-1", "000-2", "001-1", "001-2", "002-1", "002-2"]
    first = items[0]
    assert first.options == OPTS4 and first.answer == "A" and first.kind == "mcq"
    assert first.video == videomme / "data" / "vid0.mp4"
    assert first.group == {
        "duration": "short",
        "domain": "Knowledge",
        "task_type": "Object Recognition",
    }
    assert load_benchmark("videomme", videomme)[3].answer == "D"


def test_videomme_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    root = tmp_path / "Video-MME"
    (root / "videomme").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(videomme_records()), root / "videomme" / "test-00000-of-00001.parquet"
    )
    items = load_videomme(root, check_videos=False)
    assert len(items) == 6 and items[2].options == OPTS4 and items[2].answer == "C"


def test_videomme_errors(videomme: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such folder"):
        load_videomme(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        DataError,
        match=r"no VideoMME annotation file; expected one of: "
        r"videomme/test-\*\.parquet",
    ):
        load_videomme(empty)
    rows = videomme_records()
    del rows[4]["question"]
    rows[1]["answer"] = "F"
    path = write_jsonl(videomme / "videomme.jsonl", rows)
    with pytest.raises(DataError) as e:
        load_videomme(videomme)
    assert str(e.value) == f"{path}: record 1, field 'answer': expected a letter A-D, got 'F'"
    assert (e.value.path, e.value.index, e.value.field) == (str(path), 1, "answer")
    rows[1]["answer"] = "B"
    write_jsonl(path, rows)
    with pytest.raises(DataError, match=r"record 4, field 'question': missing"):
        load_videomme(videomme)
    rows[4]["question"] = "Q?"
    rows[3]["duration"] = "very long"
    write_jsonl(path, rows)
    with pytest.raises(DataError, match="record 3, field 'duration': expected short, medium"):
        load_videomme(videomme)


def test_videomme_missing_videos_and_duplicates(videomme: Path) -> None:
    (videomme / "data" / "vid2.mp4").unlink()
    with pytest.raises(DataError, match=r"2 of 6 videomme items have no video; first: .*vid2"):
        load_videomme(videomme)
    assert len(load_videomme(videomme, check_videos=False)) == 6
    rows = videomme_records()
    rows[1]["question_id"] = rows[0]["question_id"]
    write_jsonl(videomme / "videomme.jsonl", rows)
    with pytest.raises(DataError, match="'000-1' appears twice"):
        load_videomme(videomme, check_videos=False)
    bare = videomme.parent / "bare"
    write_jsonl(bare / "videomme.jsonl", videomme_records())
    with pytest.raises(DataError, match=r"no VideoMME video folder; expected .*bare/data"):
        load_videomme(bare)


def test_worldsense(tmp_path: Path) -> None:
    root = tmp_path / "WorldSense"
    task = {
        "task_domain": "Recognition",
        "task_type": "Audio Recognition",
        "question": "What is heard?",
        "answer": "B",
        "candidates": ["A. a bell", "B. a dog", "C. a car", "D. rain"],
    }
    qa = {
        "v1": {
            "video_id": "v1",
            "duration": "60s",
            "domain": "Sports",
            "task0": task,
            "task1": {**task, "task_type": "Counting", "answer": "D"},
        },
        "v2": {"video_id": "v2", "domain": "Music", "task0": {**task, "answer": "A"}},
    }
    path = write_json(root / "worldsense_qa.json", qa)
    touch(root / "videos" / "v1.mp4", root / "videos" / "v2.mp4")
    items = load_worldsense(root)
    assert [it.id for it in items] == ["v1/task0", "v1/task1", "v2/task0"]
    assert items[1].answer == "D" and items[1].options == ("a bell", "a dog", "a car", "rain")
    assert items[2].group == {
        "domain": "Music",
        "task_domain": "Recognition",
        "task_type": "Audio Recognition",
    }
    del qa["v2"]["task0"]["candidates"]
    write_json(path, qa)
    with pytest.raises(DataError, match=r"record 1, field 'v2.task0.candidates': missing"):
        load_worldsense(root)
    write_json(path, [qa])
    with pytest.raises(DataError, match="expected one JSON object keyed by video id"):
        load_worldsense(root)


# The layout of WorldSense.tsv that the reference dataloader reads (pandas, tab-separated,
# ``eval(candidates)``): index, video, question, candidates as a list literal, answer, ...
WORLDSENSE_TSV = (
    "index\tvideo\tduration\tdomain\tsub_category\taudio_class\ttask_domain\ttask_type"
    "\tquestion\tcandidates\tanswer\n"
    "0\tv1\t1-2min\tSports\tBasketball\t['Speech']\tRecognition\tAudio Recognition"
    "\tWhat is heard?\t['A. a bell', 'B. a dog', 'C. a car', 'D. rain']\tB\n"
    "1\tv1\t1-2min\tSports\tBasketball\t['Event']\tReasoning\tCausal Reasoning"
    "\tWhy does the man's dog bark?\t[\"A. it's hungry\", 'B. a bell', 'C. a car', 'D. rain']"
    "\tA\n"
    "2\tv2\t<1min\tMusic\tCovers\t['Music']\tUnderstanding\tVideo Emotions"
    "\tHow does it feel?\t['A. calm', 'B. tense']\tB\n"
)


def test_worldsense_tsv(tmp_path: Path) -> None:
    root = tmp_path / "WorldSense"
    root.mkdir()
    path = root / "WorldSense.tsv"
    path.write_text(WORLDSENSE_TSV, encoding="utf-8")
    touch(root / "v1.mp4", root / "v2.mp4")
    items = load_worldsense(root)
    assert [it.id for it in items] == ["v1#0", "v1#1", "v2#2"]
    assert items[1].options == ("it's hungry", "a bell", "a car", "rain")
    assert items[1].question == "Why does the man's dog bark?" and items[1].answer == "A"
    assert items[2].options == ("calm", "tense") and items[2].video == root / "v2.mp4"
    # The options as the file holds them, for the reference protocol's prompt.
    assert items[1].extra["options_raw"] == ["A. it's hungry", "B. a bell", "C. a car", "D. rain"]
    from o3video.eval.bench import reference_text

    assert "A. it's hungry\nB. a bell" in reference_text(items[1])
    assert items[0].group == {
        "domain": "Sports",
        "task_domain": "Recognition",
        "task_type": "Audio Recognition",
    }
    assert load_worldsense(path) == items  # the file itself as the root
    path.write_text(WORLDSENSE_TSV.replace("['A. calm', 'B. tense']", "A. calm; B. tense"))
    with pytest.raises(DataError, match=r"record 2, field 'candidates': expected a list literal"):
        load_worldsense(root)
    path.write_text(WORLDSENSE_TSV.replace("\tanswer\n", "\tgt\n", 1))
    with pytest.raises(DataError, match="no column answer"):
        load_worldsense(root)


def videommmu_root(tmp_path: Path) -> Path:
    root = tmp_path / "VideoMMMU"
    mc = {"question_type": "multiple-choice", "options": ["A. 1", "B. 2", "C. 3"]}
    write_json(
        root / "Perception.json",
        [
            {"id": "validation_Art_1", "question": "Count?", "answer": "A", **mc},
            {"id": "validation_Math_2", "question": "Sum?", "answer": "C", **mc},
        ],
    )
    write_json(
        root / "Comprehension.json",
        [
            {"id": "validation_Art_1", "question": "Why?", "answer": "B", **mc},
            {
                "id": "validation_Math_2",
                "question": "Value?",
                "answer": "12.5",
                "question_type": "open",
                "options": [],
            },
        ],
    )
    write_jsonl(
        root / "Adaptation.jsonl",
        [
            {
                "id": "validation_Art_1",
                "question": "Apply: x?",
                "answer": "photosynthesis",
                "question_type": "open",
                "options": [],
                "image": None,
            },
            {"id": "validation_Math_2", "question": "Apply: y?", "answer": "B", **mc},
        ],
    )
    touch(root / "Art" / "validation_Art_1.mp4", root / "Science" / "validation_Math_2.mp4")
    return root


def test_videommmu(tmp_path: Path) -> None:
    root = videommmu_root(tmp_path)
    items = load_videommmu(root)
    assert [it.id for it in items] == [
        "perception/validation_Art_1",
        "perception/validation_Math_2",
        "comprehension/validation_Art_1",
        "comprehension/validation_Math_2",
        "adaptation/validation_Art_1",
        "adaptation/validation_Math_2",
    ]
    assert items[0].video == root / "Art" / "validation_Art_1.mp4"
    assert items[3].kind == "open" and items[3].answer == "12.5" and items[3].options == ()
    assert items[3].group == {"split": "comprehension", "question_type": "open", "subject": "Math"}
    task, text = prompt_for(items[5])
    assert task == "mcq"
    assert text == (
        "The image for this question is at the end of the video.\nApply: y?\n"
        "A. 1\nB. 2\nC. 3\nAnswer with the option's letter from the given choices."
    )
    assert prompt_for(items[3]) == (
        "free_form",
        "Value?\nAnswer with the final value or a short phrase only.",
    )
    (root / "Adaptation.jsonl").unlink()
    with pytest.raises(
        DataError,
        match=r"no VideoMMMU Adaptation annotation file; expected one "
        r"of: Adaptation/test-\*\.parquet",
    ):
        load_videommmu(root)
    assert len(load_videommmu(root, splits=("Perception",))) == 2


def test_mvbench(tmp_path: Path) -> None:
    root = tmp_path / "MVBench"
    write_json(
        root / "json" / "action_sequence.json",
        [
            {
                "video": "ZS9XR.mp4",
                "question": "What did the person do first?",
                "candidates": ["Sat.", "Ate.", "Ran."],
                "answer": "Ate.",
                "start": 3.5,
                "end": 9.1,
            }
        ],
    )
    write_json(
        root / "json" / "object_shuffle.json",
        [
            {
                "video": "video_1.mp4",
                "question": "Where is the ball?",
                "candidates": ["left", "right"],
                "answer": "right",
            }
        ],
    )
    touch(
        root / "video" / "star/Charades_v1_480/ZS9XR.mp4",
        root / "video" / "perception/videos/video_1.mp4",
    )
    with pytest.raises(DataError, match=r"incomplete MVBench: missing json/action_prediction"):
        load_mvbench(root)
    items = load_mvbench(root, tasks=("action_sequence", "object_shuffle"))
    assert [it.id for it in items] == ["action_sequence/0", "object_shuffle/0"]
    first = items[0]
    assert (first.answer, first.start_s, first.end_s) == ("B", 3.5, 9.1)
    assert first.video == root / "video/star/Charades_v1_480/ZS9XR.mp4"
    assert items[1].answer == "B" and items[1].start_s is None
    assert items[1].group == {"task": "object_shuffle"}
    assert len(MVBENCH_TASKS) == 20
    write_json(
        root / "json" / "object_shuffle.json",
        [{"video": "v.mp4", "question": "?", "candidates": ["l", "r"], "answer": "up"}],
    )
    with pytest.raises(DataError, match=r"record 0, field 'answer': answer 'up' is none of"):
        load_mvbench(root, tasks=("object_shuffle",), check_videos=False)


def star_record(qid: str, answer: str) -> dict[str, Any]:
    choices = ["The closet/cabinet.", "The cup/glass/bottle.", "The box.", "The book."]
    return {
        "question_id": qid,
        "question": "Which object was taken by the person?",
        "video_id": "6H78U",
        "start": 11.1,
        "end": 19.6,
        "answer": answer,
        "question_program": [],
        "choices": [
            {"choice_id": k, "choice": c, "choice_program": []} for k, c in enumerate(choices)
        ],
        "situations": {},
    }


def test_star(tmp_path: Path) -> None:
    root = tmp_path / "STAR"
    recs = [
        star_record("Interaction_T1_13", "The box."),
        star_record("Sequence_T2_89", "The closet/cabinet."),
    ]
    path = write_json(root / "STAR_val.json", recs)
    touch(root / "Charades_v1_480" / "6H78U.mp4")
    items = load_star(root)
    assert [(it.id, it.answer) for it in items] == [
        ("Interaction_T1_13", "C"),
        ("Sequence_T2_89", "A"),
    ]
    assert (items[0].start_s, items[0].end_s) == (11.1, 19.6)
    assert items[1].group == {"question_type": "Sequence"}
    recs[1]["choices"][2] = {"choice_id": 2}
    write_json(path, recs)
    with pytest.raises(DataError, match=r"record 1, field 'choices\[2\].choice': missing"):
        load_star(root)
    with pytest.raises(DataError, match="no STAR annotation file; expected one of: STAR_val"):
        load_star(tmp_path)


def test_registry() -> None:
    assert set(BENCHMARKS) == {
        "videomme",
        "worldsense",
        "videommmu",
        "mvbench",
        "star",
        "charades_sta",
        "tvgbench",
    }
    with pytest.raises(ValueError, match="unknown benchmark 'nope'"):
        load_benchmark("nope", ".")


# --- scores ---------------------------------------------------------------------------------


def test_videomme_scores_by_duration(videomme: Path) -> None:
    items = load_videomme(videomme)  # answers A B | C D | A B by duration short|medium|long
    texts = {
        "000-1": "A",  # right
        "000-2": "<answer>(C)</answer>",  # wrong
        "001-1": "The answer is C.",  # right
        "001-2": "A or B",  # unparsable: wrong, counted
        "002-1": "",  # unparsable: wrong (a default "A" would have made it right)
        "002-2": "B) a blue cube",  # right
    }
    s = score_mcq(items, texts)
    # overall 3/6; short 1/2, medium 1/2 (1 unparsable), long 1/2 (1 unparsable)
    assert (s.overall.n, s.overall.correct, s.overall.unparsable) == (6, 3, 2)
    assert s.overall.accuracy == 0.5
    by = s.groups["duration"]
    assert {k: (v.n, v.correct, v.unparsable) for k, v in by.items()} == {
        "short": (2, 1, 0),
        "medium": (2, 1, 1),
        "long": (2, 1, 1),
    }
    # task_type: even k Object Recognition (000-1 ✓, 001-1 ✓, 002-1 ✗) = 2/3, odd = 1/3
    assert s.groups["task_type"]["Object Recognition"].correct == 2
    parsed = {it.id: parse_prediction(it, texts[it.id]) for it in items}
    assert parsed["001-2"] == {"kind": "mcq", "letter": None, "problem": "ambiguous"}
    assert parsed["002-1"] == {"kind": "mcq", "letter": None, "problem": "empty_answer"}
    report = score_benchmark("videomme", items, parsed)
    assert report["accuracy"] == 0.5 and report["unparsable"] == 2
    assert report["groups"]["duration"]["long"] == {
        "n": 2,
        "correct": 1,
        "accuracy": 0.5,
        "unparsable": 1,
        "missing": 0,
    }
    json.dumps(report)


def test_missing_predictions(videomme: Path) -> None:
    items = load_videomme(videomme)
    with pytest.raises(ValueError, match="5 items have no prediction; first: '000-2'"):
        score_mcq(items, {"000-1": "A"})
    s = score_mcq(items, {"000-1": "A"}, allow_missing=True)
    # 1 right of 6; the 5 missing are wrong, counted as missing, not unparsable
    assert (s.overall.correct, s.overall.missing, s.overall.unparsable) == (1, 5, 0)
    assert round(s.overall.accuracy or 0, 4) == 0.1667


def test_videommmu_scores_mcq_and_open(tmp_path: Path) -> None:
    items = load_videommmu(videommmu_root(tmp_path))
    texts = {
        "perception/validation_Art_1": "A",  # right
        "perception/validation_Math_2": "B",  # wrong (C)
        "comprehension/validation_Art_1": "nothing",  # unparsable
        "comprehension/validation_Math_2": "<answer>12.6</answer>",  # right: |0.1| <= 0.125
        "adaptation/validation_Art_1": "<answer>Photosynthesis.</answer>",  # right
        "adaptation/validation_Math_2": "<answer></answer>",  # unparsable
    }
    parsed = {it.id: parse_prediction(it, texts[it.id]) for it in items}
    assert parsed["comprehension/validation_Math_2"] == {"kind": "open", "answer": "12.6"}
    r = score_benchmark("videommmu", items, parsed)
    # overall 3/6 right, 2 unparsable
    assert (r["n"], r["correct"], r["unparsable"]) == (6, 3, 2)
    # by split: perception 1/2, comprehension 1/2, adaptation 1/2
    assert {k: v["correct"] for k, v in r["groups"]["split"].items()} == {
        "adaptation": 1,
        "comprehension": 1,
        "perception": 1,
    }
    # by question type: multiple-choice 1/4 (Art_1 perception only), open 2/2
    qt = r["groups"]["question_type"]
    assert (qt["multiple-choice"]["n"], qt["multiple-choice"]["correct"]) == (4, 1)
    assert qt["open"]["accuracy"] == 1.0
    assert score_mcq(items, texts).to_dict() == {k: v for k, v in r.items() if k != "benchmark"}


def test_scores_refuse_mismatched_predictions() -> None:
    item = BenchItem("q", "star", Path("v"), "?", ("x", "y"), "A")
    with pytest.raises(ValueError, match="is mcq, its prediction is 'open'"):
        score_mcq([item], {"q": {"kind": "open", "answer": "x"}})
    with pytest.raises(ValueError, match="not 'videomme'"):
        score_benchmark("videomme", [item], {"q": {"kind": "mcq", "letter": "A"}})


def test_prompt_tasks_are_presets() -> None:
    item = BenchItem("q", "star", Path("v"), "Which?", ("x", "y"), "A")
    assert prompt_for(item)[0] in TASKS
    assert prompt_for(item)[1].splitlines()[1:3] == ["A. x", "B. y"]
    assert item.to_dict()["kind"] == "mcq"


def test_module_doctests() -> None:
    import doctest

    from o3video.eval import benchmarks, mcq

    for module in (benchmarks, mcq):
        assert doctest.testmod(module).failed == 0

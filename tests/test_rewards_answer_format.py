"""The answer (r_acc) and format (r_fmt) rewards of SPEC §5, on literal strings."""

from __future__ import annotations

import doctest

import pytest

from o3video.rewards import answer, fmt
from o3video.rewards.answer import answer_reward, rouge_f1
from o3video.rewards.fmt import format_reward

MCQ = "General video QA MCQ"
FREE = "General video QA Free-form"
ST = "temporal-spatial free-form QA"
TEMPORAL = "temporal QA"
TMCQ = "temporal QA (MCQ)"
VQA = "visual QA"


def _one(reward, text, **cols) -> float:
    """Score one completion; every column is given as a one-item list."""
    return reward([text], **{k: [v] for k, v in cols.items()})[0]


def trace(answer_text: str, think: str = "r") -> str:
    return f"<think>{think}</think><answer>{answer_text}</answer>"


@pytest.mark.parametrize(
    ("text", "gt", "expected"),
    [
        (trace("B"), "B", 1.0),
        (trace("B."), "B", 1.0),
        (trace("(B)"), "B", 1.0),
        (trace("[B]"), "B", 1.0),
        (trace("(B) the red car"), "B", 1.0),
        (trace("C"), "B", 0.0),
        (trace("a dog"), "B", 0.0),  # no letter
        ("<think>r</think> B", "B", 0.0),  # no <answer>: nothing to score
    ],
)
def test_mcq_letter(text: str, gt: str, expected: float) -> None:
    assert _one(answer_reward, text, task=MCQ, answer_letter=gt) == expected


def test_rouge_hand_computed() -> None:
    # "the cat sat" vs "the cat ran": unigrams 2/3 shared → R1 F = 2/3; bigrams "the cat" of
    # 2 → R2 F = 1/2; LCS "the cat" = 2 of 3 → RL F = 2/3; mean = (2/3 + 1/2 + 2/3) / 3.
    assert rouge_f1("the cat sat", "the cat ran") == pytest.approx(0.6111, abs=1e-4)
    assert rouge_f1("a man opens the door", "a man opens the door") == 1.0
    assert rouge_f1("", "a man") == 0.0
    # stemming on: "running dogs" and "run dog" share both stems (R1 = R2 = RL = 1).
    assert rouge_f1("running dogs", "run dog") == 1.0


@pytest.mark.parametrize(
    ("task", "pred", "gt", "expected"),
    [
        (FREE, "the cat sat", "the cat ran", pytest.approx(0.6111, abs=1e-4)),
        (ST, "the cat sat", "the cat ran", pytest.approx(0.6111, abs=1e-4)),
        (FREE, "The cat sat.", "the cat sat", 1.0),  # case and punctuation are not words
        (FREE, "9.0", "10.0", pytest.approx(0.9)),  # a real value: 1 − |9 − 10| / 10
        (FREE, "about 12 m", "10.0", pytest.approx(0.8)),  # first number: 1 − 2/10
        (FREE, "35", "10.0", 0.0),  # relative error ≥ 1 clips at 0
        (FREE, "2.5", "2.50", 1.0),
        (FREE, "9", "10", 0.0),  # an integer (a count) must match exactly ...
        (FREE, "4", "3", 0.0),
        (FREE, "2018", "2019", 0.0),  # ... and a year: 0.9995 "right" was a bug
        (FREE, "about 12 people", "12", 1.0),  # the first number of the answer
        (FREE, "1,000 people", "1,000", 1.0),  # thousands separators dropped
        (FREE, "1,500", "1,000", 0.0),
        (FREE, "0", "0", 1.0),  # gt = 0: exact match ...
        (FREE, "0.1", "0", 0.0),  # ... or nothing
        (FREE, "ten", "10", 0.0),  # number words are not read
        (FREE, "3 cats", "3 cats", 1.0),  # gt is not a number as a whole: ROUGE
    ],
)
def test_free_form_and_numeric(task: str, pred: str, gt: str, expected: float) -> None:
    assert _one(answer_reward, trace(pred), task=task, answer=gt) == expected


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        ("From <t>4</t>s to <t>8</t>s", 1.0),
        ("From <t>2</t>s to <t>6</t>s", pytest.approx(1 / 3)),  # overlap 2 / union 6
        ("from <t> 6.0 </t> s to <t>10</t>s.", pytest.approx(1 / 3)),
        ("From <t>8</t>s to <t>4</t>s", 0.0),  # end < start
        ("between 4 and 8 seconds", 0.0),
    ],
)
def test_temporal_grounding_tiou(pred: str, expected: float) -> None:
    assert _one(answer_reward, trace(pred), task=TEMPORAL, answer_span_s=[4.0, 8.0]) == expected


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        ("From <t>4</t>s to <t>8</t>s.\nCorrect Option: B", 1.0),  # (1 + 1) / 2
        ("From <t>4</t>s to <t>8</t>s.\nCorrect Option: (C)", 0.5),  # (0 + 1) / 2
        ("From <t>2</t>s to <t>6</t>s.\ncorrect option: B.", pytest.approx(2 / 3)),  # (1+1/3)/2
        ("From <t>4</t>s to <t>8</t>s. B", 0.5),  # no "Correct Option:" marker: letter 0
        ("Correct Option: B", 0.5),  # no span: tIoU 0
    ],
)
def test_temporal_mcq_is_mean_of_letter_and_tiou(pred: str, expected: float) -> None:
    cols = {"task": TMCQ, "answer_letter": "B", "answer_span_s": [4.0, 8.0]}
    assert _one(answer_reward, trace(pred), **cols) == expected


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        ("<obj>dog</obj><box>[0,0,10,10]</box>", 1.0),
        ("<obj>dog</obj><box>[0,0,10,5]</box>", 0.5),  # half the gt box
        ("<box>[0,0,10,10]</box> <box>[50,50,60,60]</box>", 1.0),  # the first box counts
        ("<box>[50,50,60,60]</box> <box>[0,0,10,10]</box>", 0.0),
        ("<box>[0,0,10]</box> <box>[0,0,10,10]</box>", 1.0),  # first *valid* box
        ("<box>[-20,-20,10,10]</box>", 1.0),  # clamped to the 1000 grid first
        ("a dog", 0.0),
    ],
)
def test_visual_qa_box_iou(pred: str, expected: float) -> None:
    cols = {"task": VQA, "answer_box": [0, 0, 10, 10], "box_space": "rel1000"}
    assert _one(answer_reward, trace(pred), **cols) == expected


def test_conversational_completions_and_batches() -> None:
    completions = [
        [{"role": "assistant", "content": trace("B")}],
        [{"role": "assistant", "content": [{"type": "text", "text": trace("C")}]}],
        trace("B"),
    ]
    out = answer_reward(completions, task=[MCQ] * 3, answer_letter=["B"] * 3)
    assert out == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "cols",
    [
        {"task": MCQ},  # no answer_letter column
        {"task": MCQ, "answer_letter": 3},
        {"task": TEMPORAL, "answer_span_s": "[4, 8]"},
        {"task": TEMPORAL, "answer_span_s": [4.0]},
        {"task": VQA, "answer_box": [0, 0, 10], "box_space": "rel1000"},
        {"task": FREE, "answer": None},
        {"task": "no such task", "answer": "B"},
        {},
    ],
)
def test_answer_malformed_columns_give_zero(cols: dict) -> None:
    assert _one(answer_reward, trace("B"), **cols) == 0.0


@pytest.mark.parametrize(
    ("task", "text", "expected"),
    [
        (MCQ, "<think>a</think><answer>B</answer>", 1.0),  # general QA needs nothing more
        (FREE, "<think>a</think>\n<answer>a dog</answer>", 1.0),
        (MCQ, "<think>a</think> junk <answer>B</answer>", 1.0),  # stray text is not structure
        (MCQ, "<answer>B</answer>", 0.0),  # no think
        (MCQ, "<think>a</think>", 0.0),  # no answer
        (MCQ, "<answer>B</answer><think>a</think>", 0.0),  # answer before think
        (MCQ, "<think>a</think></think><answer>B</answer>", 0.0),  # unbalanced
        (MCQ, "<think><obj>dog</think><answer>B</answer>", 0.0),  # <obj> never closed
        (MCQ, "<think>a</think><answer>B", 0.0),  # cut off
        (MCQ, "<think>a</think><answer>B</answer><answer>C</answer>", 0.0),  # duplicate
        # temporal: ≥ 2 <t> in think
        (TEMPORAL, "<think>at <t>1</t>s and <t>3</t>s</think><answer>x</answer>", 1.0),
        (
            TMCQ,
            "<think><obj>a</obj><box>[0,0,1,1]</box>at<t>1</t>s <t>2</t>s</think>"
            "<answer>x</answer>",
            1.0,
        ),  # a claim time counts
        (
            TEMPORAL,
            "<think>at <t>1</t>s</think><answer>From <t>1</t>s to <t>3</t>s</answer>",
            0.5,
        ),  # answer times do not count
        # spatio-temporal: obj + box + t
        (ST, "<think><obj>dog</obj><box>[0,0,1,1]</box>at<t>2</t>s</think><answer>x</answer>", 1.0),
        (ST, "<think><obj>dog</obj><box>[0,0,1,1]</box></think><answer>x</answer>", 0.5),
        (ST, "<think><box>[0,0,1,1]</box> at <t>2</t>s</think><answer>x</answer>", 0.5),
        # visual QA: a box in think
        (VQA, "<think><box>[0,0,1,1]</box></think><answer>x</answer>", 1.0),
        (VQA, "<think>a</think><answer><box>[0,0,1,1]</box></answer>", 0.5),
        ("no such task", "<think>a</think><answer>B</answer>", 0.0),
    ],
)
def test_format_table(task: str, text: str, expected: float) -> None:
    assert _one(format_reward, text, task=task) == expected


def test_module_doctests() -> None:
    for module in (answer, fmt):
        assert doctest.testmod(module).failed == 0

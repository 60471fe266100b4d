"""The shared readers: the answer part, letters (reward and metric agree on every reply of a
table), spans and boxes by second in every form the reference reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from o3video.eval.benchmarks import BenchItem
from o3video.eval.mcq import score_mcq
from o3video.eval.vstar import answer_part as vstar_answer_part
from o3video.protocols.readers import answer_part, read_boxes_by_second, read_letter, read_span
from o3video.rewards.answer import answer_reward

OPTIONS = ("a red ball", "a blue cube", "a green cone", "a dog")
MCQ = "General video QA MCQ"

# (answer text, the letter it says or None); every row goes through both reward and metric.
REPLIES = [
    ("B", "B"),
    ("b", "B"),
    ("c", "C"),
    ("  (c)  ", "C"),
    ("(B)", "B"),
    ("B.", "B"),
    ("[C]", "C"),
    ("**D**", "D"),
    ("B) a blue cube", "B"),
    ("C. a green cone", "C"),
    ("D: a dog", "D"),
    ("B\nBecause the cube is blue.", "B"),
    ("The answer is B", "B"),
    ("The answer is (C).", "C"),
    ("Answer: D", "D"),
    ("The correct option is A because it is red.", "A"),
    ("I choose option B.", "B"),
    ("I think (D) fits best.", "D"),
    ("a dog.", "D"),
    ("A Blue  Cube", "B"),
    ("A dog", "D"),
    ("A cat", None),
    ("E", None),
    ("The answer is E.", None),
    ("A or B", None),
    ("B, C", None),
    ("The answer is A, or maybe the answer is C.", None),
    ("The answer is A. Or maybe the answer is C", None),
    ("Option B, though option D is close.", None),
    ("", None),
    ("I don't know.", None),
    ("AB", None),
    ("E) none. The answer is B", "B"),
]


def _reward(answer: str, truth: str) -> float:
    reply = f"<think>looking</think><answer>{answer}</answer>"
    columns = {"task": [MCQ], "answer_letter": [truth], "options": [list(OPTIONS)]}
    return answer_reward([reply], **columns)[0]


def _metric(answer: str, truth: str) -> bool:
    reply = f"<think>looking</think><answer>{answer}</answer>"
    item = BenchItem("q", "videomme", Path("v.mp4"), "Which?", OPTIONS, truth)
    return score_mcq([item], {"q": reply}).items[0].correct


@pytest.mark.parametrize(("answer", "letter"), REPLIES)
@pytest.mark.parametrize("truth", ["A", "B", "C", "D"])
def test_reward_and_metric_agree(answer: str, letter: str | None, truth: str) -> None:
    reward, metric = _reward(answer, truth), _metric(answer, truth)
    assert reward == float(metric)
    assert metric == (letter == truth)


def test_hedged_and_lowercase_literal_cases() -> None:
    hedged = "The answer is A, or maybe the answer is C."
    assert (_reward(hedged, "A"), _metric(hedged, "A")) == (0.0, False)
    assert (_reward(hedged, "C"), _metric(hedged, "C")) == (0.0, False)
    assert (_reward("c", "C"), _metric("c", "C")) == (1.0, True)


def test_reward_without_options_reads_any_letter() -> None:
    reply = "<answer>f</answer>"
    assert answer_reward([reply], task=[MCQ], answer_letter=["F"]) == [1.0]
    assert read_letter("f", 4) is None and read_letter("f") == "F"


def test_answer_part_drops_the_think_without_an_answer_section() -> None:
    reply = "<think>at <t>9</t>s</think>From 2 to 5"
    assert answer_part(reply) == vstar_answer_part(reply) == "From 2 to 5"
    assert read_span(reply) == (2.0, 5.0)
    assert answer_part("<think>x</think><answer> B </answer>") == "B"
    assert answer_part("<think>unclosed, cut off at <t>3</t>s") == ""


@pytest.mark.parametrize(
    "answer",
    [
        '{"3": [1, 2, 3, 4], "4": [2, 3, 4, 5]}',
        "[[3, [1, 2, 3, 4]], [4, [2, 3, 4, 5]]]",
        '[["3", [1, 2, 3, 4]], ["4", [2, 3, 4, 5]]]',
        '[{"3": [1, 2, 3, 4]}, {"4": [2, 3, 4, 5]}]',
        "[{'3': [1, 2, 3, 4]}, {'4': [2, 3, 4, 5]}]",
        "Boxes: [[3, [1, 2, 3, 4]], [4, [2, 3, 4, 5]]] as asked.",
        'Here: {"3": [1, 2, 3, 4]}, {"4": [2, 3, 4, 5]}',
        '```json\n[{"3": [1, 2, 3, 4]}, {"4": [2, 3, 4, 5]}]\n```',
        '[{"timestamp": 3, "bbox_2d": [1, 2, 3, 4]}, {"timestamp": 4, "bbox_2d": [2, 3, 4, 5]}]',
    ],
)
def test_boxes_in_every_form_the_reference_reads(answer: str) -> None:
    expected = {3.0: ((1.0, 2.0, 3.0, 4.0),), 4.0: ((2.0, 3.0, 4.0, 5.0),)}
    assert read_boxes_by_second(f"<think>at 9 s</think><answer>{answer}</answer>") == expected
    assert read_boxes_by_second(answer) == expected


def test_boxes_in_the_think_are_not_the_answer() -> None:
    assert read_boxes_by_second('<think>{"9": [1, 2, 3, 4]}</think>none') == {}


# Temporal grounding: the reward reads the answer strictly (the ``From <t>a</t>s to <t>b</t>s``
# form the system prompt asks for, which RL trains), the metric tolerantly (read_span). Where
# the strict reader reads a span both read the same one and score the same IoU; elsewhere the
# reward is 0 and the metric may still read a span.
SPAN_REPLIES = [
    ("From <t>2</t>s to <t>5</t>s", True),
    ("From <t>2.0</t> s to <t>6</t>s", True),
    ("From <t>5</t>s to <t>2</t>s", True),  # reversed: 0 for both
    ("From <t>0</t>s to <t>3.5</t>s.", True),
    ("From 2 to 5", False),
    ("from 0:02 to 0:05", False),
    ("[2, 5]", False),
    ("It starts at 2 s, ends at 4 s, lasting 2 s.", False),
    ("around 4 s", False),
    ("", False),
]


@pytest.mark.parametrize(("answer", "strict"), SPAN_REPLIES)
def test_grounding_reward_is_the_metric_on_the_strict_form(answer: str, strict: bool) -> None:
    from o3video.eval.grounding import score_grounding
    from o3video.evidence import parse_span
    from o3video.protocols.readers import answer_part

    reply = f"<think>at <t>9</t>s</think><answer>{answer}</answer>"
    reward = answer_reward([reply], task=["temporal QA"], answer_span_s=[[2.0, 5.0]])[0]
    item = BenchItem("q", "charades_sta", Path("v"), "?", span_s=(2.0, 5.0))
    metric = score_grounding([item], {"q": reply}).overall.miou
    assert (parse_span(answer_part(reply)) is not None) == strict
    assert reward == pytest.approx(metric if strict else 0.0)

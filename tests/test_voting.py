"""Voting over sampled answers (SPEC §8): answer keys, ratings, majority and confidence votes.

The clip has 2 frames of 56×56 (times 0.0 s and 1.0 s; frame 0 black, frame 1 all 200) from
a 112×112 source, so a Qwen2.5-VL box written in frame pixels is twice as large in source
pixels, and its crop has exactly the box's size in frame pixels (before enlargement). The
scorer is scripted: it answers the canned ``replies`` in request order and records the calls.
Weights: 2 → 1.0, 1 → 0.6, 0 → 0.2, unparsable → 0.2, no evidence → 0.2.
"""

from __future__ import annotations

import dataclasses
import doctest
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from PIL import Image

from o3video import voting
from o3video.answer import Answer, build_answer
from o3video.boxes import convert_xyxy
from o3video.models.base import BackendError, Request, SamplingParams
from o3video.video import Clip
from o3video.voting import (
    RATING_PARAMS,
    confidence_vote,
    crop_evidence,
    majority_vote,
    normalize_answer,
    parse_rating,
    vote,
)

QUESTION = "What is the animal on the left doing?\nA. running\nB. sleeping"


def _clip() -> Clip:
    frames = np.zeros((2, 56, 56, 3), np.uint8)
    frames[1] = 200
    return Clip(frames, (0.0, 1.0), (112, 112), (56, 56), 1.0, 2.0)


CLIP = _clip()


def claim(name: str, *boxes: str, t: float | None = None) -> str:
    """A claim with boxes written in frame pixels (Qwen2.5-VL's space)."""
    text = f"<obj>{name}</obj>" + "".join(f"<box>[{b}]</box>" for b in boxes)
    return text + (f"at<t>{t}</t>s" if t is not None else "")


def sample(answer: str | None, *claims: str, task: str = "mcq") -> Answer:
    tail = "" if answer is None else f"<answer>{answer}</answer>"
    text = f"<think>I look. {' '.join(claims)}</think>{tail}"
    return build_answer(text, CLIP, "qwen2_5_vl", question=QUESTION, task=task)


@dataclass
class ScriptedBackend:
    """Replies ``replies`` (one completion each, in request order); records every call."""

    replies: list[str]
    name: str = "scripted"
    calls: list[tuple[list[Request], SamplingParams]] = field(default_factory=list)

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[str]]:
        self.calls.append((list(requests), params))
        return [[r] for r in self.replies]


def images(req: Request) -> list[Image.Image]:
    return [p["image"] for p in req.messages[-1]["content"] if p["type"] == "image"]


def prompt_text(req: Request) -> str:
    return "".join(p["text"] for p in req.messages[-1]["content"] if p["type"] == "text")


# --- answer keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("B", "B"),
        ("B.", "B"),
        (" (B) ", "B"),
        ("[B]", "B"),
        ("B) sleeping", "B"),
        ("B. sleeping", "B"),
        ("B: sleeping", "B"),
        ("**C**", "C"),
        ("The answer is C.", "C"),
        ("The correct answer is (D), because it sleeps.", "D"),
        ("Answer: A", "A"),
        ("A dog", None),  # an article, not an option
        ("Bob", None),
        ("b", None),  # options are capital letters
        ("sleeping", None),
        ("", None),
        (None, None),
    ],
)
def test_mcq_key_is_the_option_letter(text: str | None, key: str | None) -> None:
    assert normalize_answer(text, "mcq") == key


@pytest.mark.parametrize(
    ("text", "task", "key"),
    [
        ("From <t>2.5</t>s to <t>7.0</t>s.\nCorrect Option: D", "temporal_mcq", "D"),
        ("From <t>2.5</t>s to <t>7.0</t>s.", "temporal_mcq", None),
        ("From <t>2.54</t>s to <t>7</t>s", "temporal", "From <t>2.5</t>s to <t>7.0</t>s"),
        ("from <t>2.46</t> to <t>7.04</t>s.", "temporal", "From <t>2.5</t>s to <t>7.0</t>s"),
        ("From <t>-0.04</t>s to <t>1</t>s", "temporal", "From <t>0.0</t>s to <t>1.0</t>s"),
        ("From <t>7</t>s to <t>2</t>s", "temporal", None),  # reversed: invalid
        ("between 2 and 7 seconds", "temporal", None),
        ("  A  red Ball! ", "free_form", "a red ball"),
        ("a red-ball", "free_form", "a red ball"),
        ("...", "free_form", None),
        ("<obj>cup</obj><box>[1,2,3,4]</box>", "spatial_image", "obj cup obj box 1 2 3 4 box"),
    ],
)
def test_keys_of_other_tasks(text: str, task: str, key: str | None) -> None:
    assert normalize_answer(text, task) == key


def test_unknown_task_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown task 'essay'"):
        normalize_answer("A", "essay")


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("2", 2),
        ("1", 1),
        ("0", 0),
        (" **2** — clearly helpful", 2),
        ("Rating: 1.", 1),
        ("2/2", 2),
        ("3", None),
        ("10", None),
        ("1.5", None),
        ("clearly helpful", None),
        ("", None),
    ],
)
def test_parse_rating(reply: str, rating: int | None) -> None:
    assert parse_rating(reply) == rating


# --- majority -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "winner", "key", "totals"),
    [
        (["A", "A", "B"], 0, "A", {"A": 2.0, "B": 1.0}),
        (["A.", "B", "(A) running"], 0, "A", {"A": 2.0, "B": 1.0}),
        (["B", "A", "A"], 1, "A", {"B": 1.0, "A": 2.0}),
        (["A", "B", "B", "A"], 0, "A", {"A": 2.0, "B": 2.0}),  # tie: the key seen first
        (["B", "A", "A", "B"], 0, "B", {"B": 2.0, "A": 2.0}),
        ([None, "nonsense", "B"], 2, "B", {"B": 1.0}),  # no key never wins...
        ([None, "nonsense"], 0, None, {}),  # ...unless no sample has one
    ],
)
def test_majority_vote(
    answers: list[str | None], winner: int, key: str | None, totals: dict[str, float]
) -> None:
    result = majority_vote([sample(a) for a in answers], "mcq")
    assert (result.winner, result.key, result.totals) == (winner, key, totals)
    assert [s["weight"] for s in result.per_sample] == [1.0] * len(answers)


def test_empty_vote_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one answer"):
        majority_vote([], "mcq")


# --- confidence -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame_box", "size", "origin"),
    [
        ((10, 10, 20, 100), (10, 90), (10, 10)),
        ((7, 13, 29, 101), (22, 88), (7, 13)),  # 101.00000000000001 after the round trip
        ((3.5, 5.2, 17.1, 199.9), (15, 195), (3, 5)),  # widened to whole pixels
        ((400, 200, 500, 300), (20, 24), (400, 200)),  # clamped to the 420×224 frame
        ((420, 224, 430, 230), (1, 1), (419, 223)),  # outside: one pixel at the edge
    ],
)
def test_crop_evidence_cuts_the_box_in_frame_pixels(
    frame_box: tuple[float, float, float, float],
    size: tuple[int, int],
    origin: tuple[int, int],
) -> None:
    # a 1280×720 video shown at 420×224; the box as build_answer stores it (source pixels)
    frame = np.random.default_rng(0).integers(0, 256, (224, 420, 3), dtype=np.uint8)
    source_wh = (1280, 720)
    box = convert_xyxy(frame_box, "frame_px", "source_px", source_wh=source_wh, frame_wh=(420, 224))
    crop = crop_evidence(frame, box, source_wh, min_side_px=1)
    assert crop.size == size
    (x, y), (w, h) = origin, size
    np.testing.assert_array_equal(np.asarray(crop), frame[y : y + h, x : x + w])


def reference_example() -> list[Answer]:
    """A, A, B; the A samples cite a region rated 0, the B sample one rated 2."""
    return [
        sample("A", claim("cat", "0,0,28,56", t=0.0)),
        sample("A", claim("cat", "28,0,56,56", t=1.0)),
        sample("B", claim("dog", "0,0,28,28", t=1.0)),
    ]


def test_confidence_overturns_majority_on_the_reference_example() -> None:
    answers = reference_example()
    assert (majority_vote(answers, "mcq").key, majority_vote(answers, "mcq").winner) == ("A", 0)
    scorer = ScriptedBackend(["0", "0", "2"])
    result = confidence_vote(answers, "mcq", scorer)
    # A: 0.2 + 0.2 = 0.4; B: 1.0
    assert (result.winner, result.key, result.totals) == (2, "B", {"A": 0.4, "B": 1.0})
    assert [s["weight"] for s in result.per_sample] == [0.2, 0.2, 1.0]
    assert [s["ratings"] for s in result.per_sample] == [[0], [0], [2]]
    assert [s["replies"] for s in result.per_sample] == [["0"], ["0"], ["2"]]


def test_rating_requests_one_per_sample_with_the_crops_and_the_question() -> None:
    scorer = ScriptedBackend(["0", "0", "2"])
    confidence_vote(reference_example(), "mcq", scorer, min_side_px=1)
    assert len(scorer.calls) == 1  # every sample's requests in one batch
    requests, params = scorer.calls[0]
    assert params == RATING_PARAMS
    assert [r.id for r in requests] == ["vote:sample0", "vote:sample1", "vote:sample2"]
    for r in requests:
        assert QUESTION in prompt_text(r)
    # crops have the boxes' sizes in frame pixels; sample 0 is cut from frame 0 (t = 0.0 s)
    assert [[im.size for im in images(r)] for r in requests] == [[(28, 56)], [(28, 56)], [(28, 28)]]
    assert [int(np.asarray(images(r)[0]).max()) for r in requests] == [0, 200, 200]
    assert "Region 1 at 1.0s: " in prompt_text(requests[2])


def test_tiny_crops_are_enlarged() -> None:
    scorer = ScriptedBackend(["0", "0", "2"])
    confidence_vote(reference_example(), "mcq", scorer)  # min_side_px = 64
    sizes = [images(r)[0].size for r in scorer.calls[0][0]]
    assert sizes == [(64, 128), (64, 128), (64, 64)]


def mixed_example() -> list[Answer]:
    """A cites dog (two boxes) and cat; B cites cat; B cites bird."""
    return [
        sample(
            "A",
            claim("dog", "0,0,28,28", "28,28,56,56", t=1.0),
            claim("cat", "0,0,14,28", t=0.0),
        ),
        sample("B", claim("cat", "0,0,14,14", t=0.0)),
        sample("B", claim("bird", "10,10,20,20", t=1.0)),
    ]


def test_per_sample_scoring_rates_all_crops_at_once() -> None:
    scorer = ScriptedBackend(["2", "0", "1"])
    result = confidence_vote(mixed_example(), "mcq", scorer, min_side_px=1)
    # A: 1.0; B: 0.2 + 0.6 = 0.8
    assert (result.winner, result.key, result.totals) == (0, "A", {"A": 1.0, "B": 0.8})
    requests = scorer.calls[0][0]
    assert [len(images(r)) for r in requests] == [3, 1, 1]
    assert [im.size for im in images(requests[0])] == [(28, 28), (28, 28), (14, 28)]
    assert "Region 3 at 0.0s: " in prompt_text(requests[0])


def test_per_object_scoring_averages_the_weights_of_each_claim() -> None:
    scorer = ScriptedBackend(["2", "0", "0", "1"])
    result = confidence_vote(mixed_example(), "mcq", scorer, per_object=True, min_side_px=1)
    # A: (1.0 + 0.2) / 2 = 0.6; B: 0.2 + 0.6 = 0.8; the heaviest B sample wins
    assert (result.winner, result.key, result.totals) == (2, "B", {"A": 0.6, "B": 0.8})
    assert [s["weight"] for s in result.per_sample] == [0.6, 0.2, 0.6]
    assert [s["ratings"] for s in result.per_sample] == [[2, 0], [0], [1]]
    requests = scorer.calls[0][0]
    assert len(scorer.calls) == 1
    assert [r.id for r in requests] == [
        "vote:sample0:evidence0",
        "vote:sample0:evidence1",
        "vote:sample1:evidence0",
        "vote:sample2:evidence0",
    ]
    assert [[im.size for im in images(r)] for r in requests] == [
        [(28, 28), (28, 28)],
        [(14, 28)],
        [(14, 14)],
        [(10, 10)],
    ]
    assert all(QUESTION in prompt_text(r) for r in requests)


@pytest.mark.parametrize(
    ("order", "winner", "key"),
    [
        # B rated 1 (0.6) against three A without evidence (3 × 0.2 = 0.6): a tie, first key
        (["B", "A", "A", "A"], 0, "B"),
        (["A", "A", "A", "B"], 0, "A"),
    ],
)
def test_no_evidence_weighs_0_2_and_float_ties_go_to_the_first_key(
    order: list[str], winner: int, key: str
) -> None:
    answers = [
        sample("B", claim("dog", "0,0,28,28", t=1.0)) if a == "B" else sample("A") for a in order
    ]
    scorer = ScriptedBackend(["1"])
    result = confidence_vote(answers, "mcq", scorer)
    assert (result.winner, result.key, result.totals) == (winner, key, {"A": 0.6, "B": 0.6})
    assert len(scorer.calls[0][0]) == 1  # samples without evidence send nothing
    assert [s["ratings"] for s in result.per_sample if s["key"] == "A"] == [[], [], []]


@pytest.mark.parametrize(
    ("reply", "weight"),
    [("2", 1.0), ("1", 0.6), ("0", 0.2), ("maybe", 0.2), ("3", 0.2), ("", 0.2)],
)
def test_rating_weights(reply: str, weight: float) -> None:
    result = confidence_vote(
        [sample("A", claim("dog", "0,0,28,28", t=1.0))], "mcq", ScriptedBackend([reply])
    )
    assert result.per_sample[0]["weight"] == weight
    assert result.totals == {"A": weight}


def test_untimed_claims_and_no_evidence_send_no_request() -> None:
    scorer = ScriptedBackend([])
    answers = [sample("A", claim("dog", "0,0,28,28")), sample("B")]  # 2 frames: no frame
    result = confidence_vote(answers, "mcq", scorer)
    assert scorer.calls == []
    assert (result.winner, result.totals) == (0, {"A": 0.2, "B": 0.2})


@pytest.mark.parametrize(
    ("answers", "replies", "winner", "key"),
    [
        ([None, "B"], ["2", "0"], 1, "B"),  # the keyless sample's 1.0 counts for nothing
        ([None, "nonsense"], ["0", "2"], 1, None),  # no key anywhere: the heaviest sample
    ],
)
def test_keyless_answers_do_not_win_a_confidence_vote(
    answers: list[str | None], replies: list[str], winner: int, key: str | None
) -> None:
    samples = [sample(a, claim("dog", "0,0,28,28", t=1.0)) for a in answers]
    result = confidence_vote(samples, "mcq", ScriptedBackend(replies))
    assert (result.winner, result.key) == (winner, key)


def test_a_short_batch_from_the_scorer_is_a_backend_error() -> None:
    with pytest.raises(BackendError, match="scripted: returned 2 replies for 3"):
        confidence_vote(reference_example(), "mcq", ScriptedBackend(["0", "0"]))


# --- dispatcher and result ------------------------------------------------------------------


def test_vote_dispatches_and_checks_its_arguments() -> None:
    answers = reference_example()
    assert vote(answers, "mcq", "majority") == majority_vote(answers, "mcq")
    scorer = ScriptedBackend(["2", "0", "0", "1"])
    params = SamplingParams(max_new_tokens=4, seed=1)
    result = vote(mixed_example(), "mcq", "confidence", scorer, per_object=True, params=params)
    assert (result.mode, result.key) == ("confidence", "B")
    assert scorer.calls[0][1] == params
    with pytest.raises(ValueError, match="needs a scorer"):
        vote(answers, "mcq", "confidence")
    with pytest.raises(ValueError, match="takes no options"):
        vote(answers, "mcq", "majority", per_object=True)
    with pytest.raises(ValueError, match="unknown vote mode"):
        vote(answers, "mcq", "ranked")  # type: ignore[arg-type]


def test_result_is_frozen_and_json_ready() -> None:
    result = confidence_vote(reference_example(), "mcq", ScriptedBackend(["0", "0", "2"]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.winner = 0  # type: ignore[misc]
    data: dict[str, Any] = json.loads(json.dumps(result.to_json()))
    assert data["mode"] == "confidence"
    assert (data["winner"], data["key"], data["totals"]) == (2, "B", {"A": 0.4, "B": 1.0})
    assert data["per_sample"][2] == {
        "index": 2,
        "key": "B",
        "answer": "B",
        "ratings": [2],
        "weight": 1.0,
        "replies": ["2"],
    }
    winner = build_answer(reference_example()[2].text, CLIP, "qwen2_5_vl", votes=result.per_sample)
    assert json.loads(json.dumps(winner.to_json()))["votes"] == data["per_sample"]


def test_docstring_examples() -> None:
    assert doctest.testmod(voting).failed == 0

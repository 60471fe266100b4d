"""The reward registry, and the contract every reward keeps on arbitrary input (SPEC §5)."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import o3video.rewards
from o3video.rewards import REWARD_KINDS, registry
from o3video.rewards.registry import REWARDS, build_rewards, make_reward


def test_build_rewards_names_weights_and_order() -> None:
    funcs, weights = build_rewards(
        {
            "format": 0.5,
            "answer": 2,
            "temporal_interval": {},
            "temporal_point": {"schedule": "fixed", "sigma": 4.0, "weight": 0.25},
            "spatial": {"gate": "legacy"},
        }
    )
    names = ["format", "answer", "temporal_interval", "temporal_point", "spatial"]
    assert [f.__name__ for f in funcs] == names
    assert weights == [0.5, 2.0, 1.0, 0.25, 1.0]
    assert set(REWARDS) == set(names)


def test_progress_fn_reaches_temporal_point() -> None:
    p = {"value": 0.0}
    (reward,), _ = build_rewards({"temporal_point": 1.0}, progress_fn=lambda: p["value"])
    text = "<think><t>6</t>s</think><answer>x</answer>"  # d = 2 to the key frame
    cols = {"task": ["temporal-spatial free-form QA"], "key_times_s": [[4.0]]}
    early = reward([text], **cols)[0]  # σ = 4: exp(−4/32)
    p["value"] = 1.0
    late = reward([text], **cols)[0]  # σ = 1: exp(−2)
    assert early == pytest.approx(0.8825, abs=1e-4) and late == pytest.approx(0.1353, abs=1e-4)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"acc": 1.0}, "known: answer, format, temporal_interval, temporal_point, spatial"),
        ({"spatial": {"gaet": "paper"}}, "known: gate, tau_s"),
        ({"answer": {"gate": "paper"}}, "known: vstar_what"),
        ({"format": {"gate": "paper"}}, "known: none"),
        ({"spatial": {"gate": "loose"}}, "known: paper, legacy, none"),
        ({"temporal_point": {"schedule": "cosine"}}, "unknown sigma schedule"),
        ({"temporal_point": {"sigma": 2.0}}, "adaptive"),
        ({"temporal_point": {"schedule": "fixed", "sigma": [1]}}, "bad options"),
        ({"format": "1"}, "finite number"),
        ({"format": True}, "finite number"),
        ({"format": {"weight": float("nan")}}, "finite number"),
        ({"spatial": {"progress_fn": 1}}, "unknown option"),
        ({"temporal_point": 1.0}, "no progress source"),  # sigma would never anneal
        ({"temporal_point": {"progress": "clock"}}, "'columns' or absent"),
    ],
)
def test_bad_specs_raise_clear_errors(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_rewards(spec)


def test_an_annealed_reward_takes_progress_from_a_source() -> None:
    build_rewards({"temporal_point": {"schedule": "fixed", "sigma": 2.0}})  # no progress needed
    (reward,), _ = build_rewards({"temporal_point": {"progress": "columns"}})
    late = {"task": ["temporal-spatial free-form QA"], "key_times_s": [[5.0]], "progress": [0.8]}
    assert reward(["<think><t>6</t>s</think><answer>x</answer>"], **late) == [
        pytest.approx(0.6065, abs=1e-4)  # p = 0.8: sigma = 1, exp(-1 / 2)
    ]


def test_make_reward_by_name() -> None:
    reward = make_reward("spatial", gate="none", tau_s=None)
    assert reward.__name__ == "spatial"
    with pytest.raises(ValueError, match="unknown reward"):
        make_reward("nope")


# --- the contract, on anything --------------------------------------------------------------

ALL_REWARDS = [
    *build_rewards({name: 1.0 for name in REWARDS}, progress_fn=lambda: 0.0)[0],
    make_reward("spatial", gate="legacy"),
    make_reward("spatial", gate="none"),
    make_reward("temporal_point", schedule="fixed", sigma=4.0),
]
PIECES = [
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "<obj>",
    "</obj>",
    "<box>",
    "</box>",
    "<t>",
    "</t>",
    "s",
    " ",
    "\n",
    "[",
    "]",
    ",",
    "1",
    "2.5",
    "-3",
    "e9",
    "nan",
    "dog",
    "B",
    "From ",
    " to ",
    "Correct Option: ",
    "<obj>dog</obj>",
    "<box>[0,0,5,5]</box>",
    "at<t>3</t>s",
    "From <t>1</t>s to <t>4</t>s",
    "<box>[1,2]</box>",
    "<t>x</t>",
]
TAGGY = st.lists(st.sampled_from(PIECES) | st.characters(), max_size=30).map("".join)
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)
TASKS = st.sampled_from([*REWARD_KINDS, "junk"]) | JUNK
COMPLETION = (
    TAGGY
    | st.lists(
        st.fixed_dictionaries({"role": st.just("assistant"), "content": TAGGY | JUNK}), max_size=2
    )
    | JUNK
)
COLUMN_NAMES = [
    "answer",
    "answer_span_s",
    "answer_letter",
    "answer_box",
    "key_times_s",
    "key_boxes",
    "frame_wh",
    "source_wh",
    "box_space",
    "progress",
]


@st.composite
def batches(draw: st.DrawFn) -> tuple[list, dict]:
    n = draw(st.integers(0, 3))
    completions = [draw(COMPLETION) for _ in range(n)]
    columns: dict = {"task": [draw(TASKS) for _ in range(n)]}
    for name in COLUMN_NAMES:
        if draw(st.booleans()):
            columns[name] = [draw(JUNK) for _ in range(n)] if draw(st.booleans()) else draw(JUNK)
    columns["trainer_state"] = draw(JUNK)
    return completions, columns


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_every_reward_is_in_unit_interval_and_never_raises(batch: tuple[list, dict]) -> None:
    completions, columns = batch
    for reward in ALL_REWARDS:
        out = reward(completions, **columns)
        assert len(out) == len(completions)
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in out)


@settings(max_examples=200, deadline=None)
@given(TAGGY, st.sampled_from(sorted(REWARD_KINDS)))
def test_well_typed_columns_arbitrary_text(text: str, task: str) -> None:
    columns = {
        "task": [task],
        "answer": ["a dog"],
        "answer_span_s": [[1.0, 4.0]],
        "answer_letter": ["B"],
        "answer_box": [[0, 0, 5, 5]],
        "key_times_s": [[3.0]],
        "key_boxes": [[{"dog": [[0, 0, 5, 5]]}]],
        "frame_wh": [[10, 10]],
        "box_space": ["frame_px"],
    }
    for reward in ALL_REWARDS:
        (value,) = reward([text], **columns)
        assert 0.0 <= value <= 1.0


def test_not_a_list_of_completions() -> None:
    for reward in ALL_REWARDS:
        assert reward(None, task=None) == []


def test_module_doctests() -> None:
    for module in (o3video.rewards, registry):
        assert doctest.testmod(module).failed == 0


def test_a_reward_that_raises_is_counted_and_logged_in_training(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from o3video.rewards.base import REWARD_ERRORS, STRICT_ENV, score_items
    from o3video.train.rl import reward_errors_callback

    def broken(text: str, kind: str, get: object) -> float:
        raise KeyError("a bug")

    columns = {"task": ["General video QA MCQ"] * 3}
    with pytest.raises(KeyError):  # the test suite runs strict: the bug surfaces
        score_items("broken", ["a", "b", "c"], columns, frozenset({"mcq"}), broken)
    monkeypatch.setenv(STRICT_ENV, "0")  # as in training
    REWARD_ERRORS.drain()
    with caplog.at_level("WARNING", logger="o3video.rewards.base"):
        out = score_items("broken", ["a", "b", "c"], columns, frozenset({"mcq"}), broken)
        score_items("broken", ["d"], {"task": ["General video QA MCQ"]}, frozenset({"mcq"}), broken)
    assert out == [0.0, 0.0, 0.0]
    warnings = [r for r in caplog.records if "reward broken raised" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].exc_info is not None  # once, with traceback
    logs: dict[str, float] = {}
    reward_errors_callback(["answer", "broken"]).on_log(None, None, None, logs=logs)
    assert logs == {"rewards/answer/errors": 0.0, "rewards/broken/errors": 4.0}
    reward_errors_callback(["answer"]).on_log(None, None, None, logs=(again := {}))
    assert again == {"rewards/answer/errors": 0.0}  # counted once, per log

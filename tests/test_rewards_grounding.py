"""The temporal (r_t) and spatial (r_s) rewards of SPEC §5, with hand-derived values."""

from __future__ import annotations

import doctest
import math
from types import SimpleNamespace

import pytest

from o3video.rewards import spatial, temporal
from o3video.rewards.spatial import make_spatial_reward, spatial_reward
from o3video.rewards.temporal import (
    make_temporal_point_reward,
    resolve_progress,
    sigma_at,
    temporal_interval_reward,
    temporal_point_reward,
)

ST = "temporal-spatial free-form QA"
TEMPORAL = "temporal QA"
VQA = "visual QA"


def _one(reward, text, **cols) -> float:
    return reward([text], **{k: [v] for k, v in cols.items()})[0]


def claim(name: str, box: str, t: float | None) -> str:
    time = f"at<t>{t}</t>s" if t is not None else ""
    return f"<obj>{name}</obj><box>{box}</box>{time}"


def think(*parts: str) -> str:
    return f"<think>{' '.join(parts)}</think><answer>x</answer>"


# --- temporal interval --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("think_text", "span", "expected"),
    [
        ("<t>2</t>s <t>9</t>s", [1.0, 5.0], 0.5),  # 2 in, 9 out
        ("<t>2</t>s <t>9</t>s " + claim("a", "[0,0,1,1]", 3), [1.0, 5.0], pytest.approx(2 / 3)),
        ("<t>1</t>s <t>5</t>s", [1.0, 5.0], 1.0),  # ends included
        ("no times", [1.0, 5.0], 0.0),
        ("<t>2</t>s", [5.0, 1.0], 0.0),  # reversed gt span
        ("<t>2</t>s", None, 0.0),
    ],
)
def test_temporal_interval(think_text: str, span: list[float] | None, expected: float) -> None:
    assert (
        _one(temporal_interval_reward, think(think_text), task=TEMPORAL, answer_span_s=span)
        == expected
    )


def test_temporal_interval_reads_think_only_and_its_tasks() -> None:
    text = "<think>a</think><answer>From <t>2</t>s to <t>3</t>s</answer>"
    assert _one(temporal_interval_reward, text, task=TEMPORAL, answer_span_s=[1, 5]) == 0.0
    # other tasks: 0.0 whatever the text
    assert _one(temporal_interval_reward, think("<t>2</t>s"), task=ST, answer_span_s=[1, 5]) == 0


# --- temporal point, adaptive σ -------------------------------------------------------------


@pytest.mark.parametrize(("p", "sigma"), [(0.0, 4.0), (0.5, 2.0), (0.75, 1.0), (1.0, 1.0)])
def test_sigma_adaptive_schedule(p: float, sigma: float) -> None:
    assert sigma_at(p) == pytest.approx(sigma)


def test_sigma_schedule_edges() -> None:
    assert sigma_at(0.7499999) == pytest.approx(1.0, abs=1e-5)  # continuous at 0.75
    assert sigma_at(-3.0) == 4.0 and sigma_at(7.0) == 1.0  # progress clipped
    assert sigma_at(0.3, "fixed") == 1.0 and sigma_at(0.3, "fixed", 4.0) == 4.0
    for bad in [("adaptive", 2.0), ("fixed", 0.0), ("fixed", math.nan), ("cosine", None)]:
        with pytest.raises(ValueError):
            sigma_at(0.0, *bad)  # type: ignore[arg-type]


KEYS = [4.0, 10.0]
# think times 4 (d = 0) and 6 (d = 2 to key 4): score = (1 + exp(−4 / 2σ²)) / 2
TWO_TIMES = think(claim("dog", "[0,0,1,1]", 4), "<t>6</t>s")


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (SimpleNamespace(global_step=0, max_steps=100), (1 + math.exp(-4 / 32)) / 2),  # σ = 4
        (SimpleNamespace(global_step=50, max_steps=100), (1 + math.exp(-4 / 8)) / 2),  # σ = 2
        (SimpleNamespace(global_step=90, max_steps=100), (1 + math.exp(-4 / 2)) / 2),  # σ = 1
        (SimpleNamespace(global_step=5, max_steps=0), (1 + math.exp(-4 / 32)) / 2),  # p = 0
        (None, (1 + math.exp(-4 / 32)) / 2),  # no progress at all: p = 0
    ],
)
def test_temporal_point_follows_trainer_state(state: object, expected: float) -> None:
    out = temporal_point_reward([TWO_TIMES], task=[ST], key_times_s=[KEYS], trainer_state=state)
    assert out == [pytest.approx(expected)]


def test_progress_sources_in_order() -> None:
    state = SimpleNamespace(global_step=0, max_steps=100)
    assert resolve_progress({"progress": [0.5], "trainer_state": state}) == 0.5
    assert resolve_progress({"progress": 0.5}, progress_fn=lambda: 1.0) == 1.0
    assert resolve_progress({"progress": "junk", "trainer_state": state}) == 0.0
    assert resolve_progress({}, progress_fn=lambda: 1 / 0) == 0.0  # broken source → p = 0
    reward = make_temporal_point_reward(progress_fn=lambda: 1.0)  # σ = 1: (1 + e^−2) / 2
    out = reward([TWO_TIMES], task=[ST], key_times_s=[KEYS], trainer_state=state)
    assert out == [pytest.approx((1 + math.exp(-2)) / 2)]


@pytest.mark.parametrize(
    ("sigma", "expected"),
    [(1.0, (1 + math.exp(-2)) / 2), (4.0, (1 + math.exp(-4 / 32)) / 2)],
)
def test_temporal_point_fixed_sigma(sigma: float, expected: float) -> None:
    reward = make_temporal_point_reward("fixed", sigma)
    assert _one(reward, TWO_TIMES, task=ST, key_times_s=KEYS, progress=0.9) == pytest.approx(
        expected
    )


@pytest.mark.parametrize(
    "cols",
    [
        {"task": ST, "key_times_s": []},
        {"task": ST, "key_times_s": [4.0, "x"]},
        {"task": ST},
        {"task": TEMPORAL, "key_times_s": KEYS},  # not its task
    ],
)
def test_temporal_point_zero_cases(cols: dict) -> None:
    assert _one(temporal_point_reward, TWO_TIMES, **cols) == 0.0
    assert _one(temporal_point_reward, think("no times"), task=ST, key_times_s=KEYS) == 0.0


# --- spatial with temporal gating -----------------------------------------------------------

DOG = "[0,0,10,10]"
ONE_FRAME = {
    "task": ST,
    "key_times_s": [4.0],
    "key_boxes": [{"dog": [[0, 0, 10, 10]]}],
    "box_space": "rel1000",
}


@pytest.mark.parametrize(
    ("t_claim", "paper", "legacy", "none"),
    [
        # key frame at 4 s. paper: |t − 4| ≤ 3. legacy: 4 − t < 1 (signed). none: always.
        (4.0, 1.0, 1.0, 1.0),
        (6.5, 1.0, 1.0, 1.0),  # 2.5 s after
        (9.0, 0.0, 1.0, 1.0),  # right box, 5 s after the key frame: legacy lets it pass
        (40.0, 0.0, 1.0, 1.0),  # ... however far after (the reference bug)
        (3.5, 1.0, 1.0, 1.0),  # 0.5 s before
        (2.0, 1.0, 0.0, 1.0),  # 2 s before: within τ = 3; legacy needs 4 − 2 < 1
        (0.5, 0.0, 0.0, 1.0),  # before every key frame, 3.5 s off: gated by both
    ],
)
def test_gates(t_claim: float, paper: float, legacy: float, none: float) -> None:
    text = think(claim("dog", DOG, t_claim))
    assert _one(make_spatial_reward("paper"), text, **ONE_FRAME) == paper
    assert _one(make_spatial_reward("legacy"), text, **ONE_FRAME) == legacy
    assert _one(make_spatial_reward("none"), text, **ONE_FRAME) == none


def test_nearest_key_frame_is_the_one_scored() -> None:
    # key frames 4 s (dog at the left) and 10 s (dog at the right). A claim at 8 s with the
    # left box: nearest frame is 10 s (d = 2) where the dog is elsewhere → IoU 0, although
    # the 4 s frame would have matched: no search over frames.
    cols = {
        "task": ST,
        "key_times_s": [4.0, 10.0],
        "box_space": "rel1000",
        "key_boxes": [{"dog": [[0, 0, 10, 10]]}, {"dog": [[90, 90, 100, 100]]}],
    }
    assert _one(spatial_reward, think(claim("dog", DOG, 8.0)), **cols) == 0.0
    assert _one(spatial_reward, think(claim("dog", DOG, 6.0)), **cols) == 1.0


@pytest.mark.parametrize(
    ("name", "paper", "legacy"),
    [
        ("cat", 0.0, 1.0),  # name matches the cat, whose box is elsewhere; legacy ignores names
        (" CAT ", 0.0, 1.0),  # case/space-insensitive
        ("puppy", 1.0, 1.0),  # no name match → every object's boxes
        ("dog", 1.0, 1.0),
    ],
)
def test_names(name: str, paper: float, legacy: float) -> None:
    cols = {
        "task": ST,
        "key_times_s": [4.0],
        "box_space": "rel1000",
        "key_boxes": [{"Dog": [[0, 0, 10, 10]], "cat": [[50, 50, 60, 60]]}],
    }
    text = think(claim(name, DOG, 4.0))
    assert _one(make_spatial_reward("paper"), text, **cols) == paper
    assert _one(make_spatial_reward("legacy"), text, **cols) == legacy


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ([claim("dog", "[0,0,10,5]", 4)], 0.5),  # IoU 50 / 100
        ([claim("dog", "[0,0,10,5]</box><box>[0,0,10,10]", 4)], 1.0),  # best box of a claim
        ([claim("dog", DOG, 4), claim("dog", DOG, 9)], 0.5),  # (1 + gated 0) / 2
        ([claim("dog", DOG, 4), claim("dog", DOG, None)], 0.5),  # no time scores 0
        (["<box>[0,0,10,10]</box> at <t>4</t>s"], 0.0),  # no claim at all
    ],
)
def test_mean_over_claims(claims: list[str], expected: float) -> None:
    assert _one(spatial_reward, think(*claims), **ONE_FRAME) == expected


def test_boxes_clamped_in_model_space() -> None:
    # frame_px 100×50: the claim [0,0,200,50] clamps to the whole frame = the gt box.
    cols = {
        "task": ST,
        "key_times_s": [4.0],
        "key_boxes": [{"dog": [[0, 0, 100, 50]]}],
        "box_space": "frame_px",
        "frame_wh": [100, 50],
    }
    assert _one(spatial_reward, think(claim("dog", "[0,0,200,50]", 4)), **cols) == 1.0


@pytest.mark.parametrize(
    ("think_boxes", "expected"),
    [
        ("<box>[0,0,4,4]</box> <box>[0,0,4,2]</box>", 1.0),  # max over think boxes
        (claim("dog", "[0,0,4,4]", None), 0.5),  # IoU 8 / 16
        ("none", 0.0),
    ],
)
def test_visual_qa_max_iou(think_boxes: str, expected: float) -> None:
    cols = {"task": VQA, "answer_box": [0, 0, 4, 2], "box_space": "rel1000"}
    assert _one(spatial_reward, think(think_boxes), **cols) == expected


@pytest.mark.parametrize(
    "cols",
    [
        {**ONE_FRAME, "key_boxes": []},  # lengths differ
        {**ONE_FRAME, "key_boxes": [{"dog": [[0, 0, 10]]}]},
        {**ONE_FRAME, "key_boxes": [["dog"]]},
        {**ONE_FRAME, "key_times_s": ["4"]},
        {**ONE_FRAME, "task": TEMPORAL},  # not its task
        {"task": VQA, "answer_box": None},
    ],
)
def test_spatial_malformed_gives_zero(cols: dict) -> None:
    assert _one(spatial_reward, think(claim("dog", DOG, 4)), **cols) == 0.0


def test_spatial_options_checked() -> None:
    for kwargs in [{"gate": "loose"}, {"tau_s": math.inf}, {"tau_s": -1.0}, {"tau_s": "3"}]:
        with pytest.raises(ValueError):
            make_spatial_reward(**kwargs)  # type: ignore[arg-type]


def test_module_doctests() -> None:
    for module in (temporal, spatial):
        assert doctest.testmod(module).failed == 0


def test_visual_qa_mean_rule_does_not_pay_for_sprayed_boxes() -> None:
    """Under the default ``max`` rule each extra box is another draw at the truth (RL on it
    alone learned to spray boxes); ``mean`` charges a wrong box what a right one earns."""
    cols = dict(task=[VQA] * 3, answer_box=[[0, 0, 100, 100]] * 3, box_space=["rel1000"] * 3)
    one = "<think><box>[0,0,100,100]</box></think><answer/>"
    spray = (
        "<think>"
        + "".join(f"<box>[{x},{x},{x + 100},{x + 100}]</box>" for x in (0, 300, 600, 900))
        + "</think><answer/>"
    )
    wrong = "<think><box>[500,500,600,600]</box></think><answer/>"
    assert spatial_reward([spray, one, wrong], **cols) == [1.0, 1.0, 0.0]
    mean = make_spatial_reward(visual_qa="mean")
    assert mean([spray, one, wrong], **cols) == [0.25, 1.0, 0.0]
    assert mean(["<think>no box</think><answer/>"] * 3, **cols) == [0.0] * 3
    with pytest.raises(ValueError, match="unknown visual_qa rule 'min'; known: max, mean"):
        make_spatial_reward(visual_qa="min")  # type: ignore[arg-type]


def test_registry_passes_the_visual_qa_rule() -> None:
    from o3video.rewards.registry import build_rewards

    (func,), _ = build_rewards({"spatial": {"visual_qa": "mean"}})
    cols = dict(task=[VQA], answer_box=[[0, 0, 100, 100]], box_space=["rel1000"])
    two = "<think><box>[0,0,100,100]</box><box>[500,500,600,600]</box></think><answer/>"
    assert func([two], **cols) == [0.5]

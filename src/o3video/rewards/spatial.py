"""Spatial reward r_s with temporal gating (SPEC §5): a right box at the right time.

**Spatio-temporal tasks** (and V-STaR's prompt forms, whose key frames are the item's
ground-truth seconds and boxes). For each claim in ``<think>`` take the nearest ground-truth key
frame (``key_times_s``; the earlier one on a tie). If the claim passes the *gate*, it scores
the best IoU of its boxes against that frame's ground-truth boxes (``key_boxes``), else 0;
the reward is the mean over claims. Gates (``gate=``):

- ``"paper"`` (default): pass iff |t_claim − t_kf| ≤ τ, τ = ``tau_s`` = 3 s (the paper).
- ``"legacy"``: the reference code, kept only for comparison: pass iff t_kf − t_claim < τ,
  τ = 1 s — a *signed* difference, so any claim later than its key frame passes however far
  off it is (the bug SPEC §5 names).
- ``"none"``: no gating (the ablation without it): every claim scores at its nearest frame.

Names: with ``"paper"`` and ``"none"``, when the claim's object name matches an object of
that frame (casefolded, all whitespace removed: ``"Red  Car"`` = ``"redcar"``) only that
object's boxes count; when it matches none, the boxes of every object at the frame count (a
synonym still earns its IoU). ``"legacy"`` ignores names, as the reference did. A claim
without a time scores 0 under every gate. Boxes are compared in the model's box space,
clamped to it (``box_space`` with ``frame_wh`` / ``source_wh``).

**Visual QA.** ``visual_qa="max"`` (default, SPEC §5): the max IoU of any box in ``<think>``
with ``answer_box``. A policy can game it: every extra box is another draw at the truth, and
RL on it alone grew the embedded model's completions from ~130 to the 320-token cap of boxes
sprayed over the frame while the held-out score fell (``benchmarks/embedded-experiments.md``,
run F). ``visual_qa="mean"``: the mean IoU of the ``<think>`` boxes with ``answer_box``, so a
wrong extra box costs what a right one earns.

Other tasks: 0.0.

>>> r = make_spatial_reward()
>>> cols = dict(task=["temporal-spatial free-form QA"], key_times_s=[[4.0]],
...             key_boxes=[[{"dog": [[0, 0, 10, 10]]}]], box_space=["rel1000"])
>>> r(["<think><obj>dog</obj><box>[0,0,10,10]</box>at<t>6</t>s</think><answer/>"], **cols)
[1.0]
>>> r(["<think><obj>dog</obj><box>[0,0,10,10]</box>at<t>9</t>s</think><answer/>"], **cols)
[0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

from o3video.boxes import XYXY, iou
from o3video.evidence import Claim, parse_trace
from o3video.rewards.base import RewardFn, RewardKind, as_seconds, box_extent, score_items, to_box
from o3video.rewards.fmt import think_boxes, think_claims

Gate = Literal["paper", "legacy", "none"]
GATES: tuple[str, ...] = get_args(Gate)
VisualQARule = Literal["max", "mean"]
VISUAL_QA_RULES: tuple[str, ...] = get_args(VisualQARule)
PAPER_TAU_S = 3.0
"""The paper's gate: |t_claim − t_kf| ≤ 3 s."""
LEGACY_TAU_S = 1.0
"""The reference code's gate: t_kf − t_claim < 1 s."""

KeyFrame = tuple[float, dict[str, list[XYXY]]]
"""A key frame: its time and ``{object: [boxes]}``, boxes clamped in model space."""


def gate_passes(t_claim: float, t_kf: float, gate: Gate, tau_s: float) -> bool:
    """Whether a claim at ``t_claim`` may score against the key frame at ``t_kf``.

    >>> gate_passes(9.0, 4.0, "paper", 3.0), gate_passes(9.0, 4.0, "legacy", 1.0)
    (False, True)
    """
    if gate == "paper":
        return abs(t_claim - t_kf) <= tau_s
    if gate == "legacy":
        return (t_kf - t_claim) < tau_s
    return True


def name_key(name: str) -> str:
    """Object names compare casefolded with all whitespace removed."""
    return "".join(name.casefold().split())


def read_key_frames(
    key_times: object, key_boxes: object, extent: tuple[float, float] | None
) -> list[KeyFrame] | None:
    """The key frames from the ``key_times_s`` and ``key_boxes`` columns; ``None`` when
    they are malformed (lengths differ, a time is not a number, a box not 4 numbers)."""
    if not isinstance(key_times, Sequence) or not isinstance(key_boxes, Sequence):
        return None
    if isinstance(key_times, str) or len(key_times) != len(key_boxes):
        return None
    frames: list[KeyFrame] = []
    for t, objects in zip(key_times, key_boxes, strict=True):
        t_s = as_seconds(t)
        if t_s is None or not isinstance(objects, Mapping):
            return None
        boxes: dict[str, list[XYXY]] = {}
        for name, values in objects.items():
            if not isinstance(name, str) or not isinstance(values, (list, tuple)):
                return None
            parsed = [to_box(v, extent) for v in values]
            boxes[name] = [b for b in parsed if b is not None]
            if len(boxes[name]) != len(parsed):
                return None
        frames.append((t_s, boxes))
    return frames


def best_iou(pred: Sequence[XYXY], gt: Sequence[XYXY]) -> float:
    """The best IoU over all pairs; 0 when either side is empty."""
    return max((iou(p, g) for p in pred for g in gt), default=0.0)


def claim_score(
    claim: Claim,
    frames: list[KeyFrame],
    extent: tuple[float, float] | None,
    gate: Gate,
    tau_s: float,
) -> float:
    """The score of one claim (rules in the module docstring)."""
    t_s = claim.t_s
    if t_s is None or not frames:
        return 0.0
    t_kf, objects = min(frames, key=lambda f: abs(t_s - f[0]))  # first of equals: the earlier
    if not gate_passes(t_s, t_kf, gate, tau_s):
        return 0.0
    pred = [b for b in (to_box(x, extent) for x in claim.boxes) if b is not None]
    named = {name_key(n): bs for n, bs in objects.items()}
    key = name_key(claim.name)
    if gate != "legacy" and key in named:
        return best_iou(pred, named[key])
    return best_iou(pred, [b for bs in objects.values() for b in bs])


def make_spatial_reward(
    gate: Gate = "paper", tau_s: float | None = None, visual_qa: VisualQARule = "max"
) -> RewardFn:
    """r_s with the given temporal gate; ``tau_s`` defaults to 3 s (``paper``) or 1 s
    (``legacy``); ``visual_qa`` is the visual-QA rule (module docstring). Options are
    checked here (``ValueError``).

    >>> sprayed = ["<think><box>[0,0,4,2]</box><box>[6,6,9,9]</box></think><answer/>"]
    >>> cols = dict(task=["visual QA"], answer_box=[[0, 0, 4, 2]], box_space=["rel1000"])
    >>> mean = make_spatial_reward(visual_qa="mean")
    >>> make_spatial_reward()(sprayed, **cols), mean(sprayed, **cols)
    ([1.0], [0.5])
    """
    if gate not in GATES:
        raise ValueError(f"unknown gate {gate!r}; known: {', '.join(GATES)}")
    if visual_qa not in VISUAL_QA_RULES:
        raise ValueError(
            f"unknown visual_qa rule {visual_qa!r}; known: {', '.join(VISUAL_QA_RULES)}"
        )
    tau = (LEGACY_TAU_S if gate == "legacy" else PAPER_TAU_S) if tau_s is None else tau_s
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau):
        raise ValueError(f"tau_s must be a finite number of seconds, got {tau_s!r}")
    if gate == "paper" and tau < 0:
        raise ValueError(f"tau_s must be >= 0 for the paper gate, got {tau_s!r}")

    def score(text: str, kind: RewardKind, get: Callable[[str], Any]) -> float:
        trace = parse_trace(text)
        extent = box_extent(get)
        if kind == "spatial":
            gt = to_box(get("answer_box"), extent)
            pred = [b for b in (to_box(x, extent) for x in think_boxes(trace)) if b is not None]
            if gt is None or not pred:
                return 0.0
            if visual_qa == "mean":
                return sum(iou(b, gt) for b in pred) / len(pred)
            return best_iou(pred, [gt])
        frames = read_key_frames(get("key_times_s"), get("key_boxes"), extent)
        claims = think_claims(trace)
        if not frames or not claims:
            return 0.0
        return sum(claim_score(c, frames, extent, gate, float(tau)) for c in claims) / len(claims)

    def spatial(completions: list[Any], **columns: Any) -> list[float]:
        kinds: frozenset[RewardKind] = frozenset({"spatio_temporal", "spatial", "vstar"})
        return score_items("spatial", completions, columns, kinds, score)

    return spatial


spatial_reward: RewardFn = make_spatial_reward()
"""The default spatial reward: the paper's gate, τ = 3 s."""

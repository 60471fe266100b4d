"""The held-out probe set's scoring (the learning curve of RL), without a model."""

from __future__ import annotations

import pytest

from o3video.rewards.registry import build_rewards
from o3video.train.probe import probe_split, score_probe


def test_probe_split_holds_out_the_first_records() -> None:
    assert probe_split(5, 2) == ([0, 1], [2, 3, 4])
    with pytest.raises(ValueError, match="none of the 3 records to train on"):
        probe_split(3, 3)
    with pytest.raises(ValueError, match="at least 1"):
        probe_split(3, 0)


def test_probe_scores_every_reward_at_the_given_progress() -> None:
    progress = [0.0]
    funcs, weights = build_rewards(
        {"answer": 1.0, "format": 0.5, "temporal_point": 1.0}, progress_fn=lambda: progress[0]
    )
    right = "<think>it starts at <t>6</t>s</think><answer>From <t>2</t>s to <t>5</t>s</answer>"
    columns = [
        {"task": "temporal QA", "answer_span_s": [2.0, 5.0], "answer": "[2, 5]"},
        {"task": "temporal-spatial free-form QA", "answer": "a dog", "key_times_s": [5.0]},
    ]
    completions = [right, "<think>a dog at <t>6</t>s</think><answer>a dog</answer>"]
    early = score_probe(completions, columns, funcs, weights, progress=0.0)
    progress[0] = 1.0  # what Probe.run does before scoring
    late = score_probe(completions, columns, funcs, weights, progress=1.0)
    # answer: tIoU 1 and ROUGE 1 → mean 1; temporal_point applies to the second only:
    # |6 - 5| = 1 s, exp(-1 / 2σ²) with σ = 4 early (0.9692), σ = 1 late (0.6065), mean / 2.
    assert early["rewards"]["answer"] == pytest.approx(1.0)
    assert early["rewards"]["temporal_point"] == pytest.approx(0.9692 / 2, abs=1e-4)
    assert late["rewards"]["temporal_point"] == pytest.approx(0.6065 / 2, abs=1e-4)
    assert late["items"]["temporal_point"] == pytest.approx([0.0, 0.6065], abs=1e-4)
    assert late["items"]["answer"] == pytest.approx([1.0, 1.0])
    r = early["rewards"]
    assert early["total"] == pytest.approx(r["answer"] + 0.5 * r["format"] + r["temporal_point"])

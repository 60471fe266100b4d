"""Which protocol a model runs under, and how a prompt becomes chat messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from o3video.embedded import embedded_model_dir
from o3video.prompts import build_messages, system_prompt_for
from o3video.protocols import card_protocol, check_protocol, protocol_for_model
from o3video.protocols.render import (
    Prompt,
    labels_for,
    o3video_prompt,
    reference_label,
    to_messages,
)
from o3video.video import Clip


def _card(tmp_path: Path, card: object) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "o3video.json").write_text(json.dumps(card))
    return tmp_path


def test_default_protocol_is_the_cards_else_reference(tmp_path: Path) -> None:
    assert protocol_for_model(embedded_model_dir()) == "o3video"
    assert protocol_for_model(tmp_path) == "reference"  # a folder without a card
    assert protocol_for_model("marinero4972/Open-o3-Video") == "reference"  # a hub name
    assert protocol_for_model(_card(tmp_path / "old", {"video": {}})) == "o3video"
    assert protocol_for_model(_card(tmp_path / "sft", {"protocol": "reference-sft"})) == (
        "reference"
    )
    assert protocol_for_model(tmp_path, "o3video") == "o3video"  # given wins


def test_bad_protocols_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown protocol 'paper'"):
        check_protocol("paper")
    with pytest.raises(ValueError, match=r"known: o3video, reference$"):
        protocol_for_model(tmp_path, "reference-sft")  # a training-only protocol
    with pytest.raises(ValueError, match=r"o3video\.json: unknown protocol 'x'"):
        card_protocol(_card(tmp_path / "x", {"protocol": "x"}))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/o3video.json").write_text("{")
    with pytest.raises(ValueError, match="unreadable model card"):
        card_protocol(tmp_path / "bad")


def _clip(times: tuple[float, ...]) -> Clip:
    frames = np.zeros((len(times), 28, 56, 3), np.uint8)
    return Clip(frames, times, (112, 56), (56, 28), 10.0, 8.04)


def test_o3video_prompt_is_build_messages() -> None:
    clip = _clip((0.0, 2.5, 5.04))
    prompt = o3video_prompt(system_prompt_for("temporal"), "When?", clip)
    assert to_messages(prompt, clip) == build_messages(clip, "When?", "temporal")
    assert prompt.user_text() == (
        "Frame 1 at 0.0s: <image>\nFrame 2 at 2.5s: <image>\nFrame 3 at 5.0s: <image>\n"
        "The video is in total 8.0 seconds.\nWhen?"
    )


def test_reference_labels_print_as_python_prints_rounded_times() -> None:
    assert labels_for((0.0, 0.96666, 2), reference_label) == (
        "Frame 1 at 0.0s: ",
        "Frame 2 at 1.0s: ",
        "Frame 3 at 2s: ",  # an integer time (a key frame in RL) prints without decimals
    )


def test_a_prompt_needs_one_label_per_frame() -> None:
    with pytest.raises(ValueError, match="2 frame labels, the clip 3 frames"):
        to_messages(Prompt(None, "Q", ("a", "b")), _clip((0.0, 1.0, 2.0)))
    messages = to_messages(Prompt(None, "Q", ("",)), _clip((0.0,)))
    assert [m["role"] for m in messages] == ["user"]  # no system turn: the template's own
    assert [c["type"] for c in messages[0]["content"]] == ["image", "text"]

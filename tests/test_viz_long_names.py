"""Visualisation of hostile model text: an object name or question of a million characters
is drawn cut short, never an exception from PIL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from o3video.answer import build_answer
from o3video.video import Clip
from o3video.viz import write_outputs
from o3video.viz.render import draw_box, draw_caption

LONG = "x" * 1_000_000


def test_a_million_character_name_is_drawn(tmp_path: Path) -> None:
    clip = Clip(np.zeros((2, 56, 56, 3), np.uint8), (0.0, 1.0), (112, 112), (56, 56), 1, 2)
    text = f"<think><obj>{LONG}</obj><box>[1,2,30,40]</box>at<t>0.5</t>s</think><answer>a</answer>"
    answer = build_answer(text, clip, "qwen2_5_vl", question="Where? " + LONG)
    paths = write_outputs(answer, tmp_path)
    assert paths["animation"].stat().st_size > 0
    assert LONG in paths["report"].read_text(encoding="utf-8")  # the page keeps it whole


def test_labels_and_captions_are_cut_to_the_picture() -> None:
    image = Image.new("RGB", (64, 48))
    draw = ImageDraw.Draw(image)
    draw_box(draw, (4, 20, 40, 40), (255, 0, 0), label=LONG, image_wh=(64, 48), width=2)
    draw_caption(draw, LONG, image_wh=(64, 48))
    assert np.asarray(image).any()

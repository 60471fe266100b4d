"""benchmarks/tower_pretrain.py: it trains the vision tower alone and saves a loadable model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from bench_scripts import load_benchmark


def test_only_the_tower_changes_and_the_saved_model_loads(tiny_dir: Path, tmp_path: Path) -> None:
    from transformers import Qwen2_5_VLForConditionalGeneration

    tp = load_benchmark("tower_pretrain")
    out = tmp_path / "tower"
    argv = [str(tiny_dir), str(out), "--steps", "3", "--n", "16", "--batch", "4",
            "--every-eval", "3", "--side", "56"]  # fmt: skip
    assert tp.main(argv) == 0
    before = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_dir).state_dict()
    after = Qwen2_5_VLForConditionalGeneration.from_pretrained(out).state_dict()
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(".visual." in f".{k}" for k in changed), sorted(changed)[:5]
    record = json.loads((out / "tower_pretrain.json").read_text())
    assert [row["step"] for row in record["curve"]] == [3.0]
    assert all(0.0 <= record["curve"][0][k] <= 1.0 for k in ("shape", "colour"))
    assert (out / "tokenizer.json").is_file()


def test_token_labels_mark_the_cells_the_object_covers() -> None:
    tp = load_benchmark("tower_pretrain")
    sp = load_benchmark("shape_probe")
    pics, shapes, colours = sp.images(12, seed=5, size_px=(24, 40))
    shape_y, colour_y = tp.token_labels(pics, shapes, colours, side=112)
    assert shape_y.shape == colour_y.shape == (12, 16)  # 4 x 4 tokens of 28 px
    for i, pic in enumerate(pics):
        on = shape_y[i] != len(tp.SHAPES)
        assert on.any() and (colour_y[i] != len(tp.COLOURS)).tolist() == on.tolist()
        assert set(shape_y[i][on]) == {shapes[i]} and set(colour_y[i][on]) == {colours[i]}
        painted = np.all(pic == list(tp.COLOURS.values())[colours[i]], axis=-1)
        cells = painted.reshape(4, 28, 4, 28).mean((1, 3)).reshape(-1)
        assert (cells[on] >= 0.15).all() and (cells[~on] < 0.15).all()


def test_world_frames_are_labelled_per_token_from_their_boxes(tmp_path: Path) -> None:
    from o3video.data.synthetic import synthesize

    tp = load_benchmark("tower_pretrain")
    sp = load_benchmark("shape_probe")
    synthesize(tmp_path, 3, seed=4, workers=1)
    pics, objects = sp.corpus_frames(tmp_path, every=10)
    side = pics.shape[1]
    assert len(pics) == len(objects) and pics.dtype == np.uint8 and side % 28 == 0
    frame, cell, shape = sp.centre_cells(objects, side, side)
    assert len(frame) > 0 and cell.max() < (side // 28) ** 2
    shape_y, colour_y = tp.box_token_labels(objects, side, side)
    assert shape_y.shape == (len(pics), (side // 28) ** 2)
    assert ((shape_y == len(tp.SHAPES)) == (colour_y == len(tp.COLOURS))).all()
    assert (shape_y == len(tp.SHAPES)).any()  # some cells are background
    # an uncovered object's centre cell is labelled with its shape unless a box in front of
    # it reaches into that cell as well
    agree = shape_y[frame, cell] == shape
    assert agree.mean() >= 0.8, agree.mean()


def test_the_saved_model_carries_the_card_with_a_tower_stage(
    tiny_dir: Path, tmp_path: Path
) -> None:
    """The next stage's card must list every stage the weights went through: the tower run
    copies its source's card and appends one ``tower`` entry."""
    import shutil

    from o3video.models.card import VideoSettings, read_card, write_card

    tp = load_benchmark("tower_pretrain")
    source = tmp_path / "source"
    shutil.copytree(tiny_dir, source)
    earlier = {"stage": "sft", "steps": 5, "command": ["o3video", "train", "sft"]}
    write_card(source, VideoSettings(max_pixels=12544), world={"width": 112}, training=[earlier])
    out = tmp_path / "tower"
    argv = [str(source), str(out), "--steps", "2", "--n", "16", "--batch", "4", "--side", "56"]
    assert tp.main(argv) == 0
    card = read_card(out)
    assert card is not None
    assert card["video"] == read_card(source)["video"] and card["world"] == {"width": 112}
    assert [e["stage"] for e in card["training"]] == ["sft", "tower"]
    assert card["training"][0] == earlier
    tower = card["training"][1]
    assert tower["steps"] == 2 and tower["command"][1:] == argv
    assert tower["held_out"]["step"] == 2.0 and tower["wall_s"] > 0
    # without a card on the source there is none on the result (nothing is invented)
    bare = tmp_path / "bare"
    assert tp.main([str(tiny_dir), str(bare), "--steps", "1", "--n", "16", "--batch", "4",
                    "--side", "56"]) == 0  # fmt: skip
    assert read_card(bare) is None

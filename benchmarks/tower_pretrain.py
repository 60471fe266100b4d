"""Teach a model's vision tower the shapes and colours of the synthetic world, then save the model.

The embedded model's vision tower tells colours apart but not shapes (``shape_probe.py``: a
linear probe finds the shape on 29 % of one-object images, as with random weights), and
neither grounding nor SFT at 112×112 frames taught it shapes. This script is a vision
pre-training stage for it: the tower of ``MODEL`` (its own weights; the language model is
left untouched) and two linear heads on its pooled merged tokens (mean and max, as in
``shape_probe.pooled``) are trained to name the shape and the colour of ``--n`` one-object
images (``shape_probe.images``) at ``--side`` pixels, with Adam. With ``--per-token`` the
heads read every merged token instead, and each token is labelled with the shape and the
colour of the object covering at least 15 % of its 28×28 px cell (or background): the
language model reads tokens one by one, so each object token should say what it shows.
Every ``--every-eval`` steps it prints the held-out accuracy of both heads (the last 25 % of
the images; object tokens only with ``--per-token``). ``--corpus DIR`` trains per token on
the world's own frames instead: every ``--every``-th frame of a synthetic corpus, decoded
from its video files, each token labelled with the nearest object whose ground-truth box
covers a quarter of its cell; the last 25 % of the frames are held out. At the end it saves
the whole model with the new tower, and the processor, under ``OUT``, ready for
``o3video train sft --config … model.path=OUT``.

    python benchmarks/tower_pretrain.py benchmarks/embedded-sft runs/T0/tower --steps 800
    python benchmarks/tower_pretrain.py runs/T0-sft/final runs/T2/tower --steps 1000 --per-token
    python benchmarks/tower_pretrain.py runs/T2/tower runs/T3/tower --corpus runs/T0-sft/data \
        --steps 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import shape_probe

from o3video.data.shapes import COLOURS, SHAPES


def token_labels(pics: np.ndarray, shapes: np.ndarray, colours: np.ndarray,
                 side: int, cover: float = 0.15) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per merged token (raster order, one token per 28×28 px of the ``side`` frame): the
    shape and the colour of the object covering at least ``cover`` of the token's cell, or
    the extra class ``len(SHAPES)`` / ``len(COLOURS)`` (background) where none does."""
    names = list(COLOURS)
    n, h = pics.shape[:2]
    cells = side // 28
    cell = h // cells  # the token's cell in the picture's own pixels
    shape_y = np.full((n, cells * cells), len(SHAPES))
    colour_y = np.full((n, cells * cells), len(COLOURS))
    for i, pic in enumerate(pics):
        painted = np.all(pic == COLOURS[names[colours[i]]], axis=-1)
        frac = (
            painted[: cells * cell, : cells * cell].reshape(cells, cell, cells, cell).mean((1, 3))
        )
        on = frac.reshape(-1) >= cover
        shape_y[i, on], colour_y[i, on] = shapes[i], colours[i]
    return shape_y, colour_y


def box_token_labels(objects: shape_probe.Objects, frame_px: int, side: int,
                     cover: float = 0.25) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per merged token of world frames (``shape_probe.corpus_frames``): the shape and colour
    of the nearest object whose box covers at least ``cover`` of the token's cell, or the
    background class (``len(SHAPES)`` / ``len(COLOURS)``)."""
    names = list(COLOURS)
    cells = side // 28
    cell = frame_px / cells
    shape_y = np.full((len(objects), cells * cells), len(SHAPES))
    colour_y = np.full((len(objects), cells * cells), len(COLOURS))
    for i, frame in enumerate(objects):
        for k in range(cells * cells):
            cx0, cy0 = (k % cells) * cell, (k // cells) * cell
            best = None
            for o in frame:
                x0, y0, x1, y1 = o["box_xyxy"]
                w = max(0.0, min(x1, cx0 + cell) - max(x0, cx0))
                h = max(0.0, min(y1, cy0 + cell) - max(y0, cy0))
                if w * h >= cover * cell * cell and (best is None or o["depth"] > best["depth"]):
                    best = o
            if best is not None:
                shape_y[i, k] = SHAPES.index(best["shape"])
                colour_y[i, k] = names.index(best["colour"])
    return shape_y, colour_y


def train(model: Any, pixels: torch.Tensor, grid: torch.Tensor, labels: dict[str, np.ndarray],
          steps: int, lr: float, batch: int, every: int, per_token: bool = False,
          seed: int = 0) -> list[dict[str, float]]:  # fmt: skip
    """Train ``model``'s tower (in place) with one linear head per label; the held-out curve.

    ``labels`` maps a name to one class per picture (``per_token=False``: the heads read
    :func:`shape_probe.pooled`) or one class per token (``per_token=True``: the heads read
    each token, the last class meaning background; accuracy is counted on object tokens).
    """
    torch.manual_seed(seed)
    hidden = model.config.text_config.hidden_size
    width = hidden if per_token else 2 * hidden
    ys = {k: torch.tensor(v) for k, v in labels.items()}
    heads = torch.nn.ModuleDict({k: torch.nn.Linear(width, int(y.max()) + 1)
                                 for k, y in ys.items()})  # fmt: skip
    tower = model.model.visual
    opt = torch.optim.Adam([*tower.parameters(), *heads.parameters()], lr=lr)
    read = shape_probe.tokens if per_token else shape_probe.pooled
    cut = int(len(pixels) * 0.75)
    curve: list[dict[str, float]] = []
    t0 = time.perf_counter()
    tower.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, cut, (batch,))
        x = read(model, pixels[idx], grid)
        ce = torch.nn.functional.cross_entropy
        loss = sum(ce(heads[k](x).flatten(0, -2), ys[k][idx].flatten()) for k in heads)
        opt.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        opt.step()
        if step % every == 0 or step == steps:
            tower.eval()
            with torch.no_grad():
                x = torch.cat([read(model, pixels[k : k + 64], grid)
                               for k in range(cut, len(pixels), 64)])  # fmt: skip
                row = {"step": float(step), "loss": float(loss),
                       "s": time.perf_counter() - t0}  # fmt: skip
                for k, head in heads.items():
                    y = ys[k][cut:]
                    right = head(x).argmax(-1) == y
                    if per_token:  # object tokens only: background is most of them
                        right = right[y != heads[k].out_features - 1]
                    row[k] = float(right.float().mean())
            tower.train()
            curve.append(row)
            print(f"step {step}: loss {row['loss']:.3f}, held-out "
                  + ", ".join(f"{k} {row[k]:.3f}" for k in heads)
                  + f" ({row['s']:.0f} s)", flush=True)  # fmt: skip
    tower.eval()
    return curve


def train_on_images(args: argparse.Namespace, processor: Any, model: Any) -> list[dict[str, float]]:
    """The one-object images of ``shape_probe.images``, pooled or ``--per-token``."""
    pics, shapes, colours = shape_probe.images(args.n, args.seed, tuple(args.size_px))
    pixels, grid = shape_probe.encode(processor, pics, args.side)
    if args.per_token:
        shape_y, colour_y = token_labels(pics, shapes, colours, args.side)
        labels = {"shape": shape_y, "colour": colour_y}
    else:
        labels = {"shape": shapes, "colour": colours}
    del pics
    return train(model, pixels, grid, labels, args.steps, args.lr, args.batch, args.every_eval,
                 args.per_token, args.seed)  # fmt: skip


def carry_card(source: Path, out: Path, record: dict[str, Any], steps: int, wall_s: float) -> None:
    """Copy ``source``'s model card (``o3video.json``: frame budget, world, training stages)
    to ``out`` with one more ``training`` entry, stage ``tower``, for this run: the next
    stage's card then lists every stage the weights went through. No card, nothing written."""
    import o3video
    from o3video.models.card import CARD_FILE, read_card
    from o3video.train.config import git_commit, git_dirty

    card = read_card(source)
    if card is None:
        return
    last = record["curve"][-1] if record["curve"] else {}
    card.setdefault("training", []).append(
        {
            "stage": "tower",
            "output_dir": str(out),
            "command": ["benchmarks/tower_pretrain.py", *record["argv"]],
            "version": o3video.__version__,
            "git_commit": git_commit(),
            "git_dirty": git_dirty(),
            "steps": steps,
            "wall_s": round(wall_s, 1),
            "held_out": last,
        }
    )
    text = json.dumps(card, indent=1, ensure_ascii=False) + "\n"
    (out / CARD_FILE).write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model", type=Path, help="model folder (its tower is trained)")
    p.add_argument("out", type=Path, help="where the model with the new tower is saved")
    p.add_argument("--side", type=int, default=112, help="image side (px), as the frames")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--n", type=int, default=4000, help="one-object images (25 %% held out)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--every-eval", type=int, default=100, help="held-out accuracy every N steps")
    p.add_argument("--seed", type=int, default=1, help="image seed (the probe's default is 0)")
    p.add_argument("--size-px", type=int, nargs=2, default=(24, 40))
    p.add_argument("--corpus", type=Path, default=None,
                   help="train on this synthetic corpus's frames, per token (labels from its "
                        "ground-truth boxes), instead of one-object images")  # fmt: skip
    p.add_argument("--every", type=int, default=10, help="with --corpus: every Nth frame")
    p.add_argument("--per-token", action="store_true",
                   help="label every merged token with the shape and colour it covers")  # fmt: skip
    args = p.parse_args(argv)

    start = time.perf_counter()
    processor = AutoProcessor.from_pretrained(args.model)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(args.model)
    if args.corpus is not None:
        pics, objects = shape_probe.corpus_frames(args.corpus, args.every)
        print(f"{args.corpus}: {len(pics)} frames")
        pixels, grid = shape_probe.encode(processor, pics, args.side)
        shape_y, colour_y = box_token_labels(objects, pics.shape[1], args.side)
        curve = train(model, pixels, grid, {"shape": shape_y, "colour": colour_y}, args.steps,
                      args.lr, args.batch, args.every_eval, True, args.seed)  # fmt: skip
    else:
        curve = train_on_images(args, processor, model)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    record = {"from": str(args.model), "argv": list(argv if argv is not None else sys.argv[1:]),
              "curve": curve}  # fmt: skip
    (args.out / "tower_pretrain.json").write_text(json.dumps(record, indent=1) + "\n")
    carry_card(args.model, args.out, record, args.steps, time.perf_counter() - start)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

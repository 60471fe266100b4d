"""Teach a model's vision tower the shapes and colours of the synthetic world, then save the model.

The embedded model's vision tower tells colours apart but not shapes (``shape_probe.py``: a
linear probe finds the shape on 29 % of one-object images, as with random weights), and
neither grounding nor SFT at 112×112 frames taught it shapes. This script is a vision
pre-training stage for it: the tower of ``MODEL`` (its own weights; the language model is
left untouched) and two linear heads on its pooled merged tokens (mean and max, as in
``shape_probe.pooled``) are trained to name the shape and the colour of ``--n`` one-object
images (``shape_probe.images``) at ``--side`` pixels, with Adam. Every ``--every`` steps it
prints the held-out accuracy (the last 25 % of the images) of both heads; at the end it saves
the whole model with the new tower, and the processor, under ``OUT``, ready for
``o3video train sft --config … model.path=OUT``.

    python benchmarks/tower_pretrain.py benchmarks/embedded-sft runs/T0/tower --side 112 --steps 600
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


def train(model: Any, pixels: torch.Tensor, grid: torch.Tensor, shapes: np.ndarray,
          colours: np.ndarray, steps: int, lr: float, batch: int, every: int,
          seed: int = 0) -> list[dict[str, float]]:  # fmt: skip
    """Train ``model``'s tower (in place) with a shape and a colour head; the held-out curve."""
    torch.manual_seed(seed)
    width = 2 * model.config.text_config.hidden_size
    heads = torch.nn.ModuleDict({"shape": torch.nn.Linear(width, len(SHAPES)),
                                 "colour": torch.nn.Linear(width, len(COLOURS))})  # fmt: skip
    tower = model.model.visual
    opt = torch.optim.Adam([*tower.parameters(), *heads.parameters()], lr=lr)
    ys = {"shape": torch.tensor(shapes), "colour": torch.tensor(colours)}
    cut = int(len(pixels) * 0.75)
    curve: list[dict[str, float]] = []
    t0 = time.perf_counter()
    tower.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, cut, (batch,))
        x = shape_probe.pooled(model, pixels[idx], grid)
        loss = sum(torch.nn.functional.cross_entropy(heads[k](x), ys[k][idx]) for k in heads)
        opt.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        opt.step()
        if step % every == 0 or step == steps:
            tower.eval()
            with torch.no_grad():
                x = torch.cat([shape_probe.pooled(model, pixels[k : k + 64], grid)
                               for k in range(cut, len(pixels), 64)])  # fmt: skip
                row = {"step": float(step), "loss": float(loss),
                       "s": time.perf_counter() - t0}  # fmt: skip
                for k, head in heads.items():
                    row[k] = float((head(x).argmax(1) == ys[k][cut:]).float().mean())
            tower.train()
            curve.append(row)
            print(f"step {step}: loss {row['loss']:.3f}, held-out shape {row['shape']:.3f}, "
                  f"colour {row['colour']:.3f} ({row['s']:.0f} s)", flush=True)  # fmt: skip
    tower.eval()
    return curve


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
    p.add_argument("--every", type=int, default=100, help="held-out accuracy every N steps")
    p.add_argument("--seed", type=int, default=1, help="image seed (the probe's default is 0)")
    p.add_argument("--size-px", type=int, nargs=2, default=(24, 40))
    args = p.parse_args(argv)

    processor = AutoProcessor.from_pretrained(args.model)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(args.model)
    pics, shapes, colours = shape_probe.images(args.n, args.seed, tuple(args.size_px))
    pixels, grid = shape_probe.encode(processor, pics, args.side)
    del pics
    curve = train(model, pixels, grid, shapes, colours, args.steps, args.lr, args.batch,
                  args.every, args.seed)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    record = {"from": str(args.model), "argv": list(argv if argv is not None else sys.argv[1:]),
              "curve": curve}  # fmt: skip
    (args.out / "tower_pretrain.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

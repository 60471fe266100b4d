"""Does a model's vision path see the shape of an object? A linear probe on its image features.

Synthesizes ``--n`` one-object images of the synthetic world (a random colour and shape at a
random place and size, on a background like the world's; ``--size-px`` as in the embedded
world),
resizes each to ``--side`` pixels square (56 is the embedded model's frame, 112 the world's),
and runs the model's vision tower with its merger (``get_image_features``: the tokens the
language model reads). Each image becomes the mean and the max of its tokens; a logistic
regression on standardized features is fitted on 75 % of the images and scored on the rest,
once for the shape and once for the colour. The same is done for a control: the same
architecture with random weights (``--control``), so the probe's own power is known.

A shape accuracy near the chance of 1/5 with the trained tower but not with a larger frame
says the pixels are the limit; a trained tower no better than the random one says training
never made the vision path tell shapes apart.

``--train-tower STEPS`` asks whether the architecture can learn shapes at all at each frame
side: a randomly initialised tower of the model's configuration, with a linear head on the
same pooled tokens, is trained on the shape labels alone (Adam, lr 1e-3, batches of 64 from
the first 75 %), and its accuracy on the rest is printed every 100 steps.

``--corpus DIR`` probes the world's own frames instead: every ``--every``-th frame of the
corpus's videos, decoded from its files as the model sees them, and for each object that is
fully in view and uncovered, the one merged token holding its box's centre (the language model
reads tokens one at a time). The probe is fitted on the first 75 % of the videos and scored
on the rest, so no video is in both.

    python benchmarks/shape_probe.py benchmarks/embedded-sft --side 56 112 --control
    python benchmarks/shape_probe.py benchmarks/embedded-sft --corpus runs/embedded/heldout
    python benchmarks/shape_probe.py benchmarks/embedded-sft --side 56 112 --train-tower 400
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from o3video.data.shapes import COLOURS, SHAPES, placement, shape_mask


def images(n: int, seed: int, size_px: tuple[int, int], side: int = 112) -> tuple[Any, ...]:
    """``n`` one-object ``side``×``side`` RGB images (uint8) with their shape and colour ids.

    The background imitates the world's "gradient" kind (not its painter; its ramps run -60 to
    +60 and its noise is per channel): a grey level, a left-right red ramp and a
    top-bottom blue ramp, plus static noise.
    """
    rng = np.random.default_rng(seed)
    colours = list(COLOURS)
    out, shape_ids, colour_ids = [], [], []
    ramp = np.linspace(-0.5, 0.5, side)
    for _ in range(n):
        level = rng.uniform(35, 85) + rng.uniform(-10, 10, size=3)
        img = np.broadcast_to(level, (side, side, 3)).copy()
        img[..., 0] += 120.0 * ramp[None, :]
        img[..., 2] += 120.0 * ramp[:, None]
        img += rng.normal(0, 8.0, size=img.shape)
        s, c = int(rng.integers(len(SHAPES))), int(rng.integers(len(colours)))
        size = int(rng.integers(size_px[0], size_px[1] + 1))
        x0, y0 = (int(v) for v in rng.integers(0, side - size + 1, size=2))
        placed = placement(x0, y0, shape_mask(SHAPES[s], size), side, side)
        assert placed is not None
        rows, cols, sub = placed
        img[rows, cols][sub] = COLOURS[colours[c]]  # a view: paints the frame
        out.append(np.clip(img, 0, 255).astype(np.uint8))
        shape_ids.append(s)
        colour_ids.append(c)
    return np.stack(out), np.asarray(shape_ids), np.asarray(colour_ids)


Objects = list[list[dict[str, Any]]]  # per frame, the objects in it


def corpus_frames(corpus: Path, every: int = 10,
                  limit: int | None = None) -> tuple[np.ndarray, Objects]:  # fmt: skip
    """Every ``every``-th frame of a synthetic corpus's videos, decoded from its files as the
    model sees them, with the objects present in each (``gt/<video>.json``: name, colour,
    shape, depth, and on that frame box_xyxy, visible_frac and occluded_by)."""
    import json

    import av

    pics: list[np.ndarray] = []
    objects: Objects = []
    for gt_path in sorted((corpus / "gt").glob("*.json"))[:limit]:
        gt = json.loads(gt_path.read_text())
        video = corpus / "videos" / f"{gt_path.stem}.mp4"
        with av.open(str(video)) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        for idx in range(0, len(decoded), every):
            seen = []
            for obj in gt["objects"]:
                frame = next((f for f in obj["frames"] if f["idx"] == idx), None)
                if frame is not None and frame["visible_frac"] > 0:
                    keep = {k: obj[k] for k in ("name", "colour", "shape", "depth")}
                    seen.append(
                        keep | {k: frame[k] for k in ("box_xyxy", "visible_frac", "occluded_by")}
                    )
            pics.append(decoded[idx])
            objects.append(seen)
    return np.stack(pics), objects


def centre_cells(objects: Objects, frame_px: int = 112, side: int = 112) -> tuple[np.ndarray, ...]:
    """(frame index, merged-token cell, shape id) of every object that is fully in view and
    uncovered (visible_frac ≥ 0.95, no occluder), its cell being the 28×28 px token of the
    ``side``-px picture (raster order) that holds its box's centre (``frame_px``-px frame)."""
    n, scale = side // 28, side / frame_px
    rows = [(i, int((y0 + y1) / 2 * scale // 28) * n + int((x0 + x1) / 2 * scale // 28),
             SHAPES.index(o["shape"]))
            for i, frame in enumerate(objects) for o in frame
            if o["visible_frac"] >= 0.95 and not o["occluded_by"]
            for x0, y0, x1, y1 in [o["box_xyxy"]]]  # fmt: skip
    return tuple(np.asarray(col) for col in zip(*rows, strict=True))


def tokens(model: Any, pixels: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``(B, tokens, width)``: each picture's merged vision tokens (what the language model
    reads), with gradients."""
    flat = pixels.reshape(-1, pixels.shape[-1])
    out = model.model.get_image_features(flat, grid.repeat(len(pixels), 1)).pooler_output
    return torch.stack(out)


@torch.no_grad()
def token_features(model: Any, pixels: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``(N, tokens, width)``: :func:`tokens` of every picture, in batches of 64."""
    return torch.cat([tokens(model, pixels[k : k + 64], grid) for k in range(0, len(pixels), 64)])


def encode(processor: Any, pics: np.ndarray, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pictures resized to ``side``² as the model's processor patches them:
    ``(N, patches, patch_dim)`` pixel values and the ``(1, 3)`` grid of one picture."""
    from PIL import Image

    resized = [Image.fromarray(p).resize((side, side), Image.BICUBIC) for p in pics]
    enc = processor.image_processor(images=resized, do_resize=False, return_tensors="pt")
    pixels = enc["pixel_values"]
    return pixels.reshape(len(pics), -1, pixels.shape[-1]), enc["image_grid_thw"][:1]


def pooled(model: Any, pixels: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``(B, 2 * width)``: the mean and the max of each picture's merged vision tokens."""
    merged = tokens(model, pixels, grid)
    return torch.cat([merged.mean(1), merged.max(1).values], -1)


@torch.no_grad()
def features(model: Any, pixels: torch.Tensor, grid: torch.Tensor) -> np.ndarray:
    """:func:`pooled` features of every picture, in batches of 32."""
    return torch.cat([pooled(model, pixels[k : k + 32], grid)
                      for k in range(0, len(pixels), 32)]).float().numpy()  # fmt: skip


def probe(x: np.ndarray, y: np.ndarray, classes: int, seed: int = 0) -> float:
    """Test accuracy of a logistic regression fitted on the first 75 % (standardized)."""
    cut = int(len(x) * 0.75)
    mu, sd = x[:cut].mean(0), x[:cut].std(0) + 1e-6
    xt = torch.tensor((x - mu) / sd, dtype=torch.float32)
    yt = torch.tensor(y)
    torch.manual_seed(seed)
    lin = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(500):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(xt[:cut]), yt[:cut]).backward()
        opt.step()
    with torch.no_grad():
        return float((lin(xt[cut:]).argmax(1) == yt[cut:]).float().mean())


def train_tower(config: Any, pixels: torch.Tensor, grid: torch.Tensor, labels: np.ndarray,
                steps: int, seed: int = 0) -> list[tuple[int, float]]:  # fmt: skip
    """(step, test accuracy) every 100 steps of a random tower trained on ``labels``."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration._from_config(config)
    head = torch.nn.Linear(2 * config.text_config.hidden_size, int(labels.max()) + 1)
    opt = torch.optim.Adam([*model.model.visual.parameters(), *head.parameters()], lr=1e-3)
    y, cut = torch.tensor(labels), int(len(pixels) * 0.75)
    curve = []
    for step in range(1, steps + 1):
        idx = torch.randint(0, cut, (64,))
        loss = torch.nn.functional.cross_entropy(head(pooled(model, pixels[idx], grid)), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps:
            with torch.no_grad():
                guess = head(pooled(model, pixels[cut:], grid)).argmax(1)
                curve.append((step, float((guess == y[cut:]).float().mean())))
    return curve


def probe_corpus(args: argparse.Namespace) -> int:
    """``--corpus``: the shape probe on the centre token of each uncovered object, per model
    and side; the split is by video (the first 75 % of the corpus's videos fit the probe)."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    pics, objects = corpus_frames(args.corpus, args.every)
    frame, _, shape = centre_cells(objects)
    counts = np.bincount(shape, minlength=len(SHAPES)).tolist()
    print(f"{args.corpus}: {len(pics)} frames, {len(shape)} uncovered objects "
          f"(shapes {counts}, chance 0.20)")  # fmt: skip
    print("| model | side | centre-token shape acc |\n|---|---|---|")
    for path in args.models:
        processor = AutoProcessor.from_pretrained(path)
        towers = [(str(path), Qwen2_5_VLForConditionalGeneration.from_pretrained(path).eval())]
        if args.control:
            torch.manual_seed(args.seed)
            random = Qwen2_5_VLForConditionalGeneration._from_config(towers[0][1].config)
            towers.append((f"{path} (random weights)", random.eval()))
        for side in args.side:
            pixels, grid = encode(processor, pics, side)
            _, cells, _ = centre_cells(objects, pics.shape[1], side)
            for name, model in towers:
                x = token_features(model, pixels, grid)[
                    torch.as_tensor(frame), torch.as_tensor(cells)
                ]
                print(f"| {name} | {side} | {probe(x.float().numpy(), shape, len(SHAPES)):.3f} |",
                      flush=True)  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("models", nargs="+", type=Path, help="model folders")
    p.add_argument("--side", type=int, nargs="+", default=[56, 112], help="frame sides (px)")
    p.add_argument("--n", type=int, default=1200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size-px", type=int, nargs=2, default=(24, 40))
    p.add_argument("--control", action="store_true", help="also a randomly initialised tower")
    p.add_argument("--train-tower", type=int, default=0, metavar="STEPS",
                   help="train a random tower on the shapes instead (see above)")  # fmt: skip
    p.add_argument("--corpus", type=Path, default=None,
                   help="probe the objects' centre tokens in a corpus's frames")  # fmt: skip
    p.add_argument("--every", type=int, default=10, help="with --corpus: every Nth frame")
    args = p.parse_args(argv)
    if args.corpus is not None:
        return probe_corpus(args)

    pics, shape_ids, colour_ids = images(args.n, args.seed, tuple(args.size_px))
    print(f"{args.n} one-object images, shapes {len(SHAPES)} (chance 0.20), colours "
          f"{len(COLOURS)} (chance {1 / len(COLOURS):.2f}); test = last 25 %")  # fmt: skip
    if args.train_tower:
        path = args.models[0]
        processor = AutoProcessor.from_pretrained(path)
        config = Qwen2_5_VLForConditionalGeneration.from_pretrained(path).config
        print("| frame | step | shape acc (test) |\n|---|---|---|")
        for side in args.side:
            pixels, grid = encode(processor, pics, side)
            for step, acc in train_tower(config, pixels, grid, shape_ids, args.train_tower,
                                         args.seed):  # fmt: skip
                print(f"| {side}x{side} | {step} | {acc:.3f} |", flush=True)
        return 0
    print("| model | side | shape acc | colour acc | s |")
    print("|---|---|---|---|---|")
    for path in args.models:
        processor = AutoProcessor.from_pretrained(path)
        trained = Qwen2_5_VLForConditionalGeneration.from_pretrained(path).eval()
        towers = [(str(path), trained)]
        if args.control:
            torch.manual_seed(args.seed)
            random = Qwen2_5_VLForConditionalGeneration._from_config(trained.config).eval()
            towers.append((f"{path} (random weights)", random))
        for side in args.side:
            pixels, grid = encode(processor, pics, side)
            for name, model in towers:
                t0 = time.perf_counter()
                x = features(model, pixels, grid)
                shape = probe(x, shape_ids, len(SHAPES))
                colour = probe(x, colour_ids, len(COLOURS))
                dt = time.perf_counter() - t0
                print(f"| {name} | {side} | {shape:.3f} | {colour:.3f} | {dt:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`o3video data synth`: write a synthetic grounded-video corpus with exact ground truth.

Draws ``--n`` worlds of moving coloured shapes (:mod:`o3video.data.synthetic`), encodes each
as an H.264 MP4 and writes, into ``--out``: ``stgr_sft.json`` and ``stgr_rl.json`` (STGR
records of all six tasks, SPEC §4), ``vstar.json`` (V-STaR items, SPEC §7), ``manifest.json``
and the media (``videos/``, ``keyframes/``, ``images/``, per-frame ground truth in ``gt/``).
The folder is the media root of every file: ``o3video data check FILE --media-root OUT``.
The same ``--seed`` (and world options) gives byte-identical JSON, whatever ``--workers``.
``--world-of`` takes the whole world from a model folder (the ``world`` of its
``o3video.json``) or a training recipe (its ``data.synth.world``): held-out data like the
data a model was trained on.
A progress line (rate, time left) goes to stderr, the summary to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from o3video.cli import finite_float
from o3video.cli._progress import ProgressLine, format_duration
from o3video.data.synthetic import synthesize
from o3video.data.world import WorldConfig
from o3video.train.card import world_of

NAME = "synth"
HELP = "write a synthetic corpus: videos, STGR SFT/RL records, V-STaR items"
EXAMPLES = """examples:
  o3video data synth --out synth --n 200 --seed 0
  o3video data synth --out synth_small --n 20 --size 160x120 --duration 5 --fps 5 --workers 2
  o3video data synth --out heldout --n 200 --seed 1000 --world-of runs/embedded-sft/final
  o3video data check synth/stgr_sft.json --media-root synth --decode
  o3video data check synth/vstar.json --media-root synth --decode
"""
_MEDIA = {"videos": "videos", "keyframes": "key frames", "images": "images", "gt": "ground truths"}


def add_arguments(synth: argparse.ArgumentParser) -> None:
    default = WorldConfig()
    synth.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    synth.add_argument("--n", type=_count, required=True, metavar="N", help="number of videos")
    synth.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    synth.add_argument(
        "--workers",
        type=_count,
        default=None,
        metavar="W",
        help="processes that render and encode (default: one per CPU, 1 below 16 videos)",
    )
    synth.add_argument(
        "--world-of",
        type=Path,
        default=None,
        metavar="PATH",
        help="take the world from a model folder (its o3video.json) or a recipe YAML "
        "(data.synth.world) instead of --fps/--duration/--size",
    )
    synth.add_argument(
        "--fps", type=finite_float, default=None, help=f"frame rate (default {default.fps:g})"
    )
    synth.add_argument(
        "--duration",
        type=finite_float,
        default=None,
        metavar="SECONDS",
        help=f"video length (default {default.duration_s:g})",
    )
    synth.add_argument(
        "--size",
        type=_size,
        default=None,
        metavar="WxH",
        help=f"frame size, even numbers (default {default.width}x{default.height}); object "
        "sizes and speeds scale with the smaller side",
    )


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit():
        raise argparse.ArgumentTypeError(f"want WxH such as 224x224, got {text!r}")
    return int(w), int(h)


def _world(args: argparse.Namespace) -> WorldConfig:
    if args.world_of is not None:
        given = [f"--{k}" for k in ("fps", "duration", "size") if getattr(args, k) is not None]
        if given:
            raise ValueError(f"--world-of sets the whole world; drop {', '.join(given)}")
        return world_of(args.world_of)
    default = WorldConfig()
    width, height = args.size or (default.width, default.height)
    # Objects' sizes and speeds follow the frame: the defaults are for 224x224.
    scale = min(width, height) / min(default.width, default.height)
    lo, hi = (max(8, round(v * scale)) for v in default.size_px)
    return WorldConfig(
        width=width,
        height=height,
        fps=args.fps if args.fps is not None else default.fps,
        duration_s=args.duration if args.duration is not None else default.duration_s,
        size_px=(lo, hi),
        speed_px_s=(default.speed_px_s[0] * scale, default.speed_px_s[1] * scale),
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = _world(args)
    except ValueError as e:
        print(f"o3video data synth: error: {e}", file=sys.stderr)
        return 2
    width, height = config.width, config.height
    start = time.perf_counter()
    result = synthesize(
        args.out,
        args.n,
        args.seed,
        config,
        progress=ProgressLine("videos"),
        workers=args.workers,
    )
    elapsed = time.perf_counter() - start
    out = result.out_dir
    rate = f", {args.n / elapsed:.2f} videos/s" if elapsed > 0 and args.n else ""
    print(
        f"{out}: {result.num_videos} videos ({width}x{height}, {config.duration_s:g} s at "
        f"{float(config.rate):g} fps, seed {args.seed}) in {format_duration(elapsed)}{rate}"
    )
    print(f"  {'task':<32}{'SFT':>8}{'RL':>8}")
    for task in sorted(result.sft_counts.keys() | result.rl_counts.keys()):
        sft, rl = result.sft_counts.get(task, 0), result.rl_counts.get(task, 0)
        print(f"  {task:<32}{sft:>8}{rl:>8}")
    total_sft, total_rl = sum(result.sft_counts.values()), sum(result.rl_counts.values())
    print(f"  {'all tasks':<32}{total_sft:>8}{total_rl:>8}")
    print(f"V-STaR items: {result.num_vstar}")
    media = [
        f"{sum(1 for p in (out / d).iterdir() if p.is_file())} {what} in {d}/"
        for d, what in _MEDIA.items()
    ]
    size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    print(f"files: {', '.join(p.name for p in result.files)}; {size_mb:.1f} MB in all")
    print(f"media: {', '.join(media)}")
    print(f"check: o3video data check {out / 'stgr_sft.json'} --media-root {out} --decode")
    return 0

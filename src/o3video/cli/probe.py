"""`o3video probe`: what a video holds and which frames a model would be shown.

Prints the stream's frame rate (as a float: 29.97 stays 29.97), duration, size and frame
count, then samples frames exactly as the model input would (Qwen ``smart_resize``, the
frame budget) and lists each frame's true presentation time. ``--mode snap`` takes the
nearest keyframe within ``--snap-tolerance`` seconds instead (default: half the longest
keyframe interval, so every wanted time has one), which is much faster on long videos; each
frame still shows its true time. ``--save DIR`` writes the sampled frames as PNG files named
by their time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from PIL import Image

from o3video.cli import finite_float
from o3video.video import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    MAX_SOURCE_PIXELS,
    QWEN25_FACTOR,
    probe_video,
    sample_frames,
)

NAME = "probe"
HELP = "show a video's stream facts and the frames (with true times) a model would see"
EXAMPLES = """examples:
  o3video probe clip.mp4
  o3video probe clip.mp4 --fps 2 --max-frames 64 --max-pixels 262144
  o3video probe long.mp4 --mode snap --snap-tolerance 2 --json
  o3video probe clip.mp4 --start 10 --end 20 --save frames/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="path of the video file")
    parser.add_argument("--fps", type=finite_float, default=2.0, help="sampling rate (default 2)")
    parser.add_argument("--min-frames", type=int, default=4)
    parser.add_argument("--max-frames", type=int, default=16)
    parser.add_argument("--num-frames", type=int, default=None, help="exact frame count")
    parser.add_argument("--min-pixels", type=int, default=DEFAULT_MIN_PIXELS)
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    parser.add_argument(
        "--factor", type=int, default=QWEN25_FACTOR, help="28 Qwen2.5-VL, 32 Qwen3-VL"
    )
    parser.add_argument("--start", type=finite_float, default=None, help="window start (s)")
    parser.add_argument("--end", type=finite_float, default=None, help="window end (s)")
    parser.add_argument("--mode", choices=("exact", "snap"), default="exact")
    parser.add_argument(
        "--snap-tolerance",
        type=finite_float,
        default=None,
        help="snap: seconds (default: half the longest keyframe interval, so every wanted "
        "time has a keyframe in reach)",
    )
    parser.add_argument("--save", type=Path, default=None, help="write frames as PNG here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--max-source-pixels",
        type=int,
        default=MAX_SOURCE_PIXELS,
        help="largest frame (width x height) to decode; default 8192x8192",
    )


def run(args: argparse.Namespace) -> int:
    info = probe_video(args.video, args.max_source_pixels)
    t0 = time.perf_counter()
    clip = sample_frames(
        args.video,
        fps=args.fps,
        min_frames=args.min_frames,
        max_frames=args.max_frames,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        start_s=args.start,
        end_s=args.end,
        num_frames=args.num_frames,
        factor=args.factor,
        mode=args.mode,
        snap_tolerance_s=args.snap_tolerance,
        max_source_pixels=args.max_source_pixels,
    )
    elapsed = time.perf_counter() - t0
    saved: list[str] = []
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
        for k, (frame, t) in enumerate(zip(clip.frames, clip.times_s, strict=True)):
            out = args.save / f"frame_{k:03d}_{t:09.3f}s.png"
            Image.fromarray(frame).save(out)
            saved.append(str(out))
    if args.json:
        print(
            json.dumps(
                {
                    "path": info.path,
                    "codec": info.codec,
                    "fps": info.fps,
                    "duration_s": info.duration_s,
                    "num_frames": info.num_frames,
                    "source_wh": list(info.source_wh),
                    "frame_wh": list(clip.frame_wh),
                    "mode": args.mode,
                    "times_s": list(clip.times_s),
                    "frame_indices": None
                    if clip.frame_indices is None
                    else list(clip.frame_indices),
                    "sample_s": elapsed,
                    "saved": saved,
                }
            )
        )
        return 0
    w, h = info.source_wh
    print(
        f"{info.path}: {info.codec} {w}x{h}, {info.fps:.6g} fps, {info.duration_s:.3f} s, "
        f"{info.num_frames} frames"
    )
    fw, fh = clip.frame_wh
    print(f"sampled {clip.num_frames} frames ({args.mode}) at {fw}x{fh} in {elapsed:.3f} s:")
    for k, t in enumerate(clip.times_s, start=1):
        print(f"  frame {k:>3}  {t:10.4f} s")
    if saved:
        print(f"frames written to {args.save}")
    return 0

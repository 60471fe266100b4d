"""Benchmark: ``sample_frames`` against qwen-vl-utils (decord) and a plain PyAV loop.

    .venv/bin/python benchmarks/video_sampling.py [--repeats N] [--quick] [--cache DIR]

Encodes (a) a 10 s 720p clip and (b) a 10-minute 720p H.264 video with a keyframe every
8 s (both 29.97 fps, x264 ultrafast; cached in ``--cache`` so reruns skip encoding; ``--quick``
makes (b) 60 s long and runs once). For each video and setting (16 frames; 2 fps capped at 64
frames) it measures, in this process after all imports, the median wall time of each method;
in a fresh child process per method, the peak RSS the call adds (Linux VmHWM, reset after the
imports, minus VmRSS before the call: native buffers included, unlike tracemalloc); and the
largest error of the times each method reports against the true PTS of the frames it
returned, taken from an independent scan of every packet's PTS. qwen-vl-utils reports no
times: its callers label frame k as ``k / sample_fps`` (SPEC §2), and that label is scored.
Needs the ``bench`` extra (qwen-vl-utils 0.0.14, decord 0.6.0) for the qwen-vl-utils rows.
"""

from __future__ import annotations

import os

os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "decord")  # read when qwen_vl_utils loads

import argparse
import importlib.metadata
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.codec.context import ThreadType
from PIL import Image

try:  # imported here, so its imports (torch) count in no method's time or memory
    from qwen_vl_utils import fetch_video
except ImportError:
    fetch_video = None

from o3video.video import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    Mode,
    count_frames,
    sample_frames,
    smart_resize,
)

RATE = Fraction(30000, 1001)
WIDTH, HEIGHT = 1280, 720
GOP_S = 8
SETTINGS: dict[str, dict[str, float]] = {
    "16 frames": {"nframes": 16},
    "2 fps, max 64": {"fps": 2.0, "max_frames": 64},
}
# A method returns the frame times it reports and the true PTS times of the frames it gave.
Result = tuple[list[float], list[float]]


def encode(path: Path, seconds: float, gop: int) -> None:
    """Simple moving content (a static textured background, a moving box and a scrolling
    band), drawn straight into YUV planes and encoded by x264 ultrafast with frame threads
    (one slice a frame, like most real files) and a keyframe exactly every ``gop`` frames."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    background = xx * 127 // WIDTH + yy * 63 // HEIGHT + rng.integers(0, 24, (HEIGHT, WIDTH))
    yuv = np.full((HEIGHT * 3 // 2, WIDTH), 128, np.uint8)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), mode="w") as out:
        stream = out.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.thread_type = ThreadType.FRAME
        stream.options = {
            "preset": "ultrafast",
            "g": str(gop),
            "keyint_min": str(gop),
            "sc_threshold": "0",
        }
        for i in range(int(seconds * RATE)):
            y = yuv[:HEIGHT]
            y[:] = background
            x0, y0 = (i * 7) % (WIDTH - 160), int((HEIGHT - 160) * (0.5 + 0.5 * np.sin(i / 40)))
            y[y0 : y0 + 160, x0 : x0 + 160] = 235
            y[(i * 3) % (HEIGHT - 24) :][:24] = 40
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts, frame.time_base = i, 1 / RATE
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    tmp.rename(path)


def pts_scan(path: Path) -> np.ndarray:
    """Every frame's true time in seconds, sorted, from the packets (nothing decoded)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        t0, tb = s.start_time or 0, s.time_base
        pts = sorted(p.pts for p in c.demux(s) if p.pts is not None)
    return np.array([float((p - t0) * tb) for p in pts])


def _frame_count(path: Path, setting: dict[str, float]) -> tuple[int, int, float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        total, fps = s.frames, float(s.average_rate or 0)
    if "nframes" in setting:
        return int(setting["nframes"]), total, fps
    return count_frames(total / fps, setting["fps"], 4, int(setting["max_frames"])), total, fps


def run_qwen(path: Path, setting: dict[str, float]) -> Result:
    ele = {"video": str(path), "min_pixels": DEFAULT_MIN_PIXELS, "max_pixels": DEFAULT_MAX_PIXELS}
    (video, meta), sample_fps = fetch_video(
        {**ele, **setting}, return_video_sample_fps=True, return_video_metadata=True
    )
    idx = list(meta["frames_indices"])
    assert video.shape[0] == len(idx)
    return [k / sample_fps for k in range(len(idx))], [float(i) for i in idx]  # indices → scan


def run_pyav(path: Path, setting: dict[str, float]) -> Result:
    """What one writes by hand: seek to each index's nominal time, decode to it, resize."""
    n, total, fps = _frame_count(path, setting)
    h, w = smart_resize(HEIGHT, WIDTH)
    times: list[float] = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        t0, tb = s.start_time or 0, s.time_base
        for i in np.linspace(0, total - 1, n).round():
            target = t0 + round(i / fps / tb)
            c.seek(target, stream=s)
            for f in c.decode(s):
                if f.pts is not None and f.pts >= target:
                    Image.fromarray(f.to_ndarray(format="rgb24")).resize(
                        (w, h), Image.Resampling.BICUBIC
                    )
                    times.append(float((f.pts - t0) * tb))
                    break
    return times, times


def run_ours(mode: Mode, tol: float | None) -> Callable[[Path, dict[str, float]], Result]:
    def run(path: Path, setting: dict[str, float]) -> Result:
        if "nframes" in setting:
            clip = sample_frames(
                path, num_frames=int(setting["nframes"]), mode=mode, snap_tolerance_s=tol
            )
        else:
            clip = sample_frames(
                path,
                fps=setting["fps"],
                max_frames=int(setting["max_frames"]),
                mode=mode,
                snap_tolerance_s=tol,
            )
        return list(clip.times_s), list(clip.times_s)

    return run


METHODS: dict[str, Callable[[Path, dict[str, float]], Result]] = {
    "qwen-vl-utils fetch_video (decord)": run_qwen,
    "PyAV seek+decode loop": run_pyav,
    "sample_frames exact": run_ours("exact", 0.0),
    "sample_frames snap, tol 2 s": run_ours("snap", 2.0),
    "sample_frames snap, default (tol GOP/2)": run_ours("snap", None),
}


def time_error_ms(name: str, result: Result, true_times: np.ndarray) -> float:
    reported, actual = result
    if name.startswith("qwen"):  # actual holds frame indices
        truth = true_times[np.asarray(actual, dtype=int)]
    else:  # the true PTS nearest each reported time, from the independent scan
        at = np.clip(np.searchsorted(true_times, actual), 1, len(true_times) - 1)
        left, right = true_times[at - 1], true_times[at]
        truth = np.where(np.abs(left - actual) <= np.abs(right - actual), left, right)
    return float(np.max(np.abs(np.asarray(reported) - truth)) * 1000)


def _vm_kib(key: str) -> int:
    line = next(
        ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(key)
    )
    return int(line.split()[1])


def child(name: str, path: Path, setting_name: str) -> int:
    """Run one method once in this fresh process; print the peak RSS it added (MiB).

    ``ru_maxrss`` would not do: Linux carries the parent's high-water mark across fork and
    exec. Instead the peak (VmHWM) is reset after the imports (``clear_refs`` 5) and the
    peak after the call is compared with the resident size (VmRSS) before it.
    """
    Path("/proc/self/clear_refs").write_text("5")
    before = _vm_kib("VmRSS:")
    METHODS[name](path, SETTINGS[setting_name])
    print(json.dumps({"rss_mib": (_vm_kib("VmHWM:") - before) / 1024}))
    return 0


def peak_rss_mib(name: str, path: Path, setting_name: str) -> float:
    argv = [sys.executable, __file__, "--child", name, str(path), setting_name]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["rss_mib"])


def machine() -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    versions = [f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})"]
    for dist in ("decord", "qwen-vl-utils", "torch"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} not installed")
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; " + ", ".join(
        versions
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="60 s long video, one repeat")
    parser.add_argument("--cache", type=Path, help="folder keeping the encoded videos")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child[0], Path(args.child[1]), args.child[2])
    repeats = 1 if args.quick else args.repeats
    long_s = 60 if args.quick else 600
    folder = args.cache or Path(tempfile.mkdtemp(prefix="video_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    gop = round(GOP_S * RATE)
    videos = {
        "(a) 10 s": (folder / "clip_10s.mp4", 10.0),
        f"(b) {long_s} s": (folder / f"long_{long_s}s_gop{gop}.mp4", float(long_s)),
    }
    for label, (path, seconds) in videos.items():
        if not path.exists():
            t = time.perf_counter()
            encode(path, seconds, gop)
            print(f"encoded {label} in {time.perf_counter() - t:.1f} s: {path}", file=sys.stderr)
    methods = dict(METHODS)
    if fetch_video is None:
        print("qwen-vl-utils not installed: its rows are skipped", file=sys.stderr)
        methods.pop("qwen-vl-utils fetch_video (decord)")

    print(f"Machine: {machine()}\n")
    print(
        "| video | setting | method | frames | time (s) | vs qwen | peak RSS (MiB) "
        "| RSS / decoded copy | max time error (ms) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for label, (path, _) in videos.items():
        true_times = pts_scan(path)  # also warms the page cache for every method
        copy_mib = len(true_times) * WIDTH * HEIGHT * 3 / 2**20
        for setting_name, setting in SETTINGS.items():
            walls: dict[str, list[float]] = {name: [] for name in methods}
            results: dict[str, Result] = {}
            for _ in range(repeats):  # methods interleaved, so load changes hit all alike
                for name, run in methods.items():
                    t = time.perf_counter()
                    results[name] = run(path, setting)
                    walls[name].append(time.perf_counter() - t)
            base = statistics.median(walls.get("qwen-vl-utils fetch_video (decord)", [np.nan]))
            for name in methods:
                wall = statistics.median(walls[name])
                rss = peak_rss_mib(name, path, setting_name)
                err = time_error_ms(name, results[name], true_times)
                print(
                    f"| {label} | {setting_name} | {name} | {len(results[name][0])} "
                    f"| {wall:.3f} | {base / wall:.1f}x | {rss:.0f} "
                    f"| {rss / copy_mib:.2%} of {copy_mib:,.0f} MiB | {err:.3f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())

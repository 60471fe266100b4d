"""True-time video sampling: ``sample_frames(source) -> Clip``.

Every time this project shows a model, writes in data or scores against is a frame's real
presentation time (PTS) in seconds, never ``i / fps`` (SPEC §2).

Which frames:

- **How many**: ``count_frames``, qwen-vl-utils' rule.
- **Wanted times**: ``linspace(first, last, n)`` between the nominal times (k / fps) of the
  first and last frame of the window — the time version of qwen-vl-utils'
  ``linspace(0, total - 1, n)`` over indices, so a constant-frame-rate video gives the frames
  qwen-vl-utils picks, with their real times.
- ``mode="exact"``: of the two real frames around each wanted time, the nearer one (a tie:
  the earlier) that is inside ``[start_s, end_s]`` and not taken by an earlier wanted time;
  if both are taken (wanted times denser than the frames of a variable-frame-rate video),
  the next free frame. A clip has fewer frames than asked only if the window runs out.
- ``mode="snap"``: the nearest keyframe within ``snap_tolerance_s`` not taken yet, decoded
  alone (a seek, and the decoder skips non-key frames), else the exact frame. By default
  (``snap_tolerance_s=None``) the tolerance is **half the longest keyframe interval** of the
  file, so every wanted time has a keyframe in reach and a clip costs about as much as
  decoding that many lone keyframes; each frame still reports its true time, at most that
  tolerance from its wanted time (logged with the file's keyframe interval). Two wanted
  times nearest one keyframe (wanted times denser than the keyframes): the later one takes
  the other neighbouring keyframe if in reach, else its exact frame; so does a wanted time
  after the last keyframe by more than the tolerance (the tail). A file without a
  keyframe index (MPEG-TS) uses :data:`DEFAULT_SNAP_TOLERANCE_S`; a file with one keyframe,
  half its duration.

Frames come back in time order, each a real decoded frame, ``times_s`` its PTS
(``(pts - stream.start_time) · time_base``: the first frame is at ≈ 0 s).

Decoding is done by :mod:`o3video.decoding` (PyAV): it seeks only to skip work, decodes no
frame twice, converts only kept frames and holds a few frames a worker, never the video.

Errors: a missing, empty, unreadable or video-less file and bad arguments raise
``VideoDecodeError``. A file cut short: an mp4 loses its index (at the end) and fails to
open; mkv and MPEG-TS decode up to the cut, and a wanted time after the last decodable frame
(by more than 3 frame durations) raises "truncated"; a window before the cut still works.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import av
import numpy as np
from PIL import Image

from o3video.decoding import (
    Clock,
    DecodeJob,
    VideoInfo,
    decode_frames,
    keyframe_pts,
    open_video,
    read_info,
    resize_frame,
)
from o3video.errors import VideoDecodeError

logger = logging.getLogger(__name__)

# Qwen2.5-VL: patch 14 × spatial merge 2. Qwen3-VL: patch 16 × merge 2.
QWEN25_FACTOR = 28
QWEN3_FACTOR = 32
# The published training budget: at most 128·28·28 pixels a frame (SPEC §2).
DEFAULT_MIN_PIXELS = 4 * 28 * 28
DEFAULT_MAX_PIXELS = 128 * 28 * 28
MAX_ASPECT_RATIO = 200
# Qwen merges frames in temporal pairs, so frame counts are even (qwen-vl-utils FRAME_FACTOR).
FRAME_FACTOR = 2
DEFAULT_SNAP_TOLERANCE_S = 2.0
"""Snap tolerance (s) for a file whose keyframes are not indexed."""

# The largest coded frame (width × height) a video may have before anything is decoded: well
# above 8K (7680×4320); a 16000×16000 frame would take ~768 MB decoded, one frame at a time.
MAX_SOURCE_PIXELS = 8192 * 8192
Mode = Literal["exact", "snap"]
ImageLike = Image.Image | np.ndarray
FRAMES_SOURCE = "<frames>"


def smart_resize(
    height: int,
    width: int,
    factor: int = QWEN25_FACTOR,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """Qwen's resize rule: ``(height, width)`` rounded to multiples of ``factor``.

    Round each side to the nearest multiple of ``factor``; if the area exceeds ``max_pixels``
    scale both sides down by ``sqrt(H·W / max_pixels)`` and floor to the factor; if it is
    below ``min_pixels`` scale up and ceil. The aspect ratio must stay below 200.

    >>> smart_resize(720, 1280)   # a 16:9 frame at the published budget
    (224, 420)
    >>> smart_resize(480, 640)    # 4:3: 364x280 would exceed 100,352 pixels, so 364x252
    (252, 364)
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(
            f"aspect ratio must be smaller than {MAX_ASPECT_RATIO}, "
            f"got {max(height, width) / min(height, width):.1f} ({width}x{height})"
        )
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) exceeds max_pixels ({max_pixels})")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def count_frames(
    window_s: float,
    fps: float = 2.0,
    min_frames: int = 4,
    max_frames: int = 16,
    available: int | None = None,
    num_frames: int | None = None,
) -> int:
    """How many frames to sample from a window of ``window_s`` seconds.

    qwen-vl-utils' ``smart_nframes``: ``window_s · fps`` clamped to ``[min_frames,
    max_frames]`` (bounds made even), at most ``available``, then floored to an even count.
    ``num_frames`` overrides the rule (no even rounding); one frame is returned when only one
    exists.

    >>> count_frames(10.0)                 # 2 fps · 10 s = 20, capped at 16
    16
    >>> count_frames(1.0)                  # 2, raised to the minimum 4
    4
    >>> count_frames(3.9)                  # 7.8 floors to the even 6, as in qwen-vl-utils
    6
    >>> count_frames(1.0, available=3)     # never more than exist, and even
    2
    >>> count_frames(10.0, num_frames=5)
    5
    """
    if num_frames is not None:
        n = num_frames
    else:
        lo = math.ceil(min_frames / FRAME_FACTOR) * FRAME_FACTOR
        hi = max(FRAME_FACTOR, math.floor(max_frames / FRAME_FACTOR) * FRAME_FACTOR)
        x = min(max(window_s * fps, lo), hi)
        if available is not None:
            x = min(x, available)
        n = math.floor(x / FRAME_FACTOR) * FRAME_FACTOR
    if available is not None:
        n = min(n, available)
    return max(n, 1)


@dataclass(frozen=True, eq=False)
class Clip:
    """Frames sampled from a video, with their true times. The only way frames travel.

    - ``frames``: ``(T, H, W, 3)`` uint8, already resized to ``frame_wh``.
    - ``times_s``: presentation time of each frame in seconds (from the stream's PTS).
    - ``source_wh``: the original ``(width, height)``; boxes in ``source_px`` refer to it.
    - ``frame_wh``: the resized ``(width, height)`` of ``frames``.
    - ``fps``: the stream's average frame rate as a float (29.97 stays 29.97).
    - ``duration_s``: the duration of the video (or of the image list) in seconds.
    - ``frame_indices``: for a video ``round(time · fps)``, the index a constant-frame-rate
      reader gives the frame (native-video metadata derives times from it); for an image
      list, positions in the list.
    - ``source``: the path the frames came from, or ``None`` for in-memory frames.
    """

    frames: np.ndarray
    times_s: tuple[float, ...]
    source_wh: tuple[int, int]
    frame_wh: tuple[int, int]
    fps: float
    duration_s: float
    frame_indices: tuple[int, ...] | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        f = self.frames
        if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
            raise ValueError(f"Clip.frames must be (T, H, W, 3) uint8, got {f.shape} {f.dtype}")
        if len(self.times_s) != f.shape[0]:
            raise ValueError(f"Clip has {f.shape[0]} frames but {len(self.times_s)} times")
        if (f.shape[2], f.shape[1]) != tuple(self.frame_wh):
            raise ValueError(f"Clip.frame_wh {self.frame_wh} does not match frames {f.shape}")
        if self.frame_indices is not None and len(self.frame_indices) != f.shape[0]:
            raise ValueError("Clip.frame_indices must have one index per frame")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def nearest_frame(self, t_s: float) -> int:
        """Index (into ``frames``) of the frame whose time is nearest ``t_s``."""
        times = np.asarray(self.times_s)
        return int(np.argmin(np.abs(times - t_s)))


def probe_video(
    path: str | os.PathLike[str], max_source_pixels: int = MAX_SOURCE_PIXELS
) -> VideoInfo:
    """Frame rate, duration, frame count and size of a video, from its headers.

    ``num_frames`` is the container's count where it has one, else ``round(duration · fps)``.
    Raises ``VideoDecodeError`` for anything that is not a readable video, and for a frame
    size over ``max_source_pixels`` (width × height; :data:`MAX_SOURCE_PIXELS`).
    """
    path = os.fspath(path)
    with open_video(path) as container:
        return check_pixels(read_info(path, container), max_source_pixels)


def check_pixels(info: VideoInfo, max_source_pixels: int = MAX_SOURCE_PIXELS) -> VideoInfo:
    """``info``, or ``VideoDecodeError`` naming the file and its size when a frame has more
    than ``max_source_pixels`` pixels: checked from the headers, before a frame is decoded
    (a few hundred KB of PNG frames can decode to gigabytes).

    >>> big = VideoInfo("bomb.mov", 1.0, 2.0, 2, (16000, 16000), "png")
    >>> check_pixels(big)
    Traceback (most recent call last):
    ...
    o3video.errors.VideoDecodeError: bomb.mov: frames of 16000x16000 (256.0 Mpixel) are over \
the limit of 8192x8192 (67.1 Mpixel); refused before decoding
    """
    w, h = info.source_wh
    if w * h > max_source_pixels:
        side = math.isqrt(max_source_pixels)
        shown = f"{side}x{side}" if side * side == max_source_pixels else f"{max_source_pixels}"
        raise VideoDecodeError(
            info.path,
            f"frames of {w}x{h} ({w * h / 1e6:.1f} Mpixel) are over the limit of {shown} "
            f"({max_source_pixels / 1e6:.1f} Mpixel); refused before decoding",
        )
    return info


def sample_frames(
    source: str | os.PathLike[str] | Sequence[ImageLike],
    fps: float = 2.0,
    min_frames: int = 4,
    max_frames: int = 16,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    start_s: float | None = None,
    end_s: float | None = None,
    *,
    num_frames: int | None = None,
    factor: int = QWEN25_FACTOR,
    mode: Mode = "exact",
    snap_tolerance_s: float | None = None,
    times_s: Sequence[float] | None = None,
    max_source_pixels: int = MAX_SOURCE_PIXELS,
) -> Clip:
    """Sample frames with their true times from a video file or a list of timed images.

    ``source`` is a path, or a list of images (PIL images or ``(H, W, 3)`` uint8 arrays, all
    one size) with their times in ``times_s`` (seconds, increasing); an image list is
    sampled by the same rules as a video whose frames are those images. ``[start_s, end_s]``
    limits the window (default: all of it). A video whose frames have more than
    ``max_source_pixels`` pixels is refused before a frame is decoded. Frames are resized by
    ``smart_resize`` with ``factor``, ``min_pixels`` and ``max_pixels``. The module
    docstring says which frames are chosen. Raises ``VideoDecodeError`` (message starting
    with the path) for a missing, empty, corrupt or truncated file, a file without video, a
    frame size over the limit, and bad arguments.

    >>> clip = sample_frames("talk.mp4", num_frames=4)  # 300 frames at 29.97 fps  # doctest: +SKIP
    >>> clip.times_s, clip.frame_indices                                            # doctest: +SKIP
    ((0.0, 3.3366..., 6.6399..., 9.9766...), (0, 100, 199, 299))
    """
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else FRAMES_SOURCE
    if not (math.isfinite(fps) and fps > 0) or min_frames < 1 or max_frames < min_frames:
        raise VideoDecodeError(name, f"bad frame budget {fps=} {min_frames=} {max_frames=}")
    if num_frames is not None and num_frames < 1:
        raise VideoDecodeError(name, f"num_frames must be at least 1, got {num_frames}")
    if any(t is not None and not math.isfinite(t) for t in (start_s, end_s)):
        raise VideoDecodeError(name, f"bad window start_s={start_s} end_s={end_s}")
    if (start_s is not None and start_s < 0) or (
        start_s is not None and end_s is not None and start_s > end_s
    ):
        raise VideoDecodeError(name, f"bad window start_s={start_s} end_s={end_s}")
    if mode not in ("exact", "snap") or (
        snap_tolerance_s is not None
        and not (math.isfinite(snap_tolerance_s) and snap_tolerance_s >= 0)
    ):
        raise VideoDecodeError(name, f"bad {mode=} or {snap_tolerance_s=}")
    budget = _Budget(fps, min_frames, max_frames, num_frames, factor, min_pixels, max_pixels)
    if isinstance(source, (str, os.PathLike)):
        if times_s is not None:
            raise VideoDecodeError(name, "times_s is for image lists; a video has its own")
        return _sample_video(
            name, budget, start_s, end_s, mode, snap_tolerance_s, max_source_pixels
        )
    return _sample_images(list(source), times_s, start_s, end_s, budget)


@dataclass(frozen=True)
class _Budget:
    """The frame count and frame size rules of one ``sample_frames`` call."""

    fps: float
    min_frames: int
    max_frames: int
    num_frames: int | None
    factor: int
    min_pixels: int
    max_pixels: int

    def wanted_times(
        self, first_s: float, last_s: float, window_s: float, available: int
    ) -> np.ndarray:
        n = count_frames(
            window_s, self.fps, self.min_frames, self.max_frames, available, self.num_frames
        )
        return np.linspace(first_s, max(first_s, last_s), n)

    def size_wh(self, source: str, wh: tuple[int, int]) -> tuple[int, int]:
        try:
            h, w = smart_resize(wh[1], wh[0], self.factor, self.min_pixels, self.max_pixels)
        except ValueError as e:
            raise VideoDecodeError(source, f"cannot resize {wh[0]}x{wh[1]}: {e}") from e
        return w, h


def _snap_tolerance(
    path: str,
    info: VideoInfo,
    clock: Clock,
    keyframes: list[int],
    tolerance_s: float | None,
    mode: Mode,
) -> int | None:
    """The snap tolerance in PTS units (``None`` in exact mode); see the module docstring."""
    if mode != "snap":
        return None
    if len(keyframes) >= 2:
        gop_s = max(b - a for a, b in itertools.pairwise(keyframes)) * float(clock.tb)
        why = f"the longest keyframe interval is {gop_s:.3f} s"
    elif keyframes:
        gop_s = info.duration_s
        why = f"one keyframe in {gop_s:.3f} s"
    else:
        gop_s = 2 * DEFAULT_SNAP_TOLERANCE_S
        why = "no keyframe index"
    if tolerance_s is None:
        tolerance_s = gop_s / 2
    logger.info(
        "%s: snap: keyframes within %.3f s of each wanted time (%s)", path, tolerance_s, why
    )
    return round(tolerance_s / clock.tb)


def _sample_video(
    path: str,
    budget: _Budget,
    start_s: float | None,
    end_s: float | None,
    mode: Mode,
    snap_tolerance_s: float | None,
    max_source_pixels: int,
) -> Clip:
    with open_video(path) as container:
        info = check_pixels(read_info(path, container), max_source_pixels)
        stream = container.streams.video[0]
        clock = Clock(stream.start_time or 0, stream.time_base or Fraction(1, av.time_base))
        keyframes = keyframe_pts(stream, clock.t0)
    if start_s is not None and start_s >= info.duration_s:
        raise VideoDecodeError(path, f"start_s={start_s} is past the end ({info.duration_s} s)")
    # Nominal times (k / fps) of the first and last frame in the window.
    start = start_s or 0.0
    end = info.duration_s if end_s is None else min(end_s, info.duration_s)
    first_s = math.ceil(start * info.fps - 1e-6) / info.fps
    last_s = min(math.floor(end * info.fps + 1e-6), info.num_frames - 1) / info.fps
    available = info.num_frames
    if start_s is not None or end_s is not None:
        available = min(available, round((last_s - first_s) * info.fps) + 1)
    wanted_s = budget.wanted_times(first_s, last_s, end - start, max(available, 1))
    job = DecodeJob(
        path,
        info,
        clock,
        keyframes,
        budget.size_wh(path, info.source_wh),
        tol=_snap_tolerance(path, info, clock, keyframes, snap_tolerance_s, mode),
        lo=-math.inf if start_s is None else clock.to_pts(start_s),
        hi=math.inf if end_s is None else clock.to_pts(end_s),
        # The decoders refuse frames over the budget whatever the headers said (FFmpeg pads
        # a frame's width to its alignment, so a video at the budget gets that much slack).
        max_pixels=max(max_source_pixels, (info.source_wh[0] + 64) * (info.source_wh[1] + 64)),
    )
    wanted = [clock.to_pts(float(t)) for t in wanted_s]
    kept = decode_frames(job, wanted)
    if not kept:
        raise VideoDecodeError(path, f"no frame in the window [{start}, {end}] s")
    if len(kept) < len(wanted):
        logger.warning("%s: %d frames wanted, the window has only %d", path, len(wanted), len(kept))
    times = tuple(clock.to_s(p) for p in sorted(kept))
    return Clip(
        frames=np.stack([kept[p].result() for p in sorted(kept)]),
        times_s=times,
        source_wh=info.source_wh,
        frame_wh=job.size_wh,
        fps=info.fps,
        duration_s=info.duration_s,
        frame_indices=tuple(round(t * info.fps) for t in times),
        source=path,
    )


def _sample_images(
    images: list[ImageLike],
    times_s: Sequence[float] | None,
    start_s: float | None,
    end_s: float | None,
    budget: _Budget,
) -> Clip:
    src = FRAMES_SOURCE
    if not images or times_s is None or len(times_s) != len(images):
        n_times = "no" if times_s is None else len(times_s)
        raise VideoDecodeError(
            src, f"need one time per image: {len(images)} images, {n_times} times"
        )
    times = np.asarray(times_s, dtype=float)
    gaps = np.diff(times)
    if not np.all(np.isfinite(times)) or np.any(gaps <= 0):
        raise VideoDecodeError(src, "times_s must be finite and strictly increasing")
    # The list plays like a video whose frame rate is its median frame gap.
    fps = 1.0 / float(np.median(gaps)) if gaps.size else 0.0
    duration_s = float(times[-1]) + (1.0 / fps if fps else 0.0)
    first_s = start_s or 0.0
    end = duration_s if end_s is None else end_s
    inside = np.flatnonzero((times >= first_s) & (times <= end))
    if inside.size == 0:
        raise VideoDecodeError(src, f"no image in the window [{first_s}, {end}] s")
    wanted = budget.wanted_times(times[inside[0]], times[inside[-1]], end - first_s, inside.size)
    chosen: list[int] = []
    for t in wanted:  # nearest unused image; a stable sort gives ties to the earlier one
        order = inside[np.argsort(np.abs(times[inside] - t), kind="stable")]
        chosen.append(next(int(i) for i in order if i not in chosen))
    chosen.sort()
    source_wh = _as_image(images[0], 0, None).size
    size_wh = budget.size_wh(src, source_wh)
    return Clip(
        frames=np.stack(
            [resize_frame(_as_image(images[i], i, source_wh), size_wh) for i in chosen]
        ),
        times_s=tuple(float(times[i]) for i in chosen),
        source_wh=source_wh,
        frame_wh=size_wh,
        fps=fps,
        duration_s=duration_s,
        frame_indices=tuple(chosen),
    )


def _as_image(image: ImageLike, i: int, wh: tuple[int, int] | None) -> Image.Image:
    if isinstance(image, Image.Image):
        image = image.convert("RGB")
    elif isinstance(image, np.ndarray) and image.shape[2:] == (3,) and image.dtype == np.uint8:
        image = Image.fromarray(image)
    else:
        raise VideoDecodeError(FRAMES_SOURCE, f"image {i} is not a PIL image or (H, W, 3) uint8")
    if wh is not None and image.size != wh:
        raise VideoDecodeError(FRAMES_SOURCE, f"image {i} is {image.size}, image 0 is {wh}")
    return image


def sample_frame_indices(
    path: str | os.PathLike[str],
    indices: Sequence[int],
    *,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    factor: int = QWEN25_FACTOR,
    max_source_pixels: int = MAX_SOURCE_PIXELS,
) -> Clip:
    """The frames at stream positions ``indices`` (as a constant-frame-rate reader counts
    them, ``index / fps`` seconds in), resized by ``smart_resize``; a video whose frames are
    larger than ``max_source_pixels`` is refused before a frame is decoded.

    For protocols that reproduce code which picks frames by index (the reference V-STaR
    script): ``times_s`` are the nominal times ``index / fps`` that such code prints, not the
    decoded frames' PTS (which :func:`sample_frames` gives). Indices past the last frame are
    dropped, as a reader returning no frame would drop them.
    """
    name = os.fspath(path)
    with open_video(name) as container:
        info = check_pixels(read_info(name, container), max_source_pixels)
        stream = container.streams.video[0]
        clock = Clock(stream.start_time or 0, stream.time_base or Fraction(1, av.time_base))
        keyframes = keyframe_pts(stream, clock.t0)
    wanted_idx = sorted({int(i) for i in indices if 0 <= int(i) < info.num_frames})
    if not wanted_idx:
        raise VideoDecodeError(name, f"no frame at indices {list(indices)[:8]}")
    budget = _Budget(info.fps, 1, len(wanted_idx), None, factor, min_pixels, max_pixels)
    job = DecodeJob(
        name,
        info,
        clock,
        keyframes,
        budget.size_wh(name, info.source_wh),
        tol=None,
        lo=-math.inf,
        hi=math.inf,
        max_pixels=max(max_source_pixels, (info.source_wh[0] + 64) * (info.source_wh[1] + 64)),
    )
    wanted = [clock.to_pts(i / info.fps) for i in wanted_idx]
    kept = decode_frames(job, wanted)
    if len(kept) != len(wanted):
        raise VideoDecodeError(name, f"{len(wanted)} frames wanted, {len(kept)} decoded")
    return Clip(
        frames=np.stack([kept[p].result() for p in sorted(kept)]),
        times_s=tuple(i / info.fps for i in wanted_idx),
        source_wh=info.source_wh,
        frame_wh=job.size_wh,
        fps=info.fps,
        duration_s=info.duration_s,
        frame_indices=tuple(wanted_idx),
        source=name,
    )

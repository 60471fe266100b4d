"""True-time video sampling: ``sample_frames(source) -> Clip``.

Every time this project shows a model, writes in data or scores against is a frame's real
presentation time (PTS) in seconds, never ``i / fps`` (SPEC §2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Qwen2.5-VL: patch 14 × spatial merge 2. Qwen3-VL: patch 16 × merge 2.
QWEN25_FACTOR = 28
QWEN3_FACTOR = 32
# The published training budget: at most 128·28·28 pixels a frame (SPEC §2).
DEFAULT_MIN_PIXELS = 4 * 28 * 28
DEFAULT_MAX_PIXELS = 128 * 28 * 28
MAX_ASPECT_RATIO = 200


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


@dataclass(frozen=True, eq=False)
class Clip:
    """Frames sampled from a video, with their true times. The only way frames travel.

    - ``frames``: ``(T, H, W, 3)`` uint8, already resized to ``frame_wh``.
    - ``times_s``: presentation time of each frame in seconds (from the stream's PTS).
    - ``source_wh``: the original ``(width, height)``; boxes in ``source_px`` refer to it.
    - ``frame_wh``: the resized ``(width, height)`` of ``frames``.
    - ``fps``: the stream's average frame rate as a float (29.97 stays 29.97).
    - ``duration_s``: the duration of the video (or of the image list) in seconds.
    - ``frame_indices``: index of each frame in the stream's decode order, where known
      (needed by native-video presentation metadata); ``None`` otherwise.
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

"""How a protocol picks frames, beyond the frame budget's numbers.

- ``"true_time"`` (the ``o3video`` protocol, and the reference's training stages, whose
  qwen-vl-utils sampling picks the same frames of a constant-frame-rate video):
  :func:`o3video.video.sample_frames` — ``linspace`` over the window, each frame's true time.
- ``"reference_vstar"``: the reference V-STaR script's rule, :func:`reference_vstar_indices`
  — every ``int(video_fps / fps)``-th frame from frame 0 (at most ``max_frames``), or
  ``max_frames`` indices ``linspace(0, total - 1)`` truncated to integers when the video is
  longer than ``max_frames / fps`` seconds; times are ``index / video_fps``.

>>> reference_vstar_indices(300, 30.0)      # 10 s at 30 fps: one frame a second
[0, 30, 60, 90, 120, 150, 180, 210, 240, 270]
>>> reference_vstar_indices(600, 30.0)[:4]  # 20 s: 16 frames spread over the whole video
[0, 39, 79, 119]
"""

from __future__ import annotations

import os
from typing import Literal, get_args

import numpy as np

from o3video.errors import VideoDecodeError
from o3video.video import MAX_SOURCE_PIXELS, Clip, probe_video, sample_frame_indices

Sampler = Literal["true_time", "reference_vstar"]
SAMPLERS: tuple[str, ...] = get_args(Sampler)


def reference_vstar_indices(
    total_frames: int, video_fps: float, fps: float = 1.0, max_frames: int = 16
) -> list[int]:
    """Frame indices the reference V-STaR script reads (module docstring).

    Its ``int(video_fps / fps)`` step is taken as at least 1 (the script fails on a video
    slower than ``fps``).
    """
    if total_frames < 1 or video_fps <= 0:
        raise ValueError(f"no frames to pick: {total_frames} frames at {video_fps} fps")
    step = max(1, int(video_fps / fps))
    expected = int(total_frames / video_fps * fps)
    if expected > max_frames:
        return [int(i) for i in np.linspace(0, total_frames - 1, max_frames, dtype=int)]
    return list(range(0, total_frames, step))[:max_frames]


def sample_reference_vstar(
    path: str | os.PathLike[str],
    *,
    fps: float,
    max_frames: int,
    min_pixels: int,
    max_pixels: int,
    factor: int,
    max_source_pixels: int = MAX_SOURCE_PIXELS,
) -> Clip:
    """The reference V-STaR script's frames of ``path`` (module docstring), resized by
    ``smart_resize`` with the given pixel bounds (the script's images keep their native
    size, rounded to the factor)."""
    info = probe_video(path, max_source_pixels)
    try:
        indices = reference_vstar_indices(info.num_frames, info.fps, fps, max_frames)
    except ValueError as e:
        raise VideoDecodeError(os.fspath(path), str(e)) from e
    return sample_frame_indices(
        path,
        indices,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        factor=factor,
        max_source_pixels=max_source_pixels,
    )

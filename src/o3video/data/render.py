"""Painting and encoding the synthetic world: :func:`render_frames` paints the frames of a
:class:`~o3video.data.world.World` back to front; :func:`write_video` encodes them to H.264
MP4 (libx264) with time base ``1 / fps``, so frame ``k`` has PTS ``k`` and its time is exactly
``k / fps`` — the value in :attr:`~o3video.data.world.World.times_s`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np

from o3video.data.shapes import COLOURS, placement, shape_mask
from o3video.data.world import World


def render_frames(world: World) -> Iterator[np.ndarray]:
    """The world's frames, ``(H, W, 3)`` uint8 RGB each, painted back to front."""
    cfg = world.config
    order = sorted(world.tracks, key=lambda t: t.depth)
    colours = {t.index: np.array(COLOURS[t.colour], dtype=np.uint8) for t in order}
    for k in range(world.num_frames):
        frame = world.background.copy()
        for t in order:
            if not t.placed[k]:
                continue
            x0, y0 = (int(v) for v in t.topleft_px[k])
            spot = placement(x0, y0, shape_mask(t.shape, t.size_px), cfg.width, cfg.height)
            if spot is not None:
                ys, xs, sub = spot
                frame[ys, xs][sub] = colours[t.index]
        yield frame


def write_video(world: World, path: str | Path, frames: Sequence[np.ndarray] | None = None) -> Path:
    """Encode the world (or its already painted ``frames``) as H.264 MP4 at ``path``.

    Time base ``1 / fps`` and PTS ``k`` for frame ``k``: the file's frame times are exactly
    :attr:`World.times_s`. x264 runs "ultrafast" (no B-frames) on one thread, so the same
    world gives the same bytes with the same PyAV/FFmpeg build.
    """
    cfg, path = world.config, Path(path)
    rate = cfg.rate
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = cfg.width, cfg.height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        stream.codec_context.thread_count = 1
        stream.codec_context.gop_size = max(1, round(2 * rate))
        stream.options = {"preset": "ultrafast", "crf": str(cfg.crf), "sc_threshold": "0"}
        for k, rgb in enumerate(frames if frames is not None else render_frames(world)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = k, 1 / rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path

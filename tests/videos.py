"""Fixture videos for tests: small files encoded with PyAV, with known PTS and frame identity.

Each frame carries its index as a 4x4 grid of black/white blocks (16 bits, most significant
first, row by row), big enough to survive compression and resizing; ``read_index`` reads it
back, so a test can check that a returned frame is the frame it claims to be.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

GRID = 4  # GRID x GRID blocks = 16 bits of frame index


def index_pattern(index: int, width: int, height: int) -> np.ndarray:
    """An ``(height, width, 3)`` uint8 frame showing ``index`` in binary blocks."""
    bits = [(index >> (GRID * GRID - 1 - k)) & 1 for k in range(GRID * GRID)]
    grid = np.array(bits, dtype=np.uint8).reshape(GRID, GRID) * 200 + 28
    ys = np.arange(height) * GRID // height
    xs = np.arange(width) * GRID // width
    return np.repeat(grid[ys][:, xs][:, :, None], 3, axis=2)


def read_index(frame: np.ndarray) -> int:
    """The index drawn by ``index_pattern`` into ``frame`` (any size, after compression)."""
    gray = frame.astype(np.float32).mean(axis=2)
    h, w = gray.shape
    index = 0
    for r in range(GRID):
        for c in range(GRID):
            # The block's centre half: away from edges blurred by compression and resizing.
            block = gray[(4 * r + 1) * h // 16 : (4 * r + 3) * h // 16,
                         (4 * c + 1) * w // 16 : (4 * c + 3) * w // 16]  # fmt: skip
            index = index * 2 + int(block.mean() > 128)
    return index


def encode_video(
    path: Path,
    pts: list[int],
    time_base: Fraction,
    *,
    rate: Fraction | int = 25,
    size_wh: tuple[int, int] = (128, 96),
    codec: str = "libx264",
    gop: int = 12,
    bframes: int = 0,
) -> list[float]:
    """Encode ``len(pts)`` frames (frame ``i`` shows ``i``) at the given PTS.

    ``rate`` is the nominal frame rate the encoder is told; the PTS decide the real times.
    The container follows the suffix of ``path`` (mp4 writes its index, the moov atom, at
    the end). Returns the frame times in seconds, ``pts · time_base``.
    """
    width, height = size_wh
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = time_base
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = bframes
        if codec == "libx264":
            preset = "veryfast" if bframes else "ultrafast"
            stream.options = {"preset": preset, "bf": str(bframes), "sc_threshold": "0"}
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(index_pattern(i, width, height), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = p, time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return [float(p * time_base) for p in pts]


def encode_audio_only(path: Path, seconds: float = 0.5) -> None:
    """An mp4 with one AAC audio stream and no video."""
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("aac", rate=44100)
        samples = np.zeros((1, 1024), dtype=np.float32)
        for k in range(int(seconds * 44100 / 1024)):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, k * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def png_bomb(path: Path, frames: int = 2, side: int = 16000) -> Path:
    """A ``.mov`` of ``frames`` PNG frames of ``side`` × ``side`` pixels, one bit each (all
    black): tens of KB on disk, ``side² · 3`` bytes (768 MB at 16000) each decoded to RGB."""
    with av.open(str(path), "w", format="mov") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = side, side, "monob"
        for i in range(frames):
            frame = av.VideoFrame(side, side, "monob")
            plane = frame.planes[0]
            plane.update(bytes(plane.buffer_size))
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def png_bomb_behind_small_headers(path: Path, side: int = 16000) -> Path:
    """A ``.mov`` whose headers say 64×64 PNG frames: the first is, the next two are
    ``side`` × ``side`` (one bit a pixel, all black), muxed as they are."""
    import io
    from fractions import Fraction

    from PIL import Image

    def png(size: int) -> bytes:
        out = io.BytesIO()
        Image.new("1", (size, size)).save(out, "PNG")
        return out.getvalue()

    small, big = png(64), png(side)
    with av.open(str(path), "w", format="mov") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "monob"
        stream.time_base = Fraction(1, 1)
        for i, data in enumerate([small, big, big]):
            packet = av.Packet(data)
            packet.pts = packet.dts = i
            packet.stream = stream
            container.mux(packet)
    return path

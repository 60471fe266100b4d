"""The PyAV decoding engine behind :func:`o3video.video.sample_frames`.

How: the demuxer index gives the keyframes (mp4: all; mkv: the cues; MPEG-TS: none, so
seeks are tried and corrected). Wanted times are cut into runs that no frame can serve twice;
up to ``DECODE_THREADS`` workers, each with its own decoder, take runs costliest first. In a
run the decoder seeks only when a keyframe lies between its position and the next wanted
time, and otherwise decodes on, so no frame is decoded twice. Only kept frames are converted
to RGB, and a side thread resizes them with PIL's antialiased bicubic, which matches
qwen-vl-utils' torchvision ``resize(BICUBIC, antialias=True)`` within a grey level. Nothing
else is held: memory stays at a few frames a worker.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import os
import queue
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

import av
import numpy as np
from av.codec.context import ThreadType
from av.container import InputContainer
from av.error import FFmpegError
from PIL import Image

from o3video.errors import VideoDecodeError

logger = logging.getLogger(__name__)

# Without a demuxer index (e.g. MPEG-TS) a seek could land behind the decoder; seek only when
# the next wanted time is this far ahead, and decode forward otherwise.
NO_INDEX_SEEK_GAP_S = 5.0
# A wanted time more than this many frame durations after the last decodable frame means the
# file is cut short.
TRUNCATION_SLACK_FRAMES = 3
# Full-size frames a worker may leave waiting for the resizing thread.
RESIZE_QUEUE = 4
# Decoding threads of one call (workers, or codec threads of one worker). Set it to 1 where
# many processes decode at once, e.g. in DataLoader workers.
DECODE_THREADS = min(
    8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a file's first video stream (nothing is decoded)."""

    path: str
    fps: float
    duration_s: float
    num_frames: int
    source_wh: tuple[int, int]
    codec: str


def resize_frame(image: Image.Image, size_wh: tuple[int, int]) -> np.ndarray:
    # Antialiased bicubic, as qwen-vl-utils (torchvision BICUBIC, antialias=True).
    if image.size != size_wh:
        image = image.resize(size_wh, Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def open_video(path: str) -> InputContainer:
    if not os.path.exists(path):
        raise VideoDecodeError(path, "no such file")
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")
    try:
        container = av.open(path, mode="r")
    except (FFmpegError, OSError) as e:
        raise VideoDecodeError(path, f"not a readable video ({e})") from e
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "no video stream")
    return container


def read_info(path: str, container: InputContainer) -> VideoInfo:
    stream = container.streams.video[0]
    rate = next((r for r in (stream.average_rate, stream.guessed_rate) if r and r > 0), None)
    if rate is None:
        raise VideoDecodeError(path, "the video stream has no frame rate")
    fps = float(rate)  # 30000/1001 stays 29.97..., never an int
    if stream.duration and stream.time_base:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration:
        duration_s = container.duration / av.time_base
    elif stream.frames:
        duration_s = stream.frames / fps
    else:
        raise VideoDecodeError(path, "the video stream has no duration")
    width, height = stream.codec_context.width, stream.codec_context.height
    if width <= 0 or height <= 0:
        raise VideoDecodeError(path, f"the video stream has no frame size ({width}x{height})")
    num_frames = stream.frames or max(1, round(duration_s * fps))
    return VideoInfo(path, fps, duration_s, num_frames, (width, height), stream.codec_context.name)


class Clock(NamedTuple):
    """Stream PTS ↔ seconds from the stream start."""

    t0: int
    tb: Fraction

    def to_pts(self, t_s: float) -> int:
        return self.t0 + round(t_s / self.tb)

    def to_s(self, pts: int) -> float:
        return float((pts - self.t0) * self.tb)


class DecodeJob(NamedTuple):
    """What every decoding worker of one ``sample_frames`` call shares."""

    path: str
    info: VideoInfo
    clock: Clock
    keyframes: list[int]
    size_wh: tuple[int, int]
    tol: int | None  # snap tolerance in PTS units; None in exact mode
    lo: float  # the window, in PTS
    hi: float
    # The largest frame (pixels) the decoders may make, whatever the headers said; 0: any.
    max_pixels: int = 0


def keyframe_pts(stream: av.video.stream.VideoStream, t0: int) -> list[int]:
    """Keyframe PTS from the demuxer index (mp4: every sample; mkv: the cues; MPEG-TS: none).

    Index times are DTS: shift them by the first keyframe's PTS - DTS (the B-frame delay).
    They only guide seeks; every reported time comes from a decoded frame.
    """
    raw = sorted({e.timestamp for e in stream.index_entries if e.is_keyframe})
    shift = t0 - raw[0] if raw and stream.start_time is not None else 0
    return [k + shift for k in raw]


def _runs(job: DecodeJob, wanted: list[int]) -> list[list[int]]:
    """Split the wanted times where no frame can serve both neighbours: before a wanted
    time whose keyframe (and snap reach) lies past the previous one's reach. Runs decode
    independently, so workers can take them in parallel."""
    reach = max(job.tol or 0, math.ceil(1.5 / job.info.fps / job.clock.tb))  # 1.5 frames
    runs = [wanted[:1]]
    for a, b in itertools.pairwise(wanted):
        i = bisect.bisect_right(job.keyframes, b) - 1
        if i >= 0 and min(job.keyframes[i], b - (job.tol or 0)) > a + reach:
            runs.append([b])
        else:
            runs[-1].append(b)
    return runs


def _cost(job: DecodeJob, run: list[int]) -> float:
    """Rough decoding work of a run, in PTS: from each wanted time's keyframe (or from the
    one before it, if later) to it, plus a few frames; a keyframe in snap reach costs those."""
    kfs, overhead = job.keyframes, 5 / job.info.fps / job.clock.tb
    cost, prev = 0.0, -math.inf
    for t in run:
        i = bisect.bisect_right(kfs, t) - 1
        near = kfs[max(i, 0) : i + 2]
        if job.tol is None or not any(abs(k - t) <= job.tol for k in near):
            cost += t - max(kfs[i] if i >= 0 else job.clock.t0, prev)
        cost, prev = cost + overhead, t
    return cost


def _decode(job: DecodeJob, runs: list[list[int]]) -> dict[int, Future[np.ndarray]] | None:
    """Decode the runs on up to DECODE_THREADS workers, each with its own decoder, taking
    the costliest run left when done. Returns frame PTS → resized frame, or None if two
    workers took one frame (possible only around big gaps of a variable-frame-rate video)."""
    todo: queue.SimpleQueue[list[int]] = queue.SimpleQueue()
    for run in sorted(runs, key=lambda run: _cost(job, run), reverse=True):
        todo.put(run)
    workers = min(DECODE_THREADS, len(runs))

    def work() -> tuple[dict[int, Future[np.ndarray]], int, int]:
        kept: dict[int, Future[np.ndarray]] = {}
        pending: deque[Future[np.ndarray]] = deque()
        with closing(_Reader(job, threads=max(1, DECODE_THREADS // workers))) as reader:
            while True:
                try:
                    run = todo.get_nowait()
                except queue.Empty:
                    return kept, reader.decoded, reader.seeks
                reader.restart()  # runs come in any order: each starts with a seek
                for t in run:
                    found = reader.snap(t) if job.tol is not None else None
                    found = found or reader.exact(t)
                    if found is None:
                        break  # no unused frame left in the window
                    reader.used.add(found.pts)
                    # Resizing runs beside decoding; a few full-size frames at most wait.
                    rgb = Image.fromarray(found.frame.to_ndarray(format="rgb24"))
                    kept[found.pts] = resizer.submit(resize_frame, rgb, job.size_wh)
                    pending.append(kept[found.pts])
                    if len(pending) > RESIZE_QUEUE:
                        pending.popleft().result()

    with ThreadPoolExecutor(1) as resizer, ThreadPoolExecutor(workers) as pool:
        parts = [f.result() for f in [pool.submit(work) for _ in range(workers)]]
    kept = {pts: frame for part, _, _ in parts for pts, frame in part.items()}
    logger.debug(
        "%s: kept %d, decoded %d frames, %d seeks, %d runs, %d workers",
        job.path,
        len(kept),
        sum(p[1] for p in parts),
        sum(p[2] for p in parts),
        len(runs),
        workers,
    )
    return None if len(kept) < sum(len(p[0]) for p in parts) else kept


class _Frame(NamedTuple):
    pts: int
    frame: av.VideoFrame


class _Reader:
    """One worker's decoding: finds the chosen frames, seeking only to skip work.

    The exact decoder runs forward from its last seek; ``_before`` and ``_last`` are the two
    latest decoded frames (neighbours in presentation order), so both frames around a wanted
    time are at hand without decoding anything twice. Times inside are stream PTS.
    """

    def __init__(self, job: DecodeJob, threads: int) -> None:
        self.path, self.job, self.keyframes, self.threads = job.path, job, job.keyframes, threads
        self.to_s, self.tb, self.t0 = job.clock.to_s, job.clock.tb, job.clock.t0
        self.used: set[int] = set()
        self.seeks = self.decoded = 0
        self._snapped: set[int] = set()
        self._frames: Iterator[av.VideoFrame] | None = None
        self._before: _Frame | None = None
        self._last: _Frame | None = None
        # Two decoders, each opened when first needed: one decodes forward to exact frames,
        # the other decodes lone keyframes for snaps without moving the first.
        self._exact: InputContainer | None = None
        self._keys: InputContainer | None = None

    def restart(self) -> None:
        self._frames = None

    def usable(self, pts: int) -> bool:
        return pts not in self.used and self.job.lo <= pts <= self.job.hi

    def exact(self, pts: int) -> _Frame | None:
        """The usable frame nearest ``pts`` (a tie: the earlier one); None if none is left."""
        if self._should_seek(pts):
            self._seek_before(pts)
        while self._last is None or self._last.pts < pts:
            if not self._advance():
                self._check_end(pts)
                break
        while True:
            near = [f for f in (self._before, self._last) if f and self.usable(f.pts)]
            if near:
                return min(near, key=lambda f: abs(f.pts - pts))
            if (self._last and self._last.pts > self.job.hi) or not self._advance():
                return None

    def snap(self, pts: int) -> _Frame | None:
        """An unused keyframe within the snap tolerance of ``pts``, decoded alone."""
        kfs, tol = self.keyframes, self.job.tol or 0
        if not kfs:  # no index: the keyframe that a backward seek lands on
            return self._keyframe_near(pts, pts, tol)
        i = bisect.bisect_right(kfs, pts)
        for j in sorted(
            range(max(0, i - 1), min(i + 1, len(kfs))), key=lambda j: abs(kfs[j] - pts)
        ):
            if kfs[j] in self._snapped or abs(kfs[j] - pts) > tol:
                continue
            # Seek half-way to the next keyframe: a PTS estimate a little early still lands here.
            seek_pts = (kfs[j] + kfs[j + 1]) // 2 if j + 1 < len(kfs) else kfs[j] + tol
            if found := self._keyframe_near(seek_pts, pts, tol):
                self._snapped.add(kfs[j])
                return found
        return None

    def _keyframe_near(self, seek_pts: int, pts: int, tol: int) -> _Frame | None:
        if self._keys is None:
            self._keys = open_video(self.path)
            cc = self._keys.streams.video[0].codec_context
            # Slice threads split a frame; frame threads would only delay a lone keyframe.
            cc.thread_type, cc.thread_count = ThreadType.SLICE, self.threads
            cc.skip_frame = "NONKEY"  # every non-key frame is dropped unread
            self._limit(cc)
        stream = self._keys.streams.video[0]
        try:
            self._keys.seek(max(seek_pts, self.t0), stream=stream, backward=True)
            frame = next(self._keys.decode(stream), None)
        except FFmpegError as e:
            where = f"{self.to_s(pts):.3f} s"
            raise VideoDecodeError(self.path, f"decoding a keyframe near {where}: {e}") from e
        self.seeks, self.decoded = self.seeks + 1, self.decoded + (frame is not None)
        if frame is None or frame.pts is None:
            return None
        ok = abs(frame.pts - pts) <= tol and self.usable(frame.pts)
        return _Frame(frame.pts, frame) if ok else None

    def _limit(self, cc: av.video.codeccontext.VideoCodecContext) -> None:
        # FFmpeg refuses to allocate a larger frame: a stream whose headers declare a small
        # size but whose frames are huge (a PNG bomb) fails instead of taking gigabytes.
        if self.job.max_pixels:
            cc.options = {**cc.options, "max_pixels": str(self.job.max_pixels)}

    def close(self) -> None:
        for container in (self._exact, self._keys):
            if container is not None:
                container.close()

    def _should_seek(self, pts: int) -> bool:
        if self._frames is None:
            return True
        if self._last is None or pts <= self._last.pts:
            return False
        if self.keyframes:  # is there a keyframe after the decoder's position, before pts?
            i = bisect.bisect_right(self.keyframes, pts) - 1
            return i >= 0 and self.keyframes[i] > self._last.pts
        return float((pts - self._last.pts) * self.tb) > NO_INDEX_SEEK_GAP_S

    def _seek(self, pts: int) -> None:
        if self._exact is None:
            self._exact = open_video(self.path)
            cc = self._exact.streams.video[0].codec_context
            # Frame threads, one a core at most: FFmpeg's default (cores + 1) oversubscribes.
            cc.thread_type, cc.thread_count = ThreadType.AUTO, self.threads
            self._limit(cc)
        stream = self._exact.streams.video[0]
        try:
            self._exact.seek(max(pts, self.t0), stream=stream, backward=True)
        except FFmpegError as e:
            raise VideoDecodeError(self.path, f"cannot seek to {self.to_s(pts):.3f} s: {e}") from e
        self.seeks += 1
        self._frames = self._exact.decode(stream)
        self._before = self._last = None

    def _seek_before(self, pts: int) -> None:
        """Seek so that decoding starts at or before ``pts``.

        A seek can land after ``pts`` or where nothing decodes (an index that is coarse or
        off by the B-frame delay, MPEG-TS seeking by byte position): then step back 1, 2, 4,
        8 s, and finally to the start.
        """
        target, second = pts, max(1, round(1 / self.tb))
        for attempt in range(6):
            self._seek(target)
            got = self._advance()
            if (got and self._last is not None and self._last.pts <= pts) or target <= self.t0:
                return
            landed = self._last.pts if got and self._last is not None else target
            target = max(self.t0, min(target, landed) - second * 2**attempt)
            if attempt == 4:
                target = self.t0

    def _advance(self) -> bool:
        """Decode the next frame into ``_last``; False at the end of the stream."""
        assert self._frames is not None
        try:
            frame = next(self._frames)
        except StopIteration:
            return False
        except FFmpegError as e:
            where = f"{self.to_s(self._last.pts):.3f} s" if self._last else "a seek"
            why = f" (a corrupt frame, or one over {self.job.max_pixels} pixels)"
            raise VideoDecodeError(
                self.path, f"decoding failed after {where}: {e}{why if self.job.max_pixels else ''}"
            ) from e
        if frame.pts is None:
            raise VideoDecodeError(self.path, "a decoded frame has no timestamp")
        self.decoded += 1
        self._before, self._last = self._last, _Frame(frame.pts, frame)
        return True

    def _check_end(self, pts: int) -> None:
        """The stream ended before ``pts``: fine if ``pts`` is (about) its last frame."""
        if self._last is None:
            what = "no decodable video frames" if not self.decoded else "no decodable frames"
            raise VideoDecodeError(self.path, f"{what} at or after {self.to_s(pts):.3f} s")
        if float((pts - self._last.pts) * self.tb) > TRUNCATION_SLACK_FRAMES / self.job.info.fps:
            raise VideoDecodeError(
                self.path,
                f"truncated: frames stop at {self.to_s(self._last.pts):.3f} s of a declared "
                f"{self.job.info.duration_s:.3f} s ({self.to_s(pts):.3f} s wanted)",
            )


def decode_frames(job: DecodeJob, wanted: list[int]) -> dict[int, Future[np.ndarray]]:
    """Decode the frames chosen for the wanted PTS; returns frame PTS → resized frame.

    Runs go to parallel workers; if two workers took one frame (possible only around big gaps
    of a variable-frame-rate video) everything is decoded again by a single worker.
    """
    kept = _decode(job, _runs(job, wanted))
    if kept is None:
        kept = _decode(job, [wanted]) or {}
    return kept

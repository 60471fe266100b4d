"""True-time sampling: frame counts, real PTS, frame identity, snap mode, errors, resizing.

Fixture videos are encoded into a temporary folder by ``videos.py``; each frame shows its
own index, so a test can check that a frame is the one its time claims.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from videos import encode_audio_only, encode_video, index_pattern, read_index

from o3video import decoding
from o3video.errors import VideoDecodeError
from o3video.video import (
    QWEN3_FACTOR,
    Clip,
    count_frames,
    probe_video,
    sample_frames,
    smart_resize,
)

NTSC = Fraction(30000, 1001)
MS = 0.001
# Irregular gaps: a variable-frame-rate clip, in milliseconds (time base 1/1000).
VFR_MS = [0, 40, 90, 300, 310, 700, 720, 1000, 1500, 1510, 1520, 2000, 2330, 2400]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    paths = {name: d / name for name in ("cfr.mp4", "vfr.mp4", "vfr.mkv", "bframes.mp4")}
    # 10 s at 29.97 fps (time base 1001/30000), a keyframe every 30 frames (1.001 s).
    encode_video(paths["cfr.mp4"], list(range(300)), 1 / NTSC, rate=NTSC, gop=30)
    encode_video(paths["vfr.mp4"], VFR_MS, Fraction(1, 1000), gop=5)
    encode_video(paths["vfr.mkv"], VFR_MS, Fraction(1, 1000), gop=5)
    # B-frames: decode order differs from presentation order; 25 fps, keyframe every 1 s.
    encode_video(paths["bframes.mp4"], list(range(100)), Fraction(1, 25), gop=25, bframes=2)
    # 1 s at 5 fps: five frames only.
    paths["short.mp4"] = d / "short.mp4"
    encode_video(paths["short.mp4"], list(range(5)), Fraction(1, 5), rate=5)
    return paths


def assert_real_frames(clip: Clip, true_times: list[float]) -> None:
    """Every frame is the encoded frame whose PTS its time reports (within 1 ms)."""
    assert list(clip.times_s) == sorted(set(clip.times_s))
    for frame, t in zip(clip.frames, clip.times_s, strict=True):
        k = int(np.argmin(np.abs(np.asarray(true_times) - t)))
        assert abs(true_times[k] - t) < MS, (t, true_times[k])
        assert read_index(frame) == k, f"frame at {t} s shows frame {read_index(frame)}, not {k}"


# ---- smart_resize and frame counts ---------------------------------------------------------


@pytest.mark.parametrize(
    ("hw", "factor", "min_pixels", "max_pixels", "expected"),
    [
        # 720x1280 → 728x1288 > 100,352: beta = sqrt(921600/100352) = 3.03;
        # 720/3.03 = 237.6 → 224, 1280/3.03 = 422.4 → 420 (floor to 28).
        ((720, 1280), 28, 3136, 100352, (224, 420)),
        # Qwen3, factor 32: the same beta; 237.6 → 224, 422.4 → 416 (floor to 32).
        ((720, 1280), QWEN3_FACTOR, 4096, 100352, (224, 416)),
        # The 64-frame budget: beta = sqrt(921600/262144) = 1.875; 384 → 364, 682.7 → 672.
        ((720, 1280), 28, 3136, 262144, (364, 672)),
        # Upscaling: 20x30 rounds to 28x28 = 784 < 3136; beta = sqrt(3136/600) = 2.29;
        # 45.7 → 56, 68.6 → 84 (ceil to 28).
        ((20, 30), 28, 3136, 100352, (56, 84)),
        # Already inside the budget: only rounding, 96 → 84, 128 → 140.
        ((96, 128), 28, 3136, 100352, (84, 140)),
    ],
)
def test_smart_resize(
    hw: tuple[int, int], factor: int, min_pixels: int, max_pixels: int, expected: tuple[int, int]
) -> None:
    assert smart_resize(*hw, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels) == (
        expected
    )


def test_smart_resize_rejects_extreme_aspect_ratio() -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 2010)


@pytest.mark.parametrize(
    ("window_s", "kwargs", "expected"),
    [
        (10.0, {}, 16),  # 20 at 2 fps, capped at 16
        (1.0, {}, 4),  # 2, raised to the minimum
        (5.0, {}, 10),
        (3.9, {}, 6),  # 7.8 floors to an even 6 (qwen-vl-utils)
        (100.0, {"max_frames": 15}, 14),  # the cap made even
        (1.0, {"min_frames": 5}, 6),  # the minimum made even
        (1.0, {"available": 5}, 4),  # never more than exist, and even
        (1.0, {"available": 3}, 2),
        (1.0, {"available": 1}, 1),  # a single frame is still a clip
        (10.0, {"num_frames": 7}, 7),  # explicit count: no even rounding
        (10.0, {"num_frames": 64, "available": 30}, 30),
        (600.0, {"max_frames": 64}, 64),
    ],
)
def test_count_frames(window_s: float, kwargs: dict[str, int], expected: int) -> None:
    assert count_frames(window_s, **kwargs) == expected


# ---- real times and frame identity ---------------------------------------------------------


def test_cfr_times_are_pts_and_fps_is_not_truncated(videos: dict[str, Path]) -> None:
    clip = sample_frames(videos["cfr.mp4"])
    true_times = [float(k / NTSC) for k in range(300)]
    assert clip.fps == 30000 / 1001
    assert clip.num_frames == 16
    assert_real_frames(clip, true_times)
    # The frames qwen-vl-utils picks: linspace(0, total - 1, n) over indices, rounded.
    assert clip.frame_indices == tuple(int(i) for i in np.linspace(0, 299, 16).round())
    assert clip.times_s[0] == 0.0
    assert clip.times_s[-1] == pytest.approx(299 * 1001 / 30000, abs=MS)


def test_clip_fields(videos: dict[str, Path]) -> None:
    clip = sample_frames(videos["cfr.mp4"], num_frames=6)
    assert clip.frames.dtype == np.uint8
    assert clip.frames.shape == (6, 84, 140, 3)
    assert clip.frame_wh == (140, 84) and clip.source_wh == (128, 96)
    assert clip.source == str(videos["cfr.mp4"])
    assert clip.duration_s == pytest.approx(300 * 1001 / 30000, abs=MS)
    assert isinstance(clip.fps, float)
    info = probe_video(videos["cfr.mp4"])
    assert (info.fps, info.num_frames, info.source_wh) == (30000 / 1001, 300, (128, 96))
    assert info.duration_s == clip.duration_s


def nearest_unused(true_times: list[float], wanted: np.ndarray) -> list[float]:
    """The documented rule: of the frames on either side of each wanted time, the nearest
    one not taken yet (a tie: the earlier); if both are taken, the next free frame after."""
    taken: list[float] = []
    for w in wanted:
        after = next((k for k, t in enumerate(true_times) if t >= w), len(true_times) - 1)
        sides = [true_times[k] for k in {max(after - 1, 0), after} if true_times[k] not in taken]
        later = [t for t in true_times[after:] if t not in taken]
        taken.append(min(sides, key=lambda t: (abs(t - w), t)) if sides else later[0])
    return sorted(taken)


@pytest.mark.parametrize("name", ["vfr.mp4", "vfr.mkv"])
@pytest.mark.parametrize("n", [4, 6, 9])
def test_vfr_times_and_identity(videos: dict[str, Path], name: str, n: int) -> None:
    true_times = [t * MS for t in VFR_MS]
    clip = sample_frames(videos[name], num_frames=n)
    assert_real_frames(clip, true_times)
    assert clip.num_frames == n
    wanted = np.linspace(0.0, clip.duration_s - 1 / clip.fps, n)  # the module docstring's
    assert clip.times_s == pytest.approx(nearest_unused(true_times, wanted), abs=MS)


def test_bframes_exact(videos: dict[str, Path]) -> None:
    with av.open(str(videos["bframes.mp4"])) as container:  # the fixture really reorders
        assert container.streams.video[0].codec_context.has_b_frames
    clip = sample_frames(videos["bframes.mp4"], num_frames=10)
    assert_real_frames(clip, [k / 25 for k in range(100)])
    assert clip.frame_indices == tuple(int(i) for i in np.linspace(0, 99, 10).round())


def test_window(videos: dict[str, Path]) -> None:
    clip = sample_frames(videos["cfr.mp4"], start_s=2.0, end_s=4.0)
    assert clip.num_frames == 4  # 2 s at 2 fps, the minimum
    assert all(2.0 <= t <= 4.0 for t in clip.times_s)
    assert clip.times_s[0] == pytest.approx(60 * 1001 / 30000, abs=MS)  # first frame ≥ 2 s
    assert clip.times_s[-1] == pytest.approx(119 * 1001 / 30000, abs=MS)  # last frame ≤ 4 s
    assert_real_frames(clip, [float(k / NTSC) for k in range(300)])


def test_frame_count_rules_on_video(videos: dict[str, Path]) -> None:
    assert sample_frames(videos["cfr.mp4"], max_frames=8).num_frames == 8
    assert sample_frames(videos["cfr.mp4"], fps=1.0).num_frames == 10
    short = videos["short.mp4"]  # 1 s, 5 frames
    assert sample_frames(short).num_frames == 4
    clip = sample_frames(short, num_frames=16)  # asks for more than exist
    assert clip.num_frames == 5
    assert_real_frames(clip, [k / 5 for k in range(5)])


def test_dense_times_decode_forward_without_reseeking(
    videos: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    # 30 consecutive frames of one GOP: one seek, each frame decoded once (+1 look-ahead).
    with caplog.at_level(logging.DEBUG, logger="o3video.decoding"):
        clip = sample_frames(videos["cfr.mp4"], start_s=3.1, end_s=4.0, num_frames=30)
    assert clip.num_frames == 27  # the frames in [3.1, 4.0] s: 93..119 / 29.97
    decoded, seeks = map(int, re.findall(r"decoded (\d+) frames, (\d+) seeks", caplog.text)[0])
    assert seeks == 1
    assert decoded <= 30 + 1  # from the keyframe at 3.003 s to the first frame after 4.0 s


# ---- snap mode -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "gop_s"), [("cfr.mp4", 30 / NTSC), ("bframes.mp4", 1.0)])
def test_snap_takes_keyframes_within_tolerance(
    videos: dict[str, Path], name: str, gop_s: Fraction | float
) -> None:
    frames = 300 if name == "cfr.mp4" else 100
    true_times = [float(k / NTSC) if name == "cfr.mp4" else k / 25 for k in range(frames)]
    keyframes = true_times[:: 30 if name == "cfr.mp4" else 25]
    clip = sample_frames(videos[name], num_frames=6, mode="snap", snap_tolerance_s=0.6)
    exact = sample_frames(videos[name], num_frames=6)
    assert_real_frames(clip, true_times)
    wanted = np.asarray(exact.times_s)
    n_snapped = 0
    for t in clip.times_s:
        if any(abs(t - k) < MS for k in keyframes):
            n_snapped += 1
            assert np.min(np.abs(wanted - t)) <= 0.6 + 1 / 25
        else:  # no keyframe in reach: the exact frame
            assert any(abs(t - e) < MS for e in exact.times_s)
    assert n_snapped >= 4
    assert len(set(clip.times_s)) == clip.num_frames == 6


def test_snap_never_repeats_a_keyframe(videos: dict[str, Path]) -> None:
    # 20 wanted times over 10 s but only 10 keyframes: half must be decoded exactly.
    clip = sample_frames(videos["cfr.mp4"], num_frames=20, mode="snap", snap_tolerance_s=2.0)
    assert clip.num_frames == 20 and len(set(clip.times_s)) == 20
    assert_real_frames(clip, [float(k / NTSC) for k in range(300)])


def test_snap_by_default_takes_the_nearest_keyframe_for_every_wanted_time(
    videos: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    # A keyframe every 1.001 s (the last at 9.009 s): the default tolerance is half of it.
    true_times = [float(k / NTSC) for k in range(300)]
    keyframes = np.asarray(true_times[::30])
    with caplog.at_level(logging.DEBUG, logger="o3video"):
        clip = sample_frames(videos["cfr.mp4"], num_frames=7, mode="snap")
    exact = sample_frames(videos["cfr.mp4"], num_frames=7)
    assert_real_frames(clip, true_times)
    assert "snap: keyframes within 0.501 s of each wanted time" in caplog.text
    assert "longest keyframe interval is 1.001 s" in caplog.text
    for t, wanted in zip(clip.times_s[:-1], exact.times_s[:-1], strict=True):
        k = keyframes[np.argmin(np.abs(keyframes - wanted))]
        assert abs(t - k) < MS  # the nearest keyframe, at its true time
        assert abs(t - wanted) <= 1.001 / 2 + 1 / NTSC
    # The last wanted time (9.976 s) is 0.967 s after the last keyframe: its exact frame.
    assert clip.times_s[-1] == exact.times_s[-1]
    decoded = int(re.findall(r"decoded (\d+) frames", caplog.text)[0])
    assert decoded <= 6 + 30 + 2  # six lone keyframes, and one run through the last GOP


def test_snap_with_zero_tolerance_is_exact(videos: dict[str, Path]) -> None:
    snap = sample_frames(videos["cfr.mp4"], num_frames=8, mode="snap", snap_tolerance_s=0.0)
    exact = sample_frames(videos["cfr.mp4"], num_frames=8)
    assert snap.times_s == exact.times_s
    assert np.array_equal(snap.frames, exact.frames)


# ---- image lists ---------------------------------------------------------------------------


def test_image_list_source() -> None:
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    images: list[Image.Image | np.ndarray] = [index_pattern(i, 128, 96) for i in range(8)]
    images[3] = Image.fromarray(np.asarray(images[3]))  # PIL images and arrays mix
    clip = sample_frames(images, times_s=times, num_frames=4)
    # Wanted 0, 1.167, 2.333, 3.5 → nearest images 0, 2 (1.0), 5 (2.5), 7.
    assert clip.frame_indices == (0, 2, 5, 7)
    assert clip.times_s == (0.0, 1.0, 2.5, 3.5)
    assert [read_index(f) for f in clip.frames] == [0, 2, 5, 7]
    assert clip.frames.shape == (4, 84, 140, 3) and clip.source is None
    assert clip.fps == 2.0 and clip.duration_s == 4.0
    window = sample_frames(images, times_s=times, start_s=1.0, end_s=2.0)
    assert window.times_s == (1.0, 2.0)  # 3 images in the window, an even count of them
    window = sample_frames(images, times_s=times, start_s=1.0, end_s=2.0, num_frames=3)
    assert window.times_s == (1.0, 1.5, 2.0)


@pytest.mark.parametrize(
    ("images", "times", "match"),
    [
        ([np.zeros((4, 4, 3), np.uint8)] * 2, [0.0], "one time per image"),
        ([np.zeros((4, 4, 3), np.uint8)] * 2, None, "one time per image"),
        ([np.zeros((4, 4, 3), np.uint8)] * 2, [1.0, 1.0], "strictly increasing"),
        ([np.zeros((4, 4, 3), np.uint8), np.zeros((8, 4, 3), np.uint8)], [0, 1], "image 1"),
        ([np.zeros((4, 4), np.uint8)], [0.0], "image 0"),
        ([np.zeros((4, 4, 3), np.float32)], [0.0], "image 0"),  # floats are not pixels
    ],
)
def test_image_list_errors(images: list[np.ndarray], times: list[float] | None, match: str) -> None:
    with pytest.raises(VideoDecodeError, match=match) as err:
        sample_frames(images, times_s=times, num_frames=len(images))
    assert str(err.value).startswith("<frames>")


# ---- errors --------------------------------------------------------------------------------


def _truncated_mp4(videos: dict[str, Path], d: Path) -> Path:
    data = videos["cfr.mp4"].read_bytes()
    path = d / "truncated.mp4"  # mp4 keeps its index (moov) at the end: half a file has none
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated", "audio", "directory"])
def test_unreadable_files_raise_with_their_path(
    videos: dict[str, Path], tmp_path: Path, case: str
) -> None:
    path = tmp_path / f"{case}.mp4"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not a video\n" * 100)
    elif case == "truncated":
        path = _truncated_mp4(videos, tmp_path)
    elif case == "audio":
        encode_audio_only(path)
    elif case == "directory":
        path.mkdir()
    with pytest.raises(VideoDecodeError) as err:
        sample_frames(path)
    assert str(err.value).startswith(str(path))
    with pytest.raises(VideoDecodeError):
        probe_video(path)


def test_truncated_mkv(videos: dict[str, Path], tmp_path: Path) -> None:
    # Matroska has its header first: a cut file opens, and decodes up to the cut.
    full = tmp_path / "full.mkv"
    encode_video(full, list(range(300)), 1 / NTSC, rate=NTSC, gop=30)
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError, match="truncated") as err:
        sample_frames(cut)
    assert str(err.value).startswith(str(cut))
    clip = sample_frames(cut, end_s=2.0)  # a window inside the part that survived
    assert_real_frames(clip, [float(k / NTSC) for k in range(300)])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start_s": 4.0, "end_s": 2.0},
        {"start_s": -1.0},
        {"start_s": 60.0},  # after the end
        {"fps": 0.0},
        {"min_frames": 8, "max_frames": 4},
        {"num_frames": 0},
        {"mode": "fast"},
        {"snap_tolerance_s": -1.0},
        {"times_s": [0.0, 1.0]},  # times are for image lists only
    ],
)
def test_bad_arguments_raise(videos: dict[str, Path], kwargs: dict[str, object]) -> None:
    with pytest.raises(VideoDecodeError) as err:
        sample_frames(videos["cfr.mp4"], **kwargs)  # type: ignore[arg-type]
    assert str(err.value).startswith(str(videos["cfr.mp4"]))


def test_parallel_runs_that_collide_fall_back_to_one_decoder(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dense wanted times in a variable-frame-rate video share nearest frames; forced into
    # separate runs (so separate decoders), two would take one frame: the sequential result.
    expected = sample_frames(videos["vfr.mp4"], num_frames=12)
    monkeypatch.setattr(decoding, "_runs", lambda job, wanted: [[t] for t in wanted])
    clip = sample_frames(videos["vfr.mp4"], num_frames=12)
    assert clip.times_s == expected.times_s
    assert np.array_equal(clip.frames, expected.frames)

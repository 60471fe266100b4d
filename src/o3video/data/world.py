"""The synthetic world: coloured shapes that enter, move, stop, hide each other and leave.

:func:`render_world` draws everything from a seed with numpy and keeps the **exact** ground
truth of every frame: each object's tight box in pixels, the fraction of its pixels that can
be seen, the objects covering it (its occluders, from the fixed depth order) and whether it
moves. Frame ``k`` is at exactly ``k / fps`` (:attr:`World.times_s`).
:func:`o3video.data.render.render_frames` paints the frames and
:func:`o3video.data.render.write_video` encodes them with those times; the colours and shape
masks are :mod:`o3video.data.shapes`.

Pixel convention: pixel ``(x, y)`` covers ``[x, x+1) × [y, y+1)``, so a shape drawn on
columns ``x0 … x0+w-1`` has the box ``[x0, x0+w]`` (no ``+1``). Boxes are clipped to the
frame; a box is ``NaN`` while no pixel of the object is inside the frame.

Difficulty (see :class:`WorldConfig`): several objects, distractors of the same colour or of
the same shape as another object (never both: ``colour shape`` names each object uniquely),
objects entering late through an edge, leaving through an edge, stopping for a while, passing
in front of one another (a world is redrawn, from the same random stream, until it holds
``min_occlusions`` occlusion events), varied sizes and speeds, and a noisy background.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import numpy as np

from o3video.data.shapes import COLOURS, SHAPES, placement, shape_mask

Side = Literal["left", "right", "top", "bottom"]
Background = Literal["flat", "gradient"]
SIDES: tuple[Side, ...] = ("left", "right", "top", "bottom")
_OUTWARD: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "top": (0, -1),
    "bottom": (0, 1),
}
MAX_TRIES = 30  # redraws of a world that misses min_occlusions


@dataclass(frozen=True)
class WorldConfig:
    """What a world looks like, and the knobs that make it hard.

    Sizes and speeds are ``(low, high)`` ranges drawn uniformly per object; probabilities are
    per object. The first two objects are always there from the start.
    """

    width: int = 224
    height: int = 224
    fps: float | Fraction = 10.0  # kept exact: 10.0 -> 10, 29.97 -> 2997/100, or a Fraction
    duration_s: float = 8.0
    num_objects: tuple[int, int] = (3, 6)  # objects per world, inclusive range
    colours: tuple[str, ...] = tuple(COLOURS)
    shapes: tuple[str, ...] = SHAPES
    same_colour_prob: float = 0.25  # a later object copies an earlier one's colour
    same_shape_prob: float = 0.25  # ... or its shape (never both)
    late_entry_prob: float = 0.4  # enters through an edge between 10% and 55% of the video
    exit_prob: float = 0.3  # leaves through the nearest edge before the end
    stop_prob: float = 0.4  # stands still once, 1-2.5 s, while fully inside
    size_px: tuple[int, int] = (24, 52)  # side of the square the shape is drawn in
    speed_px_s: tuple[float, float] = (20.0, 60.0)
    min_occlusions: int = 1  # redraw (same random stream) until this many occlusion events
    occlusion_min_frac: float = 0.15  # an object is "covered" when this much of it is hidden
    occlusion_min_frames: int = 3  # ... for at least this many consecutive frames
    background_noise: float = 8.0  # std of the static per-pixel noise of the background
    # "flat": one grey-ish level plus the noise. "gradient": the same, plus a smooth ramp that
    # tells a patch where it is (red rises left -> right, blue top -> bottom, by
    # ``gradient_amplitude``): a vision encoder with only relative (rotary) positions cannot
    # otherwise recover absolute position on a uniform background.
    background: Background = "flat"
    gradient_amplitude: float = 120.0
    crf: int = 20  # x264 quality (lower is better); encoding is "ultrafast", keyframe every 2 s
    # Visual QA asks about a frame only where at least this many shapes are half visible:
    # 3 makes it a search among look-alikes; 1 gives the single-object grounding questions
    # a tiny model learns first (a curriculum stage: the image alone decides the box).
    visual_qa_crowd: int = 3
    # Naming questions (General video QA Free-form): "What shape is the red object?" for an
    # object whose colour is unique, "What colour is the circle?" for a unique shape. The
    # answer is the word the pixels alone decide; off by default (corpora stay as they were).
    naming_qa: bool = False
    # The V-STaR-protocol What reasoning ("It is <obj>…</obj><box>…</box>at<t>…</t>s.") claims
    # the answer object at the frame nearest the middle of its boxes where it is plainly seen
    # and its box touches no other object's, instead of at the middle box itself (during the
    # event, where an object passing in front shares its vision tokens with the one behind).
    # Off by default (corpora stay as they were); the middle box where no such frame exists.
    what_apart: bool = False

    def __post_init__(self) -> None:
        lo, hi = self.num_objects
        if not 1 <= lo <= hi or hi > len(self.colours) * len(self.shapes):
            raise ValueError(f"num_objects must be 1 <= low <= high <= colours*shapes: {lo, hi}")
        if not 8 <= self.size_px[0] <= self.size_px[1] <= min(self.width, self.height) // 2:
            raise ValueError(f"size_px must lie in [8, min(W, H)/2]: {self.size_px}")
        if not 0 < self.speed_px_s[0] <= self.speed_px_s[1]:
            raise ValueError(f"speed_px_s must be positive and ordered: {self.speed_px_s}")
        if unknown := set(self.colours) - set(COLOURS) | set(self.shapes) - set(SHAPES):
            raise ValueError(f"unknown colours or shapes: {sorted(unknown)}")
        if self.fps <= 0 or self.duration_s * self.fps < 8:
            raise ValueError(f"need fps > 0 and at least 8 frames: {self.fps=} {self.duration_s=}")
        if self.visual_qa_crowd < 1:
            raise ValueError(f"visual_qa_crowd must be >= 1: {self.visual_qa_crowd}")
        if self.background not in ("flat", "gradient"):
            raise ValueError(f"background must be 'flat' or 'gradient': {self.background!r}")
        if self.width % 2 or self.height % 2:
            raise ValueError(f"H.264 yuv420p needs an even frame size: {self.width}x{self.height}")

    @property
    def rate(self) -> Fraction:
        """The frame rate as an exact fraction; the time base of the video is its inverse."""
        return Fraction(str(self.fps)) if isinstance(self.fps, float) else Fraction(self.fps)

    @property
    def num_frames(self) -> int:
        return round(self.duration_s * self.rate)


@dataclass(frozen=True, eq=False)
class Track:
    """One object and its ground truth, one row per frame (``T`` frames).

    ``topleft_px`` is where its ``size_px`` square is drawn (meaningful where ``placed``);
    ``box_xyxy`` the tight box of its pixels inside the frame (``NaN`` when none are);
    ``inside`` whether all of it is inside the frame; ``visible_frac`` the fraction of all its
    pixels that are inside the frame and not covered; ``occluded_by`` the indices of the
    objects covering some of its pixels; ``moving`` is False while absent or standing still.
    ``stop`` is its standing-still frame range ``(first, last)``; ``enter_side`` and
    ``exit_side`` the edges it comes in and leaves by (None: there from the start / stays).
    """

    index: int
    colour: str
    shape: str
    size_px: int
    depth: int  # drawing order: a larger depth is nearer, painted over smaller ones
    placed: np.ndarray  # (T,) bool
    topleft_px: np.ndarray  # (T, 2) int64 (x, y)
    box_xyxy: np.ndarray  # (T, 4) float64
    inside: np.ndarray  # (T,) bool
    visible_frac: np.ndarray  # (T,) float64
    moving: np.ndarray  # (T,) bool
    occluded_by: tuple[tuple[int, ...], ...]
    stop: tuple[int, int] | None
    enter_side: Side | None
    exit_side: Side | None

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def in_frame(self) -> np.ndarray:
        """(T,) bool: some pixel of the object is inside the frame."""
        return ~np.isnan(self.box_xyxy[:, 0])

    @property
    def in_frame_span(self) -> tuple[int, int]:
        """First and last frame with the object (partly) inside the frame."""
        idx = np.flatnonzero(self.in_frame)
        return int(idx[0]), int(idx[-1])

    @property
    def enter_span(self) -> tuple[int, int] | None:
        """The frames in which it crosses the edge coming in (None: there from the start)."""
        f0, ins = self.in_frame_span[0], np.flatnonzero(self.inside)
        ok = self.enter_side is not None and ins.size and ins[0] > f0
        return (f0, int(ins[0]) - 1) if ok else None

    @property
    def exit_span(self) -> tuple[int, int] | None:
        """The frames in which it crosses the edge going out (None: it stays)."""
        f1, ins = self.in_frame_span[1], np.flatnonzero(self.inside)
        ok = self.exit_side is not None and ins.size and ins[-1] < f1
        return (int(ins[-1]) + 1, f1) if ok else None


@dataclass(frozen=True)
class Occlusion:
    """``front`` covers at least ``occlusion_min_frac`` of ``back`` in frames first..last."""

    front: int
    back: int
    first: int
    last: int


@dataclass(frozen=True, eq=False)
class World:
    """A rendered world: config, exact frame times and every object's ground truth."""

    seed: int
    config: WorldConfig
    times_s: tuple[float, ...]  # k / fps, exactly the encoded PTS · time base
    tracks: tuple[Track, ...]
    occlusions: tuple[Occlusion, ...]
    background: np.ndarray = field(repr=False)  # (H, W, 3) uint8

    @property
    def size_wh(self) -> tuple[int, int]:
        return (self.config.width, self.config.height)

    @property
    def num_frames(self) -> int:
        return len(self.times_s)

    def track(self, name: str) -> Track:
        """The object called ``name`` ("red circle")."""
        return next(t for t in self.tracks if t.name == name)


def render_world(seed: int, config: WorldConfig | None = None) -> World:
    """Draw a world from ``seed``: the same seed and config give the same ground truth.

    >>> w = render_world(7)
    >>> len(w.times_s), w.times_s[:3], 3 <= len(w.tracks) <= 6
    (80, (0.0, 0.1, 0.2), True)
    """
    cfg = config or WorldConfig()
    rng = np.random.default_rng(seed)
    best: World | None = None
    for _ in range(MAX_TRIES):
        world = _draw(rng, seed, cfg)
        if len(world.occlusions) >= cfg.min_occlusions:
            return world
        if best is None or len(world.occlusions) > len(best.occlusions):
            best = world
    assert best is not None
    return best


def _pick_looks(rng: np.random.Generator, cfg: WorldConfig, n: int) -> list[tuple[str, str]]:
    looks: list[tuple[str, str]] = []
    for _ in range(n):
        u = rng.random()
        if looks and u < cfg.same_colour_prob:  # same colour as an earlier object
            colour = looks[rng.integers(len(looks))][0]
            options = [(colour, s) for s in cfg.shapes]
        elif looks and u < cfg.same_colour_prob + cfg.same_shape_prob:
            shape = looks[rng.integers(len(looks))][1]
            options = [(c, shape) for c in cfg.colours]
        else:
            options = [(c, s) for c in cfg.colours for s in cfg.shapes]
        free = [o for o in options if o not in looks] or [
            (c, s) for c in cfg.colours for s in cfg.shapes if (c, s) not in looks
        ]
        looks.append(free[rng.integers(len(free))])
    return looks


def _draw(rng: np.random.Generator, seed: int, cfg: WorldConfig) -> World:
    n = int(rng.integers(cfg.num_objects[0], cfg.num_objects[1] + 1))
    looks = _pick_looks(rng, cfg, n)
    depths = rng.permutation(n)
    paths = [_simulate(rng, cfg, late_ok=i >= 2) for i in range(n)]
    level = rng.uniform(35, 85) + rng.uniform(-10, 10, size=3)
    noise = rng.normal(0.0, cfg.background_noise, size=(cfg.height, cfg.width, 1))
    background = np.clip(level + noise + _ramp(cfg), 0, 255).astype(np.uint8)
    times = tuple(float(Fraction(k) / cfg.rate) for k in range(cfg.num_frames))
    tracks, occlusions = _ground_truth(cfg, looks, depths, paths)
    return World(seed, cfg, times, tracks, occlusions, background)


def _ramp(cfg: WorldConfig) -> np.ndarray | float:
    """The position cue added to the background: 0 for "flat"; for "gradient" an
    ``(H, W, 3)`` ramp, red ``0 → gradient_amplitude`` left to right, blue top to bottom.
    Deterministic (no random draw), so a world's objects do not depend on the background."""
    if cfg.background == "flat":
        return 0.0
    ramp = np.zeros((cfg.height, cfg.width, 3))
    ramp[:, :, 0] = np.linspace(0.0, cfg.gradient_amplitude, cfg.width)[None, :]
    ramp[:, :, 2] = np.linspace(0.0, cfg.gradient_amplitude, cfg.height)[:, None]
    return ramp


@dataclass
class _Path:
    """A simulated trajectory (positions are mask top-left corners)."""

    size_px: int
    placed: np.ndarray
    topleft: np.ndarray
    moving: np.ndarray
    stop: tuple[int, int] | None
    enter_side: Side | None
    exit_side: Side | None


def _simulate(rng: np.random.Generator, cfg: WorldConfig, *, late_ok: bool) -> _Path:
    """One object's trajectory: enter (or start inside), bounce, maybe stop, maybe leave."""
    w, h, t_n, fps = cfg.width, cfg.height, cfg.num_frames, float(cfg.rate)
    dt, s = 1.0 / fps, int(rng.integers(cfg.size_px[0], cfg.size_px[1] + 1))
    half, speed = s / 2, float(rng.uniform(*cfg.speed_px_s))
    angle = float(rng.uniform(0, 2 * math.pi))
    enter, enter_side, settled = 0, None, 0
    centre = np.array([rng.uniform(half, w - half), rng.uniform(half, h - half)])
    if late_ok and rng.random() < cfg.late_entry_prob:
        enter = int(rng.integers(round(0.1 * t_n), round(0.55 * t_n) + 1))
        enter_side = SIDES[rng.integers(4)]
        out = np.array(_OUTWARD[enter_side], dtype=float)
        tilt = float(rng.uniform(-0.6, 0.6))  # radians off the inward normal
        angle = math.atan2(-out[1], -out[0]) + tilt
        # Just outside the edge it comes through, anywhere along it.
        centre = np.where(out != 0, (out > 0) * np.array([w, h]) + out * half, centre)
        settled = enter + math.ceil(s / (speed * math.cos(tilt) * dt)) + 1  # fully inside
    vel = np.array([math.cos(angle), math.sin(angle)]) * speed
    exit_at, last_exit = t_n, t_n - round(1.5 * fps)
    if rng.random() < cfg.exit_prob and settled + round(fps) <= last_exit:
        exit_at = int(rng.integers(settled + round(fps), last_exit + 1))
    stop: tuple[int, int] | None = None
    stop_len = int(rng.integers(round(1.0 * fps), round(2.5 * fps) + 1))
    lo, hi = settled + round(0.5 * fps), min(exit_at, t_n - round(0.5 * fps)) - stop_len
    if rng.random() < cfg.stop_prob and lo <= hi:
        a = int(rng.integers(lo, hi + 1))
        stop = (a, a + stop_len - 1)

    placed, moving = np.zeros(t_n, dtype=bool), np.zeros(t_n, dtype=bool)
    topleft = np.zeros((t_n, 2), dtype=np.int64)
    phase, exit_side, size = ("entering" if enter_side else "inside"), None, np.array([w, h])
    for k in range(enter, t_n):
        if k == exit_at:  # head for the nearest edge, fast enough to be gone before the end
            gaps = dict(
                zip(SIDES, (centre[0], w - centre[0], centre[1], h - centre[1]), strict=True)
            )
            exit_side = side = min(SIDES, key=lambda edge: gaps[edge])
            need = (gaps[side] + half) / ((t_n - 1 - k) * dt * 0.7)
            vel = np.array(_OUTWARD[side], dtype=np.float64) * max(speed, need)
            phase = "leaving"
        still = stop is not None and stop[0] <= k <= stop[1]
        placed[k], moving[k] = True, not still
        topleft[k] = np.floor(centre - half + 0.5).astype(np.int64)
        centre = centre if still else centre + vel * dt
        if phase == "entering" and np.all(centre - half >= 0) and np.all(centre + half <= size):
            phase = "inside"
        for axis in (0, 1) if phase != "leaving" else ():
            if phase == "entering" and _OUTWARD[enter_side or "left"][axis] != 0:
                continue  # entering: bounce only along the edge it comes through
            if centre[axis] - half < 0:
                centre[axis], vel[axis] = 2 * half - centre[axis], abs(vel[axis])
            elif centre[axis] + half > size[axis]:
                centre[axis], vel[axis] = 2 * (size[axis] - half) - centre[axis], -abs(vel[axis])
        if phase == "leaving" and (np.any(centre + half <= 0) or np.any(centre - half >= size)):
            break  # nothing of it is left in the frame from the next frame on
    return _Path(s, placed, topleft, moving, stop, enter_side, exit_side)


def _tight(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The tight box ``(x1, y1, x2, y2)`` of a mask's pixels, in mask pixels."""
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _runs(flags: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """``(first, last)`` of each run of True of at least ``min_len`` frames."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [
        (int(a), int(b) - 1)
        for a, b in zip(edges[::2], edges[1::2], strict=True)
        if b - a >= min_len
    ]


def _ground_truth(
    cfg: WorldConfig, looks: Sequence[tuple[str, str]], depths: np.ndarray, paths: list[_Path]
) -> tuple[tuple[Track, ...], tuple[Occlusion, ...]]:
    w, h, t_n, n = cfg.width, cfg.height, cfg.num_frames, len(paths)
    masks = [shape_mask(shape, p.size_px) for (_, shape), p in zip(looks, paths, strict=True)]
    area = np.array([m.sum() for m in masks], dtype=float)
    offsets = [_tight(m) for m in masks]
    boxes = np.full((n, t_n, 4), np.nan)
    inside = np.zeros((n, t_n), dtype=bool)
    visible = np.zeros((n, t_n))
    covered = np.zeros((n, n, t_n))  # covered[front, back, k]: fraction of back hidden by front
    occluders: list[list[tuple[int, ...]]] = [[] for _ in range(n)]
    order = list(np.argsort(depths))  # back to front
    for k in range(t_n):
        ids = np.zeros((h, w), dtype=np.int16)
        spots: dict[int, tuple[slice, slice, np.ndarray]] = {}
        for i in order:
            p = paths[i]
            if not p.placed[k]:
                continue
            x0, y0 = (int(v) for v in p.topleft[k])
            spot = placement(x0, y0, masks[i], w, h)
            if spot is None or not spot[2].any():
                continue  # nothing, or only empty corners of its square, inside the frame
            spots[i] = spot
            ys, xs, sub = spot
            ids[ys, xs][sub] = i + 1
            ox1, oy1, ox2, oy2 = offsets[i]
            box = (x0 + ox1, y0 + oy1, x0 + ox2, y0 + oy2)
            inside[i, k] = box[0] >= 0 and box[1] >= 0 and box[2] <= w and box[3] <= h
            if not inside[i, k]:  # cut by the edge: the tight box of its pixels in the frame
                sx1, sy1, sx2, sy2 = _tight(sub)
                box = (xs.start + sx1, ys.start + sy1, xs.start + sx2, ys.start + sy2)
            boxes[i, k] = box
        visible[:, k] = np.bincount(ids.ravel(), minlength=n + 1)[1:] / area
        for b, (bys, bxs, bsub) in spots.items():
            over = []
            for f, (fys, fxs, fsub) in spots.items():
                if depths[f] <= depths[b]:
                    continue
                ya, yb = max(bys.start, fys.start), min(bys.stop, fys.stop)
                xa, xb = max(bxs.start, fxs.start), min(bxs.stop, fxs.stop)
                if ya >= yb or xa >= xb:
                    continue
                b_part = bsub[ya - bys.start : yb - bys.start, xa - bxs.start : xb - bxs.start]
                f_part = fsub[ya - fys.start : yb - fys.start, xa - fxs.start : xb - fxs.start]
                px = int((b_part & f_part).sum())
                if px:
                    covered[f, b, k] = px / area[b]
                    over.append(f)
            occluders[b].append(tuple(sorted(over)))
        for i in range(n):
            if i not in spots:
                occluders[i].append(())
    tracks = []
    for i, p in enumerate(paths):
        tracks.append(Track(
            index=i, colour=looks[i][0], shape=looks[i][1], size_px=masks[i].shape[0],
            depth=int(depths[i]), placed=p.placed, topleft_px=p.topleft, box_xyxy=boxes[i],
            inside=inside[i],
            visible_frac=visible[i], moving=p.moving & p.placed, occluded_by=tuple(occluders[i]),
            stop=p.stop, enter_side=p.enter_side, exit_side=p.exit_side,
        ))  # fmt: skip
    events = [
        Occlusion(f, b, a, z)
        for f in range(n)
        for b in range(n)
        for a, z in _runs(covered[f, b] >= cfg.occlusion_min_frac, cfg.occlusion_min_frames)
    ]
    return tuple(tracks), tuple(sorted(events, key=lambda e: (e.first, e.front, e.back)))

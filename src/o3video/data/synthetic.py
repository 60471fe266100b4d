"""A synthetic grounded-video corpus: STGR records of all six tasks and V-STaR-style items.

:func:`synthesize` draws ``n`` worlds (:mod:`o3video.data.world`: coloured shapes that enter,
move, stop, hide one another and leave, with exact per-frame ground truth), encodes each as
an H.264 MP4 and asks questions whose answers come from the ground truth:

- ``stgr_sft.json`` and ``stgr_rl.json`` (SPEC §4): per video one record of each task kind
  that the world can support — ``visual QA`` (a frame as a PNG, box answer in pixels),
  ``temporal QA`` (``"[s, e]"``), ``temporal QA (MCQ)`` (``"LETTER\\n[s, e]"``),
  ``temporal-spatial free-form QA`` (key-frame JPEGs and normalized key items),
  ``General video QA MCQ`` and ``General video QA Free-form``. The two files ask different
  questions where a world has more than one of a kind; SFT records carry a
  ``reasoning_process`` whose claims hold normalized boxes and true frame times.
- ``vstar.json``: one V-STaR item (SPEC §7) per video that has an event a single object is
  the answer to ("Which shape passes in front of the red circle?" → ``"the blue square"``),
  with its span and its boxes at the whole seconds inside it.
- ``stgr_sft.json`` and ``stgr_rl.json`` also hold, after each video's six records and
  unless ``vstar_protocol=False``, the five ``V-STaR protocol`` records of its V-STaR item
  (:class:`~o3video.data.stgr.VStarProtocolRecord`: the evaluation's five prompt forms, so a
  model trained on the corpus has seen them and RL can reward them, SPEC §5's answer reward
  scoring each as the evaluation does; the SFT records carry a short grounded reasoning).
  ``vstar.json`` is written all the same: the held-out seeds' corpus is evaluated with it.
- ``videos/`` (MP4), ``gt/`` (per-frame ground truth as JSON), ``keyframes/`` (JPEG),
  ``images/`` (PNG) and ``manifest.json``. Every path in the records is relative to the
  output folder, which is the media root of ``source`` ``"synthetic"``.

Why a model cannot guess: 3–6 objects per video, objects that share a colour or a shape with
another (distractors, named in the reasoning), late entries from any edge, exits, stops and
occlusions at random times; a question is only asked when exactly one object answers it,
options are real objects of the video where possible, and option letters are shuffled.

Determinism: video ``i`` is drawn from ``SeedSequence([seed, i])``, so the same seed (and
config) gives the same worlds and byte-identical JSON, whatever the number of workers; with
the same PyAV/FFmpeg build the MP4 bytes are identical too (x264 on one thread).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

import o3video
from o3video.data.questions import Question, QuestionWriter
from o3video.data.render import render_frames, write_video
from o3video.data.stgr import vstar_protocol_entries
from o3video.data.world import Track, World, WorldConfig, render_world

logger = logging.getLogger(__name__)

SOURCE = "synthetic"
Record = dict[str, Any]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SynthResult:
    """What :func:`synthesize` wrote: the folder, how many videos and records of each kind."""

    out_dir: Path
    num_videos: int
    sft_counts: dict[str, int]
    rl_counts: dict[str, int]
    num_vstar: int
    files: tuple[Path, ...] = field(default=())


def world_seed(seed: int, index: int) -> int:
    """The seed of video ``index`` of a corpus drawn with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def video_questions(
    seed: int, index: int, config: WorldConfig | None = None
) -> dict[str, list[Question]]:
    """Every question the world's writers have, per STGR task, for video ``index`` of the
    corpus :func:`synthesize` draws with ``seed`` and ``config``: the same world and question
    writer it uses, so the records it picked are the first of each list."""
    s = world_seed(seed, index)
    return question_writer(render_world(s, config), s).all()


def question_writer(world: World, seed: int) -> QuestionWriter:
    """The question writer :func:`synthesize` uses for the world drawn from ``seed``."""
    return QuestionWriter(world, np.random.default_rng([seed, 1]))


# -- records and files ---------------------------------------------------------------------------
def _record(q: Question, ask: QuestionWriter, vid: str, sft: bool) -> Record:
    w = ask.w
    rec: Record = {"task": q.task, "source": SOURCE}
    if q.image_k is not None:
        rec["image_path"] = f"images/{vid}_f{q.image_k:04d}.png"
    else:
        rec["video_path"] = f"videos/{vid}.mp4"
    rec.update(image_size=list(w.size_wh), question=q.question, answer=q.answer)
    if sft:
        rec["reasoning_process"] = q.reasoning
    if q.key:
        frames: dict[int, list[int]] = {}  # frame -> objects; two objects may share a frame
        for k, ids in q.key:
            objects = frames.setdefault(k, [])
            objects += [j for j in ids if j not in objects]
        rec["key_frames"] = [
            {"path": f"keyframes/{vid}_f{k:04d}.jpg", "time": w.times_s[k], "idx": k}
            for k in frames
        ]
        rec["key_items"] = {
            str(k): {ask.tr[j].name: [[float(v) for v in ask.norm[j][k]]] for j in ids}
            for k, ids in frames.items()
        }
    return rec


def ground_truth(world: World) -> dict[str, Any]:
    """The world's per-frame ground truth as JSON-ready data (boxes in pixels, times in s)."""
    times = world.times_s

    def frames(t: Track) -> list[dict[str, Any]]:
        return [
            {"idx": k, "time": times[k], "box_xyxy": [float(v) for v in t.box_xyxy[k]],
             "visible_frac": round(float(t.visible_frac[k]), 4), "moving": bool(t.moving[k]),
             "occluded_by": [world.tracks[j].name for j in t.occluded_by[k]]}
            for k in np.flatnonzero(t.in_frame).tolist()
        ]  # fmt: skip

    objects = [
        {"name": t.name, "colour": t.colour, "shape": t.shape, "depth": t.depth,
         "enter_side": t.enter_side, "exit_side": t.exit_side,
         "stop_s": [times[t.stop[0]], times[t.stop[1]]] if t.stop else None, "frames": frames(t)}
        for t in world.tracks
    ]  # fmt: skip
    events = [
        {"front": world.tracks[e.front].name, "back": world.tracks[e.back].name,
         "start_s": times[e.first], "end_s": times[e.last]}
        for e in world.occlusions
    ]  # fmt: skip
    rate = world.config.rate
    return {"seed": world.seed, "fps": f"{rate.numerator}/{rate.denominator}",
            "size_wh": list(world.size_wh), "times_s": list(times), "objects": objects,
            "occlusions": events}  # fmt: skip


def _make_video(job: tuple[Path, int, int, WorldConfig]) -> tuple[list[Record], ...]:
    """Render, encode and question one world; write its media. Runs in a worker process."""
    out, index, seed, cfg = job
    vid = f"synth_{index:06d}"
    world = render_world(seed, cfg)
    frames = list(render_frames(world))
    write_video(world, out / "videos" / f"{vid}.mp4", frames)
    (out / "gt" / f"{vid}.json").write_text(json.dumps(ground_truth(world)) + "\n")
    ask = question_writer(world, seed)
    picked = [(qs[0], qs[1 % len(qs)]) for qs in ask.all().values()]
    media: dict[str, int] = {}
    for q in (q for pair in picked for q in pair):
        if q.image_k is not None:
            media[f"images/{vid}_f{q.image_k:04d}.png"] = q.image_k
        media.update({f"keyframes/{vid}_f{k:04d}.jpg": k for k, _ in q.key})
    for rel, k in sorted(media.items()):
        image = Image.fromarray(frames[k])
        if rel.endswith(".png"):
            image.save(out / rel, compress_level=1)
        else:
            image.save(out / rel, quality=92)
    sft = [_record(a, ask, vid, True) for a, _ in picked]
    rl = [_record(b, ask, vid, False) for _, b in picked]
    vstar = ask.vstar(vid, SOURCE)
    protocol = [r for item in vstar for r in _protocol_records(item, ask, vid)]
    return sft, rl, vstar, protocol


def _protocol_records(item: Record, ask: QuestionWriter, vid: str) -> list[Record]:
    """The five ``V-STaR protocol`` records of a V-STaR item, each with a short grounded
    reasoning from the ground truth (the object at one or two of the item's whole seconds,
    normalized box and true frame time): short, because a tiny model learns them. With
    ``WorldConfig.what_apart`` the What reasoning shows the object where it is apart from the
    others (:meth:`QuestionWriter.apart`)."""
    i = next(t.index for t in ask.tr if f"the {t.name}" == item["answer"])
    ks = [b["frame_index"] for b in item["bboxes"]]
    seen = f"It is seen at {ask.claim(i, ks[0])}"
    seen += f" and at {ask.claim(i, ks[-1])}." if len(ks) > 1 else "."
    what_k = ks[len(ks) // 2]
    if ask.w.config.what_apart and (k := ask.apart(i, what_k)) is not None:
        what_k = k
    reasoning = {
        "what": f"It is {ask.claim(i, what_k)}.",
        "when_1": seen,
        "when_2": seen,
        "where_1": f"It is at {ask.claim(i, ks[0])}.",
        "where_2": f"It is at {ask.claim(i, ks[0])}.",
    }
    video = f"videos/{vid}.mp4"
    return vstar_protocol_entries(item, source=SOURCE, video_path=video, reasoning=reasoning)


def _without_reasoning(records: list[Record]) -> list[Record]:
    return [{k: v for k, v in r.items() if k != "reasoning_process"} for r in records]


def _dump(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def synthesize(
    out_dir: str | os.PathLike[str],
    n: int,
    seed: int = 0,
    config: WorldConfig | None = None,
    *,
    progress: Progress | None = None,
    workers: int | None = None,
    vstar_protocol: bool = True,
) -> SynthResult:
    """Write ``n`` synthetic videos with STGR records and V-STaR items into ``out_dir``.

    Files already there with the same names are overwritten (the module docstring lists
    them). Video ``i`` depends only on ``(seed, i)``, so the first ``m`` videos of a run of
    ``n > m`` are those of a run of ``m``.

    ``progress(done, total)`` is called after each video. ``workers`` processes render and
    encode (default: one per CPU, none below 16 videos); results do not depend on it.
    ``vstar_protocol`` adds the ``V-STaR protocol`` records to ``stgr_sft.json`` and, without
    their reasoning, to ``stgr_rl.json`` (module docstring; recorded in ``manifest.json``).

    >>> result = synthesize("synth", 1000, seed=0, progress=lambda d, t: None)  # doctest: +SKIP
    >>> result.num_videos, sorted(result.sft_counts)[0]                         # doctest: +SKIP
    (1000, 'General video QA Free-form')
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cfg, out = config or WorldConfig(), Path(out_dir)
    for sub in ("videos", "gt", "keyframes", "images"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    jobs = [(out, i, world_seed(seed, i), cfg) for i in range(n)]
    if workers is None:
        workers = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
        workers = workers if n >= 16 else 1
    logger.info("synthesizing %d videos into %s with %d worker(s)", n, out, workers)
    results: list[tuple[list[Record], ...]] = []
    if workers <= 1:
        for job in jobs:
            results.append(_make_video(job))
            if progress:
                progress(len(results), n)
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for res in pool.imap(_make_video, jobs, chunksize=max(1, min(8, n // (4 * workers)))):
                results.append(res)
                if progress:
                    progress(len(results), n)
    sft = [r for res in results for r in res[0] + (res[3] if vstar_protocol else [])]
    rl = [
        r
        for res in results
        for r in res[1] + (_without_reasoning(res[3]) if vstar_protocol else [])
    ]
    vstar = [r for res in results for r in res[2]]
    sft_counts, rl_counts = (
        dict(Counter(r["task"] for r in sft)),
        dict(Counter(r["task"] for r in rl)),
    )
    manifest = {
        "generator": __name__, "version": o3video.__version__,
        "encoder": f"PyAV {av.__version__} libx264",
        "seed": seed, "num_videos": n, "config": {**dataclasses.asdict(cfg), "fps": str(cfg.rate)},
        "counts": {"stgr_sft": sft_counts, "stgr_rl": rl_counts, "vstar": len(vstar)},
        "media_root": ".", "source": SOURCE, "vstar_protocol": vstar_protocol,
    }  # fmt: skip
    files = (
        _dump(out / "stgr_sft.json", sft),
        _dump(out / "stgr_rl.json", rl),
        _dump(out / "vstar.json", vstar),
        _dump(out / "manifest.json", manifest),
    )
    logger.info("wrote %d SFT, %d RL records and %d V-STaR items", len(sft), len(rl), len(vstar))
    return SynthResult(out, n, sft_counts, rl_counts, len(vstar), files)

"""Running a model on the general benchmarks (SPEC §7): the same resumable runner as V-STaR.

:func:`run_benchmark` loads a benchmark (:func:`o3video.eval.benchmarks.load_benchmark`),
asks each item with its task preset (:func:`~o3video.eval.benchmarks.prompt_for`: the
multiple-choice, free-form or temporal system prompt and the question) on frames sampled from
the item's video — or from the part of it the item is about (STAR, MVBench), or from a folder
of frames (MVBench's episodic reasoning, at the benchmark's frame rate) — and appends one
record per item: the raw reply, the parsed prediction
(:func:`~o3video.eval.benchmarks.parse_prediction`: an unparsable answer stays unparsable,
never a default letter) and timings. :func:`finish_benchmark` scores a complete run folder
and writes ``scores.json`` and ``report.md``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from o3video.eval.benchmarks import (
    BenchItem,
    load_benchmark,
    parse_prediction,
    prompt_for,
    score_benchmark,
)
from o3video.eval.runner import (
    RunError,
    RunStats,
    Shard,
    check_run_json,
    merge_records,
    read_run_json,
    run_items,
)
from o3video.families import ModelFamily
from o3video.models.base import Backend, Request, SamplingParams
from o3video.models.card import VideoSettings
from o3video.prompts import build_messages
from o3video.video import Clip

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def item_clip(item: BenchItem, family: ModelFamily, video: VideoSettings) -> Clip:
    """Frames of ``item``: from its video file (within ``start_s``–``end_s`` when given), or
    from its folder of frames at ``item.extra["fps"]`` frames per second."""
    window = {"start_s": item.start_s, "end_s": item.end_s}
    if item.video.is_dir():
        files = sorted(p for p in item.video.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise RunError(f"{item.video}: no frames ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        rate = float(item.extra.get("fps", 3.0))
        images = [Image.open(f).convert("RGB") for f in files]
        times = [k / rate for k in range(len(images))]
        return video.sample(images, factor=family.factor, times_s=times, **window)
    return video.sample(item.video, factor=family.factor, **window)


def make_process(
    backend: Backend, family: ModelFamily, video: VideoSettings, params: SamplingParams
) -> Callable[[Sequence[BenchItem]], list[dict[str, Any]]]:
    """The runner's ``process`` for benchmark items: one request per item, one
    ``backend.generate`` call per batch."""

    def process(batch: Sequence[BenchItem]) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        requests = []
        for item in batch:
            task, text = prompt_for(item)
            clip = item_clip(item, family, video)
            messages = build_messages(clip, text, task)  # type: ignore[arg-type]
            requests.append(Request(messages, id=item.id, clip=clip))
        t1 = time.perf_counter()
        texts = backend.generate(requests, params)
        t2 = time.perf_counter()
        out = []
        for item, replies in zip(batch, texts, strict=True):
            raw = replies[0] if replies else ""
            out.append({"raw": raw, "prediction": parse_prediction(item, raw)})
        t3 = time.perf_counter()
        share = 1 / len(batch)
        for record in out:
            record["timings"] = {
                "prepare_s": (t1 - t0) * share,
                "generate_s": (t2 - t1) * share,
                "parse_s": (t3 - t2) * share,
            }
        return out

    return process


def run_benchmark(
    backend: Backend,
    family: ModelFamily,
    name: str,
    root: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    *,
    videos: str | os.PathLike[str] | None = None,
    video: VideoSettings | None = None,
    max_new_tokens: int | None = None,
    shard: Shard | None = None,
    batch_size: int = 1,
    limit: int | None = None,
    retry_errors: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[BenchItem], RunStats]:
    """Generate (or resume) the records of ``shard`` of benchmark ``name`` into ``run_dir``
    (greedy, seed 0, at most ``max_new_tokens`` new tokens, default 512). Returns the run's
    items and what the runner did."""
    video = video or VideoSettings()
    max_new_tokens = 512 if max_new_tokens is None else max_new_tokens
    items = load_benchmark(name, root, videos)[:limit]
    settings = {
        "model": backend.name,
        "family": family.name,
        "root": os.fspath(Path(root).resolve()),
        "videos": None if videos is None else os.fspath(Path(videos).resolve()),
        "video": dataclasses.asdict(video),
        "max_new_tokens": max_new_tokens,
    }
    check_run_json(run_dir, name, settings, limit)
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, seed=0)
    stats = run_items(
        items,
        [item.id for item in items],
        make_process(backend, family, video, params),
        run_dir,
        shard=shard,
        batch_size=batch_size,
        retry_errors=retry_errors,
        progress=progress,
    )
    return items, stats


def finish_benchmark(
    run_dir: str | os.PathLike[str], *, label: str | None = None
) -> dict[str, Any]:
    """Score a complete run folder of a general benchmark; writes ``scores.json`` and
    ``report.md`` and returns the scores. :class:`RunError` while items lack a record or
    ended in error."""
    out = Path(run_dir)
    meta = read_run_json(out)
    name, settings = str(meta["benchmark"]), meta["settings"]
    items = load_benchmark(name, settings["root"], settings["videos"], check_videos=False)
    items = items[: meta.get("limit")]
    merged = merge_records(out, [item.id for item in items])
    if merged.missing:
        raise RunError(
            f"{out}: {len(merged.missing)} of {len(items)} item(s) have no record yet "
            f"(first: {merged.missing[0]}); run the missing shards, then merge"
        )
    if merged.errors:
        raise RunError(
            f"{out}: {len(merged.errors)} item(s) ended in error (first: {merged.errors[0]}); "
            "fix the cause and re-run with --retry-errors"
        )
    predictions = {r["id"]: r["prediction"] for r in merged.records}
    scores = score_benchmark(name, items, predictions)
    doc = {"benchmark": name, "model": settings["model"], "label": label, "scores": scores}
    (out / "scores.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    from o3video.eval.report import build_tables, read_run, report_markdown

    report = report_markdown(build_tables([read_run(out)]))
    (out / "report.md").write_text(report, encoding="utf-8")
    return scores

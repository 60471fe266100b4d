"""Running a model on the general benchmarks (SPEC §7): the same resumable runner as V-STaR.

:func:`run_benchmark` loads a benchmark (:func:`o3video.eval.benchmarks.load_benchmark`),
asks each item under a protocol (:func:`item_request`) on frames sampled from the item's
video — or from the part of it the item is about (STAR, MVBench), or from a folder of frames
(MVBench's episodic reasoning, at the benchmark's frame rate) — and appends one record per
item: the raw reply, the parsed prediction (:func:`~o3video.eval.benchmarks.parse_prediction`:
an unparsable answer stays unparsable, never a default letter) and timings.
:func:`finish_benchmark` scores a complete run folder and writes ``scores.json`` and
``report.md``; :func:`show_benchmark_prompts` renders the first requests without a model.

Protocols (:mod:`o3video.protocols`):

- ``o3video``: the task preset of :func:`~o3video.eval.benchmarks.prompt_for` (the
  multiple-choice, free-form or temporal system prompt, frames labelled with their true
  times, the duration line, the question) on the frame budget given.
- ``reference``: VideoMME, WorldSense and VideoMMMU as the reference scripts ran them (native
  video, their own texts and frames: :mod:`o3video.protocols.bench`); the others with the
  reference RL-stage prompt of the same task (:func:`o3video.protocols.tasks.reference_rl_prompt`:
  its system prompt, frames labelled on the sampling grid, ``int`` duration) on the frame
  budget given. Their question texts are the ``o3video`` ones: the reference has none.
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
from o3video.eval.mcq_loaders import question_image
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
from o3video.prompts import system_prompt_for
from o3video.protocols import ProtocolName, check_protocol
from o3video.protocols.bench import (
    REFERENCE_BENCH_MAX_NEW_TOKENS,
    REFERENCE_BENCH_VIDEO,
    REFERENCE_NATIVE_BENCHMARKS,
    reference_image,
    reference_video_prompt,
    videomme_text,
    videommmu_text,
    worldsense_text,
)
from o3video.protocols.render import Prompt, o3video_prompt, to_messages
from o3video.protocols.show import Rendered, render_request
from o3video.protocols.tasks import reference_rl_prompt
from o3video.protocols.vstar import REFERENCE_REPETITION_PENALTY
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


def video_settings_for(protocol: str, benchmark: str, default: VideoSettings) -> VideoSettings:
    """The frames ``benchmark`` is run with: the reference script's under ``reference`` for
    the benchmarks it ran natively (:data:`~o3video.protocols.bench.REFERENCE_BENCH_VIDEO`),
    else ``default`` (the model card's budget, or the options given)."""
    if protocol == "reference" and benchmark in REFERENCE_NATIVE_BENCHMARKS:
        return REFERENCE_BENCH_VIDEO
    return default


def reference_text(item: BenchItem) -> str:
    """The reference script's user text of a VideoMME, WorldSense or VideoMMMU item (options
    as the file holds them: ``item.extra["options_raw"]``)."""
    raw = item.extra.get("options_raw")
    if not isinstance(raw, list) or not all(isinstance(o, str) for o in raw):
        raise RunError(
            f"{item.benchmark} item {item.id!r}: no 'options_raw' (the options as the file "
            "holds them), which the reference prompt prints; load it with load_benchmark"
        )
    if item.benchmark == "videomme":
        return videomme_text(item.question, raw)
    if item.benchmark == "worldsense":
        return worldsense_text(item.question, raw)
    if item.benchmark == "videommmu":
        return videommmu_text(item.question, raw, str(item.group.get("split", "")).capitalize())
    raise ValueError(f"the reference evaluation has no script of its own for {item.benchmark!r}")


def _window_frames(item: BenchItem, clip: Clip) -> int | None:
    """The source frames of the part of the video ``item`` is about (``None``: the whole
    video): qwen-vl-utils' ``total_frames`` for a window."""
    if (item.start_s is None and item.end_s is None) or clip.fps <= 0:
        return None
    start = item.start_s or 0.0
    end = clip.duration_s if item.end_s is None else min(item.end_s, clip.duration_s)
    return max(clip.num_frames, round((end - start) * clip.fps) + 1)


def item_request(
    item: BenchItem, protocol: ProtocolName | str, family: ModelFamily, video: VideoSettings
) -> tuple[Prompt, Clip]:
    """The prompt and frames ``item`` is asked with under ``protocol`` (module docstring);
    ``video``: the frame budget given (the reference scripts' own frames replace it for their
    benchmarks)."""
    name = check_protocol(protocol, inference=True)
    if name == "reference" and item.benchmark in REFERENCE_NATIVE_BENCHMARKS:
        # The script shows a record's image whenever it has one (VideoMMMU Adaptation's).
        image = question_image(item)
        if image is None and item.extra.get("image_at_end"):
            raise RunError(
                f"{item.benchmark} item {item.id!r}: the reference prompt shows the question's "
                "image after the video, and the item has none (VideoMMMU Adaptation's images "
                "are read from its parquet files' 'image' column)"
            )
        images = [] if image is None else [reference_image(image, family.factor)]
        clip = item_clip(item, family, REFERENCE_BENCH_VIDEO)
        return reference_video_prompt(reference_text(item), images), clip
    clip = item_clip(item, family, video)
    task, text = prompt_for(item)
    if name == "reference":
        return reference_rl_prompt(task, text, clip, total_frames=_window_frames(item, clip)), clip
    return o3video_prompt(system_prompt_for(task), text, clip), clip


def make_process(
    backend: Backend,
    family: ModelFamily,
    video: VideoSettings,
    params: SamplingParams,
    *,
    protocol: ProtocolName = "o3video",
) -> Callable[[Sequence[BenchItem]], list[dict[str, Any]]]:
    """The runner's ``process`` for benchmark items: one request per item
    (:func:`item_request` under ``protocol``), one ``backend.generate`` call per batch."""

    def process(batch: Sequence[BenchItem]) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        requests = []
        for item in batch:
            prompt, clip = item_request(item, protocol, family, video)
            messages = to_messages(prompt, clip)
            requests.append(
                Request(messages, id=item.id, clip=clip, video_interval_s=prompt.video_interval_s)
            )
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
    protocol: str = "o3video",
) -> tuple[list[BenchItem], RunStats]:
    """Generate (or resume) the records of ``shard`` of benchmark ``name`` into ``run_dir``
    (greedy, seed 0) under ``protocol`` (recorded in ``run.json``): at most
    ``max_new_tokens`` new tokens, by default 512, or 8,192 with repetition penalty 1.05 for
    the benchmarks the reference ran itself under ``reference``. Returns the run's items
    and what the runner did."""
    protocol_name = check_protocol(protocol, inference=True)
    video = video_settings_for(protocol_name, name, video or VideoSettings())
    native = protocol_name == "reference" and name in REFERENCE_NATIVE_BENCHMARKS
    if max_new_tokens is None:
        max_new_tokens = REFERENCE_BENCH_MAX_NEW_TOKENS if native else 512
    items = load_benchmark(name, root, videos)[:limit]
    settings = {
        "model": backend.name,
        "family": family.name,
        "root": os.fspath(Path(root).resolve()),
        "videos": None if videos is None else os.fspath(Path(videos).resolve()),
        "video": dataclasses.asdict(video),
        "max_new_tokens": max_new_tokens,
        "protocol": protocol_name,
    }
    check_run_json(run_dir, name, settings, limit)
    penalty = REFERENCE_REPETITION_PENALTY if native else 1.0
    params = SamplingParams(
        temperature=0.0, max_new_tokens=max_new_tokens, seed=0, repetition_penalty=penalty
    )
    stats = run_items(
        items,
        [item.id for item in items],
        make_process(backend, family, video, params, protocol=protocol_name),
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
    doc = {
        "benchmark": name,
        "model": settings["model"],
        "label": label,
        "protocol": settings.get("protocol", "o3video"),
        "scores": scores,
    }
    (out / "scores.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    from o3video.eval.report import build_tables, read_run, report_markdown

    report = report_markdown(build_tables([read_run(out)]))
    (out / "report.md").write_text(report, encoding="utf-8")
    return scores


def show_benchmark_prompts(
    processor: Any,
    family: ModelFamily,
    name: str,
    root: str | os.PathLike[str],
    *,
    videos: str | os.PathLike[str] | None = None,
    video: VideoSettings | None = None,
    protocol: str = "o3video",
    n: int = 1,
) -> list[tuple[str, Rendered]]:
    """The first ``n`` items' requests as the model gets them under ``protocol``
    (:func:`o3video.protocols.show.render_request`): ``(title, rendered)`` each. Needs the
    processor files and the videos, no weights."""
    name_p = check_protocol(protocol, inference=True)
    video = video or VideoSettings()
    out = []
    for item in load_benchmark(name, root, videos)[: max(n, 0)]:
        prompt, clip = item_request(item, name_p, family, video)
        messages = to_messages(prompt, clip)
        rendered = render_request(
            processor, messages, clip, video_interval_s=prompt.video_interval_s
        )
        shown = "native video" if prompt.presentation == "video" else "frames"
        if prompt.video_interval_s is not None:
            shown += f", told {prompt.video_interval_s:g} s apart"
        title = (
            f"{name} item {item.id} · {name_p} · {clip.num_frames} frames "
            f"{clip.frame_wh[0]}x{clip.frame_wh[1]} ({shown})"
        )
        out.append((title, rendered))
    return out

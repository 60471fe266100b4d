"""The V-STaR protocol (SPEC §7): five generations per item, then judging and scoring.

Per item, none conditioned on the model's own earlier output:

========  =================  ====================================================================
key       result field       what the model is asked
========  =================  ====================================================================
what      ``answer_vqa``     the question (free text; the grounded free-form prompt)
when_1    ``answer_temporal``  the temporal question → ``From <t>a</t>s to <t>b</t>s``
where_1   ``answer_spatial``   the spatial question at the ground-truth whole seconds
                               ``range(ceil(start), floor(end) + 1)`` → JSON ``{"s": box}``
where_2   ``answer_spatial_2`` spatial_question_2, told how many boxes (the ground-truth count)
when_2    ``answer_temporal_2`` the temporal question, given the ground-truth boxes (untimed)
                                 and the frame size they refer to
========  =================  ====================================================================

Boxes shown to the model and asked from it are in the model family's box space (resized-frame
pixels for Qwen2.5-VL, 0–1000 for Qwen3-VL); scoring maps predicted boxes back to the original
frame (``ScoreConfig(box_space=...)``), which the official script never did. A reply is read by
:func:`answer_part` (:func:`o3video.protocols.readers.answer_part`: the ``<answer>`` section,
else the
reply without its ``<think>``). ``results.json`` is written as the reference pipeline writes it
(:func:`results_file`): parsed values in the answer fields, the replies in ``*_pre`` fields, so
that the official scorer and ``o3video eval vstar-score`` (either mode) score it as the run did.

:func:`item_prompts` gives the five prompts; :func:`make_process` the runner's ``process``;
:func:`run_vstar` runs, resumes and finishes a run folder (``run.json``, ``items*.jsonl``,
``results.json``, ``judgements.json``, ``scores.json``, ``report.md``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from o3video.boxes import WH, convert_xyxy
from o3video.data.load import json_entries
from o3video.data.vstar import VStarItem, load_vstar, vstar_video_path
from o3video.errors import DataError
from o3video.eval.judge import Judge, JudgeItem
from o3video.eval.runner import (
    Merged,
    RunError,
    RunStats,
    Shard,
    check_run_json,
    file_sha256,
    merge_records,
    read_run_json,
    run_items,
)
from o3video.eval.vstar_parse import (
    reference_answer_text,
    reference_boxes,
    reference_timestamps,
)
from o3video.eval.vstar_score import (
    REPLY_KEYS,
    AnswerSpace,
    ScoreConfig,
    VStarScores,
    format_table,
    score_vstar,
)
from o3video.families import ModelFamily, get_family
from o3video.models.base import Backend, Request, SamplingParams
from o3video.models.card import VideoSettings
from o3video.protocols import ProtocolName, check_protocol
from o3video.protocols.readers import answer_part
from o3video.protocols.render import to_messages
from o3video.protocols.show import Rendered, render_request
from o3video.protocols.vstar import (
    GENERATIONS,
    REFERENCE_MAX_NEW_TOKENS,
    REFERENCE_REPETITION_PENALTY,
    video_settings_for,
    vstar_prompts,
)
from o3video.video import Clip, smart_resize

logger = logging.getLogger(__name__)

PROMPT_VERSION = "o3video-vstar-1"
"""Changes whenever a prompt below changes: a run folder refuses to resume across versions."""


def item_id(item: VStarItem) -> str:
    """The runner's key of an item: its position in the file and its video."""
    return f"{item.index}:{item.vid}"


class _ClipCache:
    """The last decoded clip (consecutive items often share a video)."""

    def __init__(self, media_root: Path, family: ModelFamily, video: VideoSettings) -> None:
        self.media_root, self.family, self.video = media_root, family, video
        self.key: str | None = None
        self.clip: Clip | None = None

    def get(self, vid: str) -> Clip:
        if self.key != vid or self.clip is None:
            path = vstar_video_path(self.media_root, vid)
            self.clip = self.video.sample(path, factor=self.family.factor)
            self.key = vid
        return self.clip


def make_process(
    backend: Backend,
    family: ModelFamily,
    media_root: str | os.PathLike[str],
    video: VideoSettings,
    params: SamplingParams,
    *,
    protocol: ProtocolName = "o3video",
    raw_entries: dict[int, Any] | None = None,
) -> Callable[[Sequence[VStarItem]], list[dict[str, Any]]]:
    """The runner's ``process``: for a batch of items, decode each video, ask the five
    prompts of every item (:func:`o3video.protocols.vstar.vstar_prompts` under
    ``protocol``; ``raw_entries``: the file's entries by index, for the reference prompts'
    numbers) in one ``backend.generate`` call, and return per item the raw replies, the
    five result fields and timings."""
    clips = _ClipCache(Path(media_root), family, video)
    raw_entries = raw_entries or {}

    def process(batch: Sequence[VStarItem]) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        requests, decode_s, shown = [], [], []
        for item in batch:
            t_item = time.perf_counter()
            clip = clips.get(item.vid)
            decode_s.append(time.perf_counter() - t_item)
            shown.append(clip.frame_wh)
            if clip.source_wh != item.frame_wh:
                logger.warning(
                    "item %d: the video is %dx%d, the item says %dx%d; boxes are scored in "
                    "the item's size", item.index, *clip.source_wh, *item.frame_wh,
                )  # fmt: skip
            raw = raw_entries.get(item.index)
            for key, prompt in vstar_prompts(item, protocol, family, clip, raw):
                messages = to_messages(prompt, clip)
                requests.append(Request(messages, id=f"{item_id(item)}:{key}", clip=clip))
        t1 = time.perf_counter()
        texts = backend.generate(requests, params)
        t2 = time.perf_counter()
        out = []
        n = len(GENERATIONS)
        for k, item in enumerate(batch):
            replies = [t[0] if t else "" for t in texts[k * n : (k + 1) * n]]
            record: dict[str, Any] = {"index": item.index, "vid": item.vid}
            record["frame_wh"] = list(shown[k])
            record["raw"] = {
                key: reply for (key, _), reply in zip(GENERATIONS, replies, strict=True)
            }
            for (_, field), reply in zip(GENERATIONS, replies, strict=True):
                record[field] = answer_part(reply)
            share = 1 / len(batch)
            record["timings"] = {
                "decode_s": decode_s[k],
                "prepare_s": (t1 - t0 - sum(decode_s)) * share,
                "generate_s": (t2 - t1) * share,
            }
            out.append(record)
        t3 = time.perf_counter()
        for record in out:
            record["timings"]["parse_s"] = (t3 - t2) / len(batch)
        return out

    return process


@dataclass(frozen=True)
class Sampling:
    """A sampled V-STaR run: one reply per prompt drawn at ``temperature`` (> 0) with nucleus
    ``top_p``, the generator seeded with ``seed`` at every generate call."""

    temperature: float
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(
                f"sampling temperature must be a finite number > 0, got {self.temperature}"
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sampling top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides a run's records; stored in ``run.json`` and compared when a
    run is resumed."""

    model: str
    family: str
    data: str
    data_sha256: str
    media_root: str
    video: VideoSettings
    max_new_tokens: int
    prompt_version: str = PROMPT_VERSION
    protocol: str = "o3video"
    sampling: Sampling | None = None
    """``None``: greedy decoding; else the sampled run's temperature, top-p and seed."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_items(data: str | os.PathLike[str], media_root: str | os.PathLike[str]) -> list[VStarItem]:
    """The usable items of a V-STaR file (bad ones are skipped with a logged report; a run
    keeps them in its results as dropped entries, see :func:`dropped_entries`)."""
    loaded = load_vstar(data, media_root)
    if loaded.skipped:
        logger.warning("%s: %d item(s) skipped as unusable", data, len(loaded.skipped))
    if not loaded.records:
        raise DataError(f"{data}: no usable V-STaR item", path=os.fspath(data))
    return list(loaded.records)


def dropped_entries(
    data: str | os.PathLike[str],
    media_root: str | os.PathLike[str],
    items: Sequence[VStarItem],
    limit: int | None,
) -> dict[int, str]:
    """Entries of the file the loader rejected (index → why), among those a run covers:
    all of them, or with ``limit`` those before its last item."""
    loaded = load_vstar(data, media_root)
    end = loaded.total if limit is None or not items else items[-1].index + 1
    out = {}
    for s in loaded.skipped:
        if s.index < end:
            first = next((i for i in s.issues if i.severity == "error"), None)
            out[s.index] = str(first) if first is not None else "rejected at load"
    return out


def _shown_wh(
    record: dict[str, Any], item: VStarItem, family: ModelFamily, video: VideoSettings
) -> WH:
    """The frame size the item's replies were given (records older than this field: the
    size the run's frame budget gives)."""
    wh = record.get("frame_wh")
    if isinstance(wh, list) and len(wh) == 2:
        return (int(wh[0]), int(wh[1]))
    h, w = smart_resize(item.height, item.width, family.factor, video.min_pixels, video.max_pixels)
    return (w, h)


def boxes_to_source(value: Any, space: AnswerSpace, source_wh: WH, frame_wh: WH) -> Any:
    """The boxes of a :func:`~o3video.eval.vstar_parse.reference_boxes` value mapped from
    ``space`` to original pixels: every ``[x1, y1, x2, y2]`` of numbers that is a second's
    value or one of its list; anything else (and every box, for ``source_px``) unchanged.

    >>> boxes_to_source({"3": [0, 0, 500, 1000]}, "rel1000", (640, 360), (644, 364))
    {'3': [0.0, 0.0, 320.0, 360.0]}
    """
    if space == "source_px" or not isinstance(value, dict):
        return value

    def is_box(v: Any) -> bool:
        return (
            isinstance(v, list)
            and len(v) == 4
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
            and all(math.isfinite(x) for x in v)
        )

    def convert(v: Any) -> Any:
        if is_box(v):
            box = convert_xyxy(v, space, "source_px", source_wh=source_wh, frame_wh=frame_wh)
            return [float(x) for x in box]
        if isinstance(v, list):
            return [convert(x) if is_box(x) else x for x in v]
        return v

    return {key: convert(v) for key, v in value.items()}


def result_entry(
    raw_entry: dict[str, Any],
    replies: dict[str, str],
    item: VStarItem,
    space: AnswerSpace,
    frame_wh: WH,
    *,
    to_source: bool = True,
) -> dict[str, Any]:
    """One item of the results file, as the reference pipeline writes it: ``answer_vqa``
    (the ``<answer>`` section, else the reply), ``answer_temporal*`` the parsed ``[start,
    end]`` (``[]`` unless exactly two numbers), ``answer_spatial*`` the parsed boxes by
    second (``null`` when none decode; mapped to original pixels from ``space`` when
    ``to_source``, else as the model wrote them, as the reference pipeline left them), the
    replies in ``answer_vqa_raw_output`` and ``*_pre``; plus ``input_shape`` (``[w, h]`` of
    the frames shown) and ``box_space`` (that of the boxes in the replies)."""
    entry = dict(raw_entry)
    entry["answer_vqa_raw_output"] = replies["what"]
    entry["answer_vqa"] = reference_answer_text(replies["what"])
    for key, field in (("when_1", "answer_temporal"), ("when_2", "answer_temporal_2")):
        entry[REPLY_KEYS[field]] = replies[key]
        entry[field] = reference_timestamps(replies[key])
    for key, field in (("where_1", "answer_spatial"), ("where_2", "answer_spatial_2")):
        entry[REPLY_KEYS[field]] = replies[key]
        boxes = reference_boxes(replies[key])
        entry[field] = (
            boxes_to_source(boxes, space, item.frame_wh, frame_wh) if to_source else boxes
        )
    entry["input_shape"] = list(frame_wh)
    entry["box_space"] = space
    return entry


def results_file(
    data: str | os.PathLike[str],
    merged: Merged,
    items: Sequence[VStarItem],
    family: ModelFamily,
    video: VideoSettings,
    dropped: dict[int, str] | None = None,
    protocol: str = "o3video",
) -> list[dict[str, Any]]:
    """The results file (:func:`result_entry` per item, in file order), with each entry of
    ``dropped`` (index → why) kept as it is plus a ``dropped`` field, so that it stays in
    the denominators. Under the ``reference`` protocol the parsed boxes stay as the model
    wrote them (the reference pipeline's file, which ``--mode official`` then scores as the
    official script did); the replies, their box space and frame size are kept for the
    default mode either way."""
    raw = dict(json_entries(Path(data)))
    by_id = {r["id"]: r for r in merged.records}
    space = family.box_space
    if space not in ("source_px", "frame_px", "rel1000"):
        raise ValueError(f"family {family.name}: cannot write boxes in {family.box_space}")
    entries: dict[int, dict[str, Any]] = {}
    for item in items:
        record = by_id[item_id(item)]
        replies = {key: str(record.get("raw", {}).get(key, "")) for key, _ in GENERATIONS}
        frame_wh = _shown_wh(record, item, family, video)
        entries[item.index] = result_entry(
            raw[item.index], replies, item, space, frame_wh, to_source=protocol != "reference"
        )
    for index, why in (dropped or {}).items():
        value = raw[index]
        entries[index] = {**(value if isinstance(value, dict) else {"entry": value})}
        entries[index]["dropped"] = why
    return [entries[k] for k in sorted(entries)]


@dataclass(frozen=True)
class Finished:
    """A finished run: its scores and the files written."""

    scores: VStarScores
    files: dict[str, Path]
    judge_stats: dict[str, Any]


def finish(
    run_dir: str | os.PathLike[str],
    items: Sequence[VStarItem],
    judge: Judge,
    cfg: ScoreConfig,
    *,
    label: str | None = None,
) -> Finished:
    """Merge the run's records, judge the What answers, score (SPEC §7), write the files.

    Raises :class:`RunError` when items have no record yet (a shard still running) or
    ended in error (re-run with ``--retry-errors``)."""
    out = Path(run_dir)
    meta = read_run_json(out)
    settings = meta["settings"]
    merged = merge_records(out, [item_id(i) for i in items])
    if merged.missing:
        raise RunError(
            f"{out}: {len(merged.missing)} of {len(items)} item(s) have no record yet "
            f"(first: {merged.missing[0]}); run the missing shards, then merge"
        )
    if merged.errors:
        first = next(r for r in merged.records if r["id"] == merged.errors[0])
        raise RunError(
            f"{out}: {len(merged.errors)} item(s) ended in error (first: {first['id']}: "
            f"{first.get('error')}); fix the cause and re-run with --retry-errors"
        )
    family = get_family(settings["family"])
    video = VideoSettings(**settings["video"])
    dropped = dropped_entries(settings["data"], settings["media_root"], items, meta.get("limit"))
    results = results_file(
        settings["data"], merged, items, family, video, dropped, settings.get("protocol", "o3video")
    )
    answered = [r for r in results if "dropped" not in r]
    asked = [
        JudgeItem(i.question, i.answer, r["answer_vqa"])
        for i, r in zip(items, answered, strict=True)
    ]
    rated = iter(judge.rate(asked))
    ratings = [None if "dropped" in r else next(rated) for r in results]
    scores = score_vstar(results, ratings, cfg, results_path=str(out / "results.json"))
    files = {
        "results": out / "results.json",
        "judgements": out / "judgements.json",
        "scores": out / "scores.json",
        "report": out / "report.md",
    }
    files["results"].write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    files["judgements"].write_text(json.dumps(ratings) + "\n")
    stats = dataclasses.asdict(judge.stats)
    doc = {
        "benchmark": "vstar",
        "model": settings["model"],
        "label": label,
        "mode": cfg.mode,
        "protocol": settings.get("protocol", "o3video"),
        "judge": judge.name,
        "judge_stats": stats,
        "scores": scores.to_dict(),
    }
    files["scores"].write_text(json.dumps(doc, indent=1) + "\n")
    report = [
        f"# V-STaR: {label or settings['model']}",
        "",
        f"- data: `{settings['data']}` ({len(items)} items, {len(dropped)} dropped at load), "
        f"judge: {judge.name}",
        f"- protocol: {settings.get('protocol', 'o3video')}, frames: {settings['video']}, "
        f"prompts: {settings['prompt_version']}",
        "",
        "```",
        format_table(scores),
        "```",
        "",
    ]
    files["report"].write_text("\n".join(report), encoding="utf-8")
    return Finished(scores, files, stats)


def score_config_for(family: ModelFamily, video: VideoSettings, mode: str) -> ScoreConfig:
    """Scoring that maps the model's boxes back to original pixels (default mode), or the
    official rules (no mapping)."""
    if mode == "official":
        return ScoreConfig(mode="official")
    if family.box_space not in ("source_px", "frame_px", "rel1000"):
        raise ValueError(f"family {family.name}: cannot score boxes in {family.box_space}")
    space: AnswerSpace = family.box_space
    return ScoreConfig(
        mode="default",
        box_space=space,
        max_pixels=video.max_pixels,
        min_pixels=video.min_pixels,
        factor=family.factor,
    )


def run_items_of(run_dir: str | os.PathLike[str]) -> list[VStarItem]:
    """The items of a run folder, from its ``run.json`` (data, media root and limit)."""
    meta = read_run_json(run_dir)
    settings = meta["settings"]
    return load_items(settings["data"], settings["media_root"])[: meta.get("limit")]


def run_vstar(
    backend: Backend,
    family: ModelFamily,
    data: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    *,
    media_root: str | os.PathLike[str] | None = None,
    video: VideoSettings | None = None,
    max_new_tokens: int | None = None,
    shard: Shard | None = None,
    batch_size: int = 1,
    limit: int | None = None,
    retry_errors: bool = False,
    progress: Callable[[int, int], None] | None = None,
    protocol: str = "o3video",
    sampling: Sampling | None = None,
) -> tuple[list[VStarItem], RunStats]:
    """Generate (or resume generating) the records of ``shard`` into ``run_dir``: greedy
    decoding, seed 0, the prompts and frames of ``protocol`` (``reference``: the reference
    script's frames whatever ``video`` says, its repetition penalty 1.05 and by default its
    2,048 new tokens; ``o3video``: 512 by default). ``limit`` keeps the first items of the file
    (a later run may raise it and resume). ``sampling`` samples one reply per prompt instead
    (temperature, top-p, seed; kept in ``run.json``), e.g. to see what a model's samples score
    beside its greedy replies. Returns the items of the whole run and what the runner did."""
    name = check_protocol(protocol, inference=True)
    video = video_settings_for(name, video or VideoSettings())
    reference = name == "reference"
    if max_new_tokens is None:
        max_new_tokens = REFERENCE_MAX_NEW_TOKENS if reference else 512
    root = Path(media_root) if media_root is not None else Path(data).parent
    items = load_items(data, root)[:limit]
    settings = RunSettings(
        model=backend.name,
        family=family.name,
        data=os.fspath(Path(data).resolve()),
        data_sha256=file_sha256(data),
        media_root=os.fspath(root.resolve()),
        video=video,
        max_new_tokens=max_new_tokens,
        protocol=name,
        sampling=sampling,
    )
    out = Path(run_dir)
    check_run_json(out, "vstar", settings.to_dict(), limit)
    penalty = REFERENCE_REPETITION_PENALTY if reference else 1.0
    params = SamplingParams(
        temperature=sampling.temperature if sampling else 0.0,
        top_p=sampling.top_p if sampling else 1.0,
        max_new_tokens=max_new_tokens,
        seed=sampling.seed if sampling else 0,
        repetition_penalty=penalty,
    )
    raw = dict(json_entries(Path(data))) if name == "reference" else None
    process = make_process(backend, family, root, video, params, protocol=name, raw_entries=raw)
    stats = run_items(
        items,
        [item_id(i) for i in items],
        process,
        out,
        shard=shard,
        batch_size=batch_size,
        retry_errors=retry_errors,
        progress=progress,
    )
    return items, stats


def show_prompts(
    processor: Any,
    family: ModelFamily,
    data: str | os.PathLike[str],
    *,
    media_root: str | os.PathLike[str] | None = None,
    video: VideoSettings | None = None,
    protocol: str = "o3video",
    n: int = 1,
) -> list[tuple[str, Rendered]]:
    """The first ``n`` items' five requests as the model gets them under ``protocol``
    (:func:`o3video.protocols.show.render_request`): ``(title, rendered)`` each. Needs the
    processor files and the videos, no weights."""
    name = check_protocol(protocol, inference=True)
    video = video_settings_for(name, video or VideoSettings())
    root = Path(media_root) if media_root is not None else Path(data).parent
    items = load_items(data, root)[: max(n, 0)]
    raw = dict(json_entries(Path(data)))
    clips = _ClipCache(root, family, video)
    out = []
    for item in items:
        clip = clips.get(item.vid)
        for key, prompt in vstar_prompts(item, name, family, clip, raw.get(item.index)):
            title = (
                f"item {item.index} ({item.vid}) · {key} · {name} · {clip.num_frames} frames "
                f"{clip.frame_wh[0]}x{clip.frame_wh[1]}"
            )
            out.append((title, render_request(processor, to_messages(prompt, clip), clip)))
    return out

"""Temporal grounding benchmarks (SPEC §7): Charades-STA and TVGBench — loaders, the question,
reading the predicted span, and mIoU with R1@{0.3, 0.5, 0.7}.

The span is read by :func:`o3video.protocols.readers.read_span`
(``From <t>a</t>s to <t>b</t>s``, else
the first two numbers, ``mm:ss`` understood) from the answer part only
(:func:`o3video.protocols.readers.answer_part`: the ``<answer>`` section, else the text
without its
``<think>``), so times quoted while reasoning are not taken for the answer. The
IoU is :func:`o3video.boxes.interval_iou`: a reversed span (end < start) scores 0 and is
counted as ``reversed``; no span scores 0 and is counted as ``unparsable``. R1@m is the share
of items with IoU ≥ m.

>>> parse_grounding("<think>at <t>3</t>s</think><answer>From <t>5</t>s to <t>9.5</t>s</answer>")
{'kind': 'grounding', 'span_s': [5.0, 9.5]}
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from o3video.boxes import interval_iou
from o3video.errors import DataError
from o3video.eval.bench_items import (
    BenchItem,
    Fields,
    check_items,
    fail,
    find_annotations,
    missing_ids,
    read_records,
    register,
    video_folder,
)
from o3video.protocols.readers import read_span

R1_THRESHOLDS = (0.3, 0.5, 0.7)
GROUNDING_TEMPLATE = (
    'When does this happen in the video: "{query}"? Give the start and end time in seconds.'
)

Prediction = str | Mapping[str, Any]
"""The model's raw text, or what :func:`parse_grounding` made of it."""


def grounding_question(item: BenchItem) -> str:
    """:data:`GROUNDING_TEMPLATE` with the item's query (its end punctuation dropped).

    >>> grounding_question(BenchItem("q", "charades_sta", Path("v"), "a person sits.",
    ...                              span_s=(1.0, 2.0)))
    'When does this happen in the video: "a person sits"? Give the start and end time in seconds.'
    """
    return GROUNDING_TEMPLATE.format(query=item.question.strip().rstrip(".!?").strip())


def parse_grounding(text: str) -> dict[str, Any]:
    """JSON-ready reading of a grounding answer: ``{"kind": "grounding", "span_s": [a, b]}``;
    ``None`` and ``"problem": "no_span"`` when no span is found, ``"reversed_span"`` (span
    kept) when it ends before it starts.

    >>> parse_grounding("<answer>around 5 s</answer>")
    {'kind': 'grounding', 'span_s': None, 'problem': 'no_span'}
    """
    span = read_span(text)
    if span is None:
        return {"kind": "grounding", "span_s": None, "problem": "no_span"}
    out: dict[str, Any] = {"kind": "grounding", "span_s": [span[0], span[1]]}
    if span[1] < span[0]:
        out["problem"] = "reversed_span"
    return out


@dataclass(frozen=True)
class SpanScores:
    """mIoU and R1@{0.3,0.5,0.7} of ``n`` items; ``None`` for no items."""

    n: int
    miou: float | None
    r1: tuple[float | None, ...]
    unparsable: int
    reversed: int
    missing: int

    @classmethod
    def of(cls, ious: Sequence[float], unparsable: int, reversed_: int, missing: int) -> SpanScores:
        n = len(ious)
        miou = sum(ious) / n if n else None
        r1 = tuple(sum(x >= m for x in ious) / n if n else None for m in R1_THRESHOLDS)
        return cls(n, miou, r1, unparsable, reversed_, missing)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "miou": self.miou}
        out.update({f"r1@{m}": r for m, r in zip(R1_THRESHOLDS, self.r1, strict=True)})
        out.update(unparsable=self.unparsable, reversed=self.reversed, missing=self.missing)
        return out


@dataclass(frozen=True)
class GroundingScores:
    """Overall and per-group (each ``BenchItem.group`` key, e.g. TVGBench's ``dataset``)
    span scores, and every item's IoU."""

    overall: SpanScores
    groups: dict[str, dict[str, SpanScores]]
    ious: dict[str, float] = field(default_factory=dict)

    def to_dict(self, *, items: bool = False) -> dict[str, Any]:
        """JSON-ready: the overall scores, ``groups`` and (``items=True``) each item's IoU."""
        out = self.overall.to_dict()
        out["groups"] = {
            key: {value: s.to_dict() for value, s in sorted(per.items())}
            for key, per in self.groups.items()
        }
        if items:
            out["ious"] = dict(self.ious)
        return out


def _span(item: BenchItem, prediction: Prediction) -> tuple[float, float] | None:
    parsed = parse_grounding(prediction) if isinstance(prediction, str) else prediction
    if parsed.get("kind") != "grounding":
        raise ValueError(f"item {item.id!r}: prediction kind {parsed.get('kind')!r}, not grounding")
    span = parsed.get("span_s")
    if span is None:
        return None
    if not isinstance(span, list | tuple) or len(span) != 2:
        raise ValueError(f"item {item.id!r}: span_s {span!r} is not [start, end]")
    return float(span[0]), float(span[1])


def score_grounding(
    items: Sequence[BenchItem],
    predictions: Mapping[str, Prediction],
    *,
    allow_missing: bool = False,
) -> GroundingScores:
    """mIoU and R1@m of ``predictions`` (item id → raw text or parsed dict).

    An unparsable or reversed span scores IoU 0 and is counted. A missing prediction raises
    ``ValueError`` unless ``allow_missing`` (IoU 0, counted as ``missing``).

    >>> items = [BenchItem(str(k), "x", Path("v"), "?", span_s=(0.0, 10.0)) for k in range(2)]
    >>> s = score_grounding(items, {"0": "From <t>0</t>s to <t>5</t>s", "1": "?"})
    >>> s.overall.miou, s.overall.r1, s.overall.unparsable
    (0.25, (0.5, 0.5, 0.0), 1)
    """
    missing = missing_ids(items, predictions)
    if missing and not allow_missing:
        raise ValueError(f"{len(missing)} items have no prediction; first: {missing[0]!r}")
    ious: dict[str, float] = {}
    flags: dict[str, tuple[bool, bool, bool]] = {}
    for item in items:
        if item.span_s is None:
            raise ValueError(f"item {item.id!r} has no ground-truth span: use score_mcq")
        span = _span(item, predictions[item.id]) if item.id in predictions else None
        ious[item.id] = 0.0 if span is None else interval_iou(span, item.span_s)
        flags[item.id] = (
            span is None and item.id in predictions,
            span is not None and span[1] < span[0],
            item.id not in predictions,
        )

    def scores(subset: Sequence[BenchItem]) -> SpanScores:
        counts = [sum(flags[it.id][k] for it in subset) for k in range(3)]
        return SpanScores.of([ious[it.id] for it in subset], *counts)

    by: dict[str, dict[str, list[BenchItem]]] = {}
    for item in items:
        for key, value in item.group.items():
            by.setdefault(key, {}).setdefault(value, []).append(item)
    groups = {key: {v: scores(sub) for v, sub in per.items()} for key, per in by.items()}
    return GroundingScores(scores(items), groups, ious)


# --- loaders --------------------------------------------------------------------------------

_CHARADES_LINE = re.compile(r"\s*(\S+)\s+(\S+)\s+(\S+)(?:\s+(\S+))?\s*")
_TVG_ANSWER = re.compile(r"\s*(\d+(?:\.\d*)?)\s*-\s*(\d+(?:\.\d*)?)\s*")


def _checked_span(f: Fields, start_s: float, end_s: float, name: str) -> tuple[float, float]:
    if start_s < 0 or end_s < start_s:
        f.fail(name, f"span [{start_s}, {end_s}] s is negative or reversed")
    return start_s, end_s


def _charades_txt(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``vid start end##sentence`` lines as records (index = 0-based line number); a fourth
    field before ``##`` (``vid start end 0##sentence``, as in a widely used copy of the test
    split) is accepted and kept as ``extra``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read: {e}", path=str(path)) from e
    out = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        head, sep, sentence = line.partition("##")
        m = _CHARADES_LINE.fullmatch(head)
        if not sep or not m:
            expected = "'vid start end##sentence' or 'vid start end N##sentence'"
            fail(path, index, "line", f"expected {expected}, got {line!r}")
        vid, start, end, fourth = m.groups()
        record = {"video": vid, "start": start, "end": end, "caption": sentence}
        out.append((index, record if fourth is None else {**record, "field_4": fourth}))
    return out


@register("charades_sta")
def load_charades_sta(
    root: str | os.PathLike[str],
    videos: str | os.PathLike[str] | None = None,
    *,
    check_videos: bool = True,
) -> list[BenchItem]:
    """Charades-STA test queries from ``charades_sta_test.txt`` (lines ``vid start
    end##sentence``, or ``vid start end 0##sentence`` with a fourth field, kept in ``extra``;
    times in s; the record index in errors is the 0-based line number), or
    the lmms-eval JSON/JSON Lines export (``video`` file name, ``caption``, ``timestamp``
    ``[start, end]``). Videos: ``<root>/Charades_v1_480/<vid>.mp4``. Ids ``<vid>#<index>``."""
    root = Path(root)
    patterns = [
        f"{d}{name}.{ext}"
        for ext in ("txt", "json", "jsonl")
        for d in ("", "Charades_anno/")
        for name in ("charades_sta_test", "Charades_sta_test")
    ]
    (path,) = find_annotations(root, patterns, "Charades-STA")[:1]
    defaults = ("Charades_v1_480", "Charades_v1", "videos")
    folder = video_folder(root, videos, defaults, "Charades-STA", check_videos)
    records = _charades_txt(path) if path.suffix == ".txt" else list(read_records(path))
    items = []
    for index, raw in records:
        f = Fields(raw, path, index)
        if "timestamp" in f.raw:
            stamp = f.get("timestamp")
            if not isinstance(stamp, list) or len(stamp) != 2:
                f.fail("timestamp", f"expected [start, end], got {stamp!r}")
            t = Fields({"start": stamp[0], "end": stamp[1]}, path, index, prefix="timestamp.")
            start_s, end_s = t.number("start"), t.number("end")
        else:
            start_s, end_s = f.number("start"), f.number("end")
        name = f.text("video")
        vid = name.removesuffix(".mp4")
        items.append(
            BenchItem(
                id=f"{vid}#{index}",
                benchmark="charades_sta",
                video=folder / f"{vid}.mp4",
                question=f.text("caption"),
                span_s=_checked_span(f, start_s, end_s, "start"),
                extra={"field_4": f.text("field_4")} if f.has("field_4") else {},
            )
        )
    return check_items(items, folder, check_videos)


@register("tvgbench")
def load_tvgbench(
    root: str | os.PathLike[str],
    videos: str | os.PathLike[str] | None = None,
    *,
    check_videos: bool = True,
) -> list[BenchItem]:
    """TVGBench (Time-R1, ``xiaomi-research/time-r1``) from ``annotations/tvgbench.json``: a
    list of ``path`` (the video; its file name is used), ``question`` (the query), ``answer``
    (``"13.4-28.1"`` s, within ``[0, duration]`` of the whole file), ``duration`` (s),
    ``dataset_name``, ``qsemtype``, ``bins`` and ``start``/``end``. Videos:
    ``<root>/videos/tvgbench_data/<name>`` (``root`` = Time-R1's ``dataset/timer1``). Ids
    ``<video stem>#<index>``.

    ``start``/``end`` are not a window: where they are set their length is the video's
    duration while the answer lies in ``[0, duration]``, and Time-R1 never samples from them.
    The whole video is shown; they are kept in ``extra`` (``record_start_s``,
    ``record_end_s``) only. Groups: ``dataset`` — ``dataset_name``, else ``bins.dataset``
    (Time-R1's binning field, which names the dataset of every record: the NLQ records
    without ``dataset_name`` are ``egonlq``); a record with neither is an error — and
    ``qsemtype`` where given."""
    root = Path(root)
    patterns = ("tvgbench.json", "annotations/tvgbench.json", "timer1/annotations/tvgbench.json")
    (path,) = find_annotations(root, patterns, "TVGBench")[:1]
    defaults = ("videos/tvgbench_data", "tvgbench_data", "../videos/tvgbench_data", "videos")
    folder = video_folder(root, videos, defaults, "TVGBench", check_videos)
    items = []
    for index, raw in read_records(path):
        f = Fields(raw, path, index)
        m = _TVG_ANSWER.fullmatch(f.text("answer"))
        if m is None:
            f.fail("answer", f"expected 'start-end' in seconds, got {f.text('answer')!r}")
        span = _checked_span(f, float(m.group(1)), float(m.group(2)), "answer")
        name = Path(f.text("path")).name
        group = {"dataset": _tvg_dataset(f)}
        if f.has("qsemtype"):
            group["qsemtype"] = f.text("qsemtype")
        items.append(
            BenchItem(
                id=f"{Path(name).stem}#{index}",
                benchmark="tvgbench",
                video=folder / name,
                question=f.text("question"),
                span_s=span,
                group=group,
                extra={
                    "duration_s": f.optional_number("duration"),
                    "record_start_s": f.optional_number("start"),
                    "record_end_s": f.optional_number("end"),
                },
            )
        )
    return check_items(items, folder, check_videos)


def _tvg_dataset(f: Fields) -> str:
    """The record's dataset: ``dataset_name``, else ``bins.dataset``."""
    if f.has("dataset_name"):
        return f.text("dataset_name")
    if not f.has("bins"):
        f.fail("dataset_name", "missing, and no 'bins.dataset' to name the record's dataset")
    bins = Fields(f.get("bins"), f.path, f.index, prefix="bins.")
    return bins.text("dataset")

"""V-STaR scoring (SPEC §7): What accuracy, When tIoU and Where vIoU per chain, AM/LGM.

A results file is a JSON list of V-STaR items, each with the model's five answers:
``answer_vqa`` (What), ``answer_temporal`` / ``answer_spatial`` (chain 1: When, then Where) and
``answer_spatial_2`` / ``answer_temporal_2`` (chain 2). The What answers are rated 0–3 by a judge
beforehand; the ratings come as a list aligned with the results (``-1`` unparsable, ``null``
where the item has no What answer). Per chain k (SPEC §7):

- Acc = share of items rated ≥ 2; tIoU_k = mean temporal IoU; vIoU_k = mean over items of the
  mean over ground-truth boxes of the best IoU among the boxes predicted for that second;
- AM_k = (Acc + tIoU_k + vIoU_k) / 3, LGM_k = −(ln(1−Acc) + ln(1−tIoU_k) + ln(1−vIoU_k)) / 3,
  mAM and mLGM their means over the two chains; R1@{0.3,0.5,0.7} of tIoU, and the share of
  ground-truth boxes with IoU ≥ {0.1,0.3,0.5,0.7,0.9} (per item, then mean over items).

Our runner's results file (:func:`o3video.eval.vstar.results_file`) is written as the reference
pipeline writes it: ``answer_temporal*`` hold the parsed ``[start, end]`` (``[]`` when
unparsable), ``answer_spatial*`` the parsed boxes by second in original pixels (or ``null``),
the replies are kept in ``answer_temporal_pre``, ``answer_spatial_pre``, ``answer_spatial_pre_2``
and ``answer_temporal_pre_2``, and each item records ``box_space`` (the space of the boxes in
its replies) and ``input_shape`` (``[w, h]`` of the frames shown). An entry the loader rejected
is kept with a ``dropped`` field saying why: it counts in the overall denominators
(``n_dropped``), never silently leaves them.

``mode="official"`` reproduces V-STaR-Bench/V-STaR ``eval.py``: an item with an empty What
answer is skipped entirely (out of every IoU mean) but still counts in the overall accuracy
denominator (not in a domain's or duration's, which use the items scored); boxes are matched
by ``str(timestamp)``; predicted boxes are never rescaled; the duration is
``round(frame_count / fps, 2)``; an undefined value (ln 0, an empty group) is ``None`` where the
script would crash or print nan; a dropped entry (no answers) is skipped like an item without a
What answer. ``mode="default"`` fixes these and says so in ``notes``: it reads the replies
(the ``*_pre`` fields when the file has them) with :mod:`o3video.protocols.readers`, in the box
space and
frame size each item records (else the config's), and counts a dropped entry as zero in every
overall mean. A results file may lack ``temporal_question`` and ``spatial_question*``.

>>> cfg = ScoreConfig(mode="default")
>>> cfg.box_space
'source_px'
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from o3video.boxes import WH, XYXY, convert_xyxy, interval_iou, iou
from o3video.data.load import read_json
from o3video.data.vstar import VStarItem, item_from_dict
from o3video.errors import BoxSpaceError, DataError
from o3video.eval.vstar_parse import (
    official_best_iou,
    official_temporal_iou,
    official_time_answer,
    parse_box_answer,
    parse_time_answer,
)
from o3video.video import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, QWEN25_FACTOR, smart_resize

Mode = Literal["official", "default"]
AnswerSpace = Literal["source_px", "frame_px", "rel1000"]
ANSWER_KEYS = (
    "answer_vqa",
    "answer_temporal",
    "answer_spatial",
    "answer_spatial_2",
    "answer_temporal_2",
)
REPLY_KEYS = {
    "answer_temporal": "answer_temporal_pre",
    "answer_spatial": "answer_spatial_pre",
    "answer_spatial_2": "answer_spatial_pre_2",
    "answer_temporal_2": "answer_temporal_pre_2",
}
"""Answer field → the field keeping the reply it was parsed from (the reference's names)."""
ANSWER_SPACES: tuple[AnswerSpace, ...] = ("source_px", "frame_px", "rel1000")
R1_THRESHOLDS = (0.3, 0.5, 0.7)
VIOU_THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)
LGM_EPS = 1e-9  # default mode: ln(1 − x) with x clamped to ≤ 1 − 1e-9


@dataclass(frozen=True)
class ScoreConfig:
    """How to score: ``mode``, and (default mode only) the space the model gave boxes in.

    ``frame_px`` boxes are mapped from the resized frame, ``smart_resize(height, width,
    factor, min_pixels, max_pixels)`` of each item, to its original pixels."""

    mode: Mode = "default"
    box_space: AnswerSpace = "source_px"
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_pixels: int = DEFAULT_MIN_PIXELS
    factor: int = QWEN25_FACTOR

    def __post_init__(self) -> None:
        if self.mode == "official" and self.box_space != "source_px":
            raise BoxSpaceError("official mode never rescales boxes; use --mode default")


@dataclass(frozen=True)
class ItemScore:
    """One item's scores; ``scored`` is False where official mode skips it (no What answer)."""

    index: int
    domain: str
    duration: str
    scored: bool
    rating: int | None
    correct: bool
    tiou: tuple[float, float]
    viou: tuple[float, float]
    viou_at: tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class GroupScores:
    """Scores of a set of items (all, a domain, a duration). ``None`` = undefined."""

    n: int
    n_scored: int
    acc: float | None
    mean_rating: float | None
    tiou: tuple[float | None, float | None]
    viou: tuple[float | None, float | None]
    r1: tuple[tuple[float | None, ...], tuple[float | None, ...]]
    viou_at: tuple[tuple[float | None, ...], tuple[float | None, ...]]
    am: tuple[float | None, float | None]
    lgm: tuple[float | None, float | None]
    mam: float | None
    mlgm: float | None
    n_dropped: int = 0
    """Entries of the file rejected at load, in ``n`` (none of them scored)."""

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready dict: ``acc, tiou_1, tiou_2, viou_1, …, mlgm``."""
        out: dict[str, Any] = {"n": self.n, "n_scored": self.n_scored}
        out.update(n_dropped=self.n_dropped, acc=self.acc)
        out["mean_rating"] = self.mean_rating
        for k in (0, 1):
            out[f"tiou_{k + 1}"], out[f"viou_{k + 1}"] = self.tiou[k], self.viou[k]
            out[f"am_{k + 1}"], out[f"lgm_{k + 1}"] = self.am[k], self.lgm[k]
            out[f"r1_{k + 1}"], out[f"viou_at_{k + 1}"] = list(self.r1[k]), list(self.viou_at[k])
        out["mam"], out["mlgm"] = self.mam, self.mlgm
        return out


@dataclass(frozen=True)
class VStarScores:
    """The report: overall, per domain, per duration, the mode and what it changed."""

    mode: Mode
    overall: GroupScores
    by_domain: dict[str, GroupScores]
    by_duration: dict[str, GroupScores]
    items: tuple[ItemScore, ...]
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            **self.overall.to_dict(),
            "r1_thresholds": list(R1_THRESHOLDS),
            "viou_thresholds": list(VIOU_THRESHOLDS),
            "by_domain": {k: v.to_dict() for k, v in self.by_domain.items()},
            "by_duration": {k: v.to_dict() for k, v in self.by_duration.items()},
            "notes": list(self.notes),
        }


def duration_class(duration_s: float) -> str:
    """``short`` < 60 s ≤ ``medium`` < 180 s ≤ ``long`` (SPEC §7)."""
    return "short" if duration_s < 60 else "medium" if duration_s < 180 else "long"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _frame_wh(item: VStarItem, cfg: ScoreConfig) -> tuple[int, int]:
    h, w = smart_resize(item.height, item.width, cfg.factor, cfg.min_pixels, cfg.max_pixels)
    return (w, h)


@dataclass(frozen=True)
class BoxFrame:
    """The space a reply's boxes are in, and the size of the frames they were drawn on."""

    space: AnswerSpace
    frame_wh: WH | None


def box_frame(raw: dict[str, Any], item: VStarItem, cfg: ScoreConfig, where: str) -> BoxFrame:
    """The item's own ``box_space`` and ``input_shape`` when it records them, else the
    config's space and the frame size its budget gives (:class:`DataError` for a bad one)."""
    space = raw.get("box_space", cfg.box_space)
    if space not in ANSWER_SPACES:
        msg = f"{where}, box_space: expected one of {', '.join(ANSWER_SPACES)}, got {space!r:.40}"
        raise DataError(msg, path=where.split(":")[0], index=item.index, field="box_space")
    shape = raw.get("input_shape")
    if shape is None:
        return BoxFrame(space, _frame_wh(item, cfg) if space == "frame_px" else None)
    ok = isinstance(shape, list | tuple) and len(shape) == 2
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in shape)
    if not ok or not all(math.isfinite(v) and v > 0 for v in shape):
        msg = f"{where}, input_shape: expected [width, height] > 0, got {shape!r:.40}"
        raise DataError(msg, path=where.split(":")[0], index=item.index, field="input_shape")
    return BoxFrame(space, (int(shape[0]), int(shape[1])))


def _default_viou(item: VStarItem, answer: Any, frame: BoxFrame) -> list[float]:
    """Per ground-truth box: best IoU of the boxes predicted for its second (0 if none)."""
    pred = parse_box_answer(answer)
    ious = []
    for gt in item.boxes:
        boxes: Sequence[XYXY] = pred.get(float(gt.timestamp_s), ())
        if frame.space != "source_px":
            boxes = [
                convert_xyxy(
                    b, frame.space, "source_px", source_wh=item.frame_wh, frame_wh=frame.frame_wh
                )
                for b in boxes
            ]
        ious.append(max((iou(gt.xyxy, b) for b in boxes), default=0.0))
    return ious


def _reply(raw: dict[str, Any], key: str) -> Any:
    """What default mode reads for an answer field: the reply kept in its ``*_pre`` field
    when the file has it, else the field itself (text or parsed)."""
    reply = raw.get(REPLY_KEYS[key])
    return reply if isinstance(reply, str) else raw.get(key)


def _official_viou(raw: dict[str, Any], item: VStarItem, answer: Any) -> list[float]:
    """``calculate_spatial_metrics``: key ``str(timestamp)`` as written in the file."""
    if not answer or not isinstance(answer, dict):  # a str/list answer: zeros (the script crashes)
        return [0.0] * len(item.boxes)
    ious = []
    for entry, gt in zip(raw["bboxes"], item.boxes, strict=True):
        key = str(entry["timestamp"]) if "timestamp" in entry else next(iter(entry)).split("_")[0]
        ious.append(official_best_iou(gt.xyxy, answer[key]) if key in answer else 0.0)
    return ious


def score_item(
    raw: dict[str, Any],
    item: VStarItem,
    rating: int | None,
    cfg: ScoreConfig,
    *,
    where: str = "<results>",
) -> ItemScore:
    """Score one item (SPEC §7) from its raw record (the five answers) and What rating."""
    official = cfg.mode == "official"
    frame = None if official else box_frame(raw, item, cfg, f"{where}: record {item.index}")
    tious, vious, ats = [], [], []
    for t_key, s_key in (
        ("answer_temporal", "answer_spatial"),
        ("answer_temporal_2", "answer_spatial_2"),
    ):
        if official:
            tious.append(official_temporal_iou(item.span_s, official_time_answer(raw.get(t_key))))
            per_box = _official_viou(raw, item, raw.get(s_key))
        else:
            assert frame is not None
            span = parse_time_answer(_reply(raw, t_key))
            tious.append(0.0 if span is None else interval_iou(item.span_s, span))
            per_box = _default_viou(item, _reply(raw, s_key), frame)
        vious.append(sum(per_box) / len(per_box))
        ats.append(tuple(sum(v >= t for v in per_box) / len(per_box) for t in VIOU_THRESHOLDS))
    duration_s = round(item.duration_s, 2) if official else item.duration_s
    return ItemScore(
        index=item.index,
        domain=item.domain,
        duration=duration_class(duration_s),
        scored=bool(raw.get("answer_vqa")) or not official,
        rating=rating,
        correct=rating is not None and rating >= 2,
        tiou=(tious[0], tious[1]),
        viou=(vious[0], vious[1]),
        viou_at=(ats[0], ats[1]),
    )


def _lgm(values: Sequence[float | None], official: bool, notes: set[str]) -> float | None:
    total = 0.0
    for x in values:
        if x is None:
            return None
        if x >= 1.0:
            if official:
                notes.add(
                    "LGM undefined (a term is 1; the official script raises a math domain error)"
                )
                return None
            notes.add(f"LGM: a term equal to 1 was clamped to 1 - {LGM_EPS:g}")
            x = 1.0 - LGM_EPS
        total += math.log(1.0 - x)
    return -total / 3 + 0.0  # + 0.0: no "-0.0" when every term is 0


def aggregate(
    items: Sequence[ItemScore],
    cfg: ScoreConfig,
    notes: set[str],
    *,
    denominator: int | None = None,
    dropped: int = 0,
) -> GroupScores:
    """Scores of ``items`` (SPEC §7). ``denominator``: the accuracy denominator (official overall
    uses every item of the file; groups use the items scored). ``dropped`` entries of the file
    (rejected at load, no answers) are in ``denominator`` and, in default mode, count as zero
    in every mean."""
    official = cfg.mode == "official"
    scored = [s for s in items if s.scored]
    if dropped and not official:
        zeros = ((0.0,) * len(VIOU_THRESHOLDS),) * 2
        zero = ItemScore(-1, "", "", True, None, False, (0.0, 0.0), (0.0, 0.0), zeros)
        scored += [zero] * dropped
    den = denominator if denominator is not None else len(scored)
    acc = sum(s.correct for s in scored) / den if den else None
    ratings = [max(s.rating, 0) for s in scored if s.rating is not None]  # -1 counts as 0
    chains = []
    for k in (0, 1):
        tiou = _mean([s.tiou[k] for s in scored])
        viou = _mean([s.viou[k] for s in scored])
        r1 = tuple(_mean([float(s.tiou[k] >= t) for s in scored]) for t in R1_THRESHOLDS)
        at = tuple(_mean([s.viou_at[k][j] for s in scored]) for j in range(len(VIOU_THRESHOLDS)))
        parts = (acc, tiou, viou)
        am = None if None in parts else sum(p for p in parts if p is not None) / 3
        chains.append((tiou, viou, r1, at, am, _lgm(parts, official, notes)))
    (t1, v1, r1_1, a1, am1, l1), (t2, v2, r1_2, a2, am2, l2) = chains
    return GroupScores(
        n=len(items) + dropped,
        n_scored=len(scored),
        n_dropped=dropped,
        acc=acc,
        mean_rating=_mean(ratings),
        tiou=(t1, t2),
        viou=(v1, v2),
        r1=(r1_1, r1_2),
        viou_at=(a1, a2),
        am=(am1, am2),
        lgm=(l1, l2),
        mam=None if am1 is None or am2 is None else (am1 + am2) / 2,
        mlgm=None if l1 is None or l2 is None else (l1 + l2) / 2,
    )


def _dropped(raw: Any) -> str | None:
    """Why an entry was rejected at load (its ``dropped`` field), ``None`` for an item."""
    if isinstance(raw, dict) and "dropped" in raw:
        return str(raw["dropped"])
    return None


def _check(raw: Any, index: int, path: str) -> VStarItem:
    if not isinstance(raw, dict) or not any(k in raw for k in ANSWER_KEYS):
        msg = f"{path}: record {index} has none of {', '.join(ANSWER_KEYS)}: not a results file?"
        raise DataError(msg, path=path, index=index)
    item, issues = item_from_dict(raw, index, for_scoring=True)
    if item is None:
        first = next(i for i in issues if i.severity == "error")
        raise DataError(f"{path}: {first}", path=path, index=index, field=first.field)
    return item


def _check_rating(rating: Any, raw: dict[str, Any], index: int, path: str) -> int | None:
    if rating is not None and (
        isinstance(rating, bool) or not isinstance(rating, int) or rating not in (-1, 0, 1, 2, 3)
    ):
        raise DataError(
            f"{path}: rating {index} must be 0-3, -1 or null, got {rating!r:.40}",
            path=path,
            index=index,
        )
    if _dropped(raw) is not None:
        if rating is not None:
            msg = f"{path}: rating {index} is {rating!r} but entry {index} was dropped at load"
            raise DataError(msg, path=path, index=index)
        return None
    if (rating is None) == bool(raw.get("answer_vqa")):
        has = "has" if raw.get("answer_vqa") else "has no"
        msg = f"{path}: rating {index} is {rating!r} but item {index} {has} What answer"
        raise DataError(msg, path=path, index=index)
    return rating


def score_vstar(
    records: Sequence[Any],
    ratings: Sequence[Any],
    cfg: ScoreConfig | None = None,
    *,
    results_path: str = "<results>",
    ratings_path: str = "<ratings>",
) -> VStarScores:
    """Score raw result records with their What ratings (SPEC §7); :class:`DataError` names
    the file and index of a bad record or rating."""
    cfg = cfg or ScoreConfig()
    if len(ratings) != len(records):
        msg = f"{ratings_path}: {len(ratings)} ratings for {len(records)} results in {results_path}"
        raise DataError(msg, path=ratings_path)
    items, dropped = [], []
    for i, raw in enumerate(records):
        rating = _check_rating(ratings[i], raw, i, ratings_path)
        if _dropped(raw) is not None:
            dropped.append(i)
            continue
        item = _check(raw, i, results_path)
        items.append(score_item(raw, item, rating, cfg, where=results_path))
    notes: set[str] = set()
    official = cfg.mode == "official"
    overall = aggregate(
        items, cfg, notes, denominator=len(items) + len(dropped), dropped=len(dropped)
    )

    def groups(key: str) -> dict[str, GroupScores]:
        names = sorted({getattr(s, key) for s in items})
        return {n: aggregate([s for s in items if getattr(s, key) == n], cfg, notes) for n in names}

    skipped = sum(not s.scored for s in items)
    if official and skipped:
        notes.add(f"{skipped} item(s) without a What answer left out of every IoU mean (official)")
    if dropped:
        counted = "in the What denominator" if official else "as zero in every overall mean"
        notes.add(
            f"{len(dropped)} entry(ies) dropped at load (first: record {dropped[0]}: "
            f"{_dropped(records[dropped[0]])}) counted {counted}, not in any group"
        )
    if not official:
        own = any(isinstance(r, dict) and "box_space" in r for r in records)
        space = "each item's recorded box_space" if own else cfg.box_space
        notes |= {
            "default mode: seconds matched as numbers ('3.0' is second 3)",
            "default mode: items without a What answer kept in every mean (What counted wrong)",
            f"default mode: predicted boxes read in {space}, mapped to original pixels",
            "default mode: durations not rounded; replies (*_pre) read by "
            "o3video.protocols.readers",
        }
    return VStarScores(
        mode=cfg.mode,
        overall=overall,
        by_domain=groups("domain"),
        by_duration=groups("duration"),
        items=tuple(items),
        notes=tuple(sorted(notes)),
    )


def _read_json_list(path: str | os.PathLike[str], what: str) -> list[Any]:
    p = Path(path)
    data = read_json(p, what)
    if not isinstance(data, list):
        raise DataError(f"{p}: the {what} file must hold a JSON list", path=str(p))
    return data


def score_vstar_files(
    results_path: str | os.PathLike[str],
    ratings_path: str | os.PathLike[str],
    cfg: ScoreConfig | None = None,
) -> VStarScores:
    """Read a results file and its ratings file (JSON lists) and score them (SPEC §7).

    >>> score_vstar_files("results.json", "ratings.json").overall.mam  # doctest: +SKIP
    0.25
    """
    records = _read_json_list(results_path, "results")
    ratings = _read_json_list(ratings_path, "ratings")
    return score_vstar(
        records, ratings, cfg, results_path=str(results_path), ratings_path=str(ratings_path)
    )


def _pct(x: float | None) -> str:
    # One space before every cell: LGM is unbounded (a clamped perfect term gives ~2072 %).
    return "    n/a" if x is None else f" {100 * x + 0.0:6.1f}"


def _at(thresholds: tuple[float, ...], values: tuple[float | None, ...]) -> str:
    return ", ".join(f"@{t:g} {_pct(v).strip()}" for t, v in zip(thresholds, values, strict=True))


def _row(label: str, g: GroupScores) -> str:
    cells = (g.acc, g.tiou[0], g.tiou[1], g.viou[0], g.viou[1], g.mam)
    return f"{label:<16}{g.n:>6}" + "".join(_pct(c) for c in cells) + f"{_pct(g.mlgm)}"


def format_table(scores: VStarScores) -> str:
    """The readable report: one row per group (in %), then recall thresholds and notes."""
    head = f"{'V-STaR (' + scores.mode + ')':<16}{'n':>6}" + "".join(
        f" {h:>6}" for h in ("What", "When1", "When2", "Where1", "Where2", "mAM", "mLGM")
    )
    lines = [head, _row("all", scores.overall)]
    lines += [_row(f"  {k}", g) for k, g in scores.by_duration.items()]
    lines += [_row(f"  {k}", g) for k, g in scores.by_domain.items()]
    o = scores.overall
    for k in (0, 1):
        r1, at = _at(R1_THRESHOLDS, o.r1[k]), _at(VIOU_THRESHOLDS, o.viou_at[k])
        lines.append(f"chain {k + 1}: AM {_pct(o.am[k]).strip()}, LGM {_pct(o.lgm[k]).strip()}")
        lines.append(f"  tIoU R1 {r1}")
        lines.append(f"  vIoU    {at}")
    lines += [f"note: {n}" for n in scores.notes]
    return "\n".join(lines)

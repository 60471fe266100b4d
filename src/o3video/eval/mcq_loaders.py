"""Loaders of the multiple-choice video benchmarks (SPEC §7) from their public files:
VideoMME, WorldSense, VideoMMMU, MVBench and STAR. Each registers itself in
:data:`o3video.eval.benchmarks.BENCHMARKS`; prompts, answer reading and scores are in
:mod:`o3video.eval.mcq`.
"""

from __future__ import annotations

import ast
import csv
import functools
import io
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from o3video.errors import DataError
from o3video.eval.bench_items import (
    LETTERS,
    BenchItem,
    Fields,
    check_items,
    fail,
    find_annotations,
    read_records,
    register,
    strip_letters,
    video_folder,
)

# --- loaders --------------------------------------------------------------------------------


def _letter_of(f: Fields, name: str, answer: str, options: Sequence[str]) -> str:
    """The letter of the option whose text is ``answer`` (MVBench, STAR give the text)."""
    hits = [x for x, o in zip(LETTERS, options, strict=False) if o == answer.strip()]
    if len(hits) != 1:
        why = "is none of the options" if not hits else "matches several options"
        f.fail(name, f"answer {answer!r} {why} {list(options)}")
    return hits[0]


def _raw_texts(f: Fields, name: str) -> list[str]:
    """The list of strings ``name`` exactly as the file holds it (checked by ``f.texts``
    first): the reference prompts print options verbatim."""
    f.texts(name)
    return [str(v) for v in f.get(name)]


@register("videomme")
def load_videomme(
    root: str | os.PathLike[str],
    videos: str | os.PathLike[str] | None = None,
    *,
    check_videos: bool = True,
) -> list[BenchItem]:
    """VideoMME from the ``lmms-lab/Video-MME`` release: ``videomme/test-*.parquet`` (needs
    pyarrow), or the table exported as ``videomme.json``/``.jsonl``; one record per question
    with ``question_id``, ``videoID``, ``duration`` (short/medium/long), ``domain``,
    ``task_type``, ``question``, ``options`` (``["A. …", …]``) and ``answer`` (a letter).
    Videos: ``<root>/data/<videoID>.mp4``. Groups: duration, domain, task_type."""
    root = Path(root)
    files = find_annotations(
        root,
        ("videomme/test-*.parquet", "videomme/*.parquet", "videomme.jsonl", "videomme.json"),
        "VideoMME",
    )
    folder = video_folder(root, videos, ("data", "videos"), "VideoMME", check_videos)
    items = []
    for path in files:
        for index, raw in read_records(path):
            f = Fields(raw, path, index)
            options = strip_letters(f.texts("options"))
            duration = f.text("duration")
            if duration not in ("short", "medium", "long"):
                f.fail("duration", f"expected short, medium or long, got {duration!r}")
            group = {"duration": duration}
            group.update({k: f.text(k) for k in ("domain", "task_type") if f.has(k)})
            items.append(
                BenchItem(
                    id=f.text("question_id"),
                    benchmark="videomme",
                    video=folder / f"{f.text('videoID')}.mp4",
                    question=f.text("question"),
                    options=options,
                    answer=f.letter("answer", len(options)),
                    group=group,
                    extra={
                        "sub_category": f.optional_text("sub_category"),
                        "options_raw": _raw_texts(f, "options"),
                    },
                )
            )
    return check_items(items, folder, check_videos)


@register("worldsense")
def load_worldsense(
    root: str | os.PathLike[str],
    videos: str | os.PathLike[str] | None = None,
    *,
    check_videos: bool = True,
) -> list[BenchItem]:
    """WorldSense from ``worldsense_qa.json`` (``honglyhly/WorldSense``): one object keyed by
    video id, each with ``domain``, ``duration``, ``sub_category``, … and questions
    ``task0``, ``task1``, … of ``task_domain``, ``task_type``, ``question``, ``candidates``
    (``["A. …", …]``) and ``answer`` (a letter). Videos: ``<root>/videos/<video id>.mp4``.
    Ids ``<video id>/<taskN>``; groups: domain, task_domain, task_type. The record index in
    errors is the video's position in the file.

    Or from ``WorldSense.tsv``, the table the reference evaluation reads (one question per
    row; :func:`_worldsense_tsv`). ``worldsense_qa.json`` is taken when a folder has both."""
    root = Path(root)
    patterns = ("worldsense_qa.json", "WorldSense.tsv")
    (path,) = find_annotations(root, patterns, "WorldSense")[:1]
    if path.suffix.lower() == ".tsv":
        return _worldsense_tsv(path, root, videos, check_videos)
    folder = video_folder(root, videos, ("videos",), "WorldSense", check_videos)
    entries = [raw for _, raw in read_records(path)]
    # read_records takes a one-element list and a lone object alike: look at the first byte
    listed = path.read_text(encoding="utf-8").lstrip().startswith("[")
    if listed or len(entries) != 1 or not isinstance(entries[0], dict):
        fail(path, None, None, "expected one JSON object keyed by video id")
    items = []
    for index, (key, raw) in enumerate(entries[0].items()):
        v = Fields(raw, path, index, prefix=f"{key}.")
        tasks = [t for t in v.raw if t.startswith("task") and isinstance(v.raw[t], dict)]
        if not tasks:
            v.fail("task0", "no questions (task0, task1, …) for this video")
        for task in tasks:
            f = Fields(v.raw[task], path, index, prefix=f"{key}.{task}.")
            options = strip_letters(f.texts("candidates"))
            group = {"domain": v.text("domain")} if v.has("domain") else {}
            group.update({k: f.text(k) for k in ("task_domain", "task_type") if f.has(k)})
            items.append(
                BenchItem(
                    id=f"{key}/{task}",
                    benchmark="worldsense",
                    video=folder / f"{key}.mp4",
                    question=f.text("question"),
                    options=options,
                    answer=f.letter("answer", len(options)),
                    group=group,
                    extra={
                        "duration": v.raw.get("duration"),
                        "options_raw": _raw_texts(f, "candidates"),
                    },
                )
            )
    return check_items(items, folder, check_videos)


WORLDSENSE_TSV_COLUMNS = ("video", "question", "candidates", "answer")
"""The columns a ``WorldSense.tsv`` must have (others are read when present: ``index``,
``domain``, ``task_domain``, ``task_type``, ``duration``)."""


def _worldsense_tsv(
    path: Path, root: Path, videos: str | os.PathLike[str] | None, check_videos: bool
) -> list[BenchItem]:
    """WorldSense as the reference evaluation reads it: a tab-separated table with a header,
    one question per row, ``video`` (the file name without ``.mp4``), ``question``,
    ``candidates`` (a Python list literal of ``"A. …"`` strings) and ``answer`` (a letter).
    Videos: ``<folder of the file>/<video>.mp4`` (or ``videos/``). Ids ``<video>#<index>``
    (the ``index`` column, else the row number); the record index in errors is the row
    number (0 = the first row after the header)."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read: {e}", path=str(path)) from e
    missing = [c for c in WORLDSENSE_TSV_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        what = f"no column {', '.join(missing)}" if rows else "no rows"
        fail(
            path, None, None, f"{what}; expected a header with {', '.join(WORLDSENSE_TSV_COLUMNS)}"
        )
    folder = video_folder(root, videos, (".", "videos"), "WorldSense", check_videos)
    items = []
    for index, row in enumerate(rows):
        f = Fields({k: v for k, v in row.items() if k is not None and v != ""}, path, index)
        text = f.text("candidates")
        try:
            listed = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            listed = None
        if not isinstance(listed, list):
            f.fail("candidates", f"expected a list literal of options, got {text!r:.60}")
        listed_fields = Fields({"candidates": listed}, path, index)
        options = strip_letters(listed_fields.texts("candidates"))
        group = {k: f.text(k) for k in ("domain", "task_domain", "task_type") if f.has(k)}
        video = f.text("video").removesuffix(".mp4")
        key = f.text("index") if f.has("index") else str(index)
        items.append(
            BenchItem(
                id=f"{video}#{key}",
                benchmark="worldsense",
                video=folder / f"{video}.mp4",
                question=f.text("question"),
                options=options,
                answer=f.letter("answer", len(options)),
                group=group,
                extra={
                    "duration": f.optional_text("duration"),
                    "options_raw": _raw_texts(listed_fields, "candidates"),
                },
            )
        )
    return check_items(items, folder, check_videos)


VIDEOMMMU_SPLITS = ("Perception", "Comprehension", "Adaptation")
_MMMU_SUBJECT = re.compile(r"^[^_]+_(.+)_\d+$")


@register("videommmu")
def load_videommmu(
    root: str | os.PathLike[str],
    videos: str | os.PathLike[str] | None = None,
    *,
    check_videos: bool = True,
    splits: Sequence[str] = VIDEOMMMU_SPLITS,
) -> list[BenchItem]:
    """VideoMMMU from the ``lmms-lab/VideoMMMU`` release: per split (Perception,
    Comprehension, Adaptation) ``<Split>/test-*.parquet`` (needs pyarrow) or
    ``<Split>.json``/``.jsonl``; records with ``id`` (``validation_<Subject>_<n>``),
    ``question``, ``question_type`` (``multiple-choice``, else open), ``options`` and
    ``answer`` (a letter, or the open answer). Videos: ``<id>.mp4`` in ``videos`` or one of
    its sub-folders (lmms-eval unpacks them by discipline: ``Art/``, ``Science/``, …),
    default ``<root>/videos``, else ``<root>``. Ids ``<split>/<id>`` (the three splits share
    video ids); groups: split, question_type, subject."""
    root = Path(root)
    folder = video_folder(root, videos, ("videos", "."), "VideoMMMU", check_videos)
    found: dict[str, Path] = {}
    if folder.is_dir():
        for p in [*folder.glob("*/*.mp4"), *folder.glob("*.mp4")]:
            found[p.name] = p
    items = []
    for split in splits:
        patterns = (f"{split}/test-*.parquet", f"{split}/*.parquet", f"{split}.jsonl")
        files = find_annotations(root, (*patterns, f"{split}.json"), f"VideoMMMU {split}")
        for path in files:
            for index, raw in read_records(path):
                f = Fields(raw, path, index)
                vid, qtype = f.text("id"), f.text("question_type")
                options = strip_letters(f.texts("options")) if qtype == "multiple-choice" else ()
                answer = f.letter("answer", len(options)) if options else f.text("answer")
                group = {"split": split.lower(), "question_type": qtype}
                m = _MMMU_SUBJECT.match(vid)
                if m:
                    group["subject"] = m.group(1)
                items.append(
                    BenchItem(
                        id=f"{split.lower()}/{vid}",
                        benchmark="videommmu",
                        video=found.get(f"{vid}.mp4", folder / f"{vid}.mp4"),
                        question=f.text("question"),
                        options=options,
                        answer=answer,
                        group=group,
                        extra={
                            "image_at_end": split == "Adaptation",
                            "options_raw": _raw_texts(f, "options") if options else [],
                            **_image_source(raw, path, index),
                        },
                    )
                )
    return check_items(items, folder, check_videos)


def _image_source(raw: Any, path: Path, index: int) -> dict[str, Any]:
    """``{"image_source": {"file", "record"}}`` when the record carries its question image as
    bytes (VideoMMMU Adaptation's parquet ``image`` column), else ``{}``: the bytes stay in
    the file (an item is JSON-ready) and :func:`question_image` reads them back."""
    image = raw.get("image") if isinstance(raw, Mapping) else None
    if isinstance(image, Mapping) and isinstance(image.get("bytes"), bytes | bytearray):
        return {"image_source": {"file": str(path), "record": index}}
    return {}


@functools.lru_cache(maxsize=4)
def _image_column(file: str) -> tuple[bytes | None, ...]:
    """The ``image`` bytes of every record of ``file`` (``None`` where it has none)."""
    out: list[bytes | None] = []
    for _, raw in read_records(Path(file)):
        image = raw.get("image") if isinstance(raw, Mapping) else None
        data = image.get("bytes") if isinstance(image, Mapping) else None
        out.append(bytes(data) if isinstance(data, bytes | bytearray) else None)
    return tuple(out)


def question_image(item: BenchItem) -> Image.Image | None:
    """The question image of ``item`` (VideoMMMU Adaptation), read back from its file, or
    ``None`` when the item has none. :class:`DataError` naming the file and record when it is
    recorded but cannot be read."""
    source = item.extra.get("image_source")
    if not isinstance(source, Mapping):
        return None
    file, record = str(source["file"]), int(source["record"])
    column = _image_column(file)
    data = column[record] if 0 <= record < len(column) else None
    if data is None:
        fail(file, record, "image", "no image bytes (the file changed since it was loaded?)")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError) as e:
        fail(file, record, "image", f"unreadable image: {e}")
    return image


MVBENCH_TASKS: dict[str, str] = {
    "action_sequence": "star/Charades_v1_480",
    "action_prediction": "star/Charades_v1_480",
    "action_antonym": "ssv2_video",
    "fine_grained_action": "Moments_in_Time_Raw/videos",
    "unexpected_action": "FunQA_test/test",
    "object_existence": "clevrer/video_validation",
    "object_interaction": "star/Charades_v1_480",
    "object_shuffle": "perception/videos",
    "moving_direction": "clevrer/video_validation",
    "action_localization": "sta/sta_video",
    "scene_transition": "scene_qa/video",
    "action_count": "perception/videos",
    "moving_count": "clevrer/video_validation",
    "moving_attribute": "clevrer/video_validation",
    "state_change": "perception/videos",
    "fine_grained_pose": "nturgbd",
    "character_order": "perception/videos",
    "egocentric_navigation": "vlnqa",
    "episodic_reasoning": "tvqa/frames_fps3_hq",
    "counterfactual_inference": "clevrer/video_validation",
}
"""MVBench task (``json/<task>.json``) → its video folder under ``video/`` (the official
``data_list`` of OpenGVLab's MVBench evaluation). Episodic reasoning's "videos" are folders
of frames at 3 fps."""


@register("mvbench")
def load_mvbench(
    root: str | os.PathLike[str],
    videos: str | os.PathLike[str] | None = None,
    *,
    check_videos: bool = True,
    tasks: Sequence[str] = tuple(MVBENCH_TASKS),
) -> list[BenchItem]:
    """MVBench (``OpenGVLab/MVBench``): ``<root>/json/<task>.json`` for the 20 tasks of
    :data:`MVBENCH_TASKS`, each a list of ``video``, ``question``, ``candidates`` (texts),
    ``answer`` (the right candidate's text) and, for some tasks, ``start``/``end`` (s).
    Videos: ``<root>/video/<task folder>/<video>``. Ids ``<task>/<index>``; group: task."""
    root = Path(root)
    if not (root / "json").is_dir():
        fail(root, None, None, "no MVBench json/ folder (expected json/<task>.json, 20 tasks)")
    unknown = [t for t in tasks if t not in MVBENCH_TASKS]
    if unknown:
        raise ValueError(f"unknown MVBench task(s) {unknown}; known: {', '.join(MVBENCH_TASKS)}")
    absent = [t for t in tasks if not (root / "json" / f"{t}.json").is_file()]
    if absent:
        names = ", ".join(f"json/{t}.json" for t in absent)
        fail(root, None, None, f"incomplete MVBench: missing {names}")
    folder = video_folder(root, videos, ("video", "videos"), "MVBench", check_videos)
    items = []
    for task in tasks:
        path = root / "json" / f"{task}.json"
        for index, raw in read_records(path):
            f = Fields(raw, path, index)
            options = f.texts("candidates")
            frames = task == "episodic_reasoning"
            items.append(
                BenchItem(
                    id=f"{task}/{index}",
                    benchmark="mvbench",
                    video=folder / MVBENCH_TASKS[task] / f.text("video"),
                    question=f.text("question"),
                    options=options,
                    answer=_letter_of(f, "answer", f.text("answer"), options),
                    group={"task": task},
                    start_s=f.optional_number("start"),
                    end_s=f.optional_number("end"),
                    extra={"media": "frames", "fps": 3.0} if frames else {},
                )
            )
    return check_items(items, folder, check_videos)


@register("star")
def load_star(
    root: str | os.PathLike[str],
    videos: str | os.PathLike[str] | None = None,
    *,
    check_videos: bool = True,
) -> list[BenchItem]:
    """STAR from ``STAR_val.json`` (the test split has no answers): a list of
    ``question_id`` (``Interaction_T1_13``), ``question``, ``video_id``, ``start``/``end`` (s),
    ``answer`` (the right choice's text) and ``choices`` (``[{"choice_id", "choice"}, …]``,
    lettered in list order). Videos: ``<root>/Charades_v1_480/<video_id>.mp4``. Group:
    question_type (the id's prefix: Interaction, Sequence, Prediction, Feasibility)."""
    root = Path(root)
    (path,) = find_annotations(root, ("STAR_val.json", "STAR_val.jsonl"), "STAR")[:1]
    folder = video_folder(root, videos, ("Charades_v1_480", "videos"), "STAR", check_videos)
    items = []
    for index, raw in read_records(path):
        f = Fields(raw, path, index)
        qid = f.text("question_id")
        choices = f.get("choices")
        if not isinstance(choices, list) or not choices:
            f.fail("choices", "expected a non-empty list of {choice_id, choice}")
        options = tuple(
            Fields(c, path, index, prefix=f"choices[{j}].").text("choice")
            for j, c in enumerate(choices)
        )
        start_s, end_s = f.number("start"), f.number("end")
        if end_s < start_s:
            f.fail("end", f"end {end_s} s is before start {start_s} s")
        items.append(
            BenchItem(
                id=qid,
                benchmark="star",
                video=folder / f"{f.text('video_id')}.mp4",
                question=f.text("question"),
                options=options,
                answer=_letter_of(f, "answer", f.text("answer"), options),
                group={"question_type": qid.split("_")[0]},
                start_s=start_s,
                end_s=end_s,
            )
        )
    return check_items(items, folder, check_videos)

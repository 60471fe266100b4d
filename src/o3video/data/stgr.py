"""STGR records (SPEC §4): one frozen, typed record per task, built from a raw JSON entry.

Each entry becomes one record of its task — :class:`VisualQARecord`,
:class:`TemporalQARecord`, :class:`TemporalMCQRecord`, :class:`SpatioTemporalRecord`,
:class:`VideoMCQRecord`, :class:`VideoFreeFormRecord`, and our own
:class:`VStarProtocolRecord` (below) — with the answer parsed (span, letter,
box) and the key frames joined with their ``key_items`` boxes, or is refused with every
:class:`~o3video.data.validate.Issue` that made it unusable (:func:`record_from_dict`).
Reading whole files is :mod:`o3video.data.load`; media files are :mod:`o3video.data.media`.

Box spaces of the raw data (what ``examples.to_example`` converts from): ``key_items``
and the ``reasoning_process`` of video tasks are normalized 0–1 (SPEC §4); the answer of
``visual QA`` is in pixels of the original image (``image_size``). The reasoning of
``visual QA`` is ambiguous: SPEC §4 says 0–1, but the published SFT code rescales the whole
visual-QA text (reasoning included) from ``image_size`` pixels, so the released TreeVGR
traces are in pixels. :func:`~o3video.data.validate.reasoning_box_space` tells them apart
per record — a trace whose every coordinate is <= 1 is normalized (in pixels every box
would be smaller than a pixel) — and the record keeps the answer (``reasoning_box_space``).

**``V-STaR protocol``** (ours, not in the published STGR): one of the five generations of a
V-STaR item (SPEC §7), so that a model trained on it has seen the evaluation's prompt forms.
The entry carries the whole item (``vstar``: an entry of a V-STaR file, checked as
:func:`o3video.data.vstar.item_from_dict` checks it, issues named ``vstar.<field>``) and
``generation`` (``what``, ``when_1``, ``where_1``, ``where_2`` or ``when_2``). The item is
embedded rather than referenced so that a record stays readable on its own, whatever file
it sits in. Its ``question`` and ``answer`` must be :func:`vstar_protocol_question` and
:func:`vstar_protocol_answer` of the item (the file's view of the ground truth: the raw
question, the answer text, ``"[s, e]"`` or the boxes in original pixels as JSON keyed by
second); the prompt and the target are rendered later, per model family and frames shown
(:func:`o3video.data.examples.to_example` with :func:`o3video.protocols.vstar.item_prompts`).
``reasoning_process`` is a short grounded think, boxes normalized 0–1 as for the other video
tasks. These records are for SFT: no RL reward knows the task (each gives 0.0), so the
synthetic corpus writes them into ``stgr_sft.json`` only.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from o3video.boxes import WH, XYXY
from o3video.data.validate import (
    Checker,
    Issue,
    IssueKind,
    check_time_range,
    parse_box_answer,
    parse_letter_answer,
    parse_span_answer,
    parse_temporal_mcq_answer,
    reasoning_box_space,
)
from o3video.evidence import format_time, parse_trace
from o3video.prompts import Task, task_for_stgr

if TYPE_CHECKING:  # o3video.data.vstar imports o3video.data.load, which imports this module
    from o3video.data.vstar import VStarItem

StgrTask = Literal[
    "visual QA",
    "temporal QA",
    "temporal QA (MCQ)",
    "temporal-spatial free-form QA",
    "General video QA MCQ",
    "General video QA Free-form",
    "V-STaR protocol",
]
STGR_TASK_NAMES: tuple[str, ...] = get_args(StgrTask)
VSTAR_PROTOCOL_TASK = "V-STaR protocol"
"""The task of :class:`VStarProtocolRecord` (ours; module docstring)."""
# An option label in an MCQ question: "A." or "A)" or "(A)", at the start or after a space.
_OPTION = re.compile(r"(?:^|(?<=\s))\(?([A-Z])[.)]\)?(?=\s)")

VStarGeneration = Literal["what", "when_1", "where_1", "where_2", "when_2"]
VSTAR_GENERATION_KEYS: tuple[str, ...] = get_args(VStarGeneration)
"""The keys of :data:`o3video.protocols.vstar.GENERATIONS`, in its order."""
VSTAR_WHEN: tuple[str, ...] = ("when_1", "when_2")
"""The generations that ask When (chain 1 and chain 2)."""
VSTAR_WHERE: tuple[str, ...] = ("where_1", "where_2")
"""The generations that ask Where (chain 1 and chain 2)."""

_PROTOCOL_TASKS: dict[str, Task] = {
    "what": "free_form",
    "when_1": "temporal",
    "when_2": "temporal",
    "where_1": "free_form",
    "where_2": "free_form",
}


@dataclass(frozen=True)
class KeyFrame:
    """An annotated frame: its JPEG ``path`` (relative to the source's key-frame root), true
    time ``time_s``, ``idx`` (its ``key_items`` key) and ``objects``: name → boxes,
    normalized 0–1 ``xyxy`` (``{}`` when ``key_items`` held only nulls for it)."""

    path: str
    time_s: float
    idx: int
    objects: Mapping[str, tuple[XYXY, ...]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class BaseRecord:
    """Fields of every STGR record. ``index`` is the 0-based position in its file;
    ``reasoning`` is ``reasoning_process`` (SFT data only); ``id`` the file's ``id`` (as a
    string); ``image_size`` is ``[W, H]`` of the original image or frames; ``duration_s``
    the video's duration when the record (an optional ``duration`` field, seconds) or the
    decoded file told it."""

    index: int
    task: StgrTask
    question: str
    answer: str
    source: str
    reasoning: str | None = None
    id: str | None = None
    image_size: WH | None = None
    duration_s: float | None = None

    @property
    def prompt_task(self) -> Task:
        """The prompt :data:`~o3video.prompts.Task` this record trains."""
        return task_for_stgr(self.task)


@dataclass(frozen=True, kw_only=True)
class VisualQARecord(BaseRecord):
    """``visual QA``: one image; the answer box ``answer_box`` in original image pixels;
    ``reasoning_box_space`` says how the reasoning's boxes are written (module docstring)."""

    image_path: str
    image_size: WH
    answer_box: XYXY
    answer_object: str | None = None
    reasoning_box_space: Literal["source_px", "rel1"] = "source_px"


@dataclass(frozen=True, kw_only=True)
class VideoRecord(BaseRecord):
    """A record about a video at ``video_path`` (relative to its source's media root)."""

    video_path: str


@dataclass(frozen=True, kw_only=True)
class TemporalQARecord(VideoRecord):
    """``temporal QA``: the answer ``"[s, e]"`` parsed into ``span_s``."""

    span_s: tuple[float, float]


@dataclass(frozen=True, kw_only=True)
class TemporalMCQRecord(VideoRecord):
    """``temporal QA (MCQ)``: the answer ``"LETTER\\n[s, e]"`` as ``letter`` and ``span_s``."""

    letter: str
    span_s: tuple[float, float]


@dataclass(frozen=True, kw_only=True)
class SpatioTemporalRecord(VideoRecord):
    """``temporal-spatial free-form QA``: free-text answer, annotated ``key_frames``."""

    key_frames: tuple[KeyFrame, ...]


@dataclass(frozen=True, kw_only=True)
class VideoMCQRecord(VideoRecord):
    """``General video QA MCQ``: the answer is the option ``letter``."""

    letter: str


@dataclass(frozen=True, kw_only=True)
class VideoFreeFormRecord(VideoRecord):
    """``General video QA Free-form``: a free-text answer."""


@dataclass(frozen=True, kw_only=True)
class VStarProtocolRecord(VideoRecord):
    """``V-STaR protocol`` (module docstring): generation ``generation`` of the V-STaR
    ``item``; ``question``/``answer`` are :func:`vstar_protocol_question`/``_answer`` of it."""

    generation: VStarGeneration
    item: VStarItem

    @property
    def prompt_task(self) -> Task:
        """The prompt task closest to the generation (``free_form`` for Where, whose system
        prompt is :data:`~o3video.prompts.SYSTEM_PROMPT_VSTAR_WHERE`, no task's);
        :func:`~o3video.data.examples.to_example` takes the system prompt from
        :func:`~o3video.protocols.vstar.item_prompts` anyway."""
        return _PROTOCOL_TASKS[self.generation]


Record = (
    VisualQARecord
    | TemporalQARecord
    | TemporalMCQRecord
    | SpatioTemporalRecord
    | VideoMCQRecord
    | VideoFreeFormRecord
    | VStarProtocolRecord
)


def vstar_protocol_question(item: VStarItem, generation: str) -> str:
    """The item's own question a generation asks (the raw text, before
    :func:`~o3video.protocols.vstar.item_prompts` wraps it): ``question`` (What),
    ``temporal_question`` (When), ``spatial_question`` / ``spatial_question_2`` (Where)."""
    if generation == "what":
        return item.question
    if generation in VSTAR_WHEN:
        return item.temporal_question
    if generation == "where_1":
        return item.spatial_question
    if generation == "where_2":
        return item.spatial_question_2
    raise ValueError(f"unknown V-STaR generation {generation!r}; known: {VSTAR_GENERATION_KEYS}")


def vstar_protocol_answer(item: VStarItem, generation: str) -> str:
    """The ground truth of a generation as the file writes it: the answer text (What), the
    span ``"[s, e]"`` (When), or the boxes in original pixels as JSON keyed by whole second
    (Where; both chains ask for the same ground-truth boxes).

    The target a model is trained on is written in its own answer form and box space by
    :func:`o3video.data.examples.to_example`.
    """
    if generation == "what":
        return item.answer
    if generation in VSTAR_WHEN:
        return f"[{format_time(item.span_s[0])}, {format_time(item.span_s[1])}]"
    if generation in VSTAR_WHERE:
        boxes = {str(b.timestamp_s): [_json_number(v) for v in b.xyxy] for b in item.boxes}
        return json.dumps(boxes)
    raise ValueError(f"unknown V-STaR generation {generation!r}; known: {VSTAR_GENERATION_KEYS}")


def _json_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def vstar_protocol_entries(
    raw_item: Mapping[str, Any],
    *,
    source: str,
    video_path: str,
    reasoning: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The five raw ``V-STaR protocol`` entries of one V-STaR entry, in the order of
    :data:`VSTAR_GENERATION_KEYS`; ``reasoning`` maps a generation to its
    ``reasoning_process`` (boxes normalized 0–1). ``ValueError`` for an unusable item.

    >>> raw = {"vid": "v", "domain": "d", "fps": 10.0, "width": 100, "height": 50,
    ...     "frame_count": 80, "question": "Which?", "answer": "the dog",
    ...     "temporal_question": "When?", "timestamps": [1.5, 2.5], "spatial_question": "Where?",
    ...     "spatial_question_2": "Where, moving?", "bboxes": [{"timestamp": 2,
    ...     "frame_index": 20, "xmin": 10, "ymin": 5, "xmax": 30.5, "ymax": 25}]}
    >>> [(e["generation"], e["answer"]) for e in vstar_protocol_entries(
    ...     raw, source="s", video_path="v.mp4")][1:3]
    [('when_1', '[1.5, 2.5]'), ('where_1', '{"2": [10, 5, 30.5, 25]}')]
    """
    from o3video.data.vstar import item_from_dict

    item, issues = item_from_dict(dict(raw_item), 0)
    if item is None:
        raise ValueError(f"not a usable V-STaR item: {'; '.join(str(i) for i in issues)}")
    out = []
    for key in VSTAR_GENERATION_KEYS:
        entry: dict[str, Any] = {
            "task": VSTAR_PROTOCOL_TASK,
            "source": source,
            "video_path": video_path,
            "image_size": list(item.frame_wh),
            "generation": key,
            "question": vstar_protocol_question(item, key),
            "answer": vstar_protocol_answer(item, key),
        }
        if reasoning is not None and key in reasoning:
            entry["reasoning_process"] = reasoning[key]
        entry["vstar"] = dict(raw_item)
        out.append(entry)
    return out


def record_from_dict(raw: Any, index: int) -> tuple[Record | None, list[Issue]]:
    """Check one raw entry; the record (``None`` if any error) and all its issues.

    >>> rec, issues = record_from_dict({"task": "General video QA MCQ", "question": "Q?",
    ...     "answer": "B", "source": "videor1_mcq", "video_path": "a.mp4"}, 7)
    >>> rec.letter, issues
    ('B', [])
    >>> print(record_from_dict({"task": "temporal QA", "question": 5}, 2)[1][0])
    record 2, question: 'question' must be a string, got an int 5 [wrong_type]
    """
    c = Checker(index)
    if not isinstance(raw, dict):
        c.error("<record>", "not_an_object", f"a record must be a JSON object, got {raw!r:.40}")
        return None, c.issues
    task = c.text(raw, "task")
    if task is not None and task not in STGR_TASK_NAMES:
        c.error("task", "unknown_task", f"unknown task {task!r}; known: {STGR_TASK_NAMES}")
        task = None
    common: dict[str, Any] = {
        "index": index,
        "task": task,
        "question": c.text(raw, "question"),
        "answer": c.text(raw, "answer"),
        "source": c.text(raw, "source"),
        "reasoning": c.get(raw, "reasoning_process", str, required=False),
    }
    rid = c.get(raw, "id", (str, int), required=False)
    common["id"] = None if rid is None else str(rid)
    if raw.get("image_size") is not None:
        common["image_size"] = c.wh(raw["image_size"], "image_size")
    if raw.get("duration") is not None:
        common["duration_s"] = c.time(raw["duration"], "duration")
    record = _task_record(c, raw, common) if task is not None else None
    if record is not None:
        check_times(c, record, record.duration_s)
    return (record if c.ok else None), c.issues


def _task_record(c: Checker, raw: dict[str, Any], common: dict[str, Any]) -> Record | None:
    task, answer, reasoning = common["task"], common["answer"], common["reasoning"]
    if task == "visual QA":
        return _visual_qa(c, raw, common)
    video_path = c.text(raw, "video_path")
    if task == VSTAR_PROTOCOL_TASK:
        return _vstar_protocol(c, raw, common, video_path)
    if reasoning is not None:
        c.reasoning(reasoning, wh=(1, 1))
    if task != "temporal-spatial free-form QA":
        for key in ("key_frames", "key_items"):
            if raw.get(key):
                c.warn(key, "ignored_field", f"{task!r} records do not use {key!r}")
    parsed: dict[str, Any] = {}
    if answer is not None and task in ("temporal QA", "temporal QA (MCQ)"):
        if task == "temporal QA":
            span = parse_span_answer(answer)
            want = '"[start, end]"'
        else:
            got = parse_temporal_mcq_answer(answer)
            span = got[1] if got else None
            parsed["letter"], want = (got[0] if got else None), '"LETTER\\n[start, end]"'
        if span is None:
            c.error("answer", "bad_answer", f"{task!r} answers are {want}, got {answer!r:.60}")
        elif span[0] < 0 or span[1] < span[0]:
            c.error("answer", "bad_time", f"span {list(span)} must have 0 <= start <= end")
        parsed["span_s"] = span
    elif answer is not None and task == "General video QA MCQ":
        parsed["letter"] = parse_letter_answer(answer)
        if parsed["letter"] is None:
            c.error("answer", "bad_answer", f"MCQ answers are one letter, got {answer!r:.60}")
    if parsed.get("letter") and common["question"] is not None:
        check_option(c, parsed["letter"], common["question"])
    elif task == "temporal-spatial free-form QA":
        parsed["key_frames"] = _key_frames(c, raw)
    if not c.ok or video_path is None:
        return None
    cls: type[VideoRecord] = {
        "temporal QA": TemporalQARecord,
        "temporal QA (MCQ)": TemporalMCQRecord,
        "temporal-spatial free-form QA": SpatioTemporalRecord,
        "General video QA MCQ": VideoMCQRecord,
        "General video QA Free-form": VideoFreeFormRecord,
    }[task]
    return cls(**common, video_path=video_path, **parsed)  # type: ignore[return-value]


def _vstar_protocol(
    c: Checker, raw: dict[str, Any], common: dict[str, Any], video_path: str | None
) -> Record | None:
    from o3video.data.vstar import item_from_dict  # see the TYPE_CHECKING import

    if common["reasoning"] is not None:
        c.reasoning(common["reasoning"], wh=(1, 1))
    generation = c.text(raw, "generation")
    if generation is not None and generation not in VSTAR_GENERATION_KEYS:
        msg = f"unknown generation {generation!r}; known: {VSTAR_GENERATION_KEYS}"
        c.error("generation", "bad_value", msg)
        generation = None
    item = None
    inner = c.get(raw, "vstar", dict)
    if inner is not None:
        item, issues = item_from_dict(inner, c.index)
        c.issues += [dataclasses.replace(i, field=f"vstar.{i.field}") for i in issues]
    if item is None or generation is None:
        return None
    wh = common.get("image_size")
    if wh is not None and wh != item.frame_wh:
        msg = f"image_size {list(wh)} is not the item's {list(item.frame_wh)}"
        c.error("image_size", "bad_value", msg)
    checks: tuple[tuple[str, str, IssueKind], ...] = (
        ("question", vstar_protocol_question(item, generation), "bad_value"),
        ("answer", vstar_protocol_answer(item, generation), "bad_answer"),
    )
    for fld, want, kind in checks:
        got = common[fld]
        if got is not None and got != want:
            c.error(fld, kind, f"{generation} of this item has {fld} {want!r:.80}, got {got!r:.60}")
    if not c.ok or video_path is None:
        return None
    if common.get("duration_s") is None:  # the item tells the video's duration
        common = {**common, "duration_s": item.duration_s}
    return VStarProtocolRecord(
        **common,
        video_path=video_path,
        generation=generation,  # type: ignore[arg-type]  # checked against the keys above
        item=item,
    )


def _visual_qa(c: Checker, raw: dict[str, Any], common: dict[str, Any]) -> Record | None:
    image_path = c.text(raw, "image_path")
    wh = common.get("image_size")
    if "image_size" not in common:
        c.error("image_size", "missing_field", "visual QA needs image_size [W, H] for its boxes")
    if raw.get("key_frames"):
        c.warn("key_frames", "ignored_field", "'visual QA' records do not use 'key_frames'")
    found = None
    if common["answer"] is not None:
        found = parse_box_answer(common["answer"])
        if found is None:
            msg = f"visual QA answers hold <box>[x1,y1,x2,y2]</box>, got {common['answer']!r:.60}"
            c.error("answer", "bad_answer", msg)
        elif wh is not None and c.box_values(found[1], "answer", wh=wh) is None:
            found = None
    space: Literal["rel1", "source_px"] = "source_px"
    if wh is not None and common["reasoning"] is not None:
        space = reasoning_box_space(common["reasoning"])
        c.reasoning(common["reasoning"], wh=(1, 1) if space == "rel1" else wh, timed=False)
    if not c.ok or found is None or image_path is None:
        return None
    return VisualQARecord(
        **common,
        image_path=image_path,
        answer_object=found[0],
        answer_box=found[1],
        reasoning_box_space=space,
    )


def _key_frames(c: Checker, raw: dict[str, Any]) -> tuple[KeyFrame, ...]:
    frames = c.get(raw, "key_frames", list)
    items = c.get(raw, "key_items", dict)
    if frames is None or items is None:
        return ()
    if not frames:
        c.error("key_frames", "missing_field", "a spatio-temporal record needs key frames")
    boxes: dict[str, dict[str, tuple[XYXY, ...]]] = {}
    for key, objects in items.items():
        f = f"key_items.{key}"
        if objects is None:
            c.warn(f, "null_key_item", "null: read as a key frame without boxes")
            objects = {}
        if not isinstance(objects, dict):
            c.error(f, "wrong_type", f"must map object names to boxes, got {objects!r:.40}")
            continue
        boxes[key] = {}
        for name, obj_boxes in objects.items():
            if obj_boxes is None:
                c.warn(f"{f}.{name}", "null_key_item", "null: read as no boxes")
                continue
            if not isinstance(obj_boxes, list) or not all(isinstance(b, list) for b in obj_boxes):
                msg = f"must be a list of boxes [[x1,y1,x2,y2], ...], got {obj_boxes!r:.40}"
                c.error(f"{f}.{name}", "wrong_type", msg)
                continue
            got = [c.box(b, f"{f}.{name}[{j}]", wh=(1, 1)) for j, b in enumerate(obj_boxes)]
            boxes[key][name] = tuple(b for b in got if b is not None)
    out: list[KeyFrame] = []
    seen: set[int] = set()
    for i, kf in enumerate(frames):
        f = f"key_frames[{i}]"
        if not isinstance(kf, dict):
            c.error(f, "wrong_type", f"a key frame must be an object, got {kf!r:.40}")
            continue
        path = c.get(kf, "path", str, field=f"{f}.path")
        t = c.time(kf["time"], f"{f}.time") if "time" in kf else None
        if "time" not in kf:
            c.error(f"{f}.time", "missing_field", "required field 'time' is missing")
        idx = c.get(kf, "idx", int, field=f"{f}.idx")
        if idx is None:
            continue
        if idx in seen:
            c.error(f"{f}.idx", "duplicate_key_frame", f"a second key frame with idx {idx}")
        seen.add(idx)
        if str(idx) not in items:
            c.error(f"{f}.idx", "key_mismatch", f"key_items has no entry {str(idx)!r}")
        if path is not None and t is not None:
            out.append(KeyFrame(path, t, idx, boxes.get(str(idx), {})))
    known = {str(kf.get("idx")) for kf in frames if isinstance(kf, dict)}
    for key in items:
        if key not in known:
            c.error(f"key_items.{key}", "key_mismatch", f"no key frame has idx {key}")
    return tuple(out)


def check_option(c: Checker, letter: str, question: str) -> None:
    """An error when the question lists its options (``A.``, ``B)``, ... from ``A`` on) and
    the answer ``letter`` is none of them.

    >>> c = Checker(0)
    >>> check_option(c, "E", "Which? A. red B. blue (C) green"); print(c.issues[0])
    record 0, answer: the answer E is not one of the options A, B, C [bad_answer]
    """
    found = set(_OPTION.findall(question))
    options = []
    for k in range(26):  # the run A, B, C, ... as far as the question goes
        if chr(65 + k) not in found:
            break
        options.append(chr(65 + k))
    if len(options) >= 2 and letter not in options:
        msg = f"the answer {letter} is not one of the options {', '.join(options)}"
        c.error("answer", "bad_answer", msg)


def check_times(c: Checker, record: Record, duration_s: float | None) -> None:
    """Errors for answer spans, key-frame times and reasoning times (every ``<t>``) past the
    end of the video."""
    if duration_s is None:
        return
    if isinstance(record, (TemporalQARecord, TemporalMCQRecord)):
        check_time_range(c, record.span_s[1], "answer", duration_s)
    if isinstance(record, SpatioTemporalRecord):
        for i, kf in enumerate(record.key_frames):
            check_time_range(c, kf.time_s, f"key_frames[{i}].time", duration_s)
    if isinstance(record, VStarProtocolRecord):
        check_time_range(c, record.item.span_s[1], "vstar.timestamps[1]", duration_s)
    if record.reasoning and not isinstance(record, VisualQARecord):
        trace = parse_trace(f"<think>{record.reasoning}</think><answer></answer>")
        for t_s in trace.think_times_s:  # bare times and claims' times
            check_time_range(c, t_s, "reasoning_process", duration_s)

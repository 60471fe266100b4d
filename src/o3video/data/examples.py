"""STGR records → training examples for one model family and frame budget (SPEC §3, §6).

:func:`to_example` builds what SFT and RL need from one record:

- ``messages``: the system prompt of the record's task and the user turn in the
  frames-as-images presentation (``Frame k at t.ts: <image>`` per frame, the duration line,
  the question), as the ``protocol`` writes them
  (:func:`o3video.protocols.training.training_prompt`: ``o3video`` by default; ``reference``
  and ``reference-sft``, the reference RL and SFT stages, label the same frames as those
  did). Frames are sampled at their
  true times (:func:`o3video.video.sample_frames`); for ``temporal-spatial free-form QA``
  the annotated key frames (their JPEGs, resized to the same frame size) are **inserted at
  their own times** (:func:`merge_key_frames`). A sampled frame within
  ``merge_tolerance_s`` (default 0.1 s, the precision of the labels) of a key frame is
  *replaced* by it: the two show the same moment, and a duplicate would cost tokens and put
  two frames under one label. ``visual QA`` shows its image alone, resized by the family's
  ``smart_resize`` (same pixel budget).
- ``target`` (when the record has a reasoning): ``<think>{reasoning}</think>\\n<answer>{answer}
  </answer>`` with every box rewritten into the model's box space of the frames actually
  shown — only the numbers inside ``<box>…</box>`` change, the rest of the text is kept
  byte for byte. Boxes are rounded to integers (Qwen2.5-VL writes pixels of the resized
  frame, Qwen3-VL a 0–1000 grid, both as integers), half up. Temporal answers are written
  as the system prompt asks (``From <t>s</t>s to <t>e</t>s``, plus
  ``.\\nCorrect Option: X`` for temporal MCQ); the raw ``"[s, e]"`` of the file would
  contradict the prompt the model is trained under. ``reference`` writes the same targets
  (the reference RL stage has none); ``reference-sft`` writes the reference SFT stage's
  (:func:`reference_sft_target`: the file's answer as it is, boxes rounded half to even).
- ``columns``: the ground truth the RL rewards read (:data:`Columns`), JSON-ready; boxes in
  model space as exact floats (not rounded), times in seconds.

``V-STaR protocol`` records (:class:`~o3video.data.stgr.VStarProtocolRecord`) are rendered
with the evaluation's own prompts (under ``o3video`` only: the reference protocols refuse
this task of ours): system prompt and user text are those
:func:`o3video.protocols.vstar.item_prompts` gives for the family and the frames shown (the one
source of truth; the When-2 prompt shows boxes in that space). The target's answer is what
the evaluation parses (:func:`vstar_answer`): the answer text (What), ``From <t>s</t>s to
<t>e</t>s`` (When), or JSON mapping each ground-truth whole second to its box in model space,
integers (Where; ``family.from_source_box`` from the item's ``width`` × ``height``, which
scoring also uses). Seconds asked where the item has no box are left out: scoring reads the
ground-truth seconds only.

>>> rewrite_boxes("<obj>dog</obj><box>[0.25, 0.5,0.75,1.0]</box>at<t>1.2</t>s",
...               lambda b: (b[0] * 420, b[1] * 224, b[2] * 420, b[3] * 224))
'<obj>dog</obj><box>[105,112,315,224]</box>at<t>1.2</t>s'
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from o3video.boxes import WH, XYXY, BoxSpace, convert_xyxy
from o3video.data.media import MediaLayout, SourceRoot
from o3video.data.stgr import (
    VSTAR_WHEN,
    Record,
    SpatioTemporalRecord,
    TemporalMCQRecord,
    TemporalQARecord,
    VideoMCQRecord,
    VisualQARecord,
    VStarProtocolRecord,
)
from o3video.data.validate import box_spans
from o3video.errors import DataError, VideoDecodeError
from o3video.evidence import format_number, format_span, parse_trace
from o3video.families import ModelFamily, get_family
from o3video.prompts import Message
from o3video.protocols import ProtocolName, check_protocol
from o3video.protocols.render import to_messages
from o3video.protocols.training import FrameSource, check_training_task, training_prompt
from o3video.video import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, Clip, sample_frames

KEY_FRAME_MERGE_TOLERANCE_S = 0.1
"""A sampled frame this close to a key frame is replaced by it (the labels' precision)."""

Columns = dict[str, Any]
"""Reward columns of an :class:`Example` (all JSON-ready):

- ``task``: the STGR task name; ``answer``: the record's answer exactly as in the file;
- ``answer_span_s`` (temporal tasks, ``[s, e]``), ``answer_letter`` (MCQ tasks),
  ``answer_box`` (visual QA, model space), ``generation`` (``V-STaR protocol``: which of
  the five prompts) — ``None`` where the task has none;
- ``key_times_s``: key-frame times in time order; ``key_boxes``: per key frame (same order)
  ``{object: [[x1, y1, x2, y2], ...]}`` in model space (``V-STaR protocol``: the item's
  ground-truth seconds and boxes, named as the first claim of the reasoning, else
  ``"object"``; its ``answer_span_s`` is the item's span for When generations);
- ``frame_wh`` (frames shown), ``source_wh`` (original image/video size), ``box_space``
  (the family's), ``frame_times_s`` (every frame shown), ``duration_s``; ``index``, ``id``.
"""


@dataclass(frozen=True)
class Example:
    """One training example: the prompt ``messages`` (system + user), the assistant
    ``target`` (``None`` for a record without reasoning, e.g. RL data), the ``clip`` of frames
    shown, the reward ``columns`` and the ``record`` it came from."""

    messages: list[Message]
    target: str | None
    clip: Clip
    columns: Columns
    record: Record

    def conversation(self) -> list[Message]:
        """``messages`` plus the assistant turn (SFT); ``ValueError`` without a target."""
        if self.target is None:
            raise ValueError(f"record {self.record.index} has no reasoning: no SFT target")
        turn = {"role": "assistant", "content": [{"type": "text", "text": self.target}]}
        return [*self.messages, turn]


def to_example(
    record: Record,
    media_root: str | os.PathLike[str] | MediaLayout,
    family: str | ModelFamily = "qwen2_5_vl",
    fps: float = 2.0,
    max_frames: int = 16,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    min_frames: int = 4,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    source_roots: Mapping[str, str | SourceRoot] | None = None,
    merge_tolerance_s: float = KEY_FRAME_MERGE_TOLERANCE_S,
    system_prompt: str | None = None,
    sampler: Callable[..., Clip] | None = None,
    protocol: ProtocolName | str = "o3video",
) -> Example:
    """Build the :class:`Example` of ``record`` for ``family`` (see the module docstring).

    Media are found by :class:`~o3video.data.media.MediaLayout` (``media_root`` and
    ``source_roots``). The frame budget is the published training one by default (2 fps,
    4–16 frames, ≤ 128·28·28 pixels a frame); key frames come on top of it. ``sampler``
    replaces :func:`~o3video.video.sample_frames` (same arguments), e.g. by one that
    remembers the frames of each video for the many records it has. ``protocol`` chooses
    the prompt's text (:mod:`o3video.protocols.training`) and the target's form (module
    docstring). Raises :class:`DataError` naming the record and field when a media file
    cannot be read, or when the protocol has no prompt for the record's task.

    >>> ex = to_example(record, "data/videos")                  # doctest: +SKIP
    >>> ex.columns["key_boxes"][0], ex.clip.frame_wh            # doctest: +SKIP
    ({'dog': [[105.0, 112.0, 315.0, 224.0]]}, (420, 224))
    """
    name = check_protocol(protocol)
    try:
        check_training_task(record.task, name)
    except ValueError as e:
        raise DataError(f"record {record.index}: {e}", index=record.index, field="task") from e
    fam = get_family(family) if isinstance(family, str) else family
    layout = (
        media_root if isinstance(media_root, MediaLayout) else MediaLayout(media_root, source_roots)
    )
    budget = {"fps": fps, "min_frames": min_frames, "max_frames": max_frames}
    shown = load_frames(
        record, layout, fam, min_pixels, max_pixels, merge_tolerance_s, sampler=sampler, **budget
    )
    clip = shown.clip
    # Boxes in pixels refer to the annotated image (visual QA), the V-STaR item's frame size
    # (as its scoring does), or the video's frames.
    box_source_wh = clip.source_wh
    if isinstance(record, VisualQARecord):
        box_source_wh = record.image_size
    elif isinstance(record, VStarProtocolRecord):
        box_source_wh = record.item.frame_wh

    def to_model(xyxy: Sequence[float], space: BoxSpace) -> XYXY:
        return convert_xyxy(
            xyxy, space, fam.box_space, source_wh=box_source_wh, frame_wh=clip.frame_wh
        )

    prompt = training_prompt(record, name, clip, fam, sources=shown.sources, sampled=shown.sampled)
    if system_prompt is not None:
        prompt = dataclasses.replace(prompt, system=system_prompt)
    messages = to_messages(prompt, clip)
    reasoning_space: BoxSpace = "rel1"
    if isinstance(record, VisualQARecord):
        reasoning_space = record.reasoning_box_space
    target = None
    if record.reasoning is not None and name == "reference-sft":
        target = reference_sft_target(record, to_model, reasoning_space)
    elif record.reasoning is not None:
        think = rewrite_boxes(record.reasoning, lambda b: to_model(b, reasoning_space))
        answer = target_answer(record, lambda b: to_model(b, "source_px"))
        target = f"<think>{think}</think>\n<answer>{answer}</answer>"
    columns = _columns(record, clip, fam, box_source_wh, to_model)
    return Example(messages, target, clip, columns, record)


def reference_sft_target(
    record: Record,
    to_model: Callable[[Sequence[float], BoxSpace], XYXY],
    reasoning_space: BoxSpace = "rel1",
) -> str:
    """The reference SFT stage's target: ``<think>{reasoning}</think>\\n<answer>{answer}
    </answer>`` with the record's answer as the file has it (a temporal span stays
    ``[s, e]``). Boxes are rewritten into the model's space, rounded half to even as
    Python's ``round`` does, in the reasoning and the answer of visual QA (from image
    pixels, or 0–1 for a normalized trace) and of the spatio-temporal task (from 0–1); the
    other tasks' texts are kept byte for byte, boxes included (the reference converts none).
    """
    if record.reasoning is None:
        raise ValueError(f"record {record.index} has no reasoning: no SFT target")
    think, answer = record.reasoning, record.answer
    if isinstance(record, VisualQARecord):
        think = rewrite_boxes(think, lambda b: to_model(b, reasoning_space), rounding=round)
        answer = rewrite_boxes(answer, lambda b: to_model(b, "source_px"), rounding=round)
    elif isinstance(record, SpatioTemporalRecord):
        think = rewrite_boxes(think, lambda b: to_model(b, "rel1"), rounding=round)
        answer = rewrite_boxes(answer, lambda b: to_model(b, "rel1"), rounding=round)
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


def vstar_answer(record: VStarProtocolRecord, to_model: Callable[[Sequence[float]], XYXY]) -> str:
    """The ``<answer>`` text the evaluation parses for the record's generation (module
    docstring); ``to_model`` maps a box in the item's original pixels to model space.

    Where answers are ``{"s": [x1, y1, x2, y2], ...}`` (``json.dumps`` spacing, the form
    the Where prompt shows), boxes rounded half up to integers as in :func:`rewrite_boxes`.
    """
    item = record.item
    if record.generation == "what":
        return item.answer
    if record.generation in VSTAR_WHEN:
        return format_span(*item.span_s)
    boxes = {
        str(b.timestamp_s): [math.floor(v + 0.5) for v in to_model(b.xyxy)] for b in item.boxes
    }
    return json.dumps(boxes)


@dataclass(frozen=True)
class Shown:
    """The frames shown for a record: ``clip``, where each frame comes from (``sources``,
    :data:`~o3video.protocols.training.FrameSource`) and how many frames were ``sampled``
    from the video before key frames were merged in (0 for an image)."""

    clip: Clip
    sources: tuple[FrameSource, ...]
    sampled: int


def load_clip(
    record: Record,
    layout: MediaLayout,
    family: ModelFamily,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    merge_tolerance_s: float = KEY_FRAME_MERGE_TOLERANCE_S,
    *,
    sampler: Callable[..., Clip] | None = None,
    **budget: Any,
) -> Clip:
    """The frames shown for ``record``: its image, or frames sampled from its video
    (``budget``: ``fps``, ``min_frames``, ``max_frames`` of :func:`sample_frames`) with the
    key frames merged in. :class:`DataError` names the record and field of a bad file."""
    return load_frames(
        record, layout, family, min_pixels, max_pixels, merge_tolerance_s, sampler=sampler, **budget
    ).clip


def load_frames(
    record: Record,
    layout: MediaLayout,
    family: ModelFamily,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    merge_tolerance_s: float = KEY_FRAME_MERGE_TOLERANCE_S,
    *,
    sampler: Callable[..., Clip] | None = None,
    **budget: Any,
) -> Shown:
    """:func:`load_clip` with where each frame comes from (:class:`Shown`)."""
    if isinstance(record, VisualQARecord):
        path = layout.path(record.source, record.image_path)
        image = _open_image(record, "image_path", path)
        clip = image_clip(image, family, min_pixels, max_pixels, source=str(path))
        return Shown(clip, (("sampled", 0),), 0)
    path = layout.path(record.source, record.video_path)
    try:
        clip = (sampler or sample_frames)(
            path, min_pixels=min_pixels, max_pixels=max_pixels, factor=family.factor, **budget
        )
    except VideoDecodeError as e:
        raise _media_error(record, "video_path", str(e)) from e
    sampled = tuple(("sampled", i) for i in range(clip.num_frames))
    if not isinstance(record, SpatioTemporalRecord):
        return Shown(clip, sampled, clip.num_frames)  # type: ignore[arg-type]
    key_images = []
    for i, kf in enumerate(record.key_frames):
        kf_path = layout.path(record.source, kf.path, key_frame=True)
        key_images.append((kf.time_s, _open_image(record, f"key_frames[{i}].path", kf_path)))
    order = key_frame_order(clip.times_s, [t for t, _ in key_images], merge_tolerance_s)
    merged = merge_key_frames(clip, key_images, merge_tolerance_s)
    return Shown(merged, order, clip.num_frames)


def _columns(
    record: Record,
    clip: Clip,
    fam: ModelFamily,
    source_wh: WH,
    to_model: Callable[[Sequence[float], BoxSpace], XYXY],
) -> Columns:
    key_frames = (
        sorted(record.key_frames, key=lambda k: k.time_s)
        if isinstance(record, SpatioTemporalRecord)
        else []
    )
    key_times_s = [kf.time_s for kf in key_frames]
    key_boxes = [
        {name: [list(to_model(b, "rel1")) for b in boxes] for name, boxes in kf.objects.items()}
        for kf in key_frames
    ]
    span_s: list[float] | None = None
    if isinstance(record, (TemporalQARecord, TemporalMCQRecord)):
        span_s = list(record.span_s)
    if isinstance(record, VStarProtocolRecord):
        claims = parse_trace(record.reasoning).claims if record.reasoning else []
        name = claims[0].name if claims else "object"
        key_times_s = [float(b.timestamp_s) for b in record.item.boxes]
        key_boxes = [{name: [list(to_model(b.xyxy, "source_px"))]} for b in record.item.boxes]
        span_s = list(record.item.span_s) if record.generation.startswith("when") else None
    return {
        "index": record.index,
        "id": record.id,
        "task": record.task,
        "answer": record.answer,
        "answer_span_s": span_s,
        "answer_letter": record.letter
        if isinstance(record, (TemporalMCQRecord, VideoMCQRecord))
        else None,
        "answer_box": list(to_model(record.answer_box, "source_px"))
        if isinstance(record, VisualQARecord)
        else None,
        "generation": record.generation if isinstance(record, VStarProtocolRecord) else None,
        "key_times_s": key_times_s,
        "key_boxes": key_boxes,
        "frame_wh": list(clip.frame_wh),
        "source_wh": list(source_wh),
        "box_space": fam.box_space,
        "frame_times_s": list(clip.times_s),
        "duration_s": clip.duration_s,
    }


def target_answer(record: Record, to_model: Callable[[Sequence[float]], XYXY]) -> str:
    """The ``<answer>`` text of the SFT target, in the form the task's system prompt asks.

    ``to_model`` maps a box in original image pixels to model space (visual QA, and the
    V-STaR item's pixels for ``V-STaR protocol``).
    """
    if isinstance(record, TemporalQARecord):
        return format_span(*record.span_s)
    if isinstance(record, TemporalMCQRecord):
        return f"{format_span(*record.span_s)}.\nCorrect Option: {record.letter}"
    if isinstance(record, VisualQARecord):
        return rewrite_boxes(record.answer, to_model)
    if isinstance(record, VStarProtocolRecord):
        return vstar_answer(record, to_model)
    return record.answer


def _half_up(value: float) -> int:
    return math.floor(value + 0.5)


def rewrite_boxes(
    text: str,
    convert: Callable[[XYXY], Sequence[float]],
    *,
    rounding: Callable[[float], int] = _half_up,
) -> str:
    """``text`` with the content of each ``<box>…</box>`` replaced by ``convert(box)``,
    rounded to integers (half up; ``rounding=round``: half to even, as the reference SFT
    code) and written ``[x1,y1,x2,y2]``; all else kept byte for byte.

    Raises ``ValueError`` for a box that is not 4 numbers (the validator refuses those).
    """
    parts: list[str] = []
    pos = 0
    for start, end, xyxy in box_spans(text):
        if xyxy is None:
            raise ValueError(f"<box> at character {start} is not 4 numbers: {text[start:end]!r}")
        numbers = ",".join(format_number(rounding(v)) for v in convert(xyxy))
        parts += [text[pos:start], f"[{numbers}]"]
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def key_frame_order(
    times_s: Sequence[float],
    key_times_s: Sequence[float],
    tolerance_s: float = KEY_FRAME_MERGE_TOLERANCE_S,
) -> tuple[FrameSource, ...]:
    """The frames :func:`merge_key_frames` shows, in order: ``("sampled", i)`` for the
    ``i``-th sampled frame at ``times_s[i]`` (those within ``tolerance_s`` of a key frame
    are left out), ``("key", j)`` for the key frame at ``key_times_s[j]``; by time, a sampled
    frame before a key frame of the same time, key frames of one time in their given order.

    >>> key_frame_order([0.0, 1.0, 2.0], [2.05, 0.5])
    (('sampled', 0), ('key', 1), ('sampled', 1), ('key', 0))
    """
    if not key_times_s:
        return tuple(("sampled", i) for i in range(len(times_s)))
    keys = np.array(key_times_s, dtype=float)
    entries: list[tuple[float, int, FrameSource]] = [
        (float(t), 0, ("sampled", i))
        for i, t in enumerate(times_s)
        if np.min(np.abs(keys - t)) > tolerance_s
    ]
    entries += [(float(t), 1, ("key", j)) for j, t in enumerate(key_times_s)]
    entries.sort(key=lambda e: (e[0], e[1]))
    return tuple(e[2] for e in entries)


def merge_key_frames(
    clip: Clip,
    key_frames: Sequence[tuple[float, Image.Image | np.ndarray]],
    tolerance_s: float = KEY_FRAME_MERGE_TOLERANCE_S,
) -> Clip:
    """``clip`` with ``(time_s, image)`` key frames inserted at their times.

    Key frames are resized to ``clip.frame_wh`` (bicubic, as the sampled frames); a sampled
    frame within ``tolerance_s`` of a key frame is dropped (replaced). Frames stay in time
    order; a key frame's ``frame_indices`` entry is ``round(time · fps)``.
    """
    if not key_frames:
        return clip
    indices = clip.frame_indices or tuple(range(clip.num_frames))
    entries: list[tuple[float, np.ndarray, int]] = []  # (time, frame, index)
    for kind, i in key_frame_order(clip.times_s, [t for t, _ in key_frames], tolerance_s):
        if kind == "sampled":
            entries.append((clip.times_s[i], clip.frames[i], indices[i]))
            continue
        t, image = key_frames[i]
        pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
        pil = pil.convert("RGB")
        if pil.size != clip.frame_wh:
            pil = pil.resize(clip.frame_wh, Image.Resampling.BICUBIC)
        entries.append((float(t), np.asarray(pil, dtype=np.uint8), round(t * clip.fps)))
    return Clip(
        frames=np.stack([e[1] for e in entries]),
        times_s=tuple(e[0] for e in entries),
        source_wh=clip.source_wh,
        frame_wh=clip.frame_wh,
        fps=clip.fps,
        duration_s=clip.duration_s,
        frame_indices=tuple(e[2] for e in entries),
        source=clip.source,
    )


def image_clip(
    image: Image.Image,
    family: ModelFamily,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    source: str | None = None,
) -> Clip:
    """A one-frame :class:`Clip` of ``image`` resized by ``family.smart_resize`` (time 0,
    duration 0, frame rate 0: an image has none)."""
    image = image.convert("RGB")
    h, w = family.smart_resize(image.height, image.width, min_pixels, max_pixels)
    frame = np.asarray(image.resize((w, h), Image.Resampling.BICUBIC), dtype=np.uint8)
    return Clip(frame[None], (0.0,), image.size, (w, h), 0.0, 0.0, (0,), source)


def _open_image(record: Record, field: str, path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as e:
        raise _media_error(record, field, f"{path}: {e}") from e


def _media_error(record: Record, field: str, reason: str) -> DataError:
    return DataError(
        f"record {record.index}, field {field!r}: {reason}", index=record.index, field=field
    )

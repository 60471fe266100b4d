"""Step 1 of the curation pipeline (SPEC §4): a teacher model proposes a grounded sample.

The teacher sees the sampled frames (``Frame k at t s:`` labels, true times) and replies
with JSON following :data:`TEACHER_SCHEMA`: a question, an answer, key frames with object
boxes on a 0–1000 grid of the frame, and a reasoning whose evidence is written
``<obj>name</obj><box>[x1,y1,x2,y2]</box>at<t>T</t>s``. The reply is data: not JSON, a
missing field or a wrong type gives a :class:`Rejection`, never an exception.

**Time snapping**: each key-frame time is snapped to the nearest sampled frame (the teacher
saw only those, labelled with one decimal); the key frame keeps that frame's true time
(``time_s``) and what the teacher wrote (``asked_time_s``). Two key frames snapping to one
frame are merged.

The values every step passes on (:class:`Candidate`, :class:`Rejection`, :class:`Drop`) live
here too; :mod:`o3video.data.curate_steps` holds steps 2–4.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from o3video.boxes import XYXY
from o3video.models.base import Backend, Request, SamplingParams
from o3video.prompts import build_messages
from o3video.video import Clip, sample_frames

logger = logging.getLogger(__name__)

Step = Literal["annotate", "filter", "verify", "consistency", "record"]
GRID = 1000.0
"""The teacher's box grid: ``[x1, y1, x2, y2]`` in 0–1000 of the frame's width and height."""
TEACHER_MAX_PIXELS = 256 * 28 * 28
"""Frame budget shown to the teacher: twice the published training budget (sharper boxes)."""
CLAIM_TIME_DECIMALS = 1
"""Claim times are rewritten with the precision of the frame labels the model is shown."""
MAX_TIME_TOLERANCE_S = 1.0


def _object(**properties: Any) -> dict[str, Any]:
    """A JSON-schema object whose every property is required (what strict mode asks)."""
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}  # fmt: skip


_BOX_2D = "[x1, y1, x2, y2]: left, top, right, bottom on a 0-1000 grid of the frame"
TEACHER_SCHEMA: dict[str, Any] = {"title": "grounded_video_qa", **_object(
    question={"type": "string"},
    key_frames={"type": "array", "items": _object(
        time_s={"type": "number", "description": "the label time of a frame shown"},
        objects={"type": "array", "items": _object(
            name={"type": "string"},
            box_2d={"type": "array", "items": {"type": "number"}, "description": _BOX_2D},
        )},
    )},
    reasoning={"type": "string"},
    answer={"type": "string", "description": "a short answer, without tags"},
)}  # fmt: skip
"""JSON schema of the teacher's reply (sent as ``response_format`` where supported)."""

TEACHER_SYSTEM_PROMPT = (
    "You are an expert annotator of videos. You write questions whose answers need visual "
    "evidence from specific moments of a video, and you localize that evidence precisely."
)
TEACHER_INSTRUCTIONS = """\
Above are frames sampled from a video, each labelled with its time in seconds.
Write one question about this video that can only be answered by looking at specific objects \
at specific moments, and answer it. Reply with one JSON object with these fields:
- "question": the question.
- "key_frames": 1 to 4 of the frames shown above that hold the evidence. For each: "time_s", \
the frame's label time exactly as written above; "objects", each object the reasoning relies \
on in that frame: "name" (a short noun phrase, e.g. "red car") and "box_2d" = [x1, y1, x2, y2], \
the left, top, right and bottom edges of its tight box on a 0-1000 grid of the frame ((0, 0) \
is the top-left corner, (1000, 1000) the bottom-right). Leave out anything covering most of \
the frame.
- "reasoning": step-by-step reasoning that leads to the answer. Mention every annotated object \
exactly once, as <obj>name</obj><box>[x1,y1,x2,y2]</box>at<t>time_s</t>s with the same name, \
box and time as in "key_frames", and use no other <obj>, <box> or <t> tags.
- "answer": a short answer in plain text, without tags."""

TEACHER_PARAMS = SamplingParams(max_new_tokens=4096, json_schema=TEACHER_SCHEMA)


@dataclass(frozen=True)
class Rejection:
    """A candidate given up at ``step``: ``reason`` is a short code (counted in reports),
    ``detail`` says what exactly, for a person."""

    step: Step
    reason: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Drop:
    """One box (or key frame: ``name``/``box`` ``None``) removed at ``step`` for ``reason``;
    ``time_s`` is the key frame's true time, ``box`` the box on the 0–1000 grid."""

    step: Step
    reason: str
    time_s: float
    name: str | None = None
    box: XYXY | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ObjectBox:
    """An annotated object: its ``name`` and ``box`` (``xyxy`` on the 0–1000 grid)."""

    name: str
    box: XYXY


@dataclass(frozen=True)
class KeyFrameAnnotation:
    """Objects annotated in sampled frame ``frame`` (index into the clip) at true time
    ``time_s``; ``asked_time_s`` is the time the teacher wrote."""

    frame: int
    time_s: float
    asked_time_s: float
    objects: tuple[ObjectBox, ...]


@dataclass(frozen=True, eq=False)
class Candidate:
    """A proposed sample: the ``clip`` the teacher saw, its text and its key frames.
    ``checked`` is set by :func:`check_consistency` (its reasoning is then canonical)."""

    clip: Clip
    question: str
    answer: str
    reasoning: str
    key_frames: tuple[KeyFrameAnnotation, ...]
    checked: bool = False


def teacher_request(clip: Clip) -> Request:
    """The teacher's prompt: :data:`TEACHER_SYSTEM_PROMPT`, the labelled frames, the duration
    line and :data:`TEACHER_INSTRUCTIONS` (frames as images, as the model will be shown)."""
    messages = build_messages(
        clip, TEACHER_INSTRUCTIONS, "free_form", "frames", system_prompt=TEACHER_SYSTEM_PROMPT
    )
    return Request(messages, id=clip.source)


def annotate(
    video_path: str | os.PathLike[str],
    teacher: Backend,
    *,
    num_frames: int = 16,
    max_pixels: int = TEACHER_MAX_PIXELS,
    params: SamplingParams | None = None,
) -> Candidate | Rejection:
    """Step 1: sample ``num_frames`` frames (true times) and ask ``teacher`` for a candidate.

    Raises ``VideoDecodeError`` for an unreadable video and ``BackendError`` when the teacher
    cannot be reached; whatever the teacher writes gives a candidate or a rejection.
    """
    clip = sample_frames(video_path, num_frames=num_frames, max_pixels=max_pixels)
    return annotate_clip(clip, teacher, params=params)


def annotate_clip(
    clip: Clip, teacher: Backend, *, params: SamplingParams | None = None
) -> Candidate | Rejection:
    """Step 1 on frames already sampled: one teacher call, its reply parsed."""
    replies = teacher.generate([teacher_request(clip)], params or TEACHER_PARAMS)
    if not replies or not replies[0]:
        return Rejection("annotate", "no_reply", f"{teacher.name} returned no completion")
    return parse_teacher_reply(replies[0][0], clip)


class _Invalid(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def parse_teacher_reply(text: str, clip: Clip) -> Candidate | Rejection:
    """The teacher's JSON reply as a :class:`Candidate`, or why it is unusable.

    Accepted around the object: whitespace, a Markdown code fence, prose. A reasoning wrapped
    in ``<think>…</think>`` is unwrapped. Key-frame times are snapped (module docstring).

    >>> import numpy as np
    >>> clip = sample_frames([np.zeros((56, 56, 3), np.uint8)] * 2, times_s=[0.0, 0.5])
    >>> parse_teacher_reply("Sure! {not json", clip).reason
    'not_json'
    >>> parse_teacher_reply('{"question": "Q?", "answer": "A", "reasoning": "R", '
    ...                     '"key_frames": [{"time_s": 0.4, "objects": []}]}', clip).key_frames
    (KeyFrameAnnotation(frame=1, time_s=0.5, asked_time_s=0.4, objects=()),)
    """
    data = _json_object(text)
    if data is None:
        return Rejection("annotate", "not_json", f"no JSON object in the reply: {text[:200]!r}")
    try:
        question, answer = _text(data, "question"), _text(data, "answer")
        reasoning = _text(data, "reasoning")
        frames = _get(data, "key_frames", list, "key_frames")
        if not frames:
            raise _Invalid("missing_field", "key_frames: empty")
        by_frame: dict[int, KeyFrameAnnotation] = {}
        for i, raw in enumerate(frames):
            kf = _key_frame(_typed(raw, dict, f"key_frames[{i}]"), f"key_frames[{i}]", clip)
            if kf.frame in by_frame:  # two key frames on one sampled frame: one, merged
                old = by_frame[kf.frame]
                kf = replace(old, objects=old.objects + kf.objects)
            by_frame[kf.frame] = kf
    except _Invalid as e:
        return Rejection("annotate", e.reason, str(e))
    if reasoning.startswith("<think>") and reasoning.endswith("</think>"):
        reasoning = reasoning[len("<think>") : -len("</think>")].strip()
    key_frames = tuple(by_frame[k] for k in sorted(by_frame))
    return Candidate(clip, question, answer, reasoning, key_frames)


def _json_object(text: str) -> dict[str, Any] | None:
    """The JSON object in ``text``: all of it, inside a code fence, or from ``{`` to ``}``."""
    stripped = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", stripped, re.S)
    candidates = [stripped] + ([fence.group(1)] if fence else [])
    if "{" in stripped:
        candidates.append(stripped[stripped.index("{") : stripped.rfind("}") + 1])
    for chunk in candidates:
        try:
            value = json.loads(chunk)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _typed(value: Any, kind: type, path: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Invalid("wrong_type", f"{path}: must be {kind.__name__}, got {value!r:.60}")
    return value


def _get(data: dict[str, Any], key: str, kind: type, path: str) -> Any:
    if data.get(key) is None:
        raise _Invalid("missing_field", f"{path}: missing")
    return _typed(data[key], kind, path)


def _text(data: dict[str, Any], key: str, path: str | None = None) -> str:
    value: str = _get(data, key, str, path or key).strip()
    if not value:
        raise _Invalid("missing_field", f"{path or key}: empty")
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid("wrong_type", f"{path}: must be a number, got {value!r:.40}")
    if not math.isfinite(value):
        raise _Invalid("bad_value", f"{path}: must be finite, got {value!r}")
    return float(value)


def _key_frame(raw: dict[str, Any], path: str, clip: Clip) -> KeyFrameAnnotation:
    if "time_s" not in raw:
        raise _Invalid("missing_field", f"{path}.time_s: missing")
    t = _number(raw["time_s"], f"{path}.time_s")
    if t < 0:
        raise _Invalid("bad_value", f"{path}.time_s: negative ({t})")
    objects = []
    for j, item in enumerate(_get(raw, "objects", list, f"{path}.objects")):
        where = f"{path}.objects[{j}]"
        obj = _typed(item, dict, where)
        name = _text(obj, "name", f"{where}.name")
        if "<" in name or ">" in name:
            raise _Invalid("bad_value", f"{where}.name: holds '<' or '>': {name!r:.60}")
        box = _get(obj, "box_2d", list, f"{where}.box_2d")
        if len(box) != 4:
            raise _Invalid("bad_value", f"{where}.box_2d: needs 4 numbers, got {box!r:.60}")
        x1, y1, x2, y2 = (_number(v, f"{where}.box_2d[{k}]") for k, v in enumerate(box))
        objects.append(ObjectBox(" ".join(name.split()), (x1, y1, x2, y2)))
    frame = clip.nearest_frame(t)
    true_t = float(clip.times_s[frame])
    if abs(true_t - t) > time_tolerance_s(clip):
        logger.info("%s: key frame at %g s snapped to the frame at %.3f s", clip.source, t, true_t)
    return KeyFrameAnnotation(frame, true_t, t, tuple(objects))


def time_tolerance_s(clip: Clip) -> float:
    """How far a written time may be from a frame's true time and still mean that frame:
    half the sampling interval (the nearest frame is then unique), at least 0.1 s (labels are
    rounded to 0.1 s) and at most :data:`MAX_TIME_TOLERANCE_S` (sparse frames of a long video)."""
    times = clip.times_s
    if len(times) > 1:
        interval = (times[-1] - times[0]) / (len(times) - 1)
    else:
        interval = 1.0 / clip.fps if clip.fps > 0 else 1.0
    return max(0.1, min(0.5 * interval, MAX_TIME_TOLERANCE_S))

"""V-STaR's five generations per item (SPEC §7), under each protocol.

========  ===================  ==============================================================
key       result field         what the model is asked
========  ===================  ==============================================================
what      ``answer_vqa``        the question (free text)
when_1    ``answer_temporal``   the temporal question → a start and an end time
where_1   ``answer_spatial``    the spatial question at the ground-truth whole seconds
                                ``range(ceil(start), floor(end) + 1)`` → JSON ``{"s": box}``
where_2   ``answer_spatial_2``  spatial_question_2, told how many boxes (the ground-truth count)
when_2    ``answer_temporal_2`` the temporal question, given the ground-truth boxes (untimed)
========  ===================  ==============================================================

``o3video``: the published checkpoint's task system prompts (grounded free-form, temporal)
and a Where prompt of ours, frames labelled with their true times and the duration line,
boxes shown and asked in the model family's space (resized-frame pixels for Qwen2.5-VL,
0–1000 for Qwen3-VL).

``reference``: the reference V-STaR script (``think`` mode, as its evaluation ran), verbatim —
system prompt ``You are a helpful assistant.``; the frames (:data:`REFERENCE_VIDEO`: 1 fps, at
most 16, native size) labelled ``Frame k at {round(index / fps, 1)}s: ``, placed where the
script places them; each question wrapped in the script's sentences; When-1 told
``This video is {round(frame_count / fps, 2)} seconds long.``; chain 2 given the
ground-truth boxes in original pixels as the file stores them, and the resolution
``{width}x{height} (width x height)``. Numbers are printed as the script's Python prints
them, from the raw file entry when it is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from o3video.boxes import WH
from o3video.data.vstar import VStarItem
from o3video.families import ModelFamily
from o3video.models.card import VideoSettings
from o3video.prompts import (
    SYSTEM_PROMPT_FREE_FORM,
    SYSTEM_PROMPT_TEMPORAL,
    SYSTEM_PROMPT_VSTAR_WHERE,
)
from o3video.protocols import ProtocolName, check_protocol
from o3video.protocols.render import Prompt, labels_for, o3video_prompt, reference_label
from o3video.video import Clip

GENERATIONS: tuple[tuple[str, str], ...] = (
    ("what", "answer_vqa"),
    ("when_1", "answer_temporal"),
    ("where_1", "answer_spatial"),
    ("where_2", "answer_spatial_2"),
    ("when_2", "answer_temporal_2"),
)
"""(generation key, result field), in the order they are generated."""

REFERENCE_SYSTEM_PROMPT = "You are a helpful assistant."

REFERENCE_VIDEO = VideoSettings(
    fps=1.0,
    min_frames=1,
    max_frames=16,
    min_pixels=4 * 28 * 28,
    max_pixels=16384 * 28 * 28,
    sampler="reference_vstar",
)
"""The reference V-STaR frames: 1 fps, at most 16 (``video_max_frames``), each image at its
native size rounded to the factor (qwen-vl-utils' image bounds 4·28·28 to 16384·28·28
pixels: a 640×360 video is shown at 644×364, 299 image tokens a frame)."""

REFERENCE_MAX_NEW_TOKENS = 2048
"""The reference V-STaR evaluation's ``max_tokens`` (``eval/config/vstar.yaml``)."""
REFERENCE_REPETITION_PENALTY = 1.05
"""The reference evaluation's vLLM sampling: greedy with ``repetition_penalty=1.05``."""

_THINK = (
    "You must first think about the reasoning process in the mind and then provide the user "
    "with the answer. The reasoning process and answer are enclosed within <think> </think> "
    "and <answer> </answer> tags, respectively."
)
_GROUNDED = (
    " All reasoning must be grounded in visual evidence from the video. When you mention any "
    "related object, person, or specific visual element, you must strictly follow the "
    "following format: `<obj>object_name</obj><box>bounding_box</box>at<t>time_in_seconds</t>s`."
)
_SPAN_FORMAT = (
    " The answer must follow the following format: `From <t>start_time</t>s to <t>end_time</t>s'"
)


def whole_seconds(span_s: tuple[float, float]) -> list[int]:
    """The seconds chain 1's Where asks about: ``range(ceil(start), floor(end) + 1)``.

    >>> whole_seconds((1.5, 4.0))
    [2, 3, 4]
    """
    return list(range(math.ceil(span_s[0]), math.floor(span_s[1]) + 1))


def video_settings_for(protocol: str, default: VideoSettings) -> VideoSettings:
    """The frames V-STaR is run with: the reference script's for ``reference``, else
    ``default`` (the model card's budget, or the options given)."""
    return REFERENCE_VIDEO if protocol == "reference" else default


# --- o3video ------------------------------------------------------------------------------


def space_note(family: ModelFamily, frame_wh: WH) -> str:
    """How boxes are written for ``family``, told to the model in the Where prompts."""
    if family.box_space == "rel1000":
        return "Boxes are [x1, y1, x2, y2] on a 0-1000 scale of the frame's width and height."
    if family.box_space == "frame_px":
        return f"Boxes are [x1, y1, x2, y2] in pixels of the {frame_wh[0]}x{frame_wh[1]} frames."
    return "Boxes are [x1, y1, x2, y2] in pixels of the original video."


def _box_text(box: Sequence[float]) -> str:
    return "[" + ", ".join(str(round(v)) for v in box) + "]"


def item_prompts(item: VStarItem, family: ModelFamily, frame_wh: WH) -> list[tuple[str, str, str]]:
    """The ``o3video`` protocol's five ``(key, system prompt, user text)`` of ``item``, with
    boxes in ``family``'s space for frames of ``frame_wh``."""
    note = space_note(family, frame_wh)
    seconds = whole_seconds(item.span_s)
    example = ", ".join(f'"{s}": [x1, y1, x2, y2]' for s in seconds[:2])
    where_1 = (
        f"{item.spatial_question}\nGive the object's bounding box at each of these seconds: "
        f"{', '.join(str(s) for s in seconds)}. {note} "
        f"Answer with a JSON object mapping each second to its box, like {{{example}}}."
    )
    n = len(item.boxes)
    where_2 = (
        f"{item.spatial_question_2}\nGive {n} bounding box{'es' if n != 1 else ''}, one per "
        f"whole second while it happens. {note} "
        "Answer with a JSON object mapping each second to its box."
    )
    gt_boxes = [
        family.from_source_box(b.xyxy, source_wh=item.frame_wh, frame_wh=frame_wh)
        for b in item.boxes
    ]
    when_2 = (
        f"{item.temporal_question}\nThe object is at these boxes, in time order: "
        f"{', '.join(_box_text(b) for b in gt_boxes)}. {note}"
    )
    return [
        ("what", SYSTEM_PROMPT_FREE_FORM, item.question),
        ("when_1", SYSTEM_PROMPT_TEMPORAL, item.temporal_question),
        ("where_1", SYSTEM_PROMPT_VSTAR_WHERE, where_1),
        ("where_2", SYSTEM_PROMPT_VSTAR_WHERE, where_2),
        ("when_2", SYSTEM_PROMPT_TEMPORAL, when_2),
    ]


# --- reference ----------------------------------------------------------------------------


def _num(value: float) -> Any:
    """A value of the item as the raw file most likely held it: integral floats as ints."""
    return int(value) if float(value).is_integer() else value


def reference_texts(
    item: VStarItem, raw: Mapping[str, Any] | None = None
) -> list[tuple[str, str, str]]:
    """The reference script's five ``(key, text before the frames, text after them)`` of
    ``item`` (module docstring). ``raw``: the item's entry in the V-STaR file, so that
    numbers print exactly as the script printed them (without it they are rebuilt from the
    item, integral values as integers)."""
    r: Mapping[str, Any] = raw if raw is not None else {}
    fps = r.get("fps", item.fps)
    frame_count = r.get("frame_count", _num(item.frame_count))
    length = round(frame_count / fps, 2)
    w, h = r.get("width", _num(item.width)), r.get("height", _num(item.height))
    question = r.get("question", item.question)
    temporal = r.get("temporal_question", item.temporal_question)
    spatial = r.get("spatial_question", item.spatial_question)
    spatial_2 = r.get("spatial_question_2", item.spatial_question_2)
    span = r.get("timestamps", item.span_s)
    time_range = list(range(math.ceil(span[0]), math.floor(span[1]) + 1))
    # The script indexes time_range[0] (and fails on an empty range): we print its first
    # whole second instead.
    first = time_range[0] if time_range else math.ceil(span[0])
    if isinstance(r.get("bboxes"), list):
        bboxes = [[b["xmin"], b["ymin"], b["xmax"], b["ymax"]] for b in r["bboxes"]]
    else:
        bboxes = [[_num(v) for v in b.xyxy] for b in item.boxes]
    n = len(bboxes)
    what = (
        f"Answer the question about the video: {question} \n (If the answer is a person, you "
        "don't need to identify the person.)" + _THINK + _GROUNDED + " Do not use <box>, "
        "<obj> and <t> in the answer part."
    )
    when_1 = f"\nAnswer the question about the video: {temporal} \n. " + _THINK + _SPAN_FORMAT
    when_2 = (
        f"\nAnswer the question about the video: {temporal} \nThere are {n} bounding boxes "
        "of the key object related to the question in the video without knowing the time, "
        f"which are:{bboxes}. " + _THINK + _SPAN_FORMAT
    )
    where_head = (
        "\nPlease answer the question about the video: {q} with a series of bounding boxes "
        "in [x1, y1, x2, y2] format.\n" + _THINK + "\n"
    )
    where_1 = (
        where_head.format(q=spatial)
        + f"In the answer part, for each whole second within the time range {time_range} "
        "provided (inclusive of the boundaries), output a series of bounding boxes of the "
        "object in JSON format. The keys should be the whole seconds (as strings), and the "
        "values should be the box in [x1, y1, x2, y2] format.\n"
        f'Example output of the answer part: {{"{first}": [x1, y1, x2, y2],...}}\n'
    )
    where_2 = (
        where_head.format(q=spatial_2)
        + "In the answer part, for each whole second that may related to the question, output "
        f"a series of bounding boxes of the object in JSON format. You only need to output {n} "
        "bbox(es). You need to determine which frame is related to the question, and you "
        "don't need to output the bbox for the frames not related to the question.\n"
        "The keys should be the whole seconds (as strings), and the values should be the "
        "bounding box in [x0,y0,x1,y1] format.\n\nExample output of the answer part:\n"
        f'{{"0": [x0,y0,x1,y1], "1":..., ..., "{n}":...}} (if the frames at 0~{n} second '
        "are related to the questions)\n"
    )
    return [
        ("what", "", what),
        ("when_1", f"This video is {length} seconds long. ", when_1),
        ("where_1", "", where_1),
        ("where_2", "", where_2),
        (
            "when_2",
            f"This video is {length} seconds long with a resolution of {w}x{h} (width x height). ",
            when_2,
        ),
    ]


def vstar_prompts(
    item: VStarItem,
    protocol: ProtocolName | str,
    family: ModelFamily,
    clip: Clip,
    raw: Mapping[str, Any] | None = None,
) -> list[tuple[str, Prompt]]:
    """The five ``(key, prompt)`` of ``item`` under ``protocol``, for the frames of ``clip``
    (module docstring)."""
    name = check_protocol(protocol, inference=True)
    if name == "reference":
        labels = labels_for(clip.times_s, reference_label)
        return [
            (key, Prompt(REFERENCE_SYSTEM_PROMPT, after, labels, before=before))
            for key, before, after in reference_texts(item, raw)
        ]
    return [
        (key, o3video_prompt(system, text, clip))
        for key, system, text in item_prompts(item, family, clip.frame_wh)
    ]

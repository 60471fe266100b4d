"""How a :class:`~o3video.video.Clip` and a question become chat messages and model inputs.

Two presentations (SPEC §3), one label format everywhere:

- ``"frames"`` — frames as images with time labels, what the published checkpoint was
  trained on. For each frame: the text :func:`frame_label` (``"Frame {k} at {t:.1f}s: "``,
  ``k`` **1-based**, ``t`` the frame's true time), the image, a newline; after the frames
  :func:`duration_line` and a newline; then the question. Rendered by Qwen's chat template:
  ``Frame 1 at 0.0s: <|vision_start|><|image_pad|><|vision_end|>\\n...``.
- ``"video"`` — one native video item, then the question. The processor must be told the
  frames' real timing through ``video_metadata`` (:func:`video_metadata`): with
  ``transformers`` 5.x a plain ``fps=`` is ignored and the processor assumes 24 fps.

System prompts are the published checkpoint's, verbatim (SPEC §3), quirks included — the
temporal prompts close a backquote with ``'`` and one lacks a space after ``s'.`` — because
the weights were trained on exactly these strings. STGR task names map to our tasks:

==============================  ================
STGR ``task``                   :data:`Task`
==============================  ================
temporal-spatial free-form QA   ``free_form``
General video QA Free-form      ``free_form``
General video QA MCQ            ``mcq``
temporal QA                     ``temporal``
temporal QA (MCQ)               ``temporal_mcq``
visual QA                       ``spatial_image``
==============================  ================

>>> frame_label(1, 0.0)
'Frame 1 at 0.0s: '
>>> duration_line(10.04)
'The video is in total 10.0 seconds.'
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
from PIL import Image

from o3video.families import ModelFamily, family_for_processor, get_family
from o3video.video import Clip

if TYPE_CHECKING:
    from transformers import BatchFeature

logger = logging.getLogger(__name__)

Task = Literal["free_form", "mcq", "temporal", "temporal_mcq", "spatial_image"]
TASKS: tuple[str, ...] = get_args(Task)
Presentation = Literal["frames", "video"]
Message = dict[str, Any]

TRACE_TAGS: tuple[str, ...] = tuple(
    f"<{slash}{tag}>" for tag in ("think", "answer", "obj", "box", "t") for slash in ("", "/")
)
"""The tags of the trace format (SPEC §1), opening before closing."""

_HEAD = "A conversation between user and assistant. "
_THINK = (
    "The assistant MUST first think about the reasoning process in the mind and then provide "
    "the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively. "
)
_GROUNDED = (
    "All reasoning must be grounded in visual evidence from the video. When you mention any "
    "related object, person, or specific visual element in the reasoning process, you must "
    "strictly follow the following format: "
    "`<obj>object_name</obj><box>bounding_box</box>at<t>time_in_seconds</t>s`. "
)

SYSTEM_PROMPT_FREE_FORM = (
    _HEAD
    + "The user provides a video and asks a question, and the Assistant solves it. "
    + _THINK
    + _GROUNDED
    + "The answer part only requires a text response; tags like <obj>, <box>, <t> are not needed."
)
"""Grounded free-form QA (STGR ``temporal-spatial free-form QA`` and
``General video QA Free-form``): the published checkpoint's prompt, verbatim."""

SYSTEM_PROMPT_MCQ = (
    _HEAD
    + "The user provides a video and asks a multiple-choice question, and the Assistant solves it. "
    + _THINK
    + _GROUNDED
    + "Only output the correct option in the <answer> </answer> section."
)
"""Multiple choice (STGR ``General video QA MCQ``)."""

SYSTEM_PROMPT_TEMPORAL = (
    _HEAD
    + "The user provides a video and asks a question, and the Assistant determines the precise "
    "time period that answers the question. "
    + _THINK
    + "When mentioning time during the reasoning process, the assistant must use the format: "
    "`<t>time_in_seconds</t>s'.The answer must strictly follow the following format: "
    "`From <t>start_time</t>s to <t>end_time</t>s'."
)
"""Temporal grounding (STGR ``temporal QA``); answer ``From <t>s</t>s to <t>e</t>s``."""

SYSTEM_PROMPT_TEMPORAL_MCQ = (
    _HEAD
    + "The user provides a video and a multiple-choice question, and the Assistant determines "
    "the precise time period that answers the question and selects the correct option. "
    + _THINK
    + "When mentioning time during the reasoning process, the assistant must use the format: "
    "`<t>time_in_seconds</t>s'. The answer must strictly follow the following format: "
    "`From <t>start_time</t>s to <t>end_time</t>s.\nCorrect Option: [ONLY THE LETTER]'."
)
"""Temporal grounding with options (STGR ``temporal QA (MCQ)``)."""

SYSTEM_PROMPT_SPATIAL_IMAGE = (
    _HEAD
    + "The user provides an image and asks a question, and the Assistant solves it. "
    + _THINK
    + "When referring to particular objects in the reasoning process, the assistant must "
    "localize the object with bounding box coordinates between <box> and </box>. The answer "
    "must strictly follow the following format:`<obj>object_name</obj><box>bounding_box</box>'."
)
"""Spatial grounding on one image (STGR ``visual QA``)."""

SYSTEM_PROMPT_VSTAR_WHERE = (
    _HEAD + "The user provides a video and asks where an object is at given seconds, and the "
    "Assistant locates it. "
    + _THINK
    + _GROUNDED
    + "The answer must be a JSON object that maps each second to the object's bounding box "
    '[x1, y1, x2, y2], like {"3": [x1, y1, x2, y2]}.'
)
"""V-STaR's Where questions (:mod:`o3video.eval.vstar`). Ours: the published checkpoint has
no prompt for them."""

SYSTEM_PROMPTS: dict[str, str] = {
    "free_form": SYSTEM_PROMPT_FREE_FORM,
    "mcq": SYSTEM_PROMPT_MCQ,
    "temporal": SYSTEM_PROMPT_TEMPORAL,
    "temporal_mcq": SYSTEM_PROMPT_TEMPORAL_MCQ,
    "spatial_image": SYSTEM_PROMPT_SPATIAL_IMAGE,
}

STGR_TASKS: dict[str, Task] = {
    "temporal-spatial free-form QA": "free_form",
    "General video QA Free-form": "free_form",
    "General video QA MCQ": "mcq",
    "temporal QA": "temporal",
    "temporal QA (MCQ)": "temporal_mcq",
    "visual QA": "spatial_image",
}
"""STGR ``task`` field → the prompt :data:`Task` it is trained and evaluated with."""


def task_for_stgr(stgr_task: str) -> Task:
    """The :data:`Task` of an STGR record's ``task`` field; ``ValueError`` if unknown."""
    try:
        return STGR_TASKS[stgr_task]
    except KeyError:
        raise ValueError(
            f"unknown STGR task {stgr_task!r}; known: {', '.join(STGR_TASKS)}"
        ) from None


def system_prompt_for(task: str) -> str:
    """The published system prompt of ``task``; ``ValueError`` for an unknown task."""
    if task not in SYSTEM_PROMPTS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return SYSTEM_PROMPTS[task]


def frame_label(k: int, t_s: float) -> str:
    """The label before the ``k``-th frame (1-based) taken at ``t_s`` seconds.

    One decimal, as the published checkpoint saw it; ``-0.0`` never appears.

    >>> frame_label(3, 1.04)
    'Frame 3 at 1.0s: '
    """
    return f"Frame {k} at {round(float(t_s), 1) + 0.0:.1f}s: "


def duration_line(duration_s: float) -> str:
    """The line after the frames, ``The video is in total {duration_s:.1f} seconds.``

    The reference code printed ``int(n_frames / sample_fps)`` — truncated and computed from
    the frame count, not the video. We print the true duration with one decimal, the same
    precision as the frame labels.
    """
    return f"The video is in total {round(float(duration_s), 1) + 0.0:.1f} seconds."


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def build_messages(
    clip: Clip,
    question: str,
    task: Task = "free_form",
    presentation: Presentation = "frames",
    system_prompt: str | None = None,
) -> list[Message]:
    """Chat messages (``transformers`` chat-template format) asking ``question`` about ``clip``.

    A system turn with ``system_prompt`` (default: the task's published prompt), then one user
    turn. ``"frames"``: per frame a label, a ``{"type": "image", "image": PIL.Image}`` item and
    a newline, then the duration line and the question. ``"video"``: one
    ``{"type": "video", "video": frames}`` item (``(T, H, W, 3)`` uint8), then the question.
    Task ``"spatial_image"`` needs a one-frame clip and shows it as one unlabelled image, as
    the published training did.
    """
    system = system_prompt if system_prompt is not None else system_prompt_for(task)
    if presentation not in get_args(Presentation):
        raise ValueError(f"unknown presentation {presentation!r}; use 'frames' or 'video'")
    content: list[dict[str, Any]] = []
    if task == "spatial_image":
        if clip.num_frames != 1 or presentation != "frames":
            raise ValueError(
                f"task 'spatial_image' shows one image: got {clip.num_frames} frames "
                f"with presentation {presentation!r}"
            )
        content.append({"type": "image", "image": Image.fromarray(clip.frames[0])})
    elif presentation == "frames":
        for k, (frame, t_s) in enumerate(zip(clip.frames, clip.times_s, strict=True), start=1):
            content.append(_text(frame_label(k, t_s)))
            content.append({"type": "image", "image": Image.fromarray(frame)})
            content.append(_text("\n"))
        content.append(_text(duration_line(clip.duration_s) + "\n"))
    else:
        content.append({"type": "video", "video": clip.frames})
    content.append(_text(question))
    return [
        {"role": "system", "content": [_text(system)]},
        {"role": "user", "content": content},
    ]


def sampling_interval_s(clip: Clip) -> float:
    """Mean spacing of ``clip``'s frames in seconds, from their true times.

    A one-frame clip has no spacing: ``1 / clip.fps`` (or 1 s without a frame rate).
    Irregular spacing (beyond 25% of the mean) is logged: a native video assumes uniform steps.
    """
    times = np.asarray(clip.times_s, dtype=float)
    if times.size < 2:
        return 1.0 / clip.fps if clip.fps > 0 else 1.0
    steps = np.diff(times)
    if np.any(steps <= 0):
        raise ValueError(f"clip frame times must increase, got {list(clip.times_s)}")
    interval = float((times[-1] - times[0]) / (times.size - 1))
    if np.max(np.abs(steps - interval)) > 0.25 * interval:
        logger.warning(
            "frame times are irregular (steps %.3f..%.3f s); the native video presents them "
            "at a uniform %.3f s",
            float(steps.min()),
            float(steps.max()),
            interval,
        )
    return interval


def video_metadata(
    clip: Clip, family: ModelFamily | str = "qwen2_5_vl", *, interval_s: float | None = None
) -> dict[str, Any]:
    """The ``video_metadata`` that makes the processor present ``clip``'s frames at true time
    (or, with ``interval_s``, ``interval_s`` seconds apart whatever their true spacing).

    ``transformers`` 5.x reads time only from this metadata (never from ``fps=``):

    - Qwen2.5-VL: ``second_per_grid_ts = temporal_patch_size / sampled_fps`` with
      ``sampled_fps = len(frames_indices) / total_num_frames × fps``. We describe the frames
      we pass as a video of their own — ``n`` frames at ``1 / interval`` fps — so that
      ``second_per_grid_ts = temporal_patch_size × interval`` exactly (frames 0.5 s apart:
      1.0). The time axis starts at the first frame shown.
    - Qwen3-VL: the text timestamp of each temporal patch is the mean of
      ``frames_indices / fps`` over its frames. We give ``fps`` = the stream's rate and each
      frame's position ``t_s × fps`` (the stream index when it matches), so timestamps are
      the frames' true times.

    ``interval_s`` (a protocol's choice, e.g. the reference general benchmarks, whose
    processor was told no frame rate: 0.5 s, ``second_per_grid_ts`` 1.0): both families get
    the frames as ``n`` frames at ``1 / interval_s`` fps, the first at 0 s.

    >>> from o3video.video import Clip
    >>> clip = Clip(np.zeros((4, 28, 28, 3), np.uint8), (0.0, 2.0, 4.0, 6.0), (28, 28),
    ...             (28, 28), 1.0, 8.0)
    >>> video_metadata(clip)["fps"], video_metadata(clip, interval_s=0.5)["fps"]
    (0.5, 2.0)
    """
    fam = get_family(family) if isinstance(family, str) else family
    n = clip.num_frames
    width, height = clip.frame_wh
    meta: dict[str, Any] = {"duration": float(clip.duration_s), "width": width, "height": height}
    if interval_s is not None:
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"interval_s must be a positive number of seconds, got {interval_s}")
        meta.update(total_num_frames=n, fps=1.0 / interval_s, frames_indices=list(range(n)))
        return meta
    if fam.video_time != "text_timestamps":
        interval = sampling_interval_s(clip)
        meta.update(total_num_frames=n, fps=1.0 / interval, frames_indices=list(range(n)))
        return meta
    fps = clip.fps if clip.fps > 0 else 1.0 / sampling_interval_s(clip)
    positions: list[float] | list[int] = [t * fps for t in clip.times_s]
    if clip.frame_indices is not None and all(
        abs(i - p) < 1e-3 for i, p in zip(clip.frame_indices, positions, strict=True)
    ):
        positions = list(clip.frame_indices)
    total = max(n, round(clip.duration_s * fps))
    meta.update(total_num_frames=total, fps=float(fps), frames_indices=positions)
    return meta


def media_items(messages: Sequence[Message], kind: str) -> list[Any]:
    """The ``kind`` items (``"image"`` or ``"video"``) of ``messages``, in order."""
    return [
        item[kind]
        for message in messages
        if isinstance(message.get("content"), list)
        for item in message["content"]
        if isinstance(item, dict) and item.get("type") == kind
    ]


def processor_inputs(
    processor: Any,
    messages: list[Message],
    clip: Clip,
    *,
    family: ModelFamily | str | None = None,
    add_generation_prompt: bool = True,
    return_tensors: str = "pt",
    video_interval_s: float | None = None,
) -> BatchFeature:
    """Render ``messages`` with the processor's chat template and run the processor on them.

    Images and videos are taken from the messages in order. Our frames are already sampled
    and resized (``clip``), so the processor is told not to resample (``do_sample_frames=False``)
    nor resize (``do_resize=False``): the model sees exactly ``clip.frame_wh``, the size its
    boxes refer to. A native video gets :func:`video_metadata` of ``clip`` (its frames
    ``video_interval_s`` apart when given, else at their true times). ``family``
    defaults to the processor's. Returns the processor's ``BatchFeature`` (``input_ids``,
    ``pixel_values`` / ``image_grid_thw`` or ``pixel_values_videos`` / ``video_grid_thw``
    and, for Qwen2.5-VL, ``second_per_grid_ts``).
    """
    if family is None:
        fam = family_for_processor(processor)
    else:
        fam = get_family(family) if isinstance(family, str) else family
    width, height = clip.frame_wh
    if width % fam.factor or height % fam.factor:
        raise ValueError(
            f"frames are {width}x{height}, not multiples of {fam.name}'s factor {fam.factor}; "
            "resize them with family.smart_resize first (video.sample_frames does)"
        )
    images, videos = media_items(messages, "image"), media_items(messages, "video")
    if video_interval_s is not None and not videos:
        raise ValueError("video_interval_s is for a native video; these messages show none")
    text = processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    kwargs: dict[str, Any] = {"text": [text], "return_tensors": return_tensors, "do_resize": False}
    if images:
        kwargs["images"] = images
    if videos:
        if len(videos) != 1:
            raise ValueError(f"one native video per conversation, got {len(videos)}")
        kwargs["videos"] = [np.asarray(videos[0])]
        kwargs["video_metadata"] = [video_metadata(clip, fam, interval_s=video_interval_s)]
        kwargs["do_sample_frames"] = False
        if hasattr(processor.video_processor, "cap_pixels_per_frame"):
            kwargs["cap_pixels_per_frame"] = False  # no resize anyway; silences a warning
    return processor(**kwargs)


def prepare_inputs(
    processor: Any,
    clip: Clip,
    question: str,
    task: Task = "free_form",
    presentation: Presentation = "frames",
    *,
    family: ModelFamily | str | None = None,
    system_prompt: str | None = None,
    return_tensors: str = "pt",
) -> BatchFeature:
    """:func:`build_messages` then :func:`processor_inputs`: ready for ``model.generate(**x)``."""
    messages = build_messages(clip, question, task, presentation, system_prompt)
    return processor_inputs(processor, messages, clip, family=family, return_tensors=return_tensors)

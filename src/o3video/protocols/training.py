"""The prompt of a training example (an STGR record) under each protocol.

:func:`training_prompt` gives the :class:`~o3video.protocols.render.Prompt` of a record —
system prompt, frame labels, duration line, question — for the frames it is shown; the
target is written by :func:`o3video.data.examples.to_example`. The frames are the same
under every protocol (sampled at their true times, key frames merged in by
:func:`o3video.data.examples.merge_key_frames`); only the text around them differs:

- ``o3video``: the task's system prompt (:data:`o3video.prompts.SYSTEM_PROMPTS`), each
  frame labelled with its true time (``Frame 3 at 1.2s: ``), the line ``The video is in
  total {duration:.1f} seconds.`` (the true duration), then the question.
- ``reference`` — the reference RL stage (``data_loader.py``, ``grpo_trainer.py``): the
  same system prompts; a sampled frame ``i`` (0-based among the sampled frames) labelled
  ``round(i / sample_fps, 1)`` with qwen-vl-utils' ``sample_fps = n / total_frames ·
  video_fps`` (:func:`reference_sample_fps`), a key frame ``round(time)`` printed as an
  integer (``Frame 2 at 3s: ``), then ``The video is in total {int(n / sample_fps)}
  seconds.`` — for every video task, the spatio-temporal one included — and the question.
- ``reference-sft`` — the reference SFT stage (``sft_multi_task.py``): its own system
  prompts (:data:`REFERENCE_SFT_SYSTEM_PROMPTS`); for temporal QA and general video QA
  labels without ``s`` (``Frame 2 at 0.6: ``), the duration line and the question after
  ``Question: ``; for the spatio-temporal task labels with ``s``, a key frame labelled with
  its time as the file gives it (``Frame 2 at 0.7s: ``), no duration line, the bare
  question. ``temporal QA (MCQ)`` has no prompt: the reference SFT code refuses the task
  (``Unknown task``), and so does this protocol (:func:`check_training_task`).

Visual QA shows its image alone under every protocol. ``V-STaR protocol`` records (ours)
are rendered under ``o3video`` only, with :func:`o3video.protocols.vstar.vstar_prompts`.

What remains different from the reference, by design (the frames are ours):

- Key frames sit at their own times and replace a sampled frame within the merge tolerance
  (0.1 s). The reference keeps every sampled frame and inserts a key frame (in file order)
  before the first sampled frame ``i`` with ``int(i / sample_fps) >=`` its time (rounded in
  RL), so a key frame may come a little earlier or later in the sequence than here; there a
  key frame later than the last sampled frame's whole second is never shown, nor is any
  key frame listed after it in the file.
- ``total_frames`` is ``round(duration · fps)`` of the video (the decoder's frame count for
  a constant-rate video); key-frame times are kept as floats, so a time the file writes as
  an integer (``3``) prints ``3.0`` under ``reference-sft`` where the reference printed
  ``3``.
- The frame budget is the data section's, under every protocol (the reference's: videos at
  2 fps, 4–16 frames of 100,352 to 105,369 pixels; images up to 256·28·28 pixels).
- Targets (``reference-sft``): a loosely written box (``<box> [..] </box>``) is converted
  like the others, where the reference's pattern skips it; a visual-QA trace written 0–1 is
  converted from 0–1 (the reference reads only integer pixels); a ``<box>`` inside a
  question stays as written (the reference rewrote the whole chat text). ``reference``
  writes this project's targets: the reference RL stage has none.

>>> reference_sample_fps(4, 10, 4.0)                  # 4 of 10 frames of a 4 fps video
1.6
>>> reference_duration(4, 1.6)
'The video is in total 2 seconds.\\n'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from o3video.families import ModelFamily
from o3video.prompts import STGR_TASKS, system_prompt_for
from o3video.protocols import ProtocolName, check_protocol
from o3video.protocols.render import (
    Prompt,
    o3video_prompt,
    reference_label,
    reference_sft_label,
)
from o3video.protocols.tasks import reference_duration, reference_sample_fps
from o3video.video import Clip

if TYPE_CHECKING:  # o3video.data imports this module (through its examples)
    from o3video.data.stgr import Record

FrameSource = tuple[Literal["sampled", "key"], int]
"""Where a shown frame comes from: ``("sampled", i)``, the ``i``-th frame sampled from the
video (0-based), or ``("key", j)``, the record's ``key_frames[j]``."""

_HEAD = "A conversation between user and assistant. "
_THINK = (
    "The assistant MUST first think about the reasoning process in the mind and then provide "
    "the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively."
)
_VIDEO_QUESTION = "The user provides a video and asks a question, and the Assistant solves it. "

REFERENCE_SFT_SYSTEM_PROMPTS: dict[str, str] = {
    "visual QA": _HEAD
    + "The user provides an image and asks a question, and the Assistant solves it. "
    + _THINK
    + " When referring to particular objects in the reasoning process, the assistant MUST "
    "localize the object with bounding box coordinates between <box> and </box>. You MUST "
    "strictly follow the format.",
    "temporal-spatial free-form QA": _HEAD
    + _VIDEO_QUESTION
    + _THINK
    + " All reasoning must be grounded in visual evidence from the video. When you mention any "
    "related object, person, or specific visual element, you must strictly follow the "
    "following format: `<obj>object_name</obj><box>bounding_box</box>at<t>time_in_seconds</t>s`.",
    "temporal QA": _HEAD
    + "The user provides a video and asks a question, and the Assistant determines the precise "
    "time period that answers the question. "
    + _THINK
    + " The answer must strictly follow the following format: "
    "`From <t>start_time</t>s to <t>end_time</t>s'",
    "General video QA MCQ": _HEAD
    + "The user provides a video and asks a multiple-choice question, and the Assistant solves "
    "it. " + _THINK + " Only output the correct option in the <answer> </answer> section.",
    "General video QA Free-form": _HEAD + _VIDEO_QUESTION + _THINK,
}
"""The reference SFT stage's system prompt of each task it trains, verbatim (quirks kept:
the temporal one ends without a period, after a closing ``'``)."""

QUESTION_PREFIX_TASKS = ("temporal QA", "General video QA MCQ", "General video QA Free-form")
"""Tasks whose question the reference SFT stage writes after ``Question: `` (and whose frame
labels it writes without ``s``, followed by the duration line)."""


def check_training_task(task: str, protocol: str) -> None:
    """``ValueError`` when ``protocol`` has no training prompt for STGR ``task``."""
    name = check_protocol(protocol)
    if task == "V-STaR protocol" and name != "o3video":
        raise ValueError(
            f"task {task!r} has no prompt under protocol {name!r}: it is this project's own "
            "task (the reference never trained on it); train it under 'o3video', or leave it "
            "out with data.tasks"
        )
    if name == "reference-sft" and task not in REFERENCE_SFT_SYSTEM_PROMPTS:
        raise ValueError(
            f"task {task!r} has no prompt under protocol 'reference-sft': the reference SFT "
            "stage refuses it (sft_multi_task.py has no branch for it); train it under "
            "'reference' or 'o3video', or leave it out with data.tasks"
        )


def reference_total_frames(clip: Clip) -> int:
    """The video's frame count as the reference's reader saw it: ``round(duration · fps)``."""
    return max(1, round(clip.duration_s * clip.fps))


def raw_time_label(k: int, t_s: float) -> str:
    """``Frame {k} at {t}s: `` with the time printed as Python prints it, unrounded (the
    reference SFT stage's key-frame label)."""
    return f"Frame {k} at {t_s}s: "


def training_prompt(
    record: Record,
    protocol: ProtocolName | str,
    clip: Clip,
    family: ModelFamily,
    *,
    sources: Sequence[FrameSource] | None = None,
    sampled: int | None = None,
) -> Prompt:
    """The :class:`Prompt` of ``record`` under ``protocol`` for the frames of ``clip``
    (module docstring).

    ``sources``: where each frame of ``clip`` comes from (default: all sampled, in order);
    ``sampled``: how many frames were sampled from the video before key frames were merged
    in (default: the sampled frames in ``sources``). ``ValueError`` for a task the protocol
    has no prompt for.
    """
    name = check_protocol(protocol)
    check_training_task(record.task, name)
    text = record.question
    if record.task == "V-STaR protocol":
        return _vstar_prompt(record, clip, family)
    task = STGR_TASKS[record.task]
    if task == "spatial_image":
        system = (
            REFERENCE_SFT_SYSTEM_PROMPTS[record.task]
            if name == "reference-sft"
            else system_prompt_for(task)
        )
        return Prompt(system, text, ("",))
    if name == "o3video":
        return o3video_prompt(system_prompt_for(task), text, clip)
    srcs = (
        tuple(sources)
        if sources is not None
        else tuple(("sampled", i) for i in range(clip.num_frames))
    )
    if len(srcs) != clip.num_frames:
        raise ValueError(f"{len(srcs)} frame sources for a clip of {clip.num_frames} frames")
    n = sampled if sampled is not None else sum(1 for kind, _ in srcs if kind == "sampled")
    fps = reference_sample_fps(n, reference_total_frames(clip), clip.fps)
    key_times = [kf.time_s for kf in getattr(record, "key_frames", ())]
    if name == "reference":
        labels = reference_labels(srcs, fps, key_times, stage="rl")
        duration = reference_duration(n, fps)
        return Prompt(system_prompt_for(task), text, labels, duration=duration)
    system = REFERENCE_SFT_SYSTEM_PROMPTS[record.task]
    if record.task in QUESTION_PREFIX_TASKS:
        labels = reference_labels(srcs, fps, key_times, stage="sft_plain")
        return Prompt(system, f"Question: {text}", labels, duration=reference_duration(n, fps))
    return Prompt(system, text, reference_labels(srcs, fps, key_times, stage="sft"))


def reference_labels(
    sources: Sequence[FrameSource],
    sample_fps: float,
    key_times_s: Sequence[float] = (),
    *,
    stage: Literal["rl", "sft", "sft_plain"] = "rl",
) -> tuple[str, ...]:
    """The reference's frame labels (module docstring): a sampled frame ``i`` at
    ``round(i / sample_fps, 1)`` (``sft_plain``, the SFT stage's temporal and general tasks:
    without ``s``), a key frame ``j`` at ``round(key_times_s[j])`` (``rl``) or at its time
    unrounded (``sft``).

    >>> reference_labels([("sampled", 0), ("key", 0), ("sampled", 1)], 1.6, [0.7])
    ('Frame 1 at 0.0s: ', 'Frame 2 at 1s: ', 'Frame 3 at 0.6s: ')
    >>> reference_labels([("sampled", 1), ("key", 0)], 1.6, [0.7], stage="sft")
    ('Frame 1 at 0.6s: ', 'Frame 2 at 0.7s: ')
    """
    labels: list[str] = []
    for k, (kind, i) in enumerate(sources, start=1):
        if kind == "key":
            t = key_times_s[i]
            labels.append(reference_label(k, round(t)) if stage == "rl" else raw_time_label(k, t))
        elif stage == "sft_plain":
            labels.append(reference_sft_label(k, i / sample_fps))
        else:
            labels.append(reference_label(k, i / sample_fps))
    return tuple(labels)


def _vstar_prompt(record: Any, clip: Clip, family: ModelFamily) -> Prompt:
    # Imported here: o3video.protocols.vstar imports o3video.data.vstar, whose package
    # imports o3video.data.examples, which imports this module.
    from o3video.protocols.vstar import vstar_prompts

    for key, prompt in vstar_prompts(record.item, "o3video", family, clip):
        if key == record.generation:
            return prompt
    raise ValueError(f"record {record.index}: vstar_prompts has no {record.generation!r}")

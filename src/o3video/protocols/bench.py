"""The general benchmarks under the ``reference`` protocol: VideoMME, WorldSense and VideoMMMU
as the reference evaluation scripts ran them (``think`` mode, as its ``eval_all.sh`` runs
them), byte for byte.

- **One native video item, then the question text** (VideoMMMU Adaptation: the question's
  image between them), in one user turn with **no system turn of its own**: the chat
  template's default ``You are a helpful assistant.`` turn.
- **Frames** (:data:`REFERENCE_BENCH_VIDEO`): qwen-vl-utils' video sampling at 2 fps, 4 to 64
  frames (``video_max_frames``), each frame resized to between ``128·28·28`` = 100,352 and
  262,144 pixels (``video_max_pixels``: the same in all three configs).
- **Frame timing**: the scripts hand the frames to the engine without their frame rate, so
  the processor takes its default 2 fps: every frame is placed
  :data:`REFERENCE_VIDEO_INTERVAL_S` = 0.5 s after the previous one in the model's temporal
  positions (``second_per_grid_ts`` 1.0), whatever the true spacing.
- **Texts**: :func:`videomme_text`, :func:`worldsense_text`, :func:`videommmu_text` (the
  options as the files hold them, ``"A. …"``; without subtitles, as the scripts ran).

The other benchmarks have no reference script: the ``reference`` protocol asks them with the
reference RL-stage prompt (:func:`o3video.protocols.tasks.reference_rl_prompt`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from o3video.models.card import VideoSettings
from o3video.protocols.render import Prompt
from o3video.video import smart_resize

REFERENCE_NATIVE_BENCHMARKS: tuple[str, ...] = ("videomme", "worldsense", "videommmu")
"""Benchmarks the reference evaluation ran with its own script (native video)."""

REFERENCE_BENCH_VIDEO = VideoSettings(
    fps=2.0, min_frames=4, max_frames=64, min_pixels=128 * 28 * 28, max_pixels=262144
)
"""The frames of the reference general-benchmark scripts (module docstring)."""

REFERENCE_BENCH_MAX_NEW_TOKENS = 8192
"""The reference evaluation's ``max_tokens`` for the three benchmarks (their yaml files);
its vLLM sampling is greedy with ``repetition_penalty=1.05`` (``eval/models/model_vllm.py``)."""

REFERENCE_VIDEO_INTERVAL_S = 0.5
"""The spacing the processor assumes between frames when told no frame rate (2 fps)."""

_GROUNDED_THINK = (
    "You must first think about the reasoning process in the mind and then provide the user "
    "with the answer. The reasoning process and answer are enclosed within <think> </think> "
    "and <answer> </answer> tags, respectively. All reasoning must be grounded in visual "
    "evidence from the video. When you mention any related object, person, or specific "
    "visual element, you must strictly follow the following format: "
    "`<obj>object_name</obj><box>bounding_box</box>at<t>time_in_seconds</t>s`. The reasoning "
    "process MUST NOT be longer than 100 words."
)
_SELECT = "Select the best answer to the multiple-choice question based on the video. "

VIDEOMME_THINK = (
    _SELECT + _GROUNDED_THINK + " In the answer part, respond with only the letter "
    "(A, B, C, or D) of the correct option."
)
"""VideoMME's think-mode instruction, after the options."""

WORLDSENSE_HEAD = (
    "Carefully watch this video and pay attention to every detail. Based on your "
    "observations, select the best option that accurately addresses the question.\n"
    "These are the frames of a video. Audio transcripts of the video:\n"
    "This video does not have audio transcripts. "
)
"""WorldSense's text before the question (its system sentence and the no-subtitle frame
template, which start the user text; the question follows right after its last space)."""

WORLDSENSE_THINK = (
    "\n" + _SELECT + _GROUNDED_THINK + "In the answer part, respond with only the letter "
    "(A, B, C, or D) of the correct option. "
)
"""WorldSense's think-mode requirements, after the question (no space after ``words.``, a
space and no newline at the end)."""

VIDEOMMMU_SPLIT_LINES: dict[str, str] = {
    "Perception": "Please ignore the Quiz question in last frame of the video.",
    "Comprehension": "Please ignore the Quiz question in last frame of the video.",
    "Adaptation": "You should watch and learn the video content. Then apply what you learned "
    "to the question. Some key information of the question is in the input image.",
}
"""VideoMMMU's line per split (its ``Question Category``)."""

VIDEOMMMU_THINK = (
    _GROUNDED_THINK + " In the answer part, respond with only the letter of the correct option."
)
"""VideoMMMU's think-mode instruction (the same for open questions)."""


def videomme_text(question: str, options: Sequence[str]) -> str:
    """``Question:{question}\\n{options, one a line}\\n{VIDEOMME_THINK}``.

    >>> videomme_text("Why?", ["A. x", "B. y"]).split("\\n")[:3]
    ['Question:Why?', 'A. x', 'B. y']
    """
    return "Question:" + question + "\n" + "\n".join(options) + "\n" + VIDEOMME_THINK


def worldsense_text(question: str, candidates: Sequence[str]) -> str:
    """:data:`WORLDSENSE_HEAD`, ``Question: {question}\\n{candidates, one a line}\\n``, then
    :data:`WORLDSENSE_THINK`."""
    return (
        WORLDSENSE_HEAD
        + "Question: "
        + question
        + "\n"
        + "\n".join(candidates)
        + "\n"
        + WORLDSENSE_THINK
    )


def videommmu_options(options: Sequence[str]) -> str:
    """The options one a line: as given when every one starts with its letter and a period
    (``A.``), else each prefixed ``"A. "``; ``""`` for an open question.

    >>> videommmu_options(["red", "blue"]), videommmu_options(["A.red", "B.blue"])
    ('A. red\\nB. blue', 'A.red\\nB.blue')
    """
    letters = [chr(ord("A") + i) for i in range(len(options))]
    if all(o.startswith(f"{x}.") for o, x in zip(options, letters, strict=True)):
        return "\n".join(options)
    return "\n".join(f"{x}. {o}" for x, o in zip(letters, options, strict=True))


def videommmu_text(question: str, options: Sequence[str], split: str) -> str:
    """``{question}\\n{options}\\nQuestion Category:{split}\\n{split's line}\\n{VIDEOMMMU_THINK}``;
    ``split`` is ``Perception``, ``Comprehension`` or ``Adaptation``."""
    if split not in VIDEOMMMU_SPLIT_LINES:
        known = ", ".join(VIDEOMMMU_SPLIT_LINES)
        raise ValueError(f"unknown VideoMMMU split {split!r}; known: {known}")
    return (
        question
        + "\n"
        + videommmu_options(options)
        + "\nQuestion Category:"
        + split
        + "\n"
        + VIDEOMMMU_SPLIT_LINES[split]
        + "\n"
        + VIDEOMMMU_THINK
    )


REFERENCE_IMAGE_PIXELS = (4 * 28 * 28, 16384 * 28 * 28)
"""qwen-vl-utils' bounds for an image item without its own: ``(min_pixels, max_pixels)``."""


def reference_image(image: Image.Image, factor: int = 28) -> Image.Image:
    """A question image as qwen-vl-utils hands it on (VideoMMMU Adaptation): RGB, resized
    to its own size rounded to ``factor`` (within :data:`REFERENCE_IMAGE_PIXELS`) with PIL's
    default resampling."""
    rgb = image.convert("RGB")
    lo, hi = REFERENCE_IMAGE_PIXELS
    height, width = smart_resize(rgb.height, rgb.width, factor, lo, hi)
    return rgb.resize((width, height))


def reference_video_prompt(text: str, images: Sequence[Any] = ()) -> Prompt:
    """One native video, ``images`` (VideoMMMU Adaptation's question image), then ``text``;
    no system turn; frames told :data:`REFERENCE_VIDEO_INTERVAL_S` apart."""
    return Prompt(
        system=None,
        after=text,
        presentation="video",
        video_interval_s=REFERENCE_VIDEO_INTERVAL_S,
        extra_images=tuple(images),
    )

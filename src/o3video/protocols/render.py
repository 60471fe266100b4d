"""One request to a model, before the processor: a :class:`Prompt` and how it becomes chat
messages (:func:`to_messages`).

A prompt is the system text (or ``None``: no system turn, the chat template's own default)
and one user turn built from a frame block with text before and after it::

    {before}{label(1)}<image>\\n{label(2)}<image>\\n...{duration}{after}

``"video"`` presentation replaces the frame block by one native video item (``before``,
the video, ``after``). Rendered by Qwen's chat template, an image item is
``<|vision_start|><|image_pad|><|vision_end|>`` and a text item its text, back to back, so
the rendered text is the same string the reference scripts build by hand.

Frame labels differ between protocols; the functions here give each one:

>>> true_time_label(3, 1.04)
'Frame 3 at 1.0s: '
>>> reference_label(3, 1.04)
'Frame 3 at 1.0s: '
>>> reference_label(2, 2)
'Frame 2 at 2s: '
>>> reference_sft_label(2, 0.5)
'Frame 2 at 0.5: '
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

from o3video.prompts import duration_line, frame_label
from o3video.video import Clip

Message = dict[str, Any]
Presentation = Literal["frames", "video"]


true_time_label = frame_label
"""``Frame {k} at {t:.1f}s: ``: the frame's true time, one decimal, never ``-0.0``
(:func:`o3video.prompts.frame_label`, the ``o3video`` protocol's label)."""


def _reference_time(t_s: float | int) -> str:
    """A time as the reference code printed it: ``str(round(t, 1))``, an integer as is."""
    return str(t_s if isinstance(t_s, int) else round(float(t_s), 1))


def reference_label(k: int, t_s: float | int) -> str:
    """The reference code's label: ``f"Frame {k} at {round(t, 1)}s: "`` — Python's own
    printing of the rounded number, so an integer time (a key frame in RL) prints ``2s``."""
    return f"Frame {k} at {_reference_time(t_s)}s: "


def reference_sft_label(k: int, t_s: float | int) -> str:
    """The reference SFT stage's label for temporal and general tasks: no ``s`` after the
    time (``Frame 2 at 0.5: ``)."""
    return f"Frame {k} at {_reference_time(t_s)}: "


@dataclass(frozen=True)
class Prompt:
    """One request's text around its frames (module docstring).

    ``labels``: one per frame shown (``"frames"`` presentation), in order. ``duration``: the
    text right after the last frame (``""`` for none). ``video_interval_s`` (``"video"``
    presentation only): the spacing between frames to tell the processor instead of the
    frames' true spacing (the reference's general benchmarks pass no frame rate, which
    places every frame 0.5 s apart).
    """

    system: str | None
    after: str
    labels: tuple[str, ...] = ()
    before: str = ""
    duration: str = ""
    presentation: Presentation = "frames"
    video_interval_s: float | None = None
    extra_images: tuple[Any, ...] = field(default=())

    def user_text(self, image: str = "<image>") -> str:
        """The user turn as text, each image shown as ``image`` (for logs and tests)."""
        if self.presentation == "video":
            return f"{self.before}<video>{self.after}"
        frames = "".join(f"{label}{image}\n" for label in self.labels)
        return f"{self.before}{frames}{self.duration}{self.after}"


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def to_messages(prompt: Prompt, clip: Clip) -> list[Message]:
    """Chat messages (``transformers`` chat-template format) of ``prompt`` on ``clip``.

    ``"frames"``: ``clip`` must have one frame per label. A one-frame image prompt has a
    single empty label: the image is shown alone, without label or newline.
    """
    content: list[dict[str, Any]] = []
    if prompt.before:
        content.append(_text(prompt.before))
    if prompt.presentation == "video":
        content.append({"type": "video", "video": clip.frames})
    elif prompt.labels == ("",):
        if clip.num_frames != 1:
            raise ValueError(f"an image prompt shows one frame, the clip has {clip.num_frames}")
        content.append({"type": "image", "image": Image.fromarray(clip.frames[0])})
    else:
        if len(prompt.labels) != clip.num_frames:
            raise ValueError(
                f"prompt has {len(prompt.labels)} frame labels, the clip {clip.num_frames} frames"
            )
        for label, frame in zip(prompt.labels, clip.frames, strict=True):
            content.append(_text(label))
            content.append({"type": "image", "image": Image.fromarray(frame)})
            content.append(_text("\n"))
        if prompt.duration:
            content.append(_text(prompt.duration))
    for image in prompt.extra_images:
        content.append({"type": "image", "image": image})
    if prompt.after:
        content.append(_text(prompt.after))
    messages: list[Message] = []
    if prompt.system is not None:
        messages.append({"role": "system", "content": [_text(prompt.system)]})
    messages.append({"role": "user", "content": content})
    return messages


def labels_for(times_s: Sequence[float], label: Any = true_time_label) -> tuple[str, ...]:
    """One label per time, 1-based: ``label(k, t)``."""
    return tuple(label(k, t) for k, t in enumerate(times_s, start=1))


def o3video_prompt(system: str | None, text: str, clip: Clip) -> Prompt:
    """The ``o3video`` protocol's request on ``clip``: ``system``, every frame labelled with
    its true time, the duration line, then ``text`` — the request
    :func:`o3video.prompts.build_messages` builds."""
    labels = labels_for(clip.times_s, true_time_label)
    return Prompt(system, text, labels, duration=duration_line(clip.duration_s) + "\n")

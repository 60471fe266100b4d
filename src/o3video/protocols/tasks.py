"""The reference RL-stage prompt of a task: what the released checkpoint saw during RL, and so
what the ``reference`` protocol shows it on a task the reference evaluation has no script for
(MVBench, STAR, Charades-STA, TVGBench; training reuses it too).

The reference RL trainer renders a conversation of the task's system prompt and one user
turn ``[video, question]``, then replaces the video by one labelled image per sampled frame
and a duration line (``<image>`` is one image item)::

    Frame 1 at 0.0s: <image>
    Frame 2 at 0.5s: <image>
    ...
    The video is in total 8 seconds.
    {question}

- the label of frame ``i`` (0-based) is ``f"Frame {i + 1} at {round(i / sample_fps, 1)}s: "``
  (:func:`~o3video.protocols.render.reference_label`): times on the sampling grid, not the
  frames' true times;
- the duration line is ``f"The video is in total {int(n / sample_fps)} seconds.\\n"``, ``n`` the
  number of frames: truncated, and computed from the frame count, not from the video;
- ``sample_fps`` is qwen-vl-utils' ``nframes / total_frames * video_fps`` (:func:`sample_fps`);
- a ``spatial_image`` task (STGR ``visual QA``) shows its one image alone, no label, no line.

Key frames (the grounded free-form task's extra frames in RL) are not handled here.

>>> reference_duration(16, 2.0)
'The video is in total 8 seconds.\\n'
>>> reference_duration(15, 1.9)
'The video is in total 7 seconds.\\n'
"""

from __future__ import annotations

from o3video.prompts import system_prompt_for
from o3video.protocols.render import Prompt, labels_for, reference_label
from o3video.video import Clip


def total_frames_of(clip: Clip) -> int:
    """The frame count qwen-vl-utils would have read for ``clip``'s video:
    ``round(duration_s * fps)`` (at least the frames shown).

    An approximation from the :class:`~o3video.video.Clip`'s fields: the container's own
    count (what qwen-vl-utils reads) can differ by a frame from ``duration · fps``; for a
    window of the video (STAR, MVBench) ``duration_s`` is the whole video's, so pass the
    window's frame count to :func:`sample_fps` instead. A clip without a frame rate (an image
    list of one frame) counts its frames.
    """
    if clip.fps <= 0:
        return clip.num_frames
    return max(clip.num_frames, round(clip.duration_s * clip.fps))


def reference_sample_fps(num_frames: int, total_frames: int, video_fps: float) -> float:
    """qwen-vl-utils' ``sample_fps`` of ``num_frames`` taken from a video of
    ``total_frames`` at ``video_fps``: ``num_frames / total_frames * video_fps``, computed in
    the same order (so the labels it gives print as the reference's did).

    >>> reference_sample_fps(4, 10, 4.0)                  # 4 of 10 frames of a 4 fps video
    1.6
    """
    return num_frames / max(total_frames, 1e-6) * video_fps


def sample_fps(clip: Clip, total_frames: int | None = None) -> float:
    """qwen-vl-utils' sampling rate of ``clip``: ``n_frames / total_frames * video_fps``, with
    ``total_frames`` the frames of the video (or window) it was sampled from (default
    :func:`total_frames_of`); for a clip without a frame rate, one frame a second.

    >>> import numpy as np
    >>> clip = Clip(np.zeros((16, 28, 28, 3), np.uint8), tuple(i / 2 for i in range(16)),
    ...             (28, 28), (28, 28), 30.0, 8.0)
    >>> sample_fps(clip)
    2.0
    """
    if clip.fps <= 0:
        return 1.0
    total = total_frames_of(clip) if total_frames is None else total_frames
    if total < 1:
        raise ValueError(f"total_frames must be at least 1, got {total}")
    return reference_sample_fps(clip.num_frames, total, clip.fps)


def reference_duration(n_frames: int, fps: float) -> str:
    """The reference duration line: ``The video is in total {int(n / fps)} seconds.\\n``."""
    return f"The video is in total {int(n_frames / fps)} seconds.\n"


def reference_rl_prompt(
    task: str, question: str, clip: Clip, *, total_frames: int | None = None
) -> Prompt:
    """The reference RL-stage prompt of ``task`` (a :data:`o3video.prompts.Task`) asking
    ``question`` about ``clip`` (module docstring). ``total_frames``: the frames of the video
    or window the clip was sampled from (default :func:`total_frames_of`)."""
    system = system_prompt_for(task)
    if task == "spatial_image":
        if clip.num_frames != 1:
            n = clip.num_frames
            raise ValueError(f"task 'spatial_image' shows one image, the clip has {n}")
        return Prompt(system, question, ("",))
    fps = sample_fps(clip, total_frames)
    n = clip.num_frames
    labels = labels_for([i / fps for i in range(n)], reference_label)
    return Prompt(system, question, labels, duration=reference_duration(n, fps))

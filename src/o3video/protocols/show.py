"""What a model is really shown: the fully rendered chat text of a request.

:func:`render_request` applies the processor's chat template to a request's messages and runs
the processor on its frames, so the text comes back with every vision placeholder expanded
to the number of tokens the model gets — no weights are needed, only the processor files
(``--show-prompts`` of ``o3video eval vstar`` and ``eval bench``). Runs of one vision token
are printed as ``<|image_pad|>×299`` so a 16-frame prompt stays readable; the counts are
exact.

>>> collapse_runs("a<|image_pad|><|image_pad|>b", ("<|image_pad|>",))
'a<|image_pad|>×2b'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from o3video.prompts import Message, processor_inputs
from o3video.video import Clip

VISION_PADS = ("<|image_pad|>", "<|video_pad|>")


def collapse_runs(text: str, tokens: Sequence[str] = VISION_PADS) -> str:
    """``text`` with each run of one of ``tokens`` written ``token×count``."""
    for token in tokens:

        def count(m: re.Match[str], token: str = token) -> str:
            return f"{token}×{len(m.group(0)) // len(token)}"

        text = re.sub(f"(?:{re.escape(token)})+", count, text)
    return text


@dataclass(frozen=True)
class Rendered:
    """A request as the model gets it: ``text`` (vision tokens expanded), the number of
    prompt tokens, and the vision tokens of each image or video item."""

    text: str
    num_tokens: int
    vision_tokens: tuple[int, ...]

    def display(self) -> str:
        """``text`` with runs of vision tokens collapsed (:func:`collapse_runs`)."""
        return collapse_runs(self.text)


def render_request(
    processor: Any,
    messages: list[Message],
    clip: Clip,
    *,
    video_interval_s: float | None = None,
) -> Rendered:
    """Render ``messages`` on ``clip`` exactly as the model would get them (module
    docstring); ``video_interval_s``: a native video's frame spacing as the protocol tells
    the processor (:attr:`o3video.protocols.render.Prompt.video_interval_s`)."""
    inputs = processor_inputs(processor, messages, clip, video_interval_s=video_interval_s)
    ids = inputs["input_ids"][0].tolist()
    text = processor.tokenizer.decode(ids, skip_special_tokens=False)
    merge = int(getattr(processor.image_processor, "merge_size", 2)) ** 2
    counts: list[int] = []
    for key in ("image_grid_thw", "video_grid_thw"):
        if key in inputs:
            counts += [int(t * h * w) // merge for t, h, w in inputs[key].tolist()]
    return Rendered(text, len(ids), tuple(counts))


def format_rendered(title: str, rendered: Rendered) -> str:
    """A block for the terminal: a title line with the counts, then the text."""
    vision = rendered.vision_tokens
    per = f"{vision[0]}" if vision and len(set(vision)) == 1 else ", ".join(map(str, vision))
    head = (
        f"=== {title} · {rendered.num_tokens} tokens · {len(vision)} vision item(s) of "
        f"{per} token(s)"
    )
    return f"{head}\n{rendered.display()}"

"""Protocols: what a model is shown and how its replies are read, one place per task.

A checkpoint answers best under the exact prompts, frames and coordinates it was trained on,
and a benchmark number means something only under the protocol it was measured with. So
every command that runs a model names its protocol, and every run records it.

- ``reference`` — what the released Open-o3 Video checkpoint saw in the reference code, byte
  for byte: the RL-stage prompts for inference and RL (frames labelled
  ``round(i / sample_fps, 1)``, the line ``The video is in total {int(n / sample_fps)}
  seconds.``), the V-STaR script's own prompts, frames (1 fps, at most 16, native size) and
  original-pixel boxes (:mod:`o3video.protocols.vstar`), and its readers in ``official``
  scoring.
- ``reference-sft`` — the reference SFT stage's variant (its own system prompts, a
  ``Question: `` prefix and labels without ``s`` on temporal and general tasks, no duration
  line on the spatio-temporal task): for supervised training only.
- ``o3video`` — this project's corrected protocol: true frame times, the true duration,
  boxes asked and read in the model's own space, robust readers.

Which one a command uses: the one it is given, else the model card's (``o3video.json``:
``protocol``; a card written before protocols existed is ``o3video``), else ``reference``
(a checkpoint without a card, such as the released one from a hub).

>>> protocol_for_model("Qwen/Qwen2.5-VL-7B-Instruct")
'reference'
>>> protocol_for_model("Qwen/Qwen2.5-VL-7B-Instruct", "o3video")
'o3video'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args

ProtocolName = Literal["o3video", "reference", "reference-sft"]
PROTOCOLS: tuple[str, ...] = get_args(ProtocolName)
INFERENCE_PROTOCOLS: tuple[str, ...] = ("o3video", "reference")
"""Protocols a model can be run (evaluated, asked) under; ``reference-sft`` only trains."""


def check_protocol(name: str, *, inference: bool = False) -> ProtocolName:
    """``name`` if it is a protocol (an inference protocol when ``inference``), else
    ``ValueError`` listing the known ones."""
    known = INFERENCE_PROTOCOLS if inference else PROTOCOLS
    if name not in known:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(known)}")
    return name  # type: ignore[return-value]


def card_protocol(model: str | os.PathLike[str]) -> ProtocolName | None:
    """The protocol a local model folder's card names (``o3video`` for a card without the
    field: every card before protocols existed was written by this project's training), or
    ``None`` without a card. An unreadable card or an unknown name raises ``ValueError``."""
    # Imported here: o3video.models.card imports o3video.protocols.frames, so this package.
    from o3video.errors import DataError
    from o3video.models.card import CARD_FILE, read_card

    try:
        card = read_card(model)
    except DataError as e:
        raise ValueError(str(e)) from e
    if card is None:
        return None
    try:
        return check_protocol(str(card.get("protocol", "o3video")))
    except ValueError as e:
        raise ValueError(f"{Path(model) / CARD_FILE}: {e}") from e


def protocol_for_model(
    model: str | os.PathLike[str] | None, given: str | None = None
) -> ProtocolName:
    """The protocol to run ``model`` under: ``given``, else its card's, else ``reference``
    (module docstring). A card's ``reference-sft`` runs as ``reference``: the SFT variant
    only exists for training."""
    if given is not None:
        return check_protocol(given, inference=True)
    name = card_protocol(model) if model is not None and Path(model).is_dir() else None
    if name is None or name == "reference-sft":
        return "reference"
    return name

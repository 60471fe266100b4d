"""Pictures of an answer's evidence (SPEC §9): drawn frames, an animation, an HTML report.

- :mod:`o3video.viz.render`: a claim's frame with its boxes, object label and time.
- :mod:`o3video.viz.animate`: the reasoning advancing beside the video, as GIF or MP4.
- :mod:`o3video.viz.report`: one self-contained, offline ``report.html``.

:func:`write_outputs` writes all of them, with ``answer.json``, into one folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from o3video.answer import Answer
from o3video.viz.animate import animation_frames, write_animation
from o3video.viz.render import draw_evidence, evidence_frames, object_color
from o3video.viz.report import render_report, write_report

__all__ = [
    "animation_frames",
    "draw_evidence",
    "evidence_frames",
    "object_color",
    "render_report",
    "write_animation",
    "write_outputs",
    "write_report",
]


def write_outputs(
    answer: Answer,
    out_dir: str | Path,
    *,
    animation: Literal["gif", "mp4"] | None = "gif",
) -> dict[str, Path]:
    """Write ``answer.json``, the animation (``evidence.gif`` or ``.mp4``) and ``report.html``.

    ``animation=None`` writes no animation. Returns the paths by kind: ``"json"``,
    ``"animation"`` (when written) and ``"report"``. The folder is created if needed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "answer.json"}
    text = json.dumps(answer.to_json(), indent=2, ensure_ascii=False)
    paths["json"].write_text(text + "\n", encoding="utf-8")
    if animation is not None:
        paths["animation"] = write_animation(answer, out / f"evidence.{animation}", animation)
    paths["report"] = write_report(answer, out / "report.html")
    return paths

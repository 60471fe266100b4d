"""The value a grounded answer travels in: model text, parsed trace, evidence in source pixels.

:func:`build_answer` is where a model's boxes cross the border into the project's one
representation: each claim's boxes, written in the model family's box space, become float
``xyxy`` in original video pixels (clamped to the frame, corners ordered), and each claim's
time is paired with the sampled frame nearest to it. Everything downstream (the evidence
table, the drawings, the report, the web page) reads :class:`Evidence`, never raw claims.

>>> import numpy as np
>>> from o3video.video import Clip
>>> clip = Clip(np.zeros((2, 224, 420, 3), np.uint8), (0.0, 0.5), (1280, 720), (420, 224),
...             30.0, 1.0)
>>> a = build_answer("<think><obj>dog</obj><box>[0,0,210,112]</box>at<t>0.4</t>s</think>"
...                  "<answer>A dog.</answer>", clip, "qwen2_5_vl", question="What?")
>>> a.evidence[0].boxes_source, a.evidence[0].frame_index, a.answer_text
(((0.0, 0.0, 640.0, 360.0),), 1, 'A dog.')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from o3video.boxes import XYXY, BoxSpace, clamp_xyxy
from o3video.evidence import Trace, parse_trace
from o3video.families import ModelFamily, get_family
from o3video.video import Clip


@dataclass(frozen=True)
class Evidence:
    """One claim of a trace, ready to show.

    - ``name``: the object as written.
    - ``t_s``: the claimed time in seconds (``None`` when the claim had no time).
    - ``boxes_model``: the boxes as written, in ``box_space`` (the model's space).
    - ``boxes_source``: the same boxes in original video pixels, clamped and ordered.
    - ``frame_index``: index into ``Answer.clip.frames`` of the frame nearest ``t_s``
      (the only frame for a one-frame clip; ``None`` for an untimed claim in a video).
    - ``frame_t_s``: that frame's true time.
    - ``span``: the claim's character span in ``Answer.text``.
    """

    name: str
    t_s: float | None
    boxes_model: tuple[XYXY, ...]
    boxes_source: tuple[XYXY, ...]
    frame_index: int | None
    frame_t_s: float | None
    span: tuple[int, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "t_s": self.t_s,
            "boxes_model": [list(b) for b in self.boxes_model],
            "boxes_source": [list(b) for b in self.boxes_source],
            "frame_index": self.frame_index,
            "frame_t_s": self.frame_t_s,
            "span": list(self.span),
        }


@dataclass(frozen=True, eq=False)
class Answer:
    """What ``ask`` returns and ``viz`` draws; :meth:`to_json` is ``answer.json``.

    ``text`` is the model's raw output (one sample; with voting, the winning sample), ``trace``
    its parse, ``evidence`` its claims mapped to source pixels, ``clip`` the frames the model
    was shown (true times), ``box_space`` the model's box space, ``timings`` seconds per stage
    (``decode``, ``preprocess``, ``generate``, ...), ``samples`` every sampled text when
    several were drawn, and ``votes`` how they were weighed (empty without voting).
    """

    text: str
    trace: Trace
    evidence: tuple[Evidence, ...]
    clip: Clip
    question: str
    task: str
    model: str
    box_space: BoxSpace
    timings: dict[str, float] = field(default_factory=dict)
    samples: tuple[str, ...] = ()
    votes: tuple[dict[str, Any], ...] = ()

    @property
    def answer_text(self) -> str | None:
        """The text inside ``<answer>``, stripped; ``None`` when the model wrote none."""
        return self.trace.answer

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the text, answer, evidence, problems, frames' times and sizes."""
        clip = self.clip
        return {
            "question": self.question,
            "task": self.task,
            "model": self.model,
            "text": self.text,
            "answer": self.trace.answer,
            "think": self.trace.think,
            "evidence": [e.to_json() for e in self.evidence],
            "times_s": list(self.trace.times_s),
            "problems": [
                {"kind": p.kind, "message": p.message, "span": list(p.span)}
                for p in self.trace.problems
            ],
            "box_space": self.box_space,
            "video": {
                "source": clip.source,
                "source_wh": list(clip.source_wh),
                "frame_wh": list(clip.frame_wh),
                "fps": clip.fps,
                "duration_s": clip.duration_s,
                "frame_times_s": list(clip.times_s),
            },
            "timings": dict(self.timings),
            "samples": list(self.samples),
            "votes": list(self.votes),
        }


def build_answer(
    text: str,
    clip: Clip,
    family: ModelFamily | str,
    *,
    question: str = "",
    task: str = "free_form",
    model: str = "",
    timings: dict[str, float] | None = None,
    samples: tuple[str, ...] = (),
    votes: tuple[dict[str, Any], ...] = (),
) -> Answer:
    """Parse ``text`` and map every claim's boxes from the family's space to source pixels.

    Never raises on model text: what the parser could not read is in ``trace.problems``.
    Boxes are converted with the sizes of ``clip`` (the frames the model was actually shown).
    """
    fam = get_family(family) if isinstance(family, str) else family
    trace = parse_trace(text)
    evidence = []
    for claim in trace.claims:
        # The family is the one place that knows the model's box space.
        source = tuple(
            clamp_xyxy(fam.to_source_box(box, clip), clip.source_wh) for box in claim.boxes
        )
        if claim.t_s is not None:
            index: int | None = clip.nearest_frame(claim.t_s)
        else:
            index = 0 if clip.num_frames == 1 else None
        evidence.append(
            Evidence(
                name=claim.name,
                t_s=claim.t_s,
                boxes_model=claim.boxes,
                boxes_source=source,
                frame_index=index,
                frame_t_s=None if index is None else clip.times_s[index],
                span=claim.span,
            )
        )
    return Answer(
        text=text,
        trace=trace,
        evidence=tuple(evidence),
        clip=clip,
        question=question,
        task=task,
        model=model,
        box_space=fam.box_space,
        timings=dict(timings or {}),
        samples=samples,
        votes=votes,
    )

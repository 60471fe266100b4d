"""One question asked from the page: the request checked, the model run, events streamed.

The page receives JSON lines (``application/x-ndjson``), one event each:

- ``{"type": "queued", "position": n}`` — n requests are ahead; repeated while waiting.
- ``{"type": "start", "video": {...}}`` — this request has the model.
- ``{"type": "status", "message": "..."}`` — a stage began (decoding, generating, voting).
- ``{"type": "delta", "text": "...", "evidence": [...]}`` — new text, and every evidence
  claim of the text so far that is *complete* (:func:`settled_evidence`), in the format of
  ``Answer.to_json()["evidence"]`` (boxes already in source pixels). One parser serves the
  page: :func:`o3video.answer.build_answer`, on the server, the same that makes the answer.
- ``{"type": "answer", "answer": Answer.to_json(), "downloads": {...}}`` — the end.
- ``{"type": "error", "message": "..."}`` — the end, when the video or the model failed.

Voting (several samples) does not stream: the samples come together at the end, with their
answers and weights in ``answer["votes"]``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, get_args

from o3video.answer import Answer, Evidence, build_answer
from o3video.ask import VoteMode, ask
from o3video.errors import O3VideoError, VideoDecodeError
from o3video.families import ModelFamily
from o3video.models.base import Backend
from o3video.models.card import VideoSettings
from o3video.prompts import TASKS, Presentation, Task
from o3video.serve.state import Example, Limits, RequestError, Workspace
from o3video.video import Clip

logger = logging.getLogger(__name__)

Event = dict[str, Any]
Emit = Callable[[Event], None]
PAGE_TASKS: tuple[str, ...] = tuple(t for t in TASKS if t != "spatial_image")
"""The task presets the page offers (``spatial_image`` is about one image, not a video)."""
VOTES: tuple[str, ...] = get_args(VoteMode)
_KEYS = {"video", "question", "task", "samples", "vote"}
# What may still follow a claim and change it: more boxes, "at", a time (maybe cut short).
_OPEN_TAIL = re.compile(r"(?:a|at)?\s*(?:<(?:t(?:>.*)?|b(?:o(?:x(?:>.*)?)?)?)?)?", re.I | re.S)


@dataclass(frozen=True)
class AskOptions:
    """How the server asks its model (the ``o3video ask`` options of the same names): the
    frame budget ``video`` and the ``protocol`` (``o3video serve`` takes both from the model
    card, as ``o3video ask`` does)."""

    presentation: Presentation = "frames"
    video: VideoSettings = dataclasses.field(default_factory=VideoSettings)
    protocol: str = "o3video"
    max_new_tokens: int = 768
    temperature: float | None = None
    top_p: float = 1.0
    seed: int | None = None


@dataclass(frozen=True)
class AskRequest:
    """A checked request: the video (an upload's or example's id, resolved on the server),
    the question, the task preset, the number of samples and the vote."""

    kind: str  # "upload" or "example"
    video_id: str
    question: str
    task: Task
    samples: int
    vote: VoteMode | None


def parse_ask_request(payload: object, limits: Limits) -> AskRequest:
    """The request in ``payload`` (parsed JSON); :class:`RequestError` 400 with what is wrong.

    A video is named only as ``{"upload": ID}`` or ``{"example": ID}``: the server opens no
    path that came from the browser.

    >>> parse_ask_request({"video": {"example": "synth_0"}, "question": "Who?"}, Limits()).task
    'free_form'
    """
    if not isinstance(payload, dict):
        raise RequestError(400, "the request must be a JSON object")
    unknown = sorted(set(payload) - _KEYS)
    if unknown:
        raise RequestError(400, f"unknown field(s): {', '.join(unknown)}")
    video = payload.get("video")
    if not (isinstance(video, dict) and len(video) == 1 and set(video) <= {"upload", "example"}):
        raise RequestError(
            400,
            'video must be {"upload": ID} or {"example": ID}; the server opens no path '
            "sent by the browser",
        )
    ((kind, video_id),) = video.items()
    if not isinstance(video_id, str):
        raise RequestError(400, f"the {kind} id must be a string")
    question = payload.get("question")
    if not isinstance(question, str) or not question.strip():
        raise RequestError(400, "type a question")
    if len(question) > limits.max_question_chars:
        raise RequestError(400, f"the question is over {limits.max_question_chars} characters")
    task = payload.get("task", "free_form")
    if task not in PAGE_TASKS:
        raise RequestError(400, f"unknown task {task!r}; use one of {', '.join(PAGE_TASKS)}")
    samples = payload.get("samples", 1)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise RequestError(400, "samples must be a whole number >= 1")
    if samples > limits.max_samples:
        raise RequestError(400, f"at most {limits.max_samples} samples (--max-samples)")
    vote = payload.get("vote")
    if vote is not None and vote not in VOTES:
        raise RequestError(400, f"unknown vote {vote!r}; use one of {', '.join(VOTES)}")
    if vote is not None and samples < 2:
        raise RequestError(400, "voting needs 2 samples or more")
    return AskRequest(
        kind, video_id, question.strip(), cast(Task, task), samples, cast("VoteMode | None", vote)
    )


def _settled(evidence: Evidence, text: str) -> bool:
    """Whether more text can no longer change this claim: it has its time, or what follows
    it cannot continue it (not blank, not ``at``, not a ``<t>``/``<box>`` being written)."""
    if evidence.t_s is not None:
        return True
    rest = text[evidence.span[1] :].strip()
    return bool(rest) and not _OPEN_TAIL.fullmatch(rest)


def settled_evidence(text: str, clip: Clip, family: ModelFamily | str) -> list[dict[str, Any]]:
    """The evidence of ``text`` (a trace being written) whose claims are complete, each as in
    ``Answer.to_json()["evidence"]``: boxes in source pixels, the frame nearest the time.

    >>> import numpy as np
    >>> clip = Clip(np.zeros((2, 56, 56, 3), np.uint8), (0.0, 1.0), (112, 112), (56, 56), 1, 2)
    >>> part = "<think><obj>cat</obj><box>[1,2,3,4]</box>at<t>0."
    >>> settled_evidence(part, clip, "qwen2_5_vl")
    []
    >>> [e["boxes_source"] for e in settled_evidence(part + "9</t>s", clip, "qwen2_5_vl")]
    [[[2.0, 4.0, 6.0, 8.0]]]
    """
    answer = build_answer(text, clip, family)
    return [e.to_json() for e in answer.evidence if _settled(e, text)]


@dataclass(frozen=True)
class Job:
    """What a request needs to run: the model, its family, the options and the workspace."""

    backend: Backend
    family: ModelFamily
    options: AskOptions
    workspace: Workspace
    examples: Mapping[str, Example]
    limits: Limits = dataclasses.field(default_factory=Limits)

    def resolve(self, request: AskRequest) -> tuple[Path, str]:
        """The server path of the request's video and the name shown for it."""
        if request.kind == "example":
            example = self.examples.get(request.video_id)
            if example is None:
                raise RequestError(404, f"no example {request.video_id[:80]!r}")
            return example.path, example.title
        upload = self.workspace.upload(request.video_id)
        return upload.path, upload.filename

    def run(self, request: AskRequest, emit: Emit) -> Answer | None:
        """Decode, ask, stream, write the files; every outcome is an event. The caller holds
        the model. An exception raised by ``emit`` (the page went away) stops the model."""
        path, shown = self.resolve(request)
        emit({"type": "start", "video": {"kind": request.kind, "id": request.video_id}})
        opts = self.options
        try:
            emit({"type": "status", "message": "decoding frames"})
            t0 = time.perf_counter()
            clip = opts.video.sample(
                path, factor=self.family.factor, max_source_pixels=self.limits.max_source_pixels
            )
            # The page and the files name the video as the person knows it, not by our path.
            clip = dataclasses.replace(clip, source=shown)
            decode_s = time.perf_counter() - t0
            what = "generating" if request.samples == 1 else f"sampling {request.samples} traces"
            emit({"type": "status", "message": what})
            answer = self._ask(request, clip, emit)
        except O3VideoError as e:
            logger.warning("ask failed: %s", e)
            # A video error names our temporary path; the page names the video as it knows it.
            message = f"{shown}: {e.reason}" if isinstance(e, VideoDecodeError) else str(e)
            emit({"type": "error", "message": message})
            return None
        timings = {"decode": decode_s, **answer.timings}
        timings["total"] = timings.get("total", 0.0) + decode_s
        answer = dataclasses.replace(answer, timings=timings)
        result_id, out_dir = self.workspace.new_result_dir()
        from o3video.viz import write_outputs

        write_outputs(answer, out_dir, animation=None)
        downloads = {n: f"/download/{result_id}/{n}" for n in ("answer.json", "report.html")}
        emit({"type": "answer", "answer": answer.to_json(), "downloads": downloads})
        return answer

    def _ask(self, request: AskRequest, clip: Clip, emit: Emit) -> Answer:
        pieces: list[str] = []

        def on_text(delta: str) -> None:
            pieces.append(delta)
            evidence = settled_evidence("".join(pieces), clip, self.family)
            emit({"type": "delta", "text": delta, "evidence": evidence})

        opts = self.options
        return ask(
            clip,
            request.question,
            model=self.backend,
            family=self.family,
            task=request.task,
            presentation=opts.presentation,
            protocol=opts.protocol,
            samples=request.samples,
            vote=request.vote,
            temperature=opts.temperature,
            top_p=opts.top_p,
            max_new_tokens=opts.max_new_tokens,
            seed=opts.seed,
            on_text=on_text if request.samples == 1 else None,
        )

"""The main job: a video and a question in, a grounded :class:`~o3video.answer.Answer` out.

The flow (DESIGN "ask"), each stage timed in ``Answer.timings`` (seconds):

1. ``load`` — only when ``model`` is a name or path: the backend is built by
   :func:`o3video.models.load.load_backend` *after* the video is decoded, so a bad video
   fails before a large model loads. The family (box space, resize factor) is read from the
   checkpoint's config first (no weights needed).
2. ``decode`` — :func:`o3video.video.sample_frames` with the family's resize factor: frames
   with their true times.
3. ``preprocess`` — :func:`o3video.prompts.build_messages` (frames as labelled images, or
   one native video); the processor itself runs inside the backend, in ``generate``.
4. ``generate`` — ``samples`` completions. With one sample and ``on_text``, a backend that
   can stream (:class:`~o3video.models.base.StreamingBackend`) hands each text delta to
   ``on_text`` as it is written.
5. ``parse`` — :func:`o3video.answer.build_answer`: the trace parsed (never raises), boxes
   mapped from the family's box space to source pixels.
6. ``vote`` — with several samples and ``vote`` set, :func:`o3video.voting.vote` picks the
   winner (SPEC §8); the answer returned is the winner's, with every sample's text in
   ``samples`` and the weighing in ``votes``. Several samples without ``vote``: the first.

Temperature defaults to 0 (greedy) for one sample and 1.0 for several (SPEC §8).

>>> answer = ask("clip.mp4", "What is the dog doing?", model="Qwen/Qwen2.5-VL-7B-Instruct")
... # doctest: +SKIP
>>> answer.answer_text, [(e.name, e.t_s, e.boxes_source) for e in answer.evidence]
... # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

from o3video.answer import Answer, build_answer
from o3video.families import ModelFamily, get_family
from o3video.models.base import (
    Backend,
    BackendError,
    Request,
    SamplingParams,
    StreamingBackend,
)
from o3video.models.card import VideoSettings
from o3video.models.card import video_settings as card_video_settings
from o3video.models.load import BackendKind, load_backend, model_family
from o3video.prompts import Presentation, Task, build_messages
from o3video.protocols import check_protocol, protocol_for_model
from o3video.protocols.render import to_messages
from o3video.protocols.tasks import reference_rl_prompt
from o3video.video import MAX_SOURCE_PIXELS, Clip, probe_video

logger = logging.getLogger(__name__)

VoteMode = Literal["majority", "confidence"]
DEFAULT_FAMILY = "qwen2_5_vl"


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - t0


def _family_of(backend: Backend | None, family: ModelFamily | str | None) -> ModelFamily:
    """The backend's own family when it has one, else ``family``, else Qwen2.5-VL."""
    found = getattr(backend, "family", None) or family or DEFAULT_FAMILY
    return get_family(found) if isinstance(found, str) else found


def default_temperature(samples: int) -> float:
    """0 (greedy) for one sample, 1.0 for several (SPEC §8).

    >>> default_temperature(1), default_temperature(8)
    (0.0, 1.0)
    """
    return 0.0 if samples == 1 else 1.0


def ask(
    video: str | os.PathLike[str] | Clip,
    question: str,
    *,
    model: str | os.PathLike[str] | Backend,
    backend: BackendKind = "hf",
    backend_options: Mapping[str, Any] | None = None,
    family: ModelFamily | str | None = None,
    task: Task = "free_form",
    presentation: Presentation = "frames",
    fps: float | None = None,
    max_frames: int | None = None,
    max_pixels: int | None = None,
    min_pixels: int | None = None,
    video_settings: VideoSettings | None = None,
    samples: int = 1,
    vote: VoteMode | None = None,
    temperature: float | None = None,
    top_p: float = 1.0,
    max_new_tokens: int = 768,
    seed: int | None = None,
    system_prompt: str | None = None,
    on_text: Callable[[str], None] | None = None,
    protocol: str | None = None,
    max_source_pixels: int = MAX_SOURCE_PIXELS,
) -> Answer:
    """Ask ``question`` about ``video`` (a path, or an already sampled :class:`Clip`).

    ``model`` is a backend instance or a name/path loaded with ``backend`` (``"hf"``,
    ``"vllm"``, ``"openai"``; ``backend_options`` go to its constructor, e.g. ``base_url``
    for ``"openai"``). ``family`` is used when the backend does not say its own (a served
    model); default Qwen2.5-VL. Frame budget (:class:`~o3video.models.card.VideoSettings`):
    ``video_settings`` with each of ``fps``, ``max_frames``, ``min_pixels``, ``max_pixels``
    that is given; without ``video_settings``, a model folder's card (the budget it was
    trained with), else the defaults. A video whose frames are larger than
    ``max_source_pixels`` is refused before a frame is decoded. ``protocol``
    (:mod:`o3video.protocols`) is how the request is written: ``o3video`` (true frame times
    and duration) or ``reference`` (the reference RL-stage prompt the released checkpoint
    saw: frames labelled on the sampling grid, an integer duration; frames only); default:
    a model folder's card, else ``reference`` for a model name or path, ``o3video`` for a
    backend instance. See the module docstring for the stages, sampling and voting.

    Raises :class:`~o3video.errors.VideoDecodeError` for an unreadable video and
    :class:`~o3video.models.base.BackendError` for a model that cannot be loaded or run;
    ``ValueError`` for bad arguments. Model text is never judged here: what the parser
    could not read is in ``answer.trace.problems``.
    """
    if not question.strip():
        raise ValueError("the question is empty")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if vote is not None and vote not in ("majority", "confidence"):
        raise ValueError(f"unknown vote {vote!r}; use 'majority' or 'confidence'")
    if vote is not None and samples < 2:
        raise ValueError("voting needs several samples (samples >= 2)")
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    if isinstance(video, (str, os.PathLike)):
        # Its headers first: an unreadable or oversized video fails before a model is touched.
        probe_video(video, max_source_pixels)
    given: dict[str, Any] = {"fps": fps, "max_frames": max_frames}
    given.update(min_pixels=min_pixels, max_pixels=max_pixels)
    chosen = {k: v for k, v in given.items() if v is not None}
    if video_settings is not None:
        budget = dataclasses.replace(video_settings, **chosen)
    elif isinstance(model, (str, os.PathLike)):
        budget = card_video_settings(model, **given)
    else:
        budget = dataclasses.replace(VideoSettings(), **chosen)
    if isinstance(model, (str, os.PathLike)):
        # A served model's config is not at hand: its family is the caller's word.
        with _timed(timings, "load"):
            fam = model_family(model, backend) if backend != "openai" else _family_of(None, family)
        clip = _decode(video, fam, budget, max_source_pixels, timings)
        with _timed(timings, "load"):
            runner = load_backend(model, backend, **dict(backend_options or {}))
        fam = _family_of(runner, fam)
    else:
        runner = model
        fam = _family_of(runner, family)
        clip = _decode(video, fam, budget, max_source_pixels, timings)
    if isinstance(model, (str, os.PathLike)):
        chosen_protocol = protocol_for_model(model, protocol)
    else:
        chosen_protocol = check_protocol(protocol or "o3video", inference=True)
    with _timed(timings, "preprocess"):
        if chosen_protocol == "reference":
            if presentation != "frames":
                raise ValueError("the reference protocol shows frames as images: use 'frames'")
            prompt = reference_rl_prompt(task, question, clip)
            if system_prompt is not None:
                prompt = dataclasses.replace(prompt, system=system_prompt)
            messages = to_messages(prompt, clip)
        else:
            messages = build_messages(clip, question, task, presentation, system_prompt)
        request = Request(messages, id=clip.source or "clip", clip=clip)
    params = SamplingParams(
        n=samples,
        temperature=default_temperature(samples) if temperature is None else temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
    )
    with _timed(timings, "generate"):
        texts = _generate(runner, request, params, on_text)
    logger.debug("%s: %d completion(s) in %.2f s", runner.name, len(texts), timings["generate"])
    common: dict[str, Any] = {"question": question, "task": task, "model": runner.name}
    with _timed(timings, "parse"):
        answers = [build_answer(text, clip, fam, **common) for text in texts]
    winner = 0
    votes: tuple[dict[str, Any], ...] = ()
    if vote is not None:
        from o3video.voting import vote as vote_samples

        with _timed(timings, "vote"):
            result = vote_samples(answers, task, vote, scorer=runner)
        winner, votes = result.winner, tuple(result.per_sample)
        logger.info("%s vote: sample %d wins (%s)", vote, winner, result.totals)
    timings["total"] = time.perf_counter() - t_start
    return dataclasses.replace(
        answers[winner],
        timings=timings,
        samples=tuple(texts) if samples > 1 else (),
        votes=votes,
    )


def _decode(
    video: str | os.PathLike[str] | Clip,
    fam: ModelFamily,
    budget: VideoSettings,
    max_source_pixels: int,
    timings: dict[str, float],
) -> Clip:
    with _timed(timings, "decode"):
        if isinstance(video, Clip):
            return video
        return budget.sample(video, factor=fam.factor, max_source_pixels=max_source_pixels)


def _generate(
    runner: Backend,
    request: Request,
    params: SamplingParams,
    on_text: Callable[[str], None] | None,
) -> list[str]:
    """The completions of ``request``; streamed to ``on_text`` when there is one sample and
    the backend can stream."""
    if on_text is not None and params.n == 1 and isinstance(runner, StreamingBackend):
        pieces = []
        for delta in runner.stream(request, params):
            pieces.append(delta)
            on_text(delta)
        return ["".join(pieces)]
    texts = runner.generate([request], params)[0]
    if not texts:
        raise BackendError(runner.name, "the backend returned no completion")
    if len(texts) != params.n:
        logger.warning("%s: asked %d completions, got %d", runner.name, params.n, len(texts))
    return texts

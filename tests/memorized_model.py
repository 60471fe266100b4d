"""A real tiny Qwen2.5-VL that writes one known grounded trace: overfit in seconds on CPU.

A random tiny model (:func:`o3video.models.tiny.build_tiny_model`) writes no evidence tags,
so a test that needs real chips from a real checkpoint first teaches it one answer:
:func:`memorize` overfits the tiny model to write ``target`` for exactly the prompt that
``o3video serve`` (or ``o3video ask``) builds for a video and a question — the frames
decoded by :func:`o3video.video.sample_frames` with the server's options, the messages of
:func:`o3video.prompts.build_messages`, the processor inputs as
:class:`o3video.models.hf.HFBackend` builds them — and saves it with ``save_pretrained``.
The directory then loads like any checkpoint (``load_backend(dir, "hf")``,
``o3video serve --model DIR``), and greedy decoding of that prompt returns ``target``
exactly (checked on the saved copy before returning).

A plain torch loop: AdamW, loss on the target tokens only (and the end-of-turn token, so
generation stops there), float32 on CPU, one thread, seeded. The vision tower is frozen: the
text is what has to be learned, and its backward pass would only cost time.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from o3video.families import get_family
from o3video.models.base import Request, SamplingParams
from o3video.models.hf import SEQUENCE_KEYS, HFBackend
from o3video.models.load import load_backend
from o3video.models.tiny import build_tiny_model
from o3video.prompts import Task, build_messages
from o3video.serve import AskOptions
from o3video.video import Clip

FAMILY = get_family("qwen2_5_vl")  # the tiny model's family
CHECK_EVERY = 5  # steps between checks that the target is the argmax everywhere


@dataclass(frozen=True)
class Memorized:
    """A saved checkpoint that writes ``target`` for ``request`` (greedy), how it was made."""

    path: Path
    clip: Clip
    request: Request
    target: str
    steps: int
    seconds: float


def server_request(
    video: str | os.PathLike[str], question: str, options: AskOptions, task: Task = "free_form"
) -> Request:
    """The request ``o3video serve`` sends its model for ``video`` and ``question`` with
    ``options`` (one sample): the frames as :mod:`o3video.serve.job` decodes them, the
    messages as :func:`o3video.ask.ask` builds them."""
    clip = options.video.sample(video, factor=FAMILY.factor)
    messages = build_messages(clip, question.strip(), task, options.presentation)
    return Request(messages, id="memorize", clip=clip)


def greedy(backend: HFBackend, request: Request, max_new_tokens: int) -> str:
    """What ``backend`` writes for ``request`` at temperature 0."""
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    return backend.generate([request], params)[0][0]


def _training_batch(backend: HFBackend, request: Request, target_ids: list[int]) -> dict[str, Any]:
    """The prompt's inputs as the backend builds them, with the target appended and labels
    on the target only."""
    # The backend's own per-request inputs (processor_inputs for a request with a clip), so
    # the memorized prompt is token for token the one the backend will be asked.
    inputs = dict(backend._request_inputs(request))
    target = torch.tensor([target_ids], dtype=inputs["input_ids"].dtype)
    prompt_len = int(inputs["input_ids"].shape[1])
    for key in SEQUENCE_KEYS:
        if key in inputs:
            tail = target if key == "input_ids" else torch.zeros_like(target)
            if key == "attention_mask":
                tail = torch.ones_like(target)
            inputs[key] = torch.cat([inputs[key], tail.to(inputs[key].dtype)], dim=1)
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[:, prompt_len:] = target
    inputs["labels"] = labels
    return inputs


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Train on one intra-op thread: the model is too small to gain from more, and on a busy
    machine OpenMP threads spin waiting for a core (on 2 shared cores the same 55 steps took
    3 s on one thread, 45 s on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def memorize(
    model_dir: str | os.PathLike[str],
    request: Request,
    target: str,
    *,
    seed: int = 0,
    lr: float = 3e-3,
    max_steps: int = 400,
) -> Memorized:
    """Build the tiny Qwen2.5-VL in ``model_dir``, overfit it until greedy decoding of
    ``request`` returns ``target`` exactly, and save it there (model and processor).

    Raises ``ValueError`` when the tiny tokenizer does not round-trip ``target`` (no model
    could then write it exactly) and ``AssertionError`` when ``max_steps`` are not enough.
    """
    t0 = time.perf_counter()
    out = build_tiny_model(model_dir, seed=seed)
    backend = load_backend(out, "hf", device="cpu", dtype="float32")
    assert isinstance(backend, HFBackend)
    tokenizer = backend.tokenizer
    ids = tokenizer.encode(target, add_special_tokens=False)
    if tokenizer.decode(ids) != target:
        raise ValueError(
            f"the tiny tokenizer does not round-trip the target: {target!a} comes back "
            f"as {tokenizer.decode(ids)!a}; pick another target"
        )
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    target_ids = [*ids, end_of_turn]
    max_new_tokens = len(target_ids) + 8
    batch = _training_batch(backend, request, target_ids)
    prompt_len = int(batch["input_ids"].shape[1]) - len(target_ids)
    model = backend.model
    model.model.visual.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    wrote: str | None = None
    loss = float("nan")
    steps = 0
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)
        optimizer = torch.optim.AdamW(params, lr=lr)
        for steps in range(1, max_steps + 1):
            model.train()
            output = model(**batch)
            optimizer.zero_grad()
            output.loss.backward()
            optimizer.step()
            loss = output.loss.item()
            if steps % CHECK_EVERY:
                continue
            predicted = output.logits[0, prompt_len - 1 : -1].argmax(-1).tolist()
            if predicted != target_ids:
                continue
            model.eval()
            wrote = greedy(backend, request, max_new_tokens)
            if wrote == target:
                break
        else:
            last = (
                f"greedy decoding wrote {wrote!r}"
                if wrote is not None
                else "the target never became the argmax at every position"
            )
            raise AssertionError(
                f"the tiny model did not memorize {target!r} in {max_steps} steps "
                f"(lr {lr}, last loss {loss:.4f}): {last}"
            )
    model.eval()
    model.save_pretrained(out)
    backend.processor.save_pretrained(out)
    # The saved checkpoint, loaded as a server loads it, writes the target.
    reloaded = load_backend(out, "hf", device="cpu")
    assert isinstance(reloaded, HFBackend)
    wrote = greedy(reloaded, request, max_new_tokens)
    assert wrote == target, f"the saved model writes {wrote!r}, not {target!r}"
    assert request.clip is not None
    return Memorized(out, request.clip, request, target, steps, time.perf_counter() - t0)

"""The backend protocol: what every model backend (served or local) offers the rest of the project.

A backend turns chat requests into completions. Requests hold messages in the
``transformers`` chat format that :func:`o3video.prompts.build_messages` produces with
``presentation="frames"``::

    {"role": "user", "content": [{"type": "text", "text": "Frame 1 at 0.0s: "},
                                 {"type": "image", "image": <PIL.Image or (H, W, 3) uint8>},
                                 {"type": "text", "text": "What happens?"}]}

:meth:`Backend.generate` returns ``params.n`` completions per request, in request order.
Backends: :class:`o3video.models.openai.OpenAIBackend` (any OpenAI-compatible endpoint: a
teacher, a judge, a closed baseline). Local ``transformers`` and vLLM backends implement the
same protocol; streaming, where a backend offers it, is an extra method of its own (a
``StreamingBackend`` protocol extending this one), so that code needing only complete
texts (curation, evaluation, voting) accepts every backend.

>>> req = Request.user("Is this a dog? Answer yes or no.")
>>> req.messages[0]["content"][0]
{'type': 'text', 'text': 'Is this a dog? Answer yes or no.'}
>>> SamplingParams(n=4, temperature=1.0).n
4
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from o3video.errors import O3VideoError

if TYPE_CHECKING:
    from o3video.video import Clip

Message = dict[str, Any]
"""One chat message: ``{"role": ..., "content": [item, ...]}`` (or ``content`` a string)."""
ImageInput = Image.Image | np.ndarray


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: ``n`` completions per request, ``temperature`` (0 = greedy), ``top_p``,
    at most ``max_new_tokens`` tokens each, an optional ``seed``, an optional JSON schema the
    reply must follow (``json_schema``, a JSON Schema dict; its ``title`` names it where a
    server wants a name), optional ``stop`` strings and a ``repetition_penalty`` (1.0: none;
    the reference evaluation used 1.05)."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    seed: int | None = None
    json_schema: dict[str, Any] | None = None
    stop: tuple[str, ...] | None = None
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if not self.repetition_penalty > 0:
            raise ValueError(
                f"SamplingParams.repetition_penalty must be > 0, got {self.repetition_penalty}"
            )
        if self.max_new_tokens < 1:
            raise ValueError(
                f"SamplingParams.max_new_tokens must be >= 1, got {self.max_new_tokens}"
            )
        if self.stop is not None and not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))


@dataclass(frozen=True)
class Request:
    """One conversation to complete: ``messages`` in the ``transformers`` chat format (see the
    module docstring). ``id`` is an optional caller's label, used in logs and errors.

    ``clip`` is the :class:`~o3video.video.Clip` the messages were built from, when they show
    one: local backends need it to run the processor exactly as :mod:`o3video.prompts` intends
    (frames not resized again; a native video's true timing, ``video_metadata``). Served
    backends ignore it. ``video_interval_s``: for a native video, the spacing between frames
    the processor is told instead of their true spacing (a protocol's choice:
    :attr:`o3video.protocols.render.Prompt.video_interval_s`)."""

    messages: list[Message]
    id: str | None = field(default=None, compare=False)
    clip: Clip | None = field(default=None, compare=False, repr=False)
    video_interval_s: float | None = field(default=None, compare=False)

    @classmethod
    def user(
        cls, *parts: str | ImageInput, system: str | None = None, id: str | None = None
    ) -> Request:
        """A one-turn request: the ``parts`` (texts and images, in order) as one user message,
        after an optional ``system`` message.

        >>> Request.user(Image.new("RGB", (8, 8)), "Is this a cat?").messages[0]["content"][1]
        {'type': 'text', 'text': 'Is this a cat?'}
        """
        content: list[dict[str, Any]] = []
        for part in parts:
            if isinstance(part, str):
                content.append({"type": "text", "text": part})
            else:
                content.append({"type": "image", "image": part})
        messages: list[Message] = []
        if system is not None:
            messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
        messages.append({"role": "user", "content": content})
        return cls(messages, id=id)


@runtime_checkable
class Backend(Protocol):
    """A model behind one call: ``generate(requests, params)`` → per request ``params.n``
    completion texts, in the order of ``requests``. ``name`` says which model and where, for
    logs, errors and result files. A backend raises :class:`BackendError` when it cannot
    produce a completion; what the model wrote is returned as text, never judged here."""

    name: str

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[str]]:
        """``params.n`` completions for each request, in request order."""
        ...


@runtime_checkable
class StreamingBackend(Backend, Protocol):
    """A backend that can also hand out one completion piece by piece as it is generated:
    ``stream(request, params)`` yields text deltas whose concatenation is the completion
    ``generate([request], params)`` would return (``params.n`` must be 1)."""

    def stream(self, request: Request, params: SamplingParams) -> Iterator[str]:
        """The completion of ``request`` as text deltas, in order."""
        ...


class BackendError(O3VideoError):
    """A backend could not complete a request: a refused or failed call, retries exhausted,
    an unreadable reply. The message names the backend, the endpoint (where there is one),
    the index of the request in its batch and, for HTTP, the status and the server's message.
    """

    def __init__(
        self,
        backend: str,
        message: str,
        *,
        endpoint: str | None = None,
        request_index: int | None = None,
        status: int | None = None,
    ) -> None:
        self.backend = backend
        self.endpoint = endpoint
        self.request_index = request_index
        self.status = status
        where = backend + (f" at {endpoint}" if endpoint else "")
        which = f", request {request_index}" if request_index is not None else ""
        code = f": HTTP {status}" if status is not None else ""
        super().__init__(f"{where}{which}{code}: {message}")

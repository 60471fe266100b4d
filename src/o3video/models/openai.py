"""A backend for any OpenAI-compatible chat endpoint (vLLM, SGLang, OpenAI, Gemini, ...).

Standard library only (``urllib.request``, ``json``, ``concurrent.futures``): the project
reaches teachers, judges and closed baselines through this one small client, without a new
dependency.

- **Messages**: the ``transformers`` chat format of :mod:`o3video.models.base` is converted
  item by item: a text item stays a text part, an image item becomes an ``image_url`` part
  holding a ``data:`` URL (JPEG quality 90 by default, or PNG), in place — so a frame keeps
  its ``Frame k at t s:`` label just before it.
- **Call**: ``POST {base_url}/chat/completions`` with ``model``, ``messages``, ``n``,
  ``temperature``, ``top_p``, ``max_tokens``, and ``seed``/``stop`` when set;
  ``params.json_schema`` becomes ``response_format = {"type": "json_schema", "json_schema":
  {"name", "schema", "strict": true}}``. The key (``Authorization: Bearer``) is read from the
  environment variable ``api_key_env`` when the backend is built; no header without one.
- **Retries**: on HTTP 429 and 5xx, connection errors and timeouts, up to ``max_retries``
  more tries, waiting ``Retry-After`` when the server sends it, else ``backoff_s · 2^k``
  scaled by a random factor in [0.5, 1.5) (jitter). Other 4xx are the caller's mistake: no
  retry, a :class:`BackendError` with the status and the server's message.
- **Concurrency**: requests of one call run on a thread pool; a semaphore bounds the calls in
  flight to ``max_concurrency`` over *all* calls of this backend, so several threads sharing
  it (curation workers) never exceed it together.
- A server that ignores ``n`` (returns fewer choices) is asked again for the rest; a choice
  whose ``content`` is null (a refusal, a tool call) is returned as ``""``.

>>> backend = OpenAIBackend("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-VL-72B-Instruct")
>>> backend.generate([Request.user("Say hi")], SamplingParams())   # doctest: +SKIP
[['Hi!']]
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import io
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timezone
from typing import Any, Literal

import numpy as np
from PIL import Image

from o3video import safejson
from o3video.models.base import BackendError, Message, Request, SamplingParams

logger = logging.getLogger(__name__)

ImageFormat = Literal["jpeg", "png"]
MAX_RETRY_AFTER_S = 300.0
"""The longest ``Retry-After`` honoured; a longer one is cut to this (and logged)."""
_ERROR_BODY_CHARS = 500


def encode_image(
    image: Image.Image | np.ndarray, fmt: ImageFormat = "jpeg", quality: int = 90
) -> str:
    """An image as a ``data:`` URL (RGB JPEG at ``quality``, or PNG).

    >>> encode_image(Image.new("RGB", (2, 2)), "png")[:22]
    'data:image/png;base64,'
    """
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    if fmt == "jpeg":
        pil.convert("RGB").save(buf, format="JPEG", quality=quality)
    else:
        pil.save(buf, format="PNG")
    return f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def to_openai_messages(
    messages: Sequence[Message], fmt: ImageFormat = "jpeg", quality: int = 90
) -> list[dict[str, Any]]:
    """Chat messages in the OpenAI format: text items kept, images as ``image_url`` parts.

    A string ``content`` is passed through. Raises ``ValueError`` for an item that is neither
    text nor image (a native ``video`` item: send frames instead).

    >>> to_openai_messages([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    [{'role': 'user', 'content': [{'type': 'text', 'text': 'hi'}]}]
    """
    out: list[dict[str, Any]] = []
    for m, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": message["role"], "content": content})
            continue
        parts: list[dict[str, Any]] = []
        for i, item in enumerate(content or []):
            kind = item.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": item["text"]})
            elif kind == "image":
                url = encode_image(item["image"], fmt, quality)
                parts.append({"type": "image_url", "image_url": {"url": url}})
            else:
                raise ValueError(
                    f"message {m}, item {i}: type {kind!r} cannot be sent to an OpenAI-compatible "
                    "endpoint (only 'text' and 'image'; show a video as frames)"
                )
        out.append({"role": message["role"], "content": parts})
    return out


def request_body(
    model: str,
    messages: list[dict[str, Any]],
    params: SamplingParams,
    n: int | None = None,
) -> dict[str, Any]:
    """The JSON body of one ``/chat/completions`` call (``n`` overrides ``params.n``)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "n": params.n if n is None else n,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_new_tokens,
    }
    if params.seed is not None:
        body["seed"] = params.seed
    if params.repetition_penalty != 1.0:  # a vLLM server's extra parameter
        body["repetition_penalty"] = params.repetition_penalty
    if params.stop:
        body["stop"] = list(params.stop)
    if params.json_schema is not None:  # its "title" is the name, not sent in the schema
        schema = {k: v for k, v in params.json_schema.items() if k != "title"}
        name = str(params.json_schema.get("title") or "response")
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True},
        }
    return body


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds, or an HTTP date); ``None`` if
    absent or unreadable.

    >>> retry_after_s("3"), retry_after_s(None), retry_after_s("soon")
    (3.0, None, None)
    """
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class OpenAIBackend:
    """Completions from an OpenAI-compatible endpoint (see the module docstring).

    ``base_url`` ends before ``/chat/completions`` (``http://host:8000/v1``). ``sleep`` and
    ``rng`` exist for tests (deterministic waits and jitter).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_concurrency: int = 8,
        image_format: ImageFormat = "jpeg",
        jpeg_quality: int = 90,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0 or backoff_s < 0:
            raise ValueError(
                f"need max_concurrency >= 1, max_retries >= 0, timeout_s > 0, backoff_s >= 0: "
                f"{max_concurrency=} {max_retries=} {timeout_s=} {backoff_s=}"
            )
        self.base_url = base_url.rstrip("/")
        self.endpoint = f"{self.base_url}/chat/completions"
        self.model = model
        self.name = f"openai:{model}"
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_concurrency = max_concurrency
        self.image_format: ImageFormat = image_format
        self.jpeg_quality = jpeg_quality
        self._api_key = os.environ.get(api_key_env) or None
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.base_url!r}, {self.model!r})"

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[str]]:
        """``params.n`` completions per request, in request order; :class:`BackendError` for
        the first request that fails (the others still running are waited for)."""
        if not requests:
            return []
        if len(requests) == 1:
            return [self._complete(requests[0], 0, params)]
        workers = min(self.max_concurrency, len(requests))
        with ThreadPoolExecutor(workers, thread_name_prefix="openai") as pool:
            futures = [pool.submit(self._complete, r, i, params) for i, r in enumerate(requests)]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def _error(self, message: str, index: int, status: int | None = None) -> BackendError:
        return BackendError(
            self.name, message, endpoint=self.endpoint, request_index=index, status=status
        )

    def _complete(self, request: Request, index: int, params: SamplingParams) -> list[str]:
        try:
            messages = to_openai_messages(request.messages, self.image_format, self.jpeg_quality)
        except (ValueError, KeyError, TypeError) as e:
            raise self._error(f"cannot convert the messages: {e!r}", index) from e
        texts: list[str] = []
        while len(texts) < params.n:
            want = params.n - len(texts)
            reply = self._post(request_body(self.model, messages, params, n=want), index)
            got = self._texts(reply, index)
            if not got:
                raise self._error("the reply has no choices", index)
            if len(got) < want:
                logger.warning(
                    "%s: asked for %d completions, got %d; asking again for the rest",
                    self.name,
                    want,
                    len(got),
                )
            texts += got[:want]
        return texts

    def _texts(self, reply: Any, index: int) -> list[str]:
        choices = reply.get("choices") if isinstance(reply, dict) else None
        if not isinstance(choices, list):
            raise self._error(f"the reply has no 'choices' list: {str(reply)[:200]!r}", index)
        ordered = sorted(
            (c for c in choices if isinstance(c, dict)), key=lambda c: c.get("index") or 0
        )
        texts = []
        for c in ordered:
            message = c.get("message")
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):  # some servers return content parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            if not isinstance(content, str):
                logger.warning(
                    "%s: request %d: a choice has no text (finish_reason %r); using ''",
                    self.name,
                    index,
                    c.get("finish_reason"),
                )
                content = ""
            texts.append(content)
        return texts

    def _post(self, body: dict[str, Any], index: int) -> Any:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        attempt = 0
        while True:
            wait_s: float | None = None
            try:
                with self._slots:
                    req = urllib.request.Request(self.endpoint, data, headers, method="POST")
                    with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                        raw = resp.read()
                try:
                    return safejson.loads(raw)  # the server's reply: bounded nesting
                except ValueError as e:
                    raise self._error(f"the reply is not JSON: {raw[:200]!r}", index) from e
            except urllib.error.HTTPError as e:
                message = _server_message(e)
                if e.code != 429 and e.code < 500:
                    raise self._error(message, index, e.code) from e
                failure: str = f"HTTP {e.code}: {message}"
                wait_s = retry_after_s(e.headers.get("Retry-After") if e.headers else None)
                last: BaseException = e
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                failure, last = f"{type(e).__name__}: {getattr(e, 'reason', e)}", e
            if attempt >= self.max_retries:
                msg = f"gave up after {attempt + 1} tries; last: {failure}"
                status = last.code if isinstance(last, urllib.error.HTTPError) else None
                raise self._error(msg, index, status) from last
            delay = self._delay(attempt, wait_s)
            logger.warning(
                "%s: request %d failed (%s); try %d of %d in %.2f s",
                self.name,
                index,
                failure,
                attempt + 2,
                self.max_retries + 1,
                delay,
            )
            self._sleep(delay)
            attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            if retry_after > MAX_RETRY_AFTER_S:
                logger.warning("Retry-After %.0f s cut to %.0f s", retry_after, MAX_RETRY_AFTER_S)
            return min(retry_after, MAX_RETRY_AFTER_S)
        with self._rng_lock:
            jitter = 0.5 + self._rng.random()
        return self.backoff_s * (2**attempt) * jitter


def _server_message(error: urllib.error.HTTPError) -> str:
    """The server's error message: ``error.message`` of an OpenAI-style body, else its text."""
    try:
        raw = error.read()
    except (OSError, http.client.HTTPException):
        raw = b""
    text = raw.decode("utf-8", "replace").strip()
    try:
        payload = safejson.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        inner = payload.get("error", payload)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(inner, str):
            return inner
    return text[:_ERROR_BODY_CHARS] or str(error.reason)

"""Local inference with ``transformers``: :class:`HFBackend`, any Qwen2.5-VL / Qwen3-VL checkpoint.

The model loads through ``AutoModelForImageTextToText`` and ``AutoProcessor`` from a local
directory or a hub name (:mod:`o3video.models.load` makes a wrong one fail fast, naming it);
the family (box space, resize factor) comes from the config. CUDA in bfloat16 when there is a
GPU, else CPU in float32.

- **Inputs**: a request that carries its :class:`~o3video.video.Clip` goes through
  :func:`o3video.prompts.processor_inputs`, so frames are not resized again and a native
  video gets its true timing (``video_metadata``). A request without a clip (an image crop
  and a question) is rendered with the chat template and the processor resizes its images.
- **Batches**: up to ``max_batch`` requests per ``generate`` call, each processed alone and
  then collated with **left** padding (so every row's new tokens start at one column);
  images and videos are concatenated in request order, as the model consumes them.
- **Sampling** is exactly :class:`~o3video.models.base.SamplingParams`: temperature 0 is
  greedy (``n`` copies of one completion), otherwise ``do_sample`` with ``temperature`` and
  ``top_p`` and ``num_return_sequences = n``. The checkpoint's own sampling defaults
  (Qwen2.5-VL ships ``top_k=1``, which would make every "sample" greedy, and
  ``repetition_penalty=1.05``) are overridden, as vLLM does with explicit sampling params.
  ``seed`` seeds a forked torch RNG, so the caller's random state is untouched.
- **Stop strings** end generation (``stop_strings``) and are cut from the text with what
  follows, like vLLM and OpenAI servers.
- **Streaming**: :meth:`HFBackend.stream` runs ``generate`` in a thread with a
  ``TextIteratorStreamer`` and yields text deltas; abandoning the iterator stops generation.

>>> backend = HFBackend("Qwen/Qwen2.5-VL-7B-Instruct")                  # doctest: +SKIP
>>> backend.generate([Request.user("Say hi")], SamplingParams())        # doctest: +SKIP
[['Hi!']]
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from o3video.families import family_for_config
from o3video.models.base import BackendError, Request, SamplingParams
from o3video.models.load import check_model_source, load_model, model_config
from o3video.prompts import media_items, processor_inputs

if TYPE_CHECKING:
    import torch
    from transformers import BatchFeature, GenerationConfig

logger = logging.getLogger(__name__)

SEQUENCE_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")
"""Processor outputs laid out per token (``(1, L)``): left-padded when collated."""


def truncate_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """``text`` up to the earliest occurrence of any ``stop`` string (excluded).

    >>> truncate_at_stop("<think>a</think><answer>b</answer>", ["</think>"])
    '<think>a'
    """
    cut = min((i for s in stop or () if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


class StopFilter:
    """Streams text deltas with :func:`truncate_at_stop` applied to their concatenation.

    Holds back the end of the text while it could be the start of a stop string.

    >>> f = StopFilter(["</t>"])
    >>> [f.feed(x) for x in ("a<", "/", "t>b")], f.flush(), f.stopped
    (['a', '', ''], '', True)
    """

    def __init__(self, stop: Sequence[str] | None) -> None:
        self.stop = tuple(s for s in stop or () if s)
        self.text = ""
        self.released = 0
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add ``piece``; return the text that is now certain to be output."""
        if self.stopped:
            return ""
        self.text += piece
        cut = truncate_at_stop(self.text, self.stop)
        if len(cut) < len(self.text):
            self.stopped = True
            return self._release(len(cut))
        hold = max(
            (k for s in self.stop for k in range(1, len(s)) if self.text.endswith(s[:k])),
            default=0,
        )
        return self._release(len(self.text) - hold)

    def flush(self) -> str:
        """The rest of the text (at the end of generation)."""
        return "" if self.stopped else self._release(len(self.text))

    def _release(self, end: int) -> str:
        out = self.text[self.released : end]
        self.released = max(self.released, end)
        return out


def collate(features: Sequence[Any], pad_token_id: int) -> BatchFeature:
    """One batch from per-request processor outputs: per-token tensors left-padded (ids with
    ``pad_token_id``, masks with 0), everything else (pixels, grids, ``second_per_grid_ts``)
    concatenated in request order."""
    import torch
    from transformers import BatchFeature

    if len(features) == 1:
        return BatchFeature(dict(features[0]))
    width = max(int(f["input_ids"].shape[1]) for f in features)
    keys = list(dict.fromkeys(k for f in features for k in f))
    out: dict[str, Any] = {}
    for key in keys:
        values = [f[key] for f in features if key in f]
        if key in SEQUENCE_KEYS:
            if len(values) != len(features):
                raise ValueError(f"{key} is missing from some requests' inputs")
            pad = pad_token_id if key == "input_ids" else 0
            out[key] = torch.cat(
                [torch.nn.functional.pad(v, (width - v.shape[1], 0), value=pad) for v in values]
            )
        elif all(isinstance(v, torch.Tensor) for v in values):
            out[key] = torch.cat(values)
        else:
            out[key] = [x for v in values for x in v]
    return BatchFeature(out)


def _resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    import torch

    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype, None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r} (use e.g. 'bfloat16', 'float32')")
        return resolved
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype must be a torch.dtype or its name, got {dtype!r}")
    return dtype


class HFBackend:
    """A local ``transformers`` model behind the backend protocol (see the module docstring).

    ``name_or_path``: a local checkpoint directory or a hub name. ``device``: ``"cuda"``,
    ``"cpu"``, ``"cuda:1"`` ... (default: CUDA when available). ``dtype``: a ``torch.dtype``
    or its name (default bfloat16 on CUDA, float32 on CPU). ``max_batch``: requests per
    ``model.generate`` call. ``attn_implementation`` is passed to ``from_pretrained``.
    Attributes: ``name`` (``hf:<name_or_path>``), ``family``, ``model``, ``processor``.
    """

    def __init__(
        self,
        name_or_path: str | os.PathLike[str],
        *,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        max_batch: int = 4,
        attn_implementation: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoProcessor

        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.name = f"hf:{os.fspath(name_or_path)}"
        source = check_model_source(name_or_path, "hf")
        self.family = family_for_config(model_config(source, "hf"))
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = _resolve_dtype(dtype, self.device)
        self.max_batch = max_batch
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        try:
            self.processor = AutoProcessor.from_pretrained(source)
            model: Any = load_model(source, dtype=self.dtype, **extra)  # LoRA folders too
        except (OSError, ValueError) as e:
            raise BackendError(self.name, f"cannot load the model: {e}") from e
        self.model: Any = model.to(self.device).eval()
        self.tokenizer = self.processor.tokenizer
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else self.tokenizer.eos_token_id)
        self._warned_schema = False
        logger.info(
            "%s: %s (%s) on %s in %s",
            self.name,
            type(self.model).__name__,
            self.family.name,
            self.device,
            str(self.dtype).removeprefix("torch."),
        )

    def __repr__(self) -> str:
        return f"HFBackend({self.name!r}, device={str(self.device)!r})"

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[str]]:
        """``params.n`` completions per request, in request order, ``max_batch`` at a time."""
        results: list[list[str]] = []
        for chunk_index, start in enumerate(range(0, len(requests), self.max_batch)):
            chunk = requests[start : start + self.max_batch]
            seed = None if params.seed is None else params.seed + chunk_index
            results.extend(self._generate_chunk(chunk, start, params, seed))
        return results

    def stream(self, request: Request, params: SamplingParams) -> Generator[str, None, None]:
        """One completion of ``request`` as text deltas (``params.n`` must be 1).

        Their concatenation equals ``generate([request], params)[0][0]``. Closing the
        generator (or dropping it) stops the generation at the next token. Raises
        :class:`BackendError` (after the deltas already yielded) if generation fails.
        """
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        if params.n != 1:
            raise ValueError(f"stream gives one completion; got n={params.n}")
        inputs = self._inputs([request], 0)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancel = threading.Event()

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                import torch

                return torch.full(
                    (input_ids.shape[0],),
                    cancel.is_set(),
                    dtype=torch.bool,
                    device=input_ids.device,
                )

        errors: list[BaseException] = []

        def work() -> None:
            try:
                self._run(
                    inputs, params, params.seed, streamer, StoppingCriteriaList([_Cancelled()])
                )
            except BaseException as e:  # re-raised in the caller's thread below
                errors.append(e)
                streamer.end()

        thread = threading.Thread(target=work, name="o3video-hf-stream", daemon=True)
        thread.start()
        stops = StopFilter(params.stop)
        try:
            for piece in streamer:
                if delta := stops.feed(piece):
                    yield delta
            if tail := stops.flush():
                yield tail
        finally:
            cancel.set()
            thread.join()
        if errors:
            raise BackendError(self.name, f"generation failed: {errors[0]!r}") from errors[0]

    def _generate_chunk(
        self, chunk: Sequence[Request], start: int, params: SamplingParams, seed: int | None
    ) -> list[list[str]]:
        inputs = self._inputs(chunk, start)
        try:
            ids = self._run(inputs, params, seed)
        except (RuntimeError, ValueError) as e:  # out of memory, bad shapes
            raise BackendError(self.name, f"generation failed: {e}", request_index=start) from e
        new_tokens = ids[:, inputs["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        texts = [truncate_at_stop(t, params.stop) for t in texts]
        per_request = params.n if params.temperature > 0 else 1
        grouped = [texts[i * per_request : (i + 1) * per_request] for i in range(len(chunk))]
        if per_request != params.n:  # greedy: every sample is the same completion
            grouped = [g * params.n for g in grouped]
        return grouped

    def _inputs(self, requests: Sequence[Request], start: int) -> BatchFeature:
        features = []
        for i, request in enumerate(requests):
            try:
                features.append(self._request_inputs(request))
            except (ValueError, TypeError, KeyError) as e:
                raise BackendError(
                    self.name, f"cannot prepare the model inputs: {e}", request_index=start + i
                ) from e
        return collate(features, self.pad_token_id).to(self.device)

    def _request_inputs(self, request: Request) -> BatchFeature:
        if request.clip is not None:
            return processor_inputs(
                self.processor, request.messages, request.clip, family=self.family
            )
        if media_items(request.messages, "video"):
            raise ValueError("a native video request needs Request.clip (its frames' timing)")
        text = self.processor.apply_chat_template(
            request.messages, tokenize=False, add_generation_prompt=True
        )
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if images := media_items(request.messages, "image"):
            kwargs["images"] = images
        return self.processor(**kwargs)

    def generation_config(self, params: SamplingParams) -> GenerationConfig:
        """The ``GenerationConfig`` for ``params``: token ids from the checkpoint, sampling
        from ``params`` only (see the module docstring)."""
        from transformers import GenerationConfig

        if params.json_schema is not None and not self._warned_schema:
            logger.warning("%s: json_schema is not enforced by the hf backend", self.name)
            self._warned_schema = True
        base = self.model.generation_config
        sampling = params.temperature > 0
        return GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=sampling,
            temperature=params.temperature if sampling else 1.0,
            top_p=params.top_p if sampling else 1.0,
            top_k=0 if sampling else 50,  # 50 is transformers' neutral default for greedy
            repetition_penalty=1.0,
            num_return_sequences=params.n if sampling else 1,
            stop_strings=list(params.stop) if params.stop else None,
            eos_token_id=base.eos_token_id,
            pad_token_id=self.pad_token_id,
            bos_token_id=base.bos_token_id,
        )

    def _run(
        self,
        inputs: BatchFeature,
        params: SamplingParams,
        seed: int | None,
        streamer: Any = None,
        stopping_criteria: Any = None,
    ) -> torch.Tensor:
        import torch

        extra: dict[str, Any] = {}
        if streamer is not None:
            extra["streamer"] = streamer
        if stopping_criteria is not None:
            extra["stopping_criteria"] = stopping_criteria
        with self._seeded(seed), torch.inference_mode():
            out: torch.Tensor = self.model.generate(
                **inputs,
                generation_config=self.generation_config(params),
                tokenizer=self.tokenizer,
                **extra,
            )
        return out

    @contextlib.contextmanager
    def _seeded(self, seed: int | None) -> Iterator[None]:
        if seed is None:
            yield
            return
        import torch

        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

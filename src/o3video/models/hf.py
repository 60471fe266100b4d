"""Local inference with ``transformers``: :class:`HFBackend`, any Qwen2.5-VL / Qwen3-VL checkpoint.

The model loads through ``AutoModelForImageTextToText`` and ``AutoProcessor`` from a local
directory or a hub name (:mod:`o3video.models.load` makes a wrong one fail fast, naming it);
the family (box space, resize factor) comes from the config. CUDA in bfloat16 when there is a
GPU, else CPU in float32.

- **Inputs**: a request that carries its :class:`~o3video.video.Clip` goes through
  :func:`o3video.prompts.processor_inputs`, so frames are not resized again and a native
  video gets its true timing (``video_metadata``). A request without a clip (an image crop
  and a question) is rendered with the chat template and the processor resizes its images.
- **Batches**: every request is processed alone, then the requests are sorted by prompt
  length (longest first) and cut into batches of up to ``max_batch``, each one
  ``model.generate`` call, collated with **left** padding (so every row's new tokens start
  at one column) and images and videos concatenated in batch order, as the model consumes
  them. Sorting keeps the padding small; results come back in request order.
- **Threads** (CPU only): :func:`choose_threads`. An explicit ``threads`` wins; else
  ``OMP_NUM_THREADS`` (which torch honours itself) is left alone; else a model under
  :data:`SMALL_MODEL_PARAMS` parameters runs on **one** thread. A small model gains little
  from more threads on an idle machine (one thread is at most ~18 % slower on the embedded
  model) and loses a lot beside a busy process (OpenMP threads spin waiting for a core:
  3.4× slower demo, up to 17× slower evaluation; ``benchmarks/README.md``). Larger models
  keep torch's default (one thread per core). ``torch.set_num_threads`` is process-wide.
- **Sampling** is exactly :class:`~o3video.models.base.SamplingParams`: temperature 0 is
  greedy (``n`` copies of one completion), otherwise ``do_sample`` with ``temperature`` and
  ``top_p`` and ``num_return_sequences = n``. The checkpoint's own sampling defaults
  (Qwen2.5-VL ships ``top_k=1``, which would make every "sample" greedy, and
  ``repetition_penalty=1.05``) are overridden, as vLLM does with explicit sampling params
  (``params.repetition_penalty``, 1.0 unless asked).
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
from collections.abc import Generator, Iterator, Mapping, Sequence
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

SMALL_MODEL_PARAMS = 100_000_000
"""Below this many parameters the ``hf`` backend runs on one CPU thread by default."""


def choose_threads(
    n_params: int, requested: int | None, environ: Mapping[str, str] | None = None
) -> tuple[int | None, str]:
    """The torch thread count for a model of ``n_params`` parameters on CPU, and why:
    ``requested`` if given; ``None`` (leave torch alone) when ``OMP_NUM_THREADS`` is set in
    ``environ`` (default ``os.environ``) or the model is not small; else 1.

    >>> choose_threads(3_000_000, None, {})
    (1, 'a small model (3.0 M parameters): one thread')
    >>> choose_threads(3_000_000, 2, {})
    (2, '--threads 2')
    >>> choose_threads(3_000_000, None, {"OMP_NUM_THREADS": "2"})
    (None, 'OMP_NUM_THREADS=2')
    >>> choose_threads(7_000_000_000, None, {})[0] is None
    True
    """
    env = os.environ if environ is None else environ
    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be >= 1, got {requested}")
        return requested, f"--threads {requested}"
    if env.get("OMP_NUM_THREADS", "").strip():
        return None, f"OMP_NUM_THREADS={env['OMP_NUM_THREADS'].strip()}"
    millions = f"{n_params / 1e6:.1f} M parameters"
    if n_params < SMALL_MODEL_PARAMS:
        return 1, f"a small model ({millions}): one thread"
    return None, f"a large model ({millions}): torch's default"


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
        cut = len(truncate_at_stop(self.text, self.stop))
        # Where a stop string may still begin: the text ends inside it. One that began
        # before ``cut`` would, once complete, cut earlier, so the stop waits for it.
        end = len(self.text)
        pending = min(
            (j for s in self.stop for j in range(max(0, end - len(s) + 1), end)
             if s.startswith(self.text[j:])),
            default=end,
        )  # fmt: skip
        if cut < end and cut <= pending:
            self.stopped = True
            return self._release(cut)
        return self._release(min(cut, pending))

    def flush(self) -> str:
        """The rest of the text (at the end of generation)."""
        if self.stopped:
            return ""
        return self._release(len(truncate_at_stop(self.text, self.stop)))

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
    ``model.generate`` call. ``threads``: torch's CPU threads (default:
    :func:`choose_threads`). ``attn_implementation`` is passed to ``from_pretrained``.
    Attributes: ``name`` (``hf:<name_or_path>``), ``family``, ``model``, ``processor``,
    ``threads`` (torch's thread count after loading; ``None`` on a GPU).
    """

    def __init__(
        self,
        name_or_path: str | os.PathLike[str],
        *,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        max_batch: int = 16,
        threads: int | None = None,
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
        self.threads: int | None = None
        if self.device.type == "cpu":
            n_params = sum(p.numel() for p in self.model.parameters())
            chosen, why = choose_threads(n_params, threads)
            if chosen is not None:
                torch.set_num_threads(chosen)
            self.threads = torch.get_num_threads()
            logger.info("%s: %d CPU thread(s) (%s)", self.name, self.threads, why)
        elif threads is not None:
            logger.warning("%s: threads=%d ignored on %s", self.name, threads, self.device)
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
        """``params.n`` completions per request, in request order; the requests run longest
        prompt first, ``max_batch`` at a time (see the module docstring)."""
        features = self._features(requests)
        order = sorted(range(len(requests)), key=lambda i: -int(features[i]["input_ids"].shape[1]))
        results: list[list[str]] = [[] for _ in requests]
        for batch_index, start in enumerate(range(0, len(order), self.max_batch)):
            rows = order[start : start + self.max_batch]
            seed = None if params.seed is None else params.seed + batch_index
            inputs = collate([features[i] for i in rows], self.pad_token_id).to(self.device)
            for i, texts in zip(
                rows, self._generate_batch(inputs, rows, params, seed), strict=True
            ):
                results[i] = texts
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
        inputs = collate(self._features([request]), self.pad_token_id).to(self.device)
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

    def _generate_batch(
        self, inputs: BatchFeature, rows: Sequence[int], params: SamplingParams, seed: int | None
    ) -> list[list[str]]:
        try:
            ids = self._run(inputs, params, seed)
        except (RuntimeError, ValueError) as e:  # out of memory, bad shapes
            which = f" (a batch of requests {', '.join(map(str, sorted(rows)))})"
            index = rows[0] if len(rows) == 1 else None
            raise BackendError(
                self.name, f"generation failed{which if index is None else ''}: {e}",
                request_index=index,
            ) from e  # fmt: skip
        new_tokens = ids[:, inputs["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        texts = [truncate_at_stop(t, params.stop) for t in texts]
        per_request = params.n if params.temperature > 0 else 1
        grouped = [texts[i * per_request : (i + 1) * per_request] for i in range(len(rows))]
        if per_request != params.n:  # greedy: every sample is the same completion
            grouped = [g * params.n for g in grouped]
        return grouped

    def _features(self, requests: Sequence[Request]) -> list[BatchFeature]:
        features = []
        for i, request in enumerate(requests):
            try:
                features.append(self._request_inputs(request))
            except (ValueError, TypeError, KeyError) as e:
                raise BackendError(
                    self.name, f"cannot prepare the model inputs: {e}", request_index=i
                ) from e
        return features

    def _request_inputs(self, request: Request) -> BatchFeature:
        if request.clip is not None:
            return processor_inputs(
                self.processor,
                request.messages,
                request.clip,
                family=self.family,
                video_interval_s=request.video_interval_s,
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
            repetition_penalty=params.repetition_penalty,
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

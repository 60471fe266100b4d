"""Fast local inference with vLLM's offline engine: :class:`VLLMBackend`.

``vllm`` is imported when a backend is built, never at package import: the project runs
without it (CPU machines, tests), and a missing install is one clear
:class:`~o3video.models.base.BackendError`.

- **Prompt**: the messages of :func:`o3video.prompts.build_messages` rendered by the
  checkpoint's own chat template (``AutoProcessor``), so frames-as-images keep their
  ``Frame k at t s:`` label before each ``<|vision_start|><|image_pad|><|vision_end|>``.
  vLLM expands every placeholder itself.
- **Frames as images**: ``multi_modal_data={"image": [PIL.Image, ...]}`` in message order.
  Our frames are already ``smart_resize``-d to multiples of the family's factor, so the
  processor's own resize leaves them unchanged (within its pixel bounds).
- **Native video**: ``multi_modal_data={"video": [(frames, metadata)]}`` — vLLM's
  ``VideoItem`` tuple of a ``(T, H, W, 3)`` uint8 array and a metadata dict that vLLM hands
  to the processor as ``transformers.video_utils.VideoMetadata``. The metadata is
  :func:`o3video.prompts.video_metadata` of the request's clip (true fps, frame indices,
  duration) plus ``do_sample_frames=False``, and ``mm_processor_kwargs`` says
  ``do_sample_frames=False`` too (frames are already sampled; vLLM would resample them
  otherwise). For Qwen2.5-VL it also passes ``fps = 1 / frame interval``: processors of
  ``transformers`` 4.x derive ``second_per_grid_ts`` from it (5.x reads the metadata). The
  frame count must be even (temporal patch 2): vLLM refuses odd counts of pre-sampled frames.
- **Sampling**: ``vllm.SamplingParams(n, temperature, top_p, max_tokens, seed, stop)``;
  a JSON schema becomes structured output (``StructuredOutputsParams`` or, in older vLLM,
  ``GuidedDecodingParams``). The ``n`` samples of a request are forked from one prefill, and
  with prefix caching (on by default here) requests that share a prefix — the system prompt,
  the same video asked several questions — reuse its KV cache instead of recomputing it.
- Outputs come back in request order (``LLM.generate`` returns them so); each request's
  ``n`` completions are ordered by their index.

Sources: vLLM docs "Multimodal Inputs" (``docs/features/multimodal_inputs.md``: offline
``LLM.generate`` with ``{"prompt", "multi_modal_data"}``), ``vllm/multimodal/parse.py``
(``_get_video_with_metadata``: a video item may be ``(array, metadata)``),
``vllm/model_executor/models/qwen3_vl.py`` (``_call_hf_processor`` builds ``VideoMetadata``
from that dict and honours its ``do_sample_frames``) and
``tests/models/multimodal/processing/test_qwen3_vl.py`` (pre-sampled frames with
``frames_indices`` / ``total_num_frames`` and ``do_sample_frames=False``).

>>> backend = VLLMBackend("Qwen/Qwen2.5-VL-7B-Instruct")               # doctest: +SKIP
>>> backend.generate([request], SamplingParams(n=8, temperature=1.0))   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image

from o3video.families import family_for_config
from o3video.models.base import BackendError, Request, SamplingParams
from o3video.models.load import adapter_base, check_model_source, model_config
from o3video.prompts import media_items, video_metadata

logger = logging.getLogger(__name__)

Presentation = Literal["frames", "video"]
DEFAULT_MAX_IMAGES = 64
"""Images per prompt the engine is sized for with ``presentation="frames"`` (64 frames is the
general-benchmark budget of SPEC §2)."""


def import_vllm() -> Any:
    """The ``vllm`` module; :class:`BackendError` saying how to get it when it is missing."""
    try:
        return importlib.import_module("vllm")
    except ImportError as e:
        raise BackendError(
            "vllm",
            f"vLLM is not installed ({e}); install it with `pip install 'o3video[vllm]'` on a "
            "machine with a CUDA GPU, or use the hf backend",
        ) from e


def default_limits(
    presentation: Presentation, max_images: int = DEFAULT_MAX_IMAGES
) -> dict[str, int]:
    """``limit_mm_per_prompt`` for a presentation: many images and no video, or one video
    (and one image, for a single-image question)."""
    if presentation == "frames":
        return {"image": max_images, "video": 0}
    if presentation == "video":
        return {"image": 1, "video": 1}
    raise ValueError(f"unknown presentation {presentation!r}; use 'frames' or 'video'")


def _to_pil(image: Any) -> Image.Image:
    return image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))


class VLLMBackend:
    """A vLLM offline engine behind the backend protocol (see the module docstring).

    ``presentation`` sizes the engine's multimodal budget (``limit_mm_per_prompt``, which
    ``limit_mm_per_prompt`` overrides); ``tensor_parallel_size``, ``gpu_memory_utilization``,
    ``max_model_len``, ``enable_prefix_caching``, ``seed``, ``max_num_seqs`` (sequences the
    engine runs at once; the reference evaluation used 5; default vLLM's) and
    ``engine_options`` go to ``vllm.LLM``. Attributes: ``name`` (``vllm:<name_or_path>``),
    ``family``, ``processor`` (for the chat template), ``llm`` (the engine), ``limits``.
    """

    def __init__(
        self,
        name_or_path: str | os.PathLike[str],
        *,
        presentation: Presentation = "frames",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = 32768,
        limit_mm_per_prompt: Mapping[str, int] | None = None,
        enable_prefix_caching: bool = True,
        seed: int = 0,
        max_num_seqs: int | None = None,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        from transformers import AutoProcessor

        self.name = f"vllm:{os.fspath(name_or_path)}"
        self._vllm = import_vllm()
        source = check_model_source(name_or_path, "vllm")
        if adapter_base(source, "vllm") is not None:
            raise BackendError(
                self.name,
                f"{source} is a LoRA adapter; merge it first: o3video train merge {source} "
                "--out DIR, then serve DIR (or use the hf backend, which loads base + adapter)",
            )
        self.family = family_for_config(model_config(source, "vllm"))
        self.limits = dict(limit_mm_per_prompt or default_limits(presentation))
        try:
            self.processor = AutoProcessor.from_pretrained(source)
        except (OSError, ValueError) as e:
            raise BackendError(self.name, f"cannot load the processor: {e}") from e
        options: dict[str, Any] = {
            "model": source,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "limit_mm_per_prompt": self.limits,
            "enable_prefix_caching": enable_prefix_caching,
            "seed": seed,
        }
        if max_model_len is not None:
            options["max_model_len"] = max_model_len
        if max_num_seqs is not None:
            options["max_num_seqs"] = max_num_seqs
        options.update(engine_options or {})
        self.llm = self._vllm.LLM(**options)
        logger.info(
            "%s: vLLM engine ready (%s, limits %s)", self.name, self.family.name, self.limits
        )

    def __repr__(self) -> str:
        return f"VLLMBackend({self.name!r})"

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[str]]:
        """``params.n`` completions per request, in request order (one engine call)."""
        if not requests:
            return []
        prompts = [self.prompt(r, i) for i, r in enumerate(requests)]
        outputs = self.llm.generate(prompts, self.sampling_params(params), use_tqdm=False)
        if len(outputs) != len(requests):
            raise BackendError(self.name, f"{len(requests)} requests, {len(outputs)} outputs")
        results = []
        for i, output in enumerate(outputs):
            completions = sorted(output.outputs, key=lambda c: c.index)
            if len(completions) != params.n:
                raise BackendError(
                    self.name,
                    f"asked {params.n} completions, got {len(completions)}",
                    request_index=i,
                )
            results.append([c.text for c in completions])
        return results

    def sampling_params(self, params: SamplingParams) -> Any:
        """``vllm.SamplingParams`` for ``params``."""
        kwargs: dict[str, Any] = {
            "n": params.n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "seed": params.seed,
        }
        if params.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = params.repetition_penalty
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.json_schema is not None:
            kwargs.update(self._structured(params.json_schema))
        return self._vllm.SamplingParams(**kwargs)

    def _structured(self, schema: dict[str, Any]) -> dict[str, Any]:
        module = importlib.import_module("vllm.sampling_params")
        if hasattr(module, "StructuredOutputsParams"):
            return {"structured_outputs": module.StructuredOutputsParams(json=schema)}
        if hasattr(module, "GuidedDecodingParams"):
            return {"guided_decoding": module.GuidedDecodingParams(json=schema)}
        raise BackendError(self.name, "this vLLM has no structured outputs for json_schema")

    def prompt(self, request: Request, index: int = 0) -> dict[str, Any]:
        """The engine input of one request: ``{"prompt", "multi_modal_data",
        "mm_processor_kwargs"}`` (the last two when it shows images or a video)."""
        images = media_items(request.messages, "image")
        videos = media_items(request.messages, "video")
        for kind, items in (("image", images), ("video", videos)):
            if len(items) > self.limits.get(kind, 0):
                raise BackendError(
                    self.name,
                    f"{len(items)} {kind} item(s) but the engine allows {self.limits.get(kind, 0)} "
                    "a prompt (limit_mm_per_prompt; build the backend with the presentation used)",
                    request_index=index,
                )
        text = self.processor.apply_chat_template(
            request.messages, tokenize=False, add_generation_prompt=True
        )
        out: dict[str, Any] = {"prompt": text}
        data: dict[str, Any] = {}
        if images:
            data["image"] = [_to_pil(x) for x in images]
        if videos:
            data["video"] = [self._video_item(request, videos[0], index)]
            processor_kwargs: dict[str, Any] = {"do_sample_frames": False}
            if self.family.video_time == "mrope_absolute_time":
                processor_kwargs["fps"] = data["video"][0][1]["fps"]
            out["mm_processor_kwargs"] = processor_kwargs
        if data:
            out["multi_modal_data"] = data
        return out

    def _video_item(
        self, request: Request, frames: Any, index: int
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if request.clip is None:
            raise BackendError(
                self.name,
                "a native video request needs Request.clip (its frames' timing)",
                request_index=index,
            )
        array = np.asarray(frames)
        if array.shape[0] % self.family.temporal_patch_size:
            raise BackendError(
                self.name,
                f"a native video needs a frame count divisible by the temporal patch "
                f"({self.family.temporal_patch_size}), got {array.shape[0]} frames",
                request_index=index,
            )
        meta = video_metadata(request.clip, self.family, interval_s=request.video_interval_s)
        meta["do_sample_frames"] = False
        return array, meta

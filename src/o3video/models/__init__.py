"""Model backends behind one protocol, and the tiny random model the offline tests use.

``tiny`` builds a small random Qwen2.5-VL with its real processor; heavy imports (torch,
transformers, vllm) happen inside functions and constructors, so importing this package
stays cheap. ``load_backend`` builds a backend by kind (``hf``, ``vllm``, ``openai``).
"""

from __future__ import annotations

from o3video.models.base import (
    Backend,
    BackendError,
    Request,
    SamplingParams,
    StreamingBackend,
)
from o3video.models.hf import HFBackend
from o3video.models.load import load_backend, model_family
from o3video.models.openai import OpenAIBackend
from o3video.models.tiny import build_tiny_model
from o3video.models.vllm import VLLMBackend

__all__ = [
    "Backend",
    "BackendError",
    "HFBackend",
    "OpenAIBackend",
    "Request",
    "SamplingParams",
    "StreamingBackend",
    "VLLMBackend",
    "build_tiny_model",
    "load_backend",
    "model_family",
]

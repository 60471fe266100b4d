"""Model backends behind one protocol, and the tiny random model the offline tests use.

``tiny`` builds a small random Qwen2.5-VL with its real processor; heavy imports (torch,
transformers) happen inside its functions, so importing this package stays cheap.
"""

from __future__ import annotations

from o3video.models.base import Backend, BackendError, Request, SamplingParams
from o3video.models.openai import OpenAIBackend
from o3video.models.tiny import build_tiny_model

__all__ = [
    "Backend",
    "BackendError",
    "OpenAIBackend",
    "Request",
    "SamplingParams",
    "build_tiny_model",
]

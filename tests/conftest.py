"""Test-wide settings (nothing is ever downloaded) and shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A reward that raises is a bug: tests see the exception (training counts and logs it).
os.environ["O3VIDEO_STRICT_REWARDS"] = "1"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Qwen2.5-VL (seed 0), built once per test module that asks for it."""
    from o3video.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen25vl", seed=0)

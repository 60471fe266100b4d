"""Test-wide settings: nothing is ever downloaded."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A reward that raises is a bug: tests see the exception (training counts and logs it).
os.environ["O3VIDEO_STRICT_REWARDS"] = "1"

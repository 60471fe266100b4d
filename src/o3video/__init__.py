"""o3video: grounded video reasoning.

A video language model answers a question about a video and shows its evidence — which
object, where (a box) and when (a timestamp) — in one pass. This package holds the trace
format, the box spaces, true-time video sampling, prompts, model families and (in later
modules) inference, training, data and evaluation.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

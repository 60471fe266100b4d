"""Cutting a box out of a frame: the crops a verifier or a rater model is shown.

Curation asks a VLM whether each box shows its object (SPEC §4 step 3); confidence-aware
voting asks how relevant each evidence region is (SPEC §8). Both crop here, after converting
their box to the frame's own pixels.

>>> import numpy as np
>>> crop_frame(np.zeros((56, 56, 3), np.uint8), (20, 20, 30, 31), min_side_px=1).size
(10, 11)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from o3video.boxes import clamp_xyxy


def crop_frame(frame: np.ndarray, xyxy: Sequence[float], *, min_side_px: int = 64) -> Image.Image:
    """The part of ``frame`` (``(H, W, 3)`` uint8) inside ``xyxy`` (the frame's pixels):
    clamped, widened to whole pixels (at least one), then enlarged (bicubic) until its shorter
    side is ``min_side_px``."""
    h, w = frame.shape[:2]
    # Within 1e-6 px of a pixel edge is on it: float noise from a box-space conversion
    # (y2 = 101.00000000000001) must not widen a crop by a pixel.
    x1, y1, x2, y2 = (round(v, 6) for v in clamp_xyxy(xyxy, (w, h)))
    left, top = min(math.floor(x1), w - 1), min(math.floor(y1), h - 1)
    right, bottom = max(math.ceil(x2), left + 1), max(math.ceil(y2), top + 1)
    crop = Image.fromarray(np.ascontiguousarray(frame[top:bottom, left:right]))
    short = min(crop.size)
    if short < min_side_px:
        scale = min_side_px / short
        size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
        crop = crop.resize(size, Image.Resampling.BICUBIC)
    return crop

"""What the objects of the synthetic world look like: their colours, their shapes as pixel
masks, and which frame pixels a mask covers at a position (shared by the ground truth of
:mod:`o3video.data.world` and the painter of :mod:`o3video.data.render`).

Pixel convention: pixel ``(x, y)`` covers ``[x, x+1) × [y, y+1)``; a mask is sampled at pixel
centres.

>>> int(shape_mask("square", 4).sum()), int(shape_mask("diamond", 4).sum())
(16, 12)
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 190, 60),
    "blue": (40, 80, 240),
    "yellow": (240, 220, 30),
    "purple": (160, 50, 220),
    "orange": (250, 140, 0),
    "white": (245, 245, 245),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")


def name_words(text: str) -> tuple[list[str], list[str]]:
    """The colour words and the shape words of the world in ``text``, each in order.

    >>> name_words("The red circle, or a Blue-square?")
    (['red', 'blue'], ['circle', 'square'])
    """
    words = re.findall(r"[a-z]+", text.casefold())
    return [w for w in words if w in COLOURS], [w for w in words if w in SHAPES]


@cache
def shape_mask(shape: str, size_px: int) -> np.ndarray:
    """``(size, size)`` bool mask of a shape, sampled at pixel centres."""
    c = (np.arange(size_px) + 0.5) / size_px * 2 - 1
    yy, xx = np.meshgrid(c, c, indexing="ij")
    masks = {
        "circle": xx**2 + yy**2 <= 1,
        "square": np.ones_like(xx, dtype=bool),
        "triangle": np.abs(xx) <= (yy + 1) / 2,  # apex at the top
        "diamond": np.abs(xx) + np.abs(yy) <= 1,
        "cross": (np.abs(xx) <= 0.34) | (np.abs(yy) <= 0.34),
    }
    mask = masks[shape]
    mask.flags.writeable = False
    return mask


def placement(
    x0: int, y0: int, mask: np.ndarray, w: int, h: int
) -> tuple[slice, slice, np.ndarray] | None:
    """The frame rows/columns a mask at ``(x0, y0)`` covers and its visible part, or None."""
    s = mask.shape[0]
    fx1, fy1, fx2, fy2 = max(x0, 0), max(y0, 0), min(x0 + s, w), min(y0 + s, h)
    if fx1 >= fx2 or fy1 >= fy2:
        return None
    sub = mask[fy1 - y0 : fy2 - y0, fx1 - x0 : fx2 - x0]
    return slice(fy1, fy2), slice(fx1, fx2), sub

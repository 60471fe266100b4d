"""Draw an answer's evidence on its frames: boxes, object labels and times (SPEC §9).

Spaces: :class:`~o3video.answer.Evidence` holds boxes in original video pixels
(``source_px``). A picture is drawn at some size ``image_wh`` (by default the clip's resized
frame size ``clip.frame_wh``, optionally scaled up for legibility), so every box is converted
``source_px -> frame_px`` with ``frame_wh=image_wh`` just before drawing (:func:`image_boxes`),
then clamped to the picture. Coordinates are continuous: a box ``(x1, y1, x2, y2)`` covers
pixel columns ``round(x1) .. round(x2) - 1``, and its outline is drawn inside that area.

Nothing here raises on an :class:`~o3video.answer.Answer`: an answer without evidence draws
no picture, an untimed claim is drawn on the first frame (and says so), a clip without frames
gives grey pictures, and a degenerate (zero-width or zero-height) box is drawn as a thin
line with a small cross so it is still seen.

>>> import numpy as np
>>> from o3video.answer import build_answer
>>> from o3video.video import Clip
>>> clip = Clip(np.zeros((2, 224, 420, 3), np.uint8), (0.0, 0.5), (1280, 720), (420, 224),
...             30.0, 1.0)
>>> a = build_answer("<think><obj>dog</obj><box>[42,56,210,112]</box>at<t>0.4</t>s</think>",
...                  clip, "qwen2_5_vl")
>>> img = draw_evidence(a, 0)
>>> img.size, img.getpixel((100, 56)) == object_color("dog")
((420, 224), True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from o3video.answer import Answer, Evidence
from o3video.boxes import WH, XYXY, clamp_xyxy, convert_xyxy

RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

# Distinct, saturated colours that read on dark and light frames (no black, white or grey,
# which are the frame, text and background colours of the drawings).
PALETTE: tuple[RGB, ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (67, 99, 216),
    (245, 130, 49),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (188, 246, 12),
    (250, 190, 190),
    (0, 128, 128),
    (154, 99, 36),
)
BLANK_RGB: RGB = (64, 64, 64)  # the picture of a clip without frames


def object_color(name: str) -> RGB:
    """The colour of an object name: stable across runs and processes (not ``hash()``).

    Names are compared stripped and case-folded, so ``"Dog"`` and ``"dog "`` match.

    >>> object_color("dog") == object_color(" Dog")
    True
    """
    digest = hashlib.md5(name.strip().casefold().encode("utf-8")).digest()
    return PALETTE[int.from_bytes(digest[:4], "big") % len(PALETTE)]


def text_color(background: RGB) -> RGB:
    """Black or white, whichever reads better on ``background`` (Rec. 601 luma)."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


@lru_cache(maxsize=16)
def get_font(size: int) -> Font:
    """Pillow's bundled font at ``size`` px (FreeType, Pillow ≥ 10.1), else the bitmap one."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # an older Pillow or one without FreeType
        return ImageFont.load_default()


def font_size_for(image_wh: WH) -> int:
    """A legible label size for a picture: 1/16 of its height, at least 11 px."""
    return max(11, round(image_wh[1] / 16))


def line_width_for(image_wh: WH) -> int:
    """Box outline width: 2 px at 224 px of height, growing with the picture."""
    return max(1, round(min(image_wh) / 112))


def image_boxes(evidence: Evidence, source_wh: WH, image_wh: WH) -> list[XYXY]:
    """``evidence.boxes_source`` converted to pixels of a picture of size ``image_wh``, clamped."""
    return [
        clamp_xyxy(
            convert_xyxy(box, "source_px", "frame_px", source_wh=source_wh, frame_wh=image_wh),
            image_wh,
        )
        for box in evidence.boxes_source
    ]


def draw_box(
    draw: ImageDraw.ImageDraw,
    xyxy: Sequence[float],
    color: RGB,
    *,
    image_wh: WH,
    width: int,
    label: str | None = None,
    font: Font | None = None,
) -> None:
    """Draw one box (outline inside its area) and its label on ``draw``'s picture.

    ``xyxy`` is in the pixels of the picture, whose size is ``image_wh``. The label sits on
    a tag of the box's colour just above the box, or inside its top edge when there is no
    room above.
    """
    img_w, img_h = image_wh
    x1, y1, x2, y2 = (round(v) for v in xyxy)
    if x2 - x1 >= 1 and y2 - y1 >= 1:
        w = min(width, max(1, (x2 - x1) // 2), max(1, (y2 - y1) // 2))
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=color, width=w)
    else:  # degenerate: a thin line where it lies and a small cross at its centre
        # Pixels x1 .. x2 - 1 (at least one), kept on the picture when on its far edge.
        x2, y2 = min(max(x1, x2 - 1), img_w - 1), min(max(y1, y2 - 1), img_h - 1)
        x1, y1 = min(x1, img_w - 1), min(y1, img_h - 1)
        cx, cy, r = (x1 + x2) // 2, (y1 + y2) // 2, 3 * width
        draw.line((x1, y1, x2, y2), fill=color, width=width)
        draw.line((cx - r, cy - r, cx + r, cy + r), fill=color, width=width)
        draw.line((cx - r, cy + r, cx + r, cy - r), fill=color, width=width)
    if label:
        font = font or get_font(font_size_for((img_w, img_h)))
        label = shorten(label, img_w)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        pad = 2
        tw, th = right - left + 2 * pad, bottom - top + 2 * pad
        tx = min(max(0, x1), max(0, img_w - tw))
        ty = y1 - th if y1 - th >= 0 else min(max(0, y1), max(0, img_h - th))
        draw.rectangle((tx, ty, tx + tw - 1, ty + th - 1), fill=color)
        draw.text((tx + pad - left, ty + pad - top), label, fill=text_color(color), font=font)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (the last an ellipsis): a label on a picture
    ``limit`` px wide shows no more (a glyph is at least a pixel), and PIL refuses to lay out
    a string of a million characters.

    >>> shorten("a" * 10, 4), shorten("ab", 4)
    ('aaa…', 'ab')
    """
    limit = max(1, limit)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def draw_caption(
    draw: ImageDraw.ImageDraw, text: str, *, image_wh: WH, font: Font | None = None
) -> None:
    """Write ``text`` white on a black tag at the bottom-left corner of the picture."""
    img_w, img_h = image_wh
    font = font or get_font(font_size_for((img_w, img_h)))
    text = shorten(text, img_w)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = 3
    th = bottom - top + 2 * pad
    draw.rectangle((0, img_h - th, right - left + 2 * pad - 1, img_h - 1), fill=(0, 0, 0))
    draw.text((pad - left, img_h - th + pad - top), text, fill=(255, 255, 255), font=font)


def evidence_frame_index(answer: Answer, evidence: Evidence) -> int | None:
    """The frame a claim is drawn on: its nearest frame, frame 0 if untimed, None if no frames."""
    if answer.clip.num_frames == 0:
        return None
    return evidence.frame_index if evidence.frame_index is not None else 0


def frame_image(answer: Answer, index: int | None, image_wh: WH | None = None) -> Image.Image:
    """Clip frame ``index`` as an RGB picture of size ``image_wh`` (grey when ``None``)."""
    clip = answer.clip
    wh = tuple(image_wh or clip.frame_wh)
    if index is None or clip.num_frames == 0:
        return Image.new("RGB", (int(wh[0]), int(wh[1])), BLANK_RGB)
    img = Image.fromarray(np.ascontiguousarray(clip.frames[index]))
    return (
        img if img.size == wh else img.resize((int(wh[0]), int(wh[1])), Image.Resampling.BILINEAR)
    )


def time_caption(answer: Answer, evidence: Evidence) -> str:
    """What a drawing says about time: the frame's time, and the claimed one if different."""
    index = evidence_frame_index(answer, evidence)
    frame_t = None if index is None else answer.clip.times_s[index]
    if frame_t is None:
        return "no frame"
    if evidence.t_s is None:
        return f"no time given · frame {frame_t:.2f} s"
    if abs(evidence.t_s - frame_t) >= 0.005:
        return f"claimed {evidence.t_s:g} s · frame {frame_t:.2f} s"
    return f"t = {frame_t:.2f} s"


def draw_claim(
    image: Image.Image, evidence: Evidence, source_wh: WH, *, font: Font | None = None
) -> Image.Image:
    """Draw one claim's boxes and object label on ``image`` (in place) and return it."""
    draw = ImageDraw.Draw(image)
    color = object_color(evidence.name)
    width = line_width_for(image.size)
    font = font or get_font(font_size_for(image.size))
    for xyxy in image_boxes(evidence, source_wh, image.size):
        draw_box(
            draw,
            xyxy,
            color,
            image_wh=image.size,
            width=width,
            label=evidence.name or "?",
            font=font,
        )
    return image


def draw_evidence(answer: Answer, ev_index: int, *, image_wh: WH | None = None) -> Image.Image:
    """The frame nearest claim ``ev_index``'s time with its boxes, object label and time.

    ``image_wh`` is the picture's size (default ``clip.frame_wh``; give a larger size for
    legible labels); boxes are scaled from source pixels to it. Raises ``IndexError`` only
    for an ``ev_index`` outside ``answer.evidence``.
    """
    evidence = answer.evidence[ev_index]
    image = frame_image(answer, evidence_frame_index(answer, evidence), image_wh)
    font = get_font(font_size_for(image.size))
    draw_claim(image, evidence, answer.clip.source_wh, font=font)
    caption = time_caption(answer, evidence)
    draw_caption(ImageDraw.Draw(image), caption, image_wh=image.size, font=font)
    return image


def evidence_frames(answer: Answer, *, image_wh: WH | None = None) -> list[Image.Image]:
    """:func:`draw_evidence` for every claim, in text order (empty without evidence)."""
    return [draw_evidence(answer, i, image_wh=image_wh) for i in range(len(answer.evidence))]

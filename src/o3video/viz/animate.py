"""An answer as an animation, in the spirit of the published demos (SPEC §9).

Left: the video frame, with a progress bar under it (a tick at every sampled frame, a
coloured marker at every claim's time, a white one at every bare time, and the position of
the frame shown). Right: the question, then the reasoning advancing word by word (a claim is
one word, ``name @ t s`` on a tag of its object's colour). When a claim appears, the video
jumps to the frame nearest its time and its boxes and label are drawn (boxes scaled from
source pixels to the displayed frame, see :mod:`o3video.viz.render`); a bare time jumps to its
frame too. Before the first time, the clip plays through.

:func:`animation_frames` gives the pictures and their durations, :func:`write_animation`
writes them as an animated GIF (one shared palette, which holds every object colour exactly)
or an MP4 (H.264, yuv420p; a hold is the frame repeated).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
from PIL import Image, ImageDraw

from o3video.answer import Answer
from o3video.viz.render import (
    PALETTE,
    RGB,
    Font,
    draw_caption,
    draw_claim,
    evidence_frame_index,
    frame_image,
    get_font,
    object_color,
    text_color,
    time_caption,
)

AnimationFormat = Literal["gif", "mp4"]
BACKGROUND: RGB = (17, 17, 17)
TEXT_RGB: RGB = (225, 225, 225)
DIM_RGB: RGB = (150, 150, 150)
TIME_RGB: RGB = (255, 255, 255)
TRACK_RGB: RGB = (60, 60, 60)
PLAYED_RGB: RGB = (110, 110, 110)
MARGIN = 8
BAR_H = 14
MIN_VIDEO_H = 180  # smaller frames are scaled up so that labels stay legible
EVIDENCE_HOLD = 3  # a frame that reveals a claim or a time stays this many frame_ms
FINAL_HOLD = 8  # the last frame (the whole text, the answer) stays this many frame_ms
_TAG = re.compile(r"</?(?:think|answer|obj|box|t)>")


@dataclass(frozen=True)
class Token:
    """One word of the displayed text.

    ``evidence`` indexes ``Answer.evidence`` for a claim; ``time_s`` is the time the video
    jumps to when the word appears (a claim's or a bare time's), ``None`` for plain words.
    """

    text: str
    color: RGB = TEXT_RGB
    evidence: int | None = None
    time_s: float | None = None
    newline: bool = False


@dataclass(frozen=True)
class Animation:
    """Pictures (all one size, RGB) and how long each is shown, in milliseconds."""

    frames: list[Image.Image]
    durations_ms: list[int]


def _plain_tokens(segment: str) -> list[Token]:
    """Words of text between claims: markup dropped, ``<answer>`` as a new ``Answer:`` line."""
    tokens: list[Token] = []
    for k, part in enumerate(segment.split("<answer>")):
        if k:
            tokens.append(Token("Answer:", TIME_RGB, newline=True))
        tokens += [Token(w) for w in _TAG.sub(" ", part).split()]
    return tokens


def text_tokens(answer: Answer) -> list[Token]:
    """The answer's text as display words, claims and bare times one word each."""
    marks: list[tuple[int, int, Token]] = []
    for i, ev in enumerate(answer.evidence):
        label = ev.name or "?"
        if ev.t_s is not None:
            label += f" @ {ev.t_s:g}s"
        marks.append((ev.span[0], ev.span[1], Token(label, object_color(ev.name), i, ev.t_s)))
    trace = answer.trace
    for t, span in zip(trace.times_s, trace.time_spans, strict=True):
        marks.append((span[0], span[1], Token(f"{t:g}s", TIME_RGB, None, t)))
    tokens: list[Token] = []
    pos = 0
    for start, end, token in sorted(marks, key=lambda m: m[0]):
        if start < pos:  # overlapping spans cannot come from the parser; keep the first
            continue
        tokens += _plain_tokens(answer.text[pos:start])
        tokens.append(token)
        pos = end
    return tokens + _plain_tokens(answer.text[pos:])


def frame_cuts(tokens: list[Token], max_frames: int) -> list[int]:
    """How many words each animation frame shows: increasing, the last one all of them.

    Every claim or time word ends a frame while there are frames enough (it is then held),
    the other frames are spread evenly over the rest of the words.

    >>> frame_cuts([Token("a"), Token("b", time_s=1.0), Token("c"), Token("d")], 3)
    [1, 2, 4]
    """
    n = len(tokens)
    count = max(1, min(max_frames, n))
    required = sorted({i + 1 for i, tok in enumerate(tokens) if tok.time_s is not None} | {n})
    if len(required) >= count:
        picks = np.linspace(0, len(required) - 1, count).round().astype(int)
        return [required[int(i)] for i in picks]
    taken = set(required)
    spare = [c for c in range(1, n + 1) if c not in taken]
    picks = np.linspace(0, len(spare) - 1, count - len(required)).round().astype(int)
    return sorted(taken | {spare[int(i)] for i in picks})


@dataclass(frozen=True)
class _Placed:
    line: int
    x: int
    width: int


def _layout(tokens: list[Token], font: Font, width: int) -> list[_Placed]:
    """Place words on lines of ``width`` px; a word wider than a line is cut to fit."""
    space = round(font.getlength(" "))
    placed: list[_Placed] = []
    line, x = 0, 0
    for tok in tokens:
        pad = 6 if tok.color != TEXT_RGB else 0
        w = min(width, round(font.getlength(tok.text[:400])) + pad)
        if (tok.newline and (x or placed)) or (x and x + space + w > width):
            line, x = line + 1, 0
        elif x:
            x += space
        placed.append(_Placed(line, x, w))
        x += w
    return placed


def _fit(text: str, font: Font, width: float) -> str:
    """``text``, or its longest prefix that fits ``width`` px with an ellipsis (bisection).
    A glyph is at least a pixel wide, so only the first ``width + 1`` characters are ever
    measured (PIL refuses to measure a string of a million)."""
    limit = max(1, int(width)) + 1
    if len(text) <= limit and font.getlength(text) <= width:
        return text
    text = text[:limit]
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if font.getlength(text[:mid] + "…") <= width else (lo, mid - 1)
    return text[:lo] + "…"


def _wrap(text: str, font: Font, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to ``max_lines`` lines, the last cut with an ellipsis if needed."""
    lines: list[str] = []
    words = [w[: width + 1] for w in text.split()]  # a glyph is at least a pixel wide
    for k, word in enumerate(words):
        if lines and font.getlength(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        elif len(lines) == max_lines:
            rest = " ".join(words[k : k + 50])[:400]  # more than a line can hold
            lines[-1] = _fit(lines[-1] + " " + rest, font, width - 1)
            lines[-1] = lines[-1] if lines[-1].endswith("…") else lines[-1] + "…"
            break
        else:
            lines.append(word)
    return [_fit(line, font, width) for line in lines]


class _TextPanel:
    """The reasoning's words laid out on lines; draws the lines a frame shows, each once."""

    def __init__(self, tokens: list[Token], font: Font, width: int, line_h: int) -> None:
        self.tokens, self.font, self.width, self.line_h = tokens, font, width, line_h
        self.placed = _layout(tokens, font, width)
        self.by_line: dict[int, list[int]] = {}
        for i, p in enumerate(self.placed):
            self.by_line.setdefault(p.line, []).append(i)
        self._lines: dict[int, Image.Image] = {}

    def line(self, number: int) -> Image.Image:
        """Line ``number`` with all its words (a text may be long: lines are drawn lazily)."""
        if number not in self._lines:
            img = Image.new("RGB", (self.width, self.line_h), BACKGROUND)
            draw = ImageDraw.Draw(img)
            for i in self.by_line.get(number, []):
                tok, p = self.tokens[i], self.placed[i]
                pad = 0 if tok.color == TEXT_RGB else 6
                text = _fit(tok.text, self.font, p.width - pad)
                if tok.color == TEXT_RGB:
                    draw.text((p.x, 1), text, fill=TEXT_RGB, font=self.font)
                else:
                    draw.rectangle((p.x, 1, p.x + p.width - 1, self.line_h - 2), fill=tok.color)
                    draw.text((p.x + 3, 1), text, fill=text_color(tok.color), font=self.font)
            self._lines[number] = img
        return self._lines[number]

    def window(self, cut: int, capacity: int) -> Image.Image | None:
        """The last ``capacity`` lines up to word ``cut`` (excluded), later words hidden."""
        if cut <= 0:
            return None
        end = self.placed[cut - 1]
        top = max(0, end.line - capacity + 1)
        img = Image.new("RGB", (self.width, (end.line - top + 1) * self.line_h), BACKGROUND)
        for k in range(top, end.line + 1):
            img.paste(self.line(k), (0, (k - top) * self.line_h))
        hidden = (end.x + end.width, img.height - self.line_h, self.width, img.height)
        ImageDraw.Draw(img).rectangle(hidden, fill=BACKGROUND)
        return img


class _Stage:
    """The video side: frames at display size (drawn once each) and the progress bar."""

    def __init__(self, answer: Answer, tokens: list[Token]) -> None:
        self.answer, self.tokens, self.clip = answer, tokens, answer.clip
        fw, fh = self.clip.frame_wh
        scale = max(1.0, MIN_VIDEO_H / max(1, fh))
        self.video_wh = (round(fw * scale), round(fh * scale))
        self.bar_y = MARGIN + self.video_wh[1] + 6
        self.span_s = max([self.clip.duration_s, *self.clip.times_s, 1e-6])
        self._cache: dict[tuple[str, int], tuple[Image.Image, float | None]] = {}

    def bar_x(self, t_s: float) -> int:
        """The progress bar's column for time ``t_s`` (clamped to the video)."""
        frac = min(max(t_s / self.span_s, 0.0), 1.0)
        return MARGIN + round(frac * (self.video_wh[0] - 1))

    def draw_bar(self, draw: ImageDraw.ImageDraw, now_s: float | None) -> None:
        """Track, played part up to ``now_s``, frame ticks, time and claim markers, position."""
        y0, y1 = self.bar_y, self.bar_y + BAR_H - 1
        draw.rectangle((MARGIN, y0, MARGIN + self.video_wh[0] - 1, y1), fill=TRACK_RGB)
        if now_s is not None:
            draw.rectangle((MARGIN, y0 + 5, self.bar_x(now_s), y1 - 5), fill=PLAYED_RGB)
        for t in self.clip.times_s:
            draw.line((self.bar_x(t), y1 - 3, self.bar_x(t), y1), fill=DIM_RGB)
        for t in self.answer.trace.times_s:
            draw.rectangle((self.bar_x(t) - 1, y0, self.bar_x(t) + 1, y1), fill=TIME_RGB)
        for ev in self.answer.evidence:
            t_ev = ev.t_s if ev.t_s is not None else ev.frame_t_s
            if t_ev is not None:
                x = self.bar_x(t_ev)
                draw.rectangle((x - 1, y0, x + 1, y1), fill=object_color(ev.name))
        if now_s is not None:
            x = self.bar_x(now_s)
            draw.polygon([(x - 5, y0 - 5), (x + 5, y0 - 5), (x, y0 + 1)], fill=TIME_RGB)

    def video(self, kind: str, index: int) -> tuple[Image.Image, float | None]:
        """Clip frame ``index`` (``"frame"``), the frame of time word ``index`` (``"time"``)
        or of claim ``index`` (``"claim"``), at display size with its caption and boxes,
        and the time it shows."""
        if (kind, index) not in self._cache:
            clip, answer = self.clip, self.answer
            if kind == "claim":
                ev = answer.evidence[index]
                fi = evidence_frame_index(answer, ev)
                img = draw_claim(frame_image(answer, fi, self.video_wh), ev, clip.source_wh)
                caption = time_caption(answer, ev)
            else:
                t = self.tokens[index].time_s if kind == "time" else None
                fi = None if not clip.num_frames else index if t is None else clip.nearest_frame(t)
                img = frame_image(answer, fi, self.video_wh)
                caption = "no frame" if fi is None else f"t = {clip.times_s[fi]:.2f} s"
            draw_caption(ImageDraw.Draw(img), caption, image_wh=self.video_wh)
            self._cache[kind, index] = (img, None if fi is None else clip.times_s[fi])
        return self._cache[kind, index]


def animation_frames(
    answer: Answer, *, max_frames: int = 80, frame_ms: int = 150, text_width: int = 360
) -> Animation:
    """The animation's pictures: at most ``max_frames``, each shown ``frame_ms`` or held.

    A frame that reveals a claim or a bare time is held ``EVIDENCE_HOLD`` times as long, and
    the last frame ``FINAL_HOLD`` times. The picture is ``[video | text]`` with even sides.
    """
    if max_frames < 1 or frame_ms < 1 or text_width < 40:
        raise ValueError(f"bad animation settings {max_frames=} {frame_ms=} {text_width=}")
    tokens = text_tokens(answer)
    stage = _Stage(answer, tokens)
    font, line_h = get_font(13), 18
    vw, vh = stage.video_wh
    width = MARGIN + vw + MARGIN + text_width + MARGIN
    height = max(MARGIN + vh + 6 + BAR_H + MARGIN, 8 * line_h)
    width, height = width + width % 2, height + height % 2

    # The still part: background and question.
    base = Image.new("RGB", (width, height), BACKGROUND)
    tx = MARGIN + vw + MARGIN
    q_lines = _wrap("Q: " + answer.question, font, text_width, 2) if answer.question else []
    for k, line in enumerate(q_lines):
        ImageDraw.Draw(base).text((tx, MARGIN + k * line_h), line, fill=DIM_RGB, font=font)
    text_top = MARGIN + len(q_lines) * line_h + (4 if q_lines else 0)
    capacity = max(1, (height - MARGIN - text_top) // line_h)
    panel = _TextPanel(tokens, font, text_width, line_h)

    cuts = frame_cuts(tokens, max_frames) if tokens else [0]
    # last_time[c]: the last time word among the first c words (None before the first).
    last_time: list[int | None] = [None]
    for j, tok in enumerate(tokens):
        last_time.append(j if tok.time_s is not None else last_time[-1])
    before = sum(1 for c in cuts if last_time[c] is None)  # frames that play the clip through
    frames: list[Image.Image] = []
    durations: list[int] = []
    for k, cut in enumerate(cuts):
        last = last_time[cut]
        if last is None:
            n = stage.clip.num_frames
            image, now_s = stage.video("frame", min(n - 1, k * n // max(before, 1)) if n else 0)
        elif tokens[last].evidence is not None:
            image, now_s = stage.video("claim", int(tokens[last].evidence or 0))
        else:
            image, now_s = stage.video("time", last)
        canvas = base.copy()
        canvas.paste(image, (MARGIN, MARGIN))
        stage.draw_bar(ImageDraw.Draw(canvas), now_s)
        text = panel.window(cut, capacity)
        if text is not None:
            canvas.paste(text, (tx, text_top))
        frames.append(canvas)
        reveals_time = cut > 0 and tokens[cut - 1].time_s is not None
        durations.append(frame_ms * (EVIDENCE_HOLD if reveals_time else 1))
    durations[-1] = frame_ms * FINAL_HOLD
    return Animation(frames, durations)


def _gif_palette(animation: Animation) -> Image.Image:
    """One 256-colour palette for every frame: the drawing colours exactly, then the frames'."""
    fixed: list[RGB] = [*PALETTE, BACKGROUND, TEXT_RGB, DIM_RGB, TIME_RGB, TRACK_RGB,
                        PLAYED_RGB, (0, 0, 0), (255, 255, 255)]  # fmt: skip
    sample = [f.reduce(4) for f in animation.frames[:: max(1, len(animation.frames) // 8)]]
    strip = Image.new("RGB", (sum(s.width for s in sample), sample[0].height))
    x = 0
    for s in sample:
        strip.paste(s, (x, 0))
        x += s.width
    rest = strip.quantize(256 - len(fixed), method=Image.Quantize.MEDIANCUT).getpalette() or []
    colors = [c for rgb in fixed for c in rgb] + rest[: 3 * (256 - len(fixed))]
    palette = Image.new("P", (1, 1))
    palette.putpalette(colors + [0] * (768 - len(colors)))
    return palette


def write_animation(
    answer: Answer,
    path: str | Path,
    fmt: AnimationFormat | None = None,
    *,
    max_frames: int = 80,
    frame_ms: int = 150,
    text_width: int = 360,
) -> Path:
    """Write the animation to ``path`` as ``fmt`` (default: from the suffix, else GIF).

    Returns the path. A GIF holds :func:`animation_frames`' pictures and durations (Pillow
    merges consecutive identical pictures into one, adding their durations); an MP4 runs at
    ``1000 / frame_ms`` frames a second, H.264 yuv420p, a held picture repeated.
    """
    path = Path(path)
    kind = fmt or ("mp4" if path.suffix.lower() == ".mp4" else "gif")
    if kind not in ("gif", "mp4"):
        raise ValueError(f"unknown animation format {kind!r}; use 'gif' or 'mp4'")
    anim = animation_frames(answer, max_frames=max_frames, frame_ms=frame_ms, text_width=text_width)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "gif":
        palette = _gif_palette(anim)
        frames = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in anim.frames]
        frames[0].save(
            path,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=anim.durations_ms,
            loop=0,
            disposal=1,
        )
        return path
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(1000, frame_ms))
        stream.width, stream.height = anim.frames[0].size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for image, duration in zip(anim.frames, anim.durations_ms, strict=True):
            frame = av.VideoFrame.from_image(image)
            for _ in range(max(1, round(duration / frame_ms))):
                container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path

"""o3video.viz: boxes drawn where they belong (checked on pixels), animations, the report page.

The clip: 4 flat grey frames of 420×224 (frame k has value 20·k, so a picture tells which
frame it is) at 0, 0.5, 1.0, 1.5 s, from a 1280×720 source. The claim box [42,56,210,112]
in Qwen2.5-VL frame pixels is (128, 180, 640, 360) in source pixels (×1280/420, ×720/224),
and back on a 420×224 picture it covers columns 42..209 and rows 56..111.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from o3video.answer import Answer, build_answer
from o3video.video import Clip
from o3video.viz import write_outputs
from o3video.viz.animate import (
    BAR_H,
    MARGIN,
    animation_frames,
    frame_cuts,
    text_tokens,
    write_animation,
)
from o3video.viz.render import PALETTE, draw_evidence, evidence_frames, object_color
from o3video.viz.report import evidence_data, render_report, write_report

TIMES = (0.0, 0.5, 1.0, 1.5)
CUP = "<obj>cup</obj><box>[42,56,210,112]</box>at<t>1.1</t>s"
TEXT = f"<think>I look and see {CUP} on the table.</think><answer>A cup.</answer>"


def make_clip(times: tuple[float, ...] = TIMES, *, noise: bool = False) -> Clip:
    """Flat frames of value 20·k (or random ones, the hardest to compress)."""
    frames = np.zeros((len(times), 224, 420, 3), np.uint8)
    for k in range(len(times)):
        frames[k] = 20 * k % 256
    if noise:
        frames = np.random.default_rng(0).integers(0, 256, frames.shape, np.uint8)
    duration_s = max(2.0, times[-1] + 0.5) if times else 0.0
    return Clip(frames, times, (1280, 720), (420, 224), 30.0, duration_s)


def make_answer(
    text: str = TEXT,
    family: str = "qwen2_5_vl",
    *,
    clip: Clip | None = None,
    question: str = "",
    timings: dict[str, float] | None = None,
) -> Answer:
    clip = make_clip() if clip is None else clip
    return build_answer(text, clip, family, question=question, timings=timings)


def color_mask(image: Image.Image, rgb: tuple[int, int, int]) -> np.ndarray:
    """Where ``image`` has exactly the colour ``rgb``: an (H, W) bool array."""
    return np.all(np.asarray(image.convert("RGB")) == rgb, axis=2)


# --- render -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "box"),
    [("qwen2_5_vl", "[42,56,210,112]"), ("qwen3_vl", "[100,250,500,500]")],
)
def test_box_is_drawn_where_it_belongs(family: str, box: str) -> None:
    # Both families' boxes are source (128, 180, 640, 360): the same pixels on the picture.
    a = make_answer(f"<think><obj>cup</obj><box>{box}</box>at<t>1.1</t>s</think>", family)
    assert a.evidence[0].boxes_source == ((128.0, 180.0, 640.0, 360.0),)
    img = draw_evidence(a, 0)
    assert img.size == (420, 224)
    mask = color_mask(img, object_color("cup"))
    assert mask[56, 42:210].all() and mask[111, 42:210].all()  # top and bottom edges
    assert mask[56:112, 42].all() and mask[56:112, 209].all()  # left and right edges
    assert not mask[60:108, 46:206].any()  # inside is the frame
    ys, xs = np.nonzero(mask)
    assert xs.min() == 42 and xs.max() == 209 and ys.max() == 111
    assert ys.min() >= 56 - 25  # the label tag sits just above the box
    # 1.1 s is nearest the frame at 1.0 s (value 40), and the caption says so.
    assert img.getpixel((320, 160)) == (40, 40, 40)
    assert a.evidence[0].frame_index == 2


def test_box_scales_to_a_larger_picture() -> None:
    img = draw_evidence(make_answer(), 0, image_wh=(840, 448))
    mask = color_mask(img, object_color("cup"))
    assert mask[112, 84:420].all() and mask[112:224, 84].all()
    ys, xs = np.nonzero(mask)
    assert xs.min() == 84 and xs.max() == 419 and ys.max() == 223


@pytest.mark.parametrize(
    ("box", "where"),
    [
        ("[100,50,100,150]", (slice(50, 150), 100)),  # zero width: a vertical line
        ("[60,90,200,90]", (90, slice(60, 200))),  # zero height: a horizontal line
        ("[100,100,100,100]", (100, 100)),  # a point: a small cross
        ("[420,0,420,224]", (slice(0, 224), 419)),  # on the right edge: still inside
    ],
)
def test_degenerate_boxes_are_still_marked(box: str, where: tuple[object, object]) -> None:
    img = draw_evidence(make_answer(f"<think><obj>pin</obj><box>{box}</box>at<t>0</t>s</think>"), 0)
    mask = color_mask(img, object_color("pin"))
    assert mask[where].all()  # type: ignore[index]


def test_boxes_outside_the_frame_are_clamped() -> None:
    a = make_answer("<think><obj>cup</obj><box>[500,300,-20,-10]</box>at<t>0</t>s</think>")
    mask = color_mask(draw_evidence(a, 0), object_color("cup"))
    assert mask[0, :420].all() and mask[:224, 419].all()


def test_untimed_claims_and_one_frame_clips_never_crash() -> None:
    untimed = make_answer("<think><obj>cup</obj><box>[42,56,210,112]</box></think>")
    assert untimed.evidence[0].frame_index is None
    img = draw_evidence(untimed, 0)  # drawn on the first frame, which is said
    assert img.getpixel((320, 160)) == (0, 0, 0)
    assert color_mask(img, object_color("cup"))[56, 42:210].all()
    one = make_answer(clip=make_clip((3.0,)))
    assert draw_evidence(one, 0).size == (420, 224)
    assert evidence_frames(make_answer("no tags at all")) == []


def test_object_colours_are_stable() -> None:
    # md5("cup") starts f3f58ee4: 0xF3F58EE4 % 12 == 0. Pinned so it never drifts.
    assert object_color("cup") == PALETTE[0] == (230, 25, 75)
    assert object_color(" Cup ") == object_color("cup") != object_color("dog")


# --- animation ----------------------------------------------------------------------------


def test_tokens_and_cuts() -> None:
    a = make_answer(TEXT + " stray <t>0.5</t>s")
    words = [t.text for t in text_tokens(a)]
    assert words == ["I", "look", "and", "see", "cup @ 1.1s", "on", "the", "table.",
                     "Answer:", "A", "cup.", "stray", "0.5s"]  # fmt: skip
    cuts = frame_cuts(text_tokens(a), 6)
    assert len(cuts) == 6 and cuts[-1] == 13 and {5, 13} <= set(cuts)
    assert cuts == sorted(set(cuts))
    assert frame_cuts(text_tokens(a), 100) == list(range(1, 14))  # word by word


def test_gif_shows_the_claim_and_its_marker(tmp_path: Path) -> None:
    a = make_answer()
    anim = animation_frames(a, max_frames=8, frame_ms=100)
    path = write_animation(a, tmp_path / "e.gif", max_frames=8, frame_ms=100)
    with Image.open(path) as gif:
        assert gif.n_frames == len(anim.frames) == 8
        assert gif.size == anim.frames[0].size
        assert gif.size[0] % 2 == 0 and gif.size[1] % 2 == 0
        # Frame k reveals cuts[k] words; the claim is word 5: find the frame ending on it.
        k = frame_cuts(text_tokens(a), 8).index(5)
        gif.seek(k)
        frame = gif.convert("RGB")
        assert gif.info["duration"] == 300  # a claim is held 3 frames
    mask = color_mask(frame, object_color("cup"))
    assert mask[MARGIN + 56, MARGIN + 42 : MARGIN + 210].all()
    assert mask[MARGIN + 56 : MARGIN + 112, MARGIN + 42].all()
    # The progress bar: the claim's marker at 1.1 s of 2.0 s.
    bar_y = MARGIN + 224 + 6
    x = MARGIN + round(1.1 / 2.0 * 419)
    assert mask[bar_y : bar_y + BAR_H, x].all()
    assert anim.durations_ms[-1] > anim.durations_ms[0]


def test_mp4_decodes(tmp_path: Path) -> None:
    a = make_answer()
    anim = animation_frames(a, max_frames=6, frame_ms=100)
    path = write_animation(a, tmp_path / "e.mp4", max_frames=6, frame_ms=100)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == sum(anim.durations_ms) // 100
    assert frames[0].shape[1::-1] == anim.frames[0].size


def test_animation_is_fast_enough(tmp_path: Path) -> None:
    times = tuple(0.5 * k for k in range(16))
    claims = " ".join(
        f"then the person moves <obj>thing {k}</obj><box>[{10 * k},20,{10 * k + 60},90]</box>"
        f"at<t>{0.5 * k + 0.1}</t>s and waits a while"
        for k in range(0, 16, 2)
    )
    text = f"<think>{claims} {'word ' * 60}</think><answer>B</answer>"
    assert len(text) > 1000
    a = make_answer(text, clip=make_clip(times, noise=True), question="What happens?")
    start = time.process_time()  # CPU time: other processes' load does not count
    write_animation(a, tmp_path / "e.gif")
    assert time.process_time() - start < 2.0


@pytest.mark.parametrize("text", ["", "just words", "<think><obj>x</obj> <box>[1,2]</box>"])
def test_animation_without_evidence(tmp_path: Path, text: str) -> None:
    for clip in (make_clip(), make_clip(()), make_clip((0.0,))):
        a = make_answer(text, clip=clip)
        path = write_animation(a, tmp_path / "e.gif", max_frames=5)
        with Image.open(path) as gif:
            assert 1 <= gif.n_frames <= 5


# --- report -------------------------------------------------------------------------------

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_report_contents(tmp_path: Path) -> None:
    text = f"<think>{EVIL} {CUP} and <obj>{EVIL}</obj><box>[0,0,10,10]</box>at<t>0.2</t>s</think>"
    a = make_answer(text + "<answer>A</answer>", question=EVIL, timings={"generate": 1.5})
    page = write_report(a, tmp_path / "report.html").read_text(encoding="utf-8")
    # Frames: every one inline, with its true time.
    assert page.count('<img src="data:image/jpeg;base64,') == 4
    assert re.findall(r'class="frame[^"]*" data-index="\d" data-time="([^"]+)"', page) == [
        repr(t) for t in TIMES
    ]
    # Every claim is a tag; model text is escaped everywhere.
    assert re.findall(r'class="evidence-tag" data-index="(\d+)"', page) == ["0", "1"]
    assert page.count("<script") == 2 and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    # The script's data reads back, and the CSP hash pins the page's own script.
    blob = re.search(r'<script type="application/json" id="o3-data">(.*?)</script>', page, re.S)
    assert blob and json.loads(blob.group(1))["evidence"] == evidence_data(a)
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page
    # Offline: nothing but data URLs.
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert '<tr data-stage="generate">' in page
    assert evidence_data(a)[0]["boxes_pct"] == [[10.0, 25.0, 40.0, 25.0]]


def test_report_without_evidence_lists_problems() -> None:
    a = make_answer("garbage <obj>x</obj> <box>[1,2]</box>")
    page = render_report(a)
    assert 'class="evidence-tag"' not in page
    kinds = re.findall(r'class="problem" data-kind="([a-z_]+)"', page)
    assert kinds == [p.kind for p in a.trace.problems] and "bad_box" in kinds
    assert "(no answer)" in page
    empty = render_report(make_answer("", clip=make_clip(())))
    assert "No frames." in empty


def test_write_outputs(tmp_path: Path) -> None:
    a = make_answer()
    paths = write_outputs(a, tmp_path / "out")
    assert set(paths) == {"json", "animation", "report"}
    assert paths["animation"].name == "evidence.gif"
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == json.loads(
        json.dumps(a.to_json())
    )
    assert all(p.is_file() for p in paths.values())
    mp4 = write_outputs(a, tmp_path / "mp4", animation="mp4")
    assert mp4["animation"].name == "evidence.mp4"
    assert "animation" not in write_outputs(a, tmp_path / "none", animation=None)

"""The report page in a real browser: headless Chromium driven by Playwright (marker ``browser``).

Needs Debian's ``/usr/bin/chromium`` and the ``playwright`` package (never ``playwright
install``: the system browser is used). Skipped with the reason when either is missing, except
in CI (``CI`` set), where ``scripts/test.sh`` installs both and a missing one is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import chromium

from o3video.answer import Answer, build_answer
from o3video.video import Clip
from o3video.viz.report import write_report

pytestmark = pytest.mark.browser

TIMES = (0.0, 0.5, 1.0, 1.5, 2.0)
EVIL = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
TEXT = (
    f"<think>{EVIL} First <obj>cup</obj><box>[42,56,210,112]</box>at<t>1.1</t>s, then "
    "<obj>dog</obj><box>[300,20,400,200]</box> <box>[0,150,30,224]</box>at<t>1.9</t>s "
    f"and around <t>0.4</t>s.</think><answer>{EVIL}</answer>"
)


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    for context in chromium(tmp_path_factory):
        yield context.new_page()


def make_answer() -> Answer:
    frames = np.zeros((len(TIMES), 224, 420, 3), np.uint8)
    for k in range(len(TIMES)):
        frames[k, :, :, k % 3] = 60 + 40 * k  # each frame its own colour
    clip = Clip(frames, TIMES, (1280, 720), (420, 224), 30.0, 2.5)
    return build_answer(TEXT, clip, "qwen2_5_vl", question=EVIL, timings={"generate": 1.0})


def rect(page: Any, selector: str) -> list[dict[str, float]]:
    script = "els => els.map(e => e.getBoundingClientRect().toJSON())"
    boxes: list[dict[str, float]] = page.eval_on_selector_all(selector, script)
    return boxes


def check_boxes(page: Any, answer: Answer, index: int) -> None:
    """Every overlay of claim ``index`` sits on its box scaled to the displayed image (±2 px)."""
    (img,) = rect(page, "#viewer img")
    boxes = rect(page, "#viewer .box")
    sw, sh = answer.clip.source_wh
    expected = answer.evidence[index].boxes_source
    assert len(boxes) == len(expected)
    for got, (x1, y1, x2, y2) in zip(boxes, expected, strict=True):
        assert abs(got["left"] - (img["left"] + x1 / sw * img["width"])) <= 2
        assert abs(got["top"] - (img["top"] + y1 / sh * img["height"])) <= 2
        assert abs(got["right"] - (img["left"] + x2 / sw * img["width"])) <= 2
        assert abs(got["bottom"] - (img["top"] + y2 / sh * img["height"])) <= 2


def test_report_in_chromium(browser_page: Any, tmp_path: Path) -> None:
    page = browser_page
    answer = make_answer()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda d: errors.append("dialog: " + d.message))
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(write_report(answer, tmp_path / "report.html").as_uri())
    page.wait_for_load_state("load")

    # The strip: every frame loaded at its natural size.
    sizes = page.eval_on_selector_all(
        "#frames .frame img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])"
    )
    assert sizes == [[True, 420, 224]] * len(TIMES)
    # The untrusted text ran nothing.
    assert page.evaluate("window.pwned === undefined")

    # Claim 1 (the dog, 1.9 s → the frame at 2.0 s) with its two boxes.
    page.click('.evidence-tag[data-index="1"]')
    ev = answer.evidence[1]
    assert ev.frame_index == 4
    assert float(page.get_attribute("#viewer [data-time]", "data-time")) == ev.frame_t_s == 2.0
    strip_src = page.eval_on_selector_all("#frames .frame img", "els => els.map(e => e.src)")
    assert page.get_attribute("#viewer img", "src") == strip_src[4]
    assert page.inner_text("#viewer .name") == "dog"
    check_boxes(page, answer, 1)
    page.screenshot(path=str(tmp_path / "report_click.png"), full_page=True)
    assert (tmp_path / "report_click.png").stat().st_size > 0

    # Claim 0 at another display size: the overlay follows the image.
    page.set_viewport_size({"width": 520, "height": 900})
    page.click('.evidence-tag[data-index="0"]')
    assert float(page.get_attribute("#viewer [data-time]", "data-time")) == 1.0
    check_boxes(page, answer, 0)

    # A bare time and a strip frame show their frame, without boxes.
    page.click(".time-tag")
    assert float(page.get_attribute("#viewer [data-time]", "data-time")) == 0.5
    assert rect(page, "#viewer .box") == []
    page.click('#frames .frame[data-index="3"]')
    assert float(page.get_attribute("#viewer [data-time]", "data-time")) == 1.5
    assert errors == []


def test_report_written_by_o3video_ask_reacts_to_a_click(
    browser_page: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`o3video ask` on a video made here, against an OpenAI-compatible server (on loopback)
    that answers with a known grounded trace; then its report.html, clicked in Chromium."""
    from fractions import Fraction

    from test_openai_backend import FakeServer, Reply, chat
    from videos import encode_video

    from o3video.cli.main import main

    video = tmp_path / "clip.mp4"
    encode_video(video, list(range(20)), Fraction(1, 10), rate=10, size_wh=(320, 180))
    trace = (
        "<think>The thing is <obj>block</obj><box>[28,42,140,126]</box>at<t>1.0</t>s, "
        "then nothing at <t>1.6</t>s.</think><answer>a block</answer>"
    )
    with FakeServer(lambda call, n: Reply(body=chat(trace))) as server:
        argv = ["ask", str(video), "What is there?", "--model", "served-model"]
        argv += ["--backend", "openai", "--base-url", server.url, "--family", "qwen2_5_vl"]
        code = main([*argv, "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "out"
    assert {"answer.json", "evidence.gif", "report.html"} <= {p.name for p in out.iterdir()}

    page = browser_page
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto((out / "report.html").as_uri())
    page.wait_for_load_state("load")
    shown = page.eval_on_selector_all(
        "#frames .frame img", "els => els.map(e => e.complete && e.naturalWidth > 0)"
    )
    assert len(shown) == 4 and all(shown)  # 2 s at 2 fps: 4 frames, each loaded
    page.click('.evidence-tag[data-index="0"]')
    # The claim at 1.0 s shows the sampled frame nearest it, with its box over it.
    import json

    record = json.loads((out / "answer.json").read_text(encoding="utf-8"))
    frame_t = record["evidence"][0]["frame_t_s"]
    assert abs(frame_t - 1.0) <= 0.35
    assert float(page.get_attribute("#viewer [data-time]", "data-time")) == frame_t
    (img,) = rect(page, "#viewer img")
    (box,) = rect(page, "#viewer .box")
    sw, sh = record["video"]["source_wh"]
    fw, fh = record["video"]["frame_wh"]
    # The model's box is in the shown frame's pixels; on the page it lands scaled to the image.
    x1, y1, x2, y2 = (28 * sw / fw, 42 * sh / fh, 140 * sw / fw, 126 * sh / fh)
    assert record["evidence"][0]["boxes_source"] == [pytest.approx([x1, y1, x2, y2])]
    assert abs(box["left"] - (img["left"] + x1 / sw * img["width"])) <= 2
    assert abs(box["top"] - (img["top"] + y1 / sh * img["height"])) <= 2
    assert abs(box["right"] - (img["left"] + x2 / sw * img["width"])) <= 2
    assert abs(box["bottom"] - (img["top"] + y2 / sh * img["height"])) <= 2

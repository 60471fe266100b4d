"""`o3video serve` in a real browser: headless Chromium driven by Playwright (marker ``browser``).

Needs Debian's ``/usr/bin/chromium`` and the ``playwright`` package (never ``playwright
install``: the system browser is used). Skipped with the reason when either is missing, except
in CI (``CI`` set), where a missing one is a failure — as in ``test_report_browser.py``.

The end-to-end flow runs a real checkpoint: the tiny Qwen2.5-VL overfit (once per run, in
seconds, :mod:`memorized_model`) to write a grounded trace for the test's video and question,
saved with ``save_pretrained`` and served from its directory through ``transformers``: ask,
answer, chips that seek the player, boxes drawn on the letterboxed picture. The random tiny
model checks that an answer without tags arrives with its parser problems. A scripted backend
remains only where a model must be held mid-trace (streaming chips, the busy queue) and for
the README's picture of a synthetic example. Screenshots go to each test's folder and, with
``O3VIDEO_SCREENSHOT_DIR`` set, there too: the example flow's as ``serve.png`` (the README's
picture: ``O3VIDEO_SCREENSHOT_DIR=docs/images``), the real model's as ``serve_tiny_model.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch
from browser import chromium
from memorized_model import Memorized, memorize, server_request
from test_serve import FAMILY, SOURCE_WH, TRACE, ScriptedBackend, expected_source_boxes
from videos import encode_video

from o3video.models.base import Request, SamplingParams
from o3video.models.card import VideoSettings
from o3video.models.hf import HFBackend
from o3video.models.load import load_backend
from o3video.serve import AskOptions, ServeServer, ensure_examples, make_server

pytestmark = pytest.mark.browser

FPS = 10

QUESTION = "What moves?"
MEMORIZED_BOXES = ([10, 20, 60, 50], [50, 10, 80, 40])
"""The boxes the memorized trace writes, in pixels of the 84×56 frames the model is shown."""
MEMORIZED_TRACE = (
    "<think>The <obj>red circle</obj><box>[10,20,60,50]</box>at<t>1.5</t>s moves; the "
    "<obj>blue square</obj><box>[50,10,80,40]</box>at<t>0.5</t>s stays.</think>"
    "<answer>red</answer>"
)
MEMORIZED_OPTIONS = AskOptions(video=VideoSettings(max_frames=4, max_pixels=8 * 28 * 28))
"""``o3video serve --max-frames 4 --max-pixels 6272``: four 84×56 frames of the 320×180
video, so that the prompt is short and the model learns it in seconds."""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from chromium(tmp_path_factory)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    encode_video(path, list(range(2 * FPS)), Fraction(1, FPS), rate=FPS, size_wh=SOURCE_WH)
    return path


@pytest.fixture(scope="module")
def memorized(video: Path, tmp_path_factory: pytest.TempPathFactory) -> Memorized:
    """The tiny Qwen2.5-VL taught to write :data:`MEMORIZED_TRACE` for :data:`QUESTION` about
    ``video`` as the server asks it with :data:`MEMORIZED_OPTIONS` (trained once)."""
    request = server_request(video, QUESTION, MEMORIZED_OPTIONS)
    model_dir = tmp_path_factory.mktemp("memorized") / "qwen25vl"
    result = memorize(model_dir, request, MEMORIZED_TRACE)
    print(f"memorized the trace in {result.steps} steps, {result.seconds:.1f} s")
    return result


class Served:
    """A server on a free loopback port, serving in a thread."""

    def __init__(self, backend: Any, **kw: Any) -> None:
        options = kw.pop("options", AskOptions(video=VideoSettings(max_frames=4)))
        self.server: ServeServer = make_server(backend, port=0, options=options, **kw)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def open_page(browser: Any, served: Served) -> tuple[Any, list[str]]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(served.server.url)
    page.wait_for_function("() => document.querySelectorAll('#task option').length > 0")
    return page, errors


def upload_through_page(page: Any, path: Path) -> None:
    page.set_input_files("#file", str(path))
    page.wait_for_function("() => !document.getElementById('ask').disabled")
    page.wait_for_function("() => document.getElementById('player').readyState >= 1")


def check_chip(page: Any, index: int, t_s: float, boxes: list[list[float]], name: str) -> None:
    """Click chip ``index``: the player is at ``t_s`` (within a frame) and each box overlay
    sits on its source-pixel box scaled into the player's letterboxed picture (±1 px)."""
    page.click(f'#reasoning .chip[data-index="{index}"]')
    page.wait_for_function(
        f"() => {{ const v = document.getElementById('player');"
        f" return !v.seeking && Math.abs(v.currentTime - {t_s}) <= {1 / FPS}; }}"
    )
    state = page.evaluate(
        """() => {
          const v = document.getElementById('player');
          return { t: v.currentTime, vw: v.videoWidth, vh: v.videoHeight,
                   rect: v.getBoundingClientRect().toJSON(),
                   boxes: [...document.querySelectorAll('#overlay .box')]
                            .map(b => b.getBoundingClientRect().toJSON()),
                   labels: [...document.querySelectorAll('#overlay .label')]
                            .map(l => l.textContent) };
        }"""
    )
    assert abs(state["t"] - t_s) <= 1 / FPS
    rect, vw, vh = state["rect"], state["vw"], state["vh"]
    # object-fit: contain — the picture is scaled to fit and centred (letterboxed).
    scale = min(rect["width"] / vw, rect["height"] / vh)
    pic_w, pic_h = vw * scale, vh * scale
    left = rect["left"] + (rect["width"] - pic_w) / 2
    top = rect["top"] + (rect["height"] - pic_h) / 2
    assert len(state["boxes"]) == len(boxes)
    assert state["labels"] == [name] * len(boxes)
    for got, (x1, y1, x2, y2) in zip(state["boxes"], boxes, strict=True):
        assert got["left"] == pytest.approx(left + x1 / vw * pic_w, abs=1)
        assert got["top"] == pytest.approx(top + y1 / vh * pic_h, abs=1)
        assert got["right"] == pytest.approx(left + x2 / vw * pic_w, abs=1)
        assert got["bottom"] == pytest.approx(top + y2 / vh * pic_h, abs=1)
    assert page.get_attribute(f'#reasoning .chip[data-index="{index}"]', "class") == (
        "chip selected"
    )


def shoot(page: Any, tmp_path: Path, name: str) -> None:
    """A screenshot of the page as ``name`` in the test's folder, and in
    ``$O3VIDEO_SCREENSHOT_DIR`` when it is set."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    out = os.environ.get("O3VIDEO_SCREENSHOT_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(out) / name)


def test_chips_seek_the_player_and_draw_the_box(
    browser: Any,
    video: Path,
    memorized: Memorized,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real checkpoint end to end: the tiny Qwen2.5-VL taught to write a grounded trace
    for this video and question (:mod:`memorized_model`), loaded from its directory as
    ``o3video serve --model DIR`` does, run through ``transformers``. Its chips seek the
    player and its boxes, mapped from the resized frames it saw to source pixels, sit on the
    player's picture at any player size."""
    backend = load_backend(memorized.path, "hf", device="cpu")
    assert isinstance(backend, HFBackend)
    asked: list[Request] = []
    stream = backend.stream

    def recorded(request: Request, params: SamplingParams) -> Iterator[str]:
        asked.append(request)
        return stream(request, params)

    monkeypatch.setattr(backend, "stream", recorded)
    served = Served(backend, options=MEMORIZED_OPTIONS)
    page, errors = open_page(browser, served)
    try:
        assert page.inner_text("#model") == f"hf:{memorized.path} (qwen2_5_vl)"
        upload_through_page(page, video)
        assert page.inner_text("#videoinfo").startswith("clip.mp4 · 320×180")
        page.fill("#question", QUESTION)
        page.select_option("#task", "free_form")
        page.click("#ask")
        page.wait_for_selector("#downloads a", timeout=60_000)

        # The model was asked, token for token and pixel for pixel, what it memorized.
        assert len(asked) == 1
        got, want = (backend._request_inputs(r) for r in (asked[0], memorized.request))
        assert got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in want)
        assert page.inner_text("#answer") == "red"
        assert "parser problems: none" in page.inner_text("#problems")
        assert "generate" in page.inner_text("#timings")
        reasoning = page.inner_text("#reasoning")
        assert "<obj>" not in reasoning and "moves" in reasoning
        chips = page.eval_on_selector_all("#reasoning .chip", "els => els.map(c => c.innerText)")
        assert chips == ["red circle · 1.50 s", "blue square · 0.50 s"]
        links = page.eval_on_selector_all("#downloads a", "els => els.map(a => a.download)")
        assert links == ["answer.json", "report.html"]
        marks = page.eval_on_selector_all(
            "#timeline .mark", "els => els.map(m => parseFloat(m.style.left))"
        )
        assert marks == [pytest.approx(75, abs=3), pytest.approx(25, abs=3)]  # 1.5 s, 0.5 s of 2

        # The boxes the model wrote, in pixels of the frames it was shown, to source pixels.
        sizes = {"source_wh": memorized.clip.source_wh, "frame_wh": memorized.clip.frame_wh}
        red, blue = (list(FAMILY.to_source_box(b, **sizes)) for b in MEMORIZED_BOXES)
        assert memorized.clip.frame_wh != memorized.clip.source_wh  # a real mapping
        check_chip(page, 0, 1.5, [red], "red circle")
        check_chip(page, 1, 0.5, [blue], "blue square")
        # Another player size: the overlay follows (letterbox on the sides now).
        page.set_viewport_size({"width": 1900, "height": 900})
        check_chip(page, 0, 1.5, [red], "red circle")
        page.set_viewport_size({"width": 1200, "height": 900})
        page.click('#timeline .mark[data-index="1"]')
        page.wait_for_function(
            "() => Math.abs(document.getElementById('player').currentTime - 0.5) < 0.1"
        )
        check_chip(page, 0, 1.5, [red], "red circle")
        shoot(page, tmp_path, "serve_tiny_model.png")
        assert errors == []
    finally:
        page.close()
        served.close()


def test_chip_while_streaming_and_the_busy_queue(browser: Any, video: Path) -> None:
    """A chip appears, and seeks, while the model is still writing, and a second page asking
    then is told the model is busy and where it waits.

    Scripted, not a real model: the test must hold the model in the middle of its trace (just
    after the first claim) until it has looked, and a real model on CPU cannot be paused
    there — it writes the whole trace in well under a second."""
    gate = threading.Event()
    # Stream the first claim, then hold the rest until the test has looked.
    backend = ScriptedBackend(step=5, gate=gate, hold_at=TRACE.index("s moves") + 1)
    served = Served(backend)
    page, errors = open_page(browser, served)
    other = None
    try:
        upload_through_page(page, video)
        page.fill("#question", "What moves?")
        page.select_option("#task", "free_form")
        page.click("#ask")

        # The first claim is a chip while the model is still writing.
        page.wait_for_selector('#reasoning .chip[data-index="0"]')
        assert page.inner_text("#reasoning .chip") == "red circle · 1.50 s"
        assert page.inner_text("#downloads") == ""
        assert "<obj>" not in page.inner_text("#reasoning")

        # A second page asking now is told the model is busy and where it waits.
        other, _ = open_page(browser, served)
        upload_through_page(other, video)
        other.click("#ask")
        other.wait_for_function(
            "() => document.getElementById('status').textContent.includes('1 ahead')"
        )
        assert "queued" in other.inner_text("#queue")
        expected = expected_source_boxes()
        check_chip(page, 0, 1.5, [expected[0]], "red circle")  # seekable while streaming

        gate.set()
        page.wait_for_selector("#downloads a")
        other.wait_for_selector("#downloads a")
        assert page.inner_text("#answer") == "red"
        assert "parser problems: none" in page.inner_text("#problems")
        check_chip(page, 1, 0.5, [expected[1]], "blue square")
        assert errors == []
    finally:
        gate.set()
        page.close()
        if other is not None:
            other.close()
        served.close()


def _example_trace(folder: Path, video_id: str) -> tuple[str, list[tuple[str, float, list[float]]]]:
    """A grounded trace for a synthetic example, written from its ground truth (boxes in the
    resized-frame pixels Qwen2.5-VL writes), and the claims (name, time, source box)."""
    gt = json.loads((folder / "gt" / f"{video_id}.json").read_text())
    item = next(v for v in json.loads((folder / "vstar.json").read_text()) if v["vid"] == video_id)
    source_wh = tuple(gt["size_wh"])
    fh, fw = FAMILY.smart_resize(source_wh[1], source_wh[0])
    occlusion = gt["occlusions"][0]
    t_s = round((occlusion["start_s"] + occlusion["end_s"]) / 2, 1)
    claims, parts = [], []
    later = round(0.6 * gt["times_s"][-1], 1)
    for name, t in (
        (occlusion["front"], t_s),
        (occlusion["back"], t_s),
        (occlusion["front"], later),
    ):
        obj = next(o for o in gt["objects"] if o["name"] == name)
        frame = min(obj["frames"], key=lambda f: abs(f["time"] - t))
        sizes = {"source_wh": source_wh, "frame_wh": (fw, fh)}
        written = [round(v) for v in FAMILY.from_source_box(frame["box_xyxy"], **sizes)]
        # What the library makes of the written box is what the page must draw.
        claims.append((name, frame["time"], list(FAMILY.to_source_box(written, **sizes))))
        box = ",".join(map(str, written))
        parts.append(f"the <obj>{name}</obj><box>[{box}]</box>at<t>{frame['time']}</t>s")
    text = (
        f"<think>Looking for what passes in front: {parts[0]} moves over {parts[1]}, "
        f"covering part of it. Later {parts[2]} is still in view; no other shape covers the "
        f"{occlusion['back']}.</think><answer>{item['answer']}</answer>"
    )
    return text, claims


def test_example_with_chips_screenshot(browser: Any, tmp_path: Path) -> None:
    """An example picked from the list, its three claims as chips; the README's picture.

    Scripted: the trace is written from the synthetic example's ground truth, so the picture
    shows what a good model writes; the real-model flow is the first test's."""
    folder = ensure_examples(tmp_path / "examples", n=2)
    text, claims = _example_trace(folder, "synth_000000")
    served = Served(ScriptedBackend([text], step=8), examples_dir=folder)
    page, errors = open_page(browser, served)
    try:
        page.set_viewport_size({"width": 1280, "height": 660})
        page.select_option("#example", "synth_000000")
        assert page.input_value("#question").startswith("Which shape passes in front of")
        page.wait_for_function("() => document.getElementById('player').readyState >= 1")
        page.click("#ask")
        page.wait_for_selector("#downloads a")
        for index, (name, t_s, box) in enumerate(claims):
            check_chip(page, index, t_s, [box], name)
        assert errors == []
        shoot(page, tmp_path, "serve.png")
    finally:
        page.close()
        served.close()


def test_tiny_model_answer_and_parser_problems(
    browser: Any, video: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The real tiny random Qwen2.5-VL through transformers: whatever it writes arrives, with
    the parser's problems listed (it writes no tags)."""
    from o3video.models.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen25vl", seed=0)
    backend = load_backend(model_dir, "hf", device="cpu")
    served = Served(
        backend, options=AskOptions(video=VideoSettings(max_frames=4), max_new_tokens=12)
    )
    page, errors = open_page(browser, served)
    try:
        assert "hf:" in page.inner_text("#model")
        upload_through_page(page, video)
        page.fill("#question", "What is shown?")
        page.click("#ask")
        page.wait_for_selector("#downloads a", timeout=120_000)
        assert page.inner_text("#reasoning").strip() != ""
        assert page.inner_text("#answer") == "(the model wrote no <answer>)"
        problems = page.inner_text("#problems")
        assert problems.lower().startswith("parser problems")
        assert "missing_answer" in problems
        assert "generate" in page.inner_text("#timings")
        assert errors == []
    finally:
        page.close()
        served.close()

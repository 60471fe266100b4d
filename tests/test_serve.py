"""`o3video serve` without a browser: the HTTP API over a real socket, with a scripted model.

The scripted backend writes a known grounded trace in small deltas, so the expected evidence
(boxes mapped from Qwen2.5-VL's resized-frame pixels to source pixels) is known exactly.
"""

from __future__ import annotations

import http.client
import json
import stat
import threading
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from videos import encode_video

from o3video.cli.main import main
from o3video.families import get_family
from o3video.models.base import BackendError, Request, SamplingParams
from o3video.models.card import VideoSettings
from o3video.serve import Limits, ServeServer, ensure_examples, make_server, settled_evidence
from o3video.serve.job import AskOptions
from o3video.video import probe_video

TRACE = (
    "<think>The <obj>red circle</obj><box>[10,20,60,70]</box>at<t>1.5</t>s moves; "
    "the <obj>blue square</obj> <box>[100,40,150,90]</box> at <t>0.5</t> s stays."
    "</think><answer>red</answer>"
)
SOURCE_WH = (320, 180)
FAMILY = get_family("qwen2_5_vl")

FOUR_FRAMES = AskOptions(video=VideoSettings(max_frames=4))


class ScriptedBackend:
    """A backend that writes ``texts`` (one per sample), streaming the first in deltas of
    ``step`` characters. ``gate``, when given, holds the stream once ``hold_at`` characters
    are out, until it is set."""

    name = "scripted"
    family = FAMILY

    def __init__(
        self,
        texts: Sequence[str] = (TRACE,),
        step: int = 6,
        gate: threading.Event | None = None,
        hold_at: int = 0,
        fail: bool = False,
    ) -> None:
        self.texts, self.step, self.fail = list(texts), step, fail
        self.gate, self.hold_at = gate, hold_at
        self.requests: list[Request] = []

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[str]]:
        self.requests.extend(requests)
        return [[self.texts[k % len(self.texts)] for k in range(params.n)] for _ in requests]

    def stream(self, request: Request, params: SamplingParams) -> Iterator[str]:
        self.requests.append(request)
        if self.fail:
            raise BackendError(self.name, "the scripted model broke")
        text = self.texts[0]
        for i in range(0, len(text), self.step):
            if self.gate is not None and i >= self.hold_at:
                assert self.gate.wait(30), "the test never opened the gate"
            yield text[i : i + self.step]


def expected_source_boxes(source_wh: tuple[int, int] = SOURCE_WH) -> list[list[float]]:
    """The trace's boxes in source pixels, derived as the library does: the model wrote them
    in pixels of the frame it was shown, whose size is Qwen2.5-VL's smart_resize."""
    w, h = source_wh
    fh, fw = FAMILY.smart_resize(h, w)  # 180x320 -> 168x308: each side rounded to 28s
    assert (fw, fh) == (308, 168)
    boxes = [(10, 20, 60, 70), (100, 40, 150, 90)]
    return [[b[0] * w / fw, b[1] * h / fh, b[2] * w / fw, b[3] * h / fh] for b in boxes]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    encode_video(path, list(range(20)), Fraction(1, 10), rate=10, size_wh=SOURCE_WH)
    return path


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_examples(tmp_path_factory.mktemp("examples"), n=2)


def start(backend: Any, limits: Limits | None = None, **kw: Any) -> ServeServer:
    server = make_server(backend, port=0, limits=limits, **kw)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def server(examples: Path) -> Iterator[ServeServer]:
    srv = start(
        ScriptedBackend(),
        examples_dir=examples,
        options=FOUR_FRAMES,
    )
    yield srv
    srv.shutdown()
    srv.server_close()


def call(
    server: ServeServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=60)
    sent = {"X-O3video": "1", **(headers or {})}
    conn.request(method, path, body=body, headers=sent)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def upload(server: ServeServer, path: Path, name: str = "clip.mp4") -> dict[str, Any]:
    status, _, data = call(server, "POST", f"/api/upload?name={name}", path.read_bytes())
    assert status == 200, data
    result: dict[str, Any] = json.loads(data)
    return result


def ask_payload(video: dict[str, str], **kw: Any) -> bytes:
    return json.dumps({"video": video, "question": "What moves?", **kw}).encode()


def ask_events(server: ServeServer, payload: bytes) -> list[dict[str, Any]]:
    status, headers, data = call(
        server, "POST", "/api/ask", payload, {"Content-Type": "application/json"}
    )
    assert status == 200, data
    assert headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in data.decode().splitlines()]


# -- limits and uploads ------------------------------------------------------------------


def test_workspace_is_private_and_deleted_at_close(video: Path) -> None:
    srv = start(ScriptedBackend())
    root = srv.app.workspace.root
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "uploads").stat().st_mode) == 0o700
    up = upload(srv, video)
    saved = list((root / "uploads").iterdir())
    assert [p.stem for p in saved] == [up["id"]]
    assert stat.S_IMODE(saved[0].stat().st_mode) == 0o600
    # Forgetting an upload deletes its file at once.
    assert json.loads(call(srv, "DELETE", f"/api/upload/{up['id']}")[2]) == {"deleted": True}
    assert list((root / "uploads").iterdir()) == []
    upload(srv, video)
    srv.shutdown()
    srv.server_close()
    assert not root.exists()


def test_oversized_upload_is_refused_with_413() -> None:
    srv = start(ScriptedBackend(), Limits(max_upload_bytes=1024))
    try:
        status, _, data = call(srv, "POST", "/api/upload?name=big.mp4", b"\0" * 5000)
        assert status == 413
        message = json.loads(data)["error"]
        assert '"big.mp4"' in message and "--max-upload-mb" in message
        assert list(srv.app.workspace.uploads_dir.iterdir()) == []
    finally:
        srv.shutdown()
        srv.server_close()


def test_non_video_upload_is_refused_naming_the_file(server: ServeServer) -> None:
    status, _, data = call(server, "POST", "/api/upload?name=notes.txt", b"just some words")
    assert status == 400
    message = json.loads(data)["error"]
    assert message.startswith('"notes.txt" is not a readable video')
    assert str(server.app.workspace.root) not in message  # no server path in the message
    assert list(server.app.workspace.uploads_dir.iterdir()) == []


def test_too_long_video_is_refused(video: Path) -> None:
    srv = start(ScriptedBackend(), Limits(max_duration_s=0.5))
    try:
        status, _, data = call(srv, "POST", "/api/upload?name=clip.mp4", video.read_bytes())
        assert status == 400
        assert "--max-duration-s" in json.loads(data)["error"]
        assert list(srv.app.workspace.uploads_dir.iterdir()) == []
    finally:
        srv.shutdown()
        srv.server_close()


def test_upload_name_is_shown_not_used(server: ServeServer, video: Path) -> None:
    up = upload(server, video, name="..%2F..%2Fevil.mp4")
    assert up["filename"] == "evil.mp4"
    assert up["source_wh"] == list(SOURCE_WH) and up["duration_s"] == pytest.approx(2.0, abs=0.2)
    (saved,) = server.app.workspace.uploads_dir.iterdir()
    assert saved.name == up["id"] + ".mp4"


# -- what the browser may name -----------------------------------------------------------


@pytest.mark.parametrize(
    ("video", "status"),
    [
        ("/etc/passwd", 400),
        ({"path": "/etc/passwd"}, 400),
        ({"example": "../../x"}, 404),
        ({"upload": "../uploads/x"}, 404),
        ({"example": "/etc/passwd"}, 404),
        ({"upload": "a", "example": "b"}, 400),
    ],
)
def test_a_request_naming_a_path_is_refused(server: ServeServer, video: Any, status: int) -> None:
    code, _, data = call(
        server, "POST", "/api/ask", ask_payload(video), {"Content-Type": "application/json"}
    )
    assert code == status, data
    assert "error" in json.loads(data)


@pytest.mark.parametrize(
    "path",
    [
        "/video/example/../../../etc/passwd",
        "/video/example/..%2F..%2Fetc%2Fpasswd",
        "/video/upload/%2Fetc%2Fpasswd",
        "/download/../answer.json",
        "/download/abc/../../etc/passwd",
        "/etc/passwd",
        "/static/../app.py",
    ],
)
def test_no_file_is_served_by_path(server: ServeServer, path: str) -> None:
    status, _, data = call(server, "GET", path)
    assert status == 404
    assert b"root:" not in data


def test_other_origins_and_hosts_are_refused(server: ServeServer, video: Path) -> None:
    body = ask_payload({"example": "synth_000000"})
    json_type = {"Content-Type": "application/json"}
    port = server.server_address[1]
    for headers in (
        {**json_type, "X-O3video": ""},  # a plain cross-site form cannot set the header
        {**json_type, "Origin": "http://evil.example"},
        {**json_type, "Host": f"evil.example:{port}"},  # DNS rebinding
    ):
        status, _, data = call(server, "POST", "/api/ask", body, headers)
        assert status == 403, data
    status, _, _ = call(server, "POST", "/api/ask", body, {"Content-Type": "text/plain"})
    assert status == 415
    status, _, _ = call(server, "GET", "/api/info", headers={"Host": "evil.example"})
    assert status == 403


# -- streaming ---------------------------------------------------------------------------


def test_stream_sends_each_claim_once_it_is_complete(server: ServeServer, video: Path) -> None:
    up = upload(server, video)
    events = ask_events(server, ask_payload({"upload": up["id"]}, task="free_form"))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "answer"
    assert kinds[1:3] == ["status", "status"]
    deltas = [e for e in events if e["type"] == "delta"]
    assert "".join(d["text"] for d in deltas) == TRACE
    # A claim appears with the delta that closes its time, never before, never partial.
    closes = [TRACE.index("</t>", TRACE.index("<obj>" + n)) + 4 for n in ("red", "blue")]
    expected = expected_source_boxes()
    text = ""
    for d in deltas:
        text += d["text"]
        done = sum(c <= len(text) for c in closes)
        assert len(d["evidence"]) == done, text
        for ev, box in zip(d["evidence"], expected, strict=False):
            assert ev["boxes_source"] == [pytest.approx(box)]
            assert ev["t_s"] is not None
    answer = events[-1]["answer"]
    assert [e["name"] for e in answer["evidence"]] == ["red circle", "blue square"]
    assert [e["t_s"] for e in answer["evidence"]] == [1.5, 0.5]
    for ev, box in zip(answer["evidence"], expected, strict=True):
        assert ev["boxes_source"] == [pytest.approx(box)]
    assert answer["answer"] == "red" and answer["problems"] == []
    assert answer["video"]["source"] == "clip.mp4"  # the name the person knows, not our path
    assert {"decode", "generate", "total"} <= set(answer["timings"])
    # The downloads: the same answer.json, and the report.
    status, headers, data = call(server, "GET", events[-1]["downloads"]["answer.json"])
    assert status == 200 and "attachment" in headers["content-disposition"]
    assert json.loads(data)["evidence"] == answer["evidence"]
    status, headers, data = call(server, "GET", events[-1]["downloads"]["report.html"])
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"red circle" in data


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("<think><obj>cat</obj><box>[1,2,3,4]</box>", 0),  # a time may follow
        ("<think><obj>cat</obj><box>[1,2,3,4]</box> a", 0),
        ("<think><obj>cat</obj><box>[1,2,3,4]</box> at <t>0.", 0),
        ("<think><obj>cat</obj><box>[1,2,3,4]</box> at <t>0.5</", 0),
        ("<think><obj>cat</obj><box>[1,2,3,4]</box><bo", 0),
        ("<think><obj>cat</obj><box>[1,2,3,4]</box> at <t>0.5</t>", 1),
        ("<think><obj>cat</obj><box>[1,2,3,4]</box> is here", 1),  # no time will come
        ("<think><obj>cat</obj><box>[1,2,3,4]</box></think>", 1),
        ("<think><obj>cat</obj><box>[1,2,3", 0),
    ],
)
def test_settled_evidence(text: str, count: int) -> None:
    import numpy as np

    from o3video.video import Clip

    clip = Clip(np.zeros((1, 56, 56, 3), np.uint8), (0.0,), (112, 112), (56, 56), 1.0, 1.0)
    assert len(settled_evidence(text, clip, FAMILY)) == count


def test_example_by_id(server: ServeServer) -> None:
    info = json.loads(call(server, "GET", "/api/info")[2])
    assert [e["id"] for e in info["examples"]] == ["synth_000000", "synth_000001"]
    assert info["examples"][0]["question"].startswith("Which shape")
    assert "free_form" in info["tasks"] and "spatial_image" not in info["tasks"]
    events = ask_events(server, ask_payload({"example": "synth_000001"}, task="temporal"))
    assert events[-1]["type"] == "answer"
    assert events[-1]["answer"]["task"] == "temporal"
    assert events[-1]["answer"]["video"]["source"] == "synth_000001"


def test_video_is_served_with_ranges(server: ServeServer, video: Path) -> None:
    up = upload(server, video)
    whole = video.read_bytes()
    status, headers, data = call(server, "GET", f"/video/upload/{up['id']}")
    assert status == 200 and data == whole and headers["content-type"] == "video/mp4"
    status, headers, data = call(
        server, "GET", f"/video/upload/{up['id']}", headers={"Range": "bytes=100-199"}
    )
    assert status == 206 and data == whole[100:200]
    assert headers["content-range"] == f"bytes 100-199/{len(whole)}"
    status, _, data = call(
        server, "GET", f"/video/upload/{up['id']}", headers={"Range": "bytes=-50"}
    )
    assert status == 206 and data == whole[-50:]


def test_voting_shows_every_sample_and_its_weight(video: Path) -> None:
    texts = [f"<think>look</think><answer>{a}</answer>" for a in ("red", "blue", "red")]
    srv = start(ScriptedBackend(texts), options=FOUR_FRAMES)
    try:
        up = upload(srv, video)
        events = ask_events(srv, ask_payload({"upload": up["id"]}, samples=3, vote="majority"))
        assert "delta" not in [e["type"] for e in events]
        answer = events[-1]["answer"]
        assert answer["samples"] == texts
        assert [(v["answer"], v["weight"]) for v in answer["votes"]] == [
            ("red", 1.0),
            ("blue", 1.0),
            ("red", 1.0),
        ]
        assert answer["answer"] == "red"
        for bad in ({"samples": 99, "vote": "majority"}, {"samples": 1, "vote": "majority"}):
            status, _, data = call(
                srv, "POST", "/api/ask", ask_payload({"upload": up["id"]}, **bad),
                {"Content-Type": "application/json"},
            )  # fmt: skip
            assert status == 400, data
    finally:
        srv.shutdown()
        srv.server_close()


def test_model_error_is_an_event(video: Path) -> None:
    srv = start(ScriptedBackend(fail=True), options=FOUR_FRAMES)
    try:
        up = upload(srv, video)
        events = ask_events(srv, ask_payload({"upload": up["id"]}))
        assert events[-1] == {
            "type": "error",
            "message": "scripted: the scripted model broke",
        }
        # The model is free again.
        assert json.loads(call(srv, "GET", "/api/info")[2])["queue"] == {
            "busy": False,
            "waiting": 0,
        }
    finally:
        srv.shutdown()
        srv.server_close()


# -- one request at a time ---------------------------------------------------------------


def test_second_request_waits_in_the_queue_and_is_told(video: Path) -> None:
    gate = threading.Event()
    srv = start(ScriptedBackend(gate=gate), options=FOUR_FRAMES)
    host, port = srv.server_address[:2]
    try:
        up = upload(srv, video)
        body = ask_payload({"upload": up["id"]})
        streams = []
        for _ in range(2):
            conn = http.client.HTTPConnection(str(host), int(port), timeout=60)
            conn.request(
                "POST", "/api/ask", body, {"Content-Type": "application/json", "X-O3video": "1"}
            )
            resp = conn.getresponse()
            assert resp.status == 200
            first = json.loads(resp.readline())
            streams.append((conn, resp, first))
        assert streams[0][2]["type"] == "start"
        assert streams[1][2] == {"type": "queued", "position": 1}
        info = json.loads(call(srv, "GET", "/api/info")[2])
        assert info["queue"] == {"busy": True, "waiting": 1}
        gate.set()
        endings = []
        for conn, resp, _ in streams:
            events = [json.loads(line) for line in resp.read().decode().splitlines()]
            endings.append(events[-1]["type"])
            if events[0]["type"] == "queued":  # heartbeats while waiting, then its turn
                assert "start" in [e["type"] for e in events]
            conn.close()
        assert endings == ["answer", "answer"]
        assert json.loads(call(srv, "GET", "/api/info")[2])["queue"]["busy"] is False
    finally:
        gate.set()
        srv.shutdown()
        srv.server_close()


def test_full_queue_is_refused_with_503(video: Path) -> None:
    gate = threading.Event()
    srv = start(
        ScriptedBackend(gate=gate),
        Limits(max_waiting=0),
        options=FOUR_FRAMES,
    )
    host, port = srv.server_address[:2]
    try:
        up = upload(srv, video)
        body = ask_payload({"upload": up["id"]})
        conn = http.client.HTTPConnection(str(host), int(port), timeout=60)
        conn.request(
            "POST", "/api/ask", body, {"Content-Type": "application/json", "X-O3video": "1"}
        )
        resp = conn.getresponse()
        assert json.loads(resp.readline())["type"] == "start"
        status, _, data = call(srv, "POST", "/api/ask", body, {"Content-Type": "application/json"})
        assert status == 503 and "busy" in json.loads(data)["error"]
        gate.set()
        resp.read()
        conn.close()
    finally:
        gate.set()
        srv.shutdown()
        srv.server_close()


# -- the page and the command ------------------------------------------------------------


def test_page_is_served_with_a_strict_policy(server: ServeServer) -> None:
    status, headers, data = call(server, "GET", "/")
    assert status == 200 and b'<video id="player"' in data
    assert "default-src 'self'" in headers["content-security-policy"]
    assert b"innerHTML" not in data  # model text is only ever set as text


def test_serve_without_a_model_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import o3video.embedded as embedded

    monkeypatch.setattr(embedded, "MODEL_DIR", tmp_path / "none")  # an install without it
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "no embedded model" in err and "--model PATH" in err and "build_tiny_model" in err


def test_frames_and_examples_follow_the_model_card(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A model folder's card sets the frame budget (each option given wins) and the world of
    the example videos, made into their own folder under the default one."""
    import argparse

    from o3video.cli.serve import add_arguments, examples_for, frame_options
    from o3video.models.card import VideoSettings, write_card

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    model = tmp_path / "model"
    model.mkdir()
    write_card(model, VideoSettings(fps=1.0, max_frames=6, max_pixels=3136, min_pixels=3136),
               world={"width": 96, "height": 64, "duration_s": 2, "num_objects": [1, 2],
                      "size_px": [10, 20]})  # fmt: skip
    args = parser.parse_args(["--model", str(model), "--max-frames", "4"])
    assert frame_options(args, str(model)) == VideoSettings(1.0, 4, 4, 3136, 3136)
    bare = parser.parse_args(["--model", "Qwen/Qwen2.5-VL-7B-Instruct"])
    assert frame_options(bare, bare.model) == VideoSettings()  # a hub name has no card
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = examples_for(args, str(model))
    assert folder.parent == tmp_path / "cache" / "o3video" / "examples"
    assert folder.name.startswith("world-")
    video = sorted((folder / "videos").glob("*.mp4"))[0]
    assert probe_video(video).source_wh == (96, 64)
    assert examples_for(bare, bare.model) == tmp_path / "cache" / "o3video" / "examples"


def test_serve_checks_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--model", "m", "--backend", "openai", "--no-examples"]) == 2
    assert "--base-url" in capsys.readouterr().err
    assert main(["serve", "--model", "m", "--max-upload-mb", "0", "--no-examples"]) == 2
    assert "--max-upload-mb" in capsys.readouterr().err

"""Curation (SPEC §4): each step on small inputs, the resumable run, and the command.

The videos are 112×84 at 10 fps for 2 s (frame ``k`` at exactly ``k / 10`` s): a red square
moving right, 3 px a frame from x = 10 (20 px side, y = 30), and a still blue square at
(70, 50)–(94, 74). The scripted teacher reads the frame labels of its prompt and answers with
the red square's true box at two of the frames shown; the verifier answers from a table.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from test_openai_backend import Call, FakeServer, Reply, chat

from o3video.boxes import as_xyxy
from o3video.cli import data_curate
from o3video.cli.main import main
from o3video.data import SourceRoot, load_stgr, record_from_dict
from o3video.data.curate import JOURNAL_FILE, CurateConfig, curate, to_stgr_record
from o3video.data.curate_steps import (
    check_consistency,
    filter_boxes,
    verify_boxes,
)
from o3video.data.curate_teacher import (
    Candidate,
    KeyFrameAnnotation,
    ObjectBox,
    Rejection,
    parse_teacher_reply,
)
from o3video.evidence import format_claim
from o3video.models import BackendError, Request, SamplingParams
from o3video.video import Clip, sample_frames

W, H, FPS, N = 112, 84, 10, 20
BLUE = (70.0, 50.0, 94.0, 74.0)
B6 = "[250,357,429,595]"  # the red square at frame 6 (0.6 s) on the 0–1000 grid


def red_px(k: int) -> tuple[float, float, float, float]:
    x = 10 + 3 * k
    return (float(x), 30.0, x + 20.0, 50.0)


def grid(box: Sequence[float]) -> list[float]:
    """Pixels → the 0–1000 grid, rounded as a teacher would."""
    return [round(v * 1000 / s) for v, s in zip(box, (W, H, W, H), strict=True)]


def frame(k: int) -> np.ndarray:
    img = np.full((H, W, 3), 128, np.uint8)
    x1, y1, x2, y2 = (int(v) for v in red_px(k))
    img[y1:y2, x1:x2] = (220, 30, 30)
    img[50:74, 70:94] = (30, 30, 220)
    return img


def write_video(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.time_base = Fraction(1, FPS)
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for k in range(N):
            f = av.VideoFrame.from_ndarray(frame(k), format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = k, Fraction(1, FPS)
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    return path


def memory_clip() -> Clip:
    """Frames 0, 6, 13, 19 (0.0, 0.6, 1.3, 1.9 s) without a file."""
    ks = [0, 6, 13, 19]
    return sample_frames([frame(k) for k in ks], times_s=[k / FPS for k in ks], num_frames=4)


def texts(request: Request) -> str:
    return "".join(i["text"] for m in request.messages for i in m["content"] if i["type"] == "text")


def teacher_json(labels: Sequence[float], **change: Any) -> str:
    """A correct reply about frames 2 and 4 of the labels; ``change`` overrides fields."""
    t1, t2 = labels[1], labels[3]
    b1, b2 = grid(red_px(round(t1 * FPS))), grid(red_px(round(t2 * FPS)))
    reasoning = (
        f"At first {format_claim('red square', [b1], t1)} is on the left; later "
        f"{format_claim('red square', [b2], t2)} is further right."
    )
    reply = {
        "question": "Which way does the red square move?",
        "key_frames": [
            {"time_s": t1, "objects": [{"name": "red square", "box_2d": b1}]},
            {"time_s": t2, "objects": [{"name": "red square", "box_2d": b2}]},
        ],
        "reasoning": reasoning,
        "answer": "To the right.",
    } | change
    return json.dumps(reply)


def labels_of(text: str) -> list[float]:
    return [float(t) for t in re.findall(r"Frame \d+ at ([\d.]+)s: ", text)]


class ScriptedBackend:
    """Canned replies: ``reply(request)`` per request; raises ``error`` on call ``fail_on``."""

    def __init__(
        self,
        reply: Callable[[Request], str],
        name: str = "scripted",
        fail_on: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.reply, self.name, self.fail_on, self.error = reply, name, fail_on, error
        self.calls: list[Request] = []
        self.lock = threading.Lock()

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[str]]:
        out = []
        for r in requests:
            with self.lock:
                self.calls.append(r)
                if len(self.calls) == self.fail_on:
                    raise self.error or RuntimeError("scripted crash")
            out.append([self.reply(r)] * params.n)
        return out


def good_teacher(**change: Any) -> ScriptedBackend:
    return ScriptedBackend(lambda r: teacher_json(labels_of(texts(r)), **change), "teacher")


def verifier(table: dict[str, str] | None = None) -> ScriptedBackend:
    def reply(r: Request) -> str:
        name = re.search(r"Is this a (.*)\? Answer", texts(r))
        return (table or {}).get(name.group(1) if name else "", "Yes.")

    return ScriptedBackend(reply, "verifier")


def candidate(**change: Any) -> Candidate:
    cand = parse_teacher_reply(teacher_json([0.0, 0.6, 1.3, 1.9], **change), memory_clip())
    assert isinstance(cand, Candidate)
    return cand


# --- step 1: the teacher's reply -----------------------------------------------------------------


def test_reply_parsed_and_times_snapped_to_sampled_frames() -> None:
    reply = json.loads(teacher_json([0.0, 0.6, 1.3, 1.9]))
    reply["key_frames"][0]["time_s"] = 0.55  # not a label: snapped to the frame at 0.6
    reply["key_frames"].append(
        {"time_s": 0.62, "objects": [{"name": " blue  square", "box_2d": grid(BLUE)}]}
    )
    cand = parse_teacher_reply("```json\n" + json.dumps(reply) + "\n```", memory_clip())
    assert isinstance(cand, Candidate)
    assert [(kf.frame, kf.time_s, kf.asked_time_s) for kf in cand.key_frames] == [
        (1, 0.6, 0.55),  # merged with the 0.62 key frame: one sampled frame
        (3, 1.9, 1.9),
    ]
    assert [o.name for o in cand.key_frames[0].objects] == ["red square", "blue square"]
    assert cand.question == "Which way does the red square move?"


def reply_with(**change: Any) -> str:
    return teacher_json([0, 0.6, 1.3, 1.9], **change)


def frame_with(*objects: dict[str, Any], time_s: Any = 0.6) -> list[dict[str, Any]]:
    return [{"time_s": time_s, "objects": list(objects)}]


@pytest.mark.parametrize(
    ("reply", "reason", "where"),
    [
        ("I cannot help with that.", "not_json", "no JSON object"),
        ('["a", "list"]', "not_json", ""),
        (reply_with(question="  "), "missing_field", "question: empty"),
        (json.dumps({"question": "Q", "answer": "A", "reasoning": "R"}), "missing_field", "key_"),
        (reply_with(key_frames="0.6"), "wrong_type", "key_frames: must be list"),
        (reply_with(key_frames=[]), "missing_field", "key_frames: empty"),
        (reply_with(key_frames=frame_with(time_s="0.6")), "wrong_type", "key_frames[0].time_s"),
        (reply_with(key_frames=frame_with(time_s=True)), "wrong_type", "key_frames[0].time_s"),
        (reply_with(key_frames=frame_with(time_s=-1)), "bad_value", "negative"),
        (
            reply_with(key_frames=frame_with({"name": "x", "box_2d": [1, 2, 3]})),
            "bad_value",
            "key_frames[0].objects[0].box_2d: needs 4",
        ),
        (
            reply_with(key_frames=frame_with({"name": "x", "box_2d": "1,2,3,4"})),
            "wrong_type",
            "box",
        ),
        (
            reply_with(key_frames=frame_with({"name": "<obj>", "box_2d": [1, 2, 3, 4]})),
            "bad_value",
            "'<'",
        ),
        (reply_with(key_frames=frame_with({"box_2d": [1, 2, 3, 4]})), "missing_field", "[0].name"),
    ],
)
def test_bad_teacher_replies_are_rejections(reply: str, reason: str, where: str) -> None:
    got = parse_teacher_reply(reply, memory_clip())
    assert isinstance(got, Rejection)
    assert (got.step, got.reason) == ("annotate", reason)
    assert where in got.detail


def test_reasoning_in_think_tags_is_unwrapped() -> None:
    r = json.loads(teacher_json([0, 0.6, 1.3, 1.9]))["reasoning"]
    assert candidate(reasoning=f"<think>{r}</think>").reasoning == r


# --- step 2: the box filter ----------------------------------------------------------------------


def with_boxes(*boxes: Sequence[float]) -> Candidate:
    """One key frame (0.6 s) holding objects o0, o1, ... with these boxes."""
    objects = tuple(ObjectBox(f"o{i}", as_xyxy(b)) for i, b in enumerate(boxes))
    return Candidate(memory_clip(), "Q?", "A", "R", (KeyFrameAnnotation(1, 0.6, 0.6, objects),))


def test_filter_drops_large_degenerate_outside_and_tiny_boxes() -> None:
    cand = with_boxes(
        (0, 0, 1000, 850),  # 85% of the frame
        (100, 100, 100, 400),  # no area
        (1200, 0, 1500, 300),  # outside
        (900, 0, 1600, 100),  # mostly outside
        (10, 10, 15, 400),  # 5/1000 wide
        (500, 600, 200, 300),  # corners swapped: kept, ordered
        (-20, 0, 300, 900),  # 6% of it outside: clamped
    )
    got, drops = filter_boxes(cand)
    assert isinstance(got, Candidate)
    assert [(d.name, d.reason) for d in drops] == [
        ("o0", "too_large"),
        ("o1", "degenerate"),
        ("o2", "outside_frame"),
        ("o3", "outside_frame"),
        ("o4", "too_small"),
    ]
    assert [o.box for o in got.key_frames[0].objects] == [(200, 300, 500, 600), (0, 0, 300, 900)]
    got, drops = filter_boxes(with_boxes((0, 0, 1000, 1000)), max_area_frac=0.8)
    assert isinstance(got, Rejection) and (got.step, got.reason) == ("filter", "no_boxes_left")
    assert [d.reason for d in drops] == ["too_large", "empty_key_frame"]
    got, _ = filter_boxes(with_boxes((0, 0, 1000, 1000)), max_area_frac=1.0)
    assert isinstance(got, Candidate)


# --- step 3: the verifier ------------------------------------------------------------------------


def test_verifier_keeps_yes_drops_no_and_garbage_with_crops_of_the_box() -> None:
    cand = with_boxes(grid(red_px(6)), grid(BLUE), (0, 0, 100, 100))
    answers = {"o0": "**Yes**, it is.", "o1": "No.", "o2": "I am not sure"}
    ver = verifier(answers)
    got, drops = verify_boxes(cand, ver)
    assert isinstance(got, Candidate)
    assert [o.name for o in got.key_frames[0].objects] == ["o0"]
    assert [(d.name, d.reason, d.detail) for d in drops] == [
        ("o1", "verifier_no", "No."),
        ("o2", "unparsable", "I am not sure"),
    ]
    crop = np.asarray(ver.calls[0].messages[0]["content"][0]["image"])
    assert min(crop.shape[:2]) >= 64  # small crops are enlarged
    r, g, b = crop.reshape(-1, 3).mean(axis=0)
    assert r > 180 and g < 60 and b < 60  # the red square, nothing else
    assert texts(ver.calls[1]) == "Is this a o1? Answer yes or no."
    got, drops = verify_boxes(with_boxes(grid(BLUE)), verifier({"o0": "no"}))
    assert isinstance(got, Rejection) and got.reason == "no_boxes_left"


# --- step 4: consistency -------------------------------------------------------------------------


def test_consistent_candidate_is_rewritten_canonically() -> None:
    cand = candidate()
    # "Red  Square", 0.62 s and a box 3 units off: same object, frame, IoU >= 0.9.
    r = cand.reasoning.replace("at<t>0.6</t>s", "at <t>0.62</t>s").replace("[250,", "[253,")
    sloppy = replace(cand, reasoning=r.replace("red square", "Red  Square", 1))
    got = check_consistency(sloppy)
    assert isinstance(got, Candidate) and got.checked
    assert got.reasoning == cand.reasoning  # annotated name and box, the frame's time
    assert got.reasoning.startswith(f"At first <obj>red square</obj><box>{B6}</box>at<t>0.6</t>s")


def test_claims_of_dropped_boxes_say_so() -> None:
    cand = candidate()
    kept, drops = verify_boxes(
        cand, ScriptedBackend(lambda r: "yes" if "0.60s" in str(r.id) else "no")
    )
    assert isinstance(kept, Candidate) and [d.reason for d in drops] == [
        "verifier_no",
        "empty_key_frame",
    ]
    got = check_consistency(kept, dropped=drops)
    assert isinstance(got, Rejection) and got.reason == "dropped_evidence"
    assert (
        "claim 1 ('red square' at 1.9 s): its box was dropped at verify (verifier_no)" in got.detail
    )
    assert check_consistency(kept).reason == "wrong_time"  # type: ignore[union-attr]


def claim(name: str, box: Sequence[float], t_s: float) -> Callable[[str], str]:
    return lambda r: r + " " + format_claim(name, [box], t_s)


@pytest.mark.parametrize(
    ("edit", "reason", "message"),
    [
        (lambda r: r.replace("<t>0.6</t>", "<t>1.3</t>"), "wrong_time", "at 0.60, 1.90 s only"),
        (lambda r: r.replace(B6, "[280,357,459,595]"), "wrong_box", "IoU 0.71 < 0.9"),
        (claim("blue square", grid(BLUE), 0.6), "unknown_object", "claim 2"),
        (claim("red square", grid(red_px(6)), 0.6), "duplicate_claim", "claim 2"),
        (lambda r: r.split(" later ")[0], "unclaimed_annotation", "'red square' at 1.90 s"),
        (lambda r: r + " Then at <t>1.0</t>s it stops.", "unmatched_time", "<t>1</t>"),
        (lambda r: r.replace("</box>", "", 1), "malformed_trace", ""),
        (lambda r: "Plain words only.", "no_claims", ""),
        (lambda r: "<think>" + r, "malformed_trace", "<think>"),
    ],
)
def test_inconsistent_reasoning_is_rejected(
    edit: Callable[[str], str], reason: str, message: str
) -> None:
    cand = candidate()
    assert B6 in cand.reasoning  # the box the edits refer to
    bad = Candidate(cand.clip, cand.question, cand.answer, edit(cand.reasoning), cand.key_frames)
    got = check_consistency(bad)
    assert isinstance(got, Rejection) and (got.step, got.reason) == ("consistency", reason)
    assert message in got.detail


def test_answer_with_tags_is_rejected() -> None:
    got = check_consistency(candidate(answer="<obj>red square</obj> moves right"))
    assert isinstance(got, Rejection) and got.reason == "tags_in_text"


def test_record_from_memory_frames_validates(tmp_path: Path) -> None:
    cand = check_consistency(candidate())
    assert isinstance(cand, Candidate)
    rec = to_stgr_record(cand, "clips/a.mp4", tmp_path)
    parsed, issues = record_from_dict(rec, 0)
    assert parsed is not None and issues == []
    assert rec["key_frames"] == [
        {"path": "keyframes/clips/a/000001.jpg", "time": 0.6, "idx": 1},
        {"path": "keyframes/clips/a/000003.jpg", "time": 1.9, "idx": 3},
    ]
    assert rec["key_items"]["1"] == {"red square": [[0.25, 0.357, 0.429, 0.595]]}
    assert (
        "<obj>red square</obj><box>[0.25,0.357,0.429,0.595]</box>at<t>0.6</t>s"
        in (rec["reasoning_process"])
    )
    assert (tmp_path / "keyframes/clips/a/000001.jpg").is_file()
    with pytest.raises(ValueError, match="check_consistency"):
        to_stgr_record(candidate(), "clips/a.mp4", tmp_path)


# --- the run -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    one = write_video(root / "clips" / "v0.mp4")
    for i in range(1, 5):
        (root / "clips" / f"v{i}.mp4").write_bytes(one.read_bytes())
    (root / "clips" / "broken.mp4").write_bytes(b"not a video")
    return root


VIDEOS = [f"clips/v{i}.mp4" for i in range(5)]


def journal(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / JOURNAL_FILE).read_text().splitlines()]


def test_curate_keeps_rejects_fails_and_writes_valid_records(media: Path, tmp_path: Path) -> None:
    def reply(r: Request) -> str:  # v1: garbage, v2: a box the verifier denies
        if str(r.id).endswith("v1.mp4"):
            return "Here is my answer: the square moves."
        return teacher_json(labels_of(texts(r)))

    teacher = ScriptedBackend(reply, "teacher")
    ver = ScriptedBackend(lambda r: "no" if len(ver.calls) in (3, 4) else "yes", "verifier")
    seen: list[tuple[int, int, str]] = []
    videos = [*VIDEOS[:3], "clips/broken.mp4", media / "clips" / "v0.mp4"]  # v0 twice
    report = curate(
        videos,
        media,
        tmp_path / "out",
        teacher,
        ver,
        config=CurateConfig(num_frames=4),
        progress=lambda n, total, e: seen.append((n, total, e["status"])),
    )
    out = tmp_path / "out"
    assert (report.total, report.kept, report.rejected, report.failed) == (4, 1, 2, 1)
    assert report.rejections == {"annotate": {"not_json": 1}, "verify": {"no_boxes_left": 1}}
    assert report.drops == {"verify": {"verifier_no": 2, "empty_key_frame": 2}}
    assert report.errors == {"VideoDecodeError": 1}
    assert [n for n, _, _ in seen] == [1, 2, 3, 4] and {t for _, t, _ in seen} == {4}
    lines = {e["video"]: e for e in journal(out)}
    assert lines["clips/broken.mp4"]["error"]["message"].startswith(str(media / "clips/broken.mp4"))
    assert lines["clips/v1.mp4"]["detail"].startswith("no JSON object in the reply")
    data = load_stgr(
        out / "stgr_curated.json",
        media,
        source_roots={"curated": SourceRoot(".", str(out))},
        decode_media=True,
        strict=True,
    )
    (rec,) = data.records
    assert rec.video_path == "clips/v0.mp4" and rec.image_size == (W, H)
    kf = rec.key_frames[0]
    assert (kf.time_s, kf.idx) == (0.6, 6)  # sampled frames 0, 6, 13, 19 of the video
    from PIL import Image

    with Image.open(out / kf.path) as image:
        assert image.size == (W, H)
    saved = json.loads((out / "curate_report.json").read_text())
    assert saved["kept"] == 1 and saved["rejections"] == report.rejections


def test_rerun_calls_no_backend_for_finished_videos(media: Path, tmp_path: Path) -> None:
    out, cfg = tmp_path / "out", CurateConfig(num_frames=4)
    videos = [*VIDEOS[:2], "clips/broken.mp4"]
    curate(videos, media, out, good_teacher(), verifier(), config=cfg)
    teacher, ver = good_teacher(), verifier()
    report = curate(videos, media, out, teacher, ver, config=cfg)
    assert teacher.calls == [] and ver.calls == []
    assert (report.skipped, report.kept, report.failed) == (2, 2, 1)  # broken retried
    assert [e["video"] for e in journal(out)].count("clips/broken.mp4") == 2
    fresh = curate(videos[:1], media, out, good_teacher(), verifier(), config=cfg, resume=False)
    assert (fresh.total, fresh.skipped, len(journal(out))) == (1, 0, 1)


@pytest.mark.parametrize("workers", [1, 2])
def test_crash_then_resume_repeats_and_loses_nothing(
    media: Path, tmp_path: Path, workers: int
) -> None:
    out, cfg = tmp_path / "out", CurateConfig(num_frames=4, workers=workers)
    crashing = ScriptedBackend(good_teacher().reply, "teacher", fail_on=3)
    with pytest.raises(RuntimeError, match="scripted crash"):
        curate(VIDEOS, media, out, crashing, verifier(), config=cfg)
    done = [e["video"] for e in journal(out)]
    assert len(done) == len(set(done)) and 2 <= len(done) <= 2 + workers  # + in flight
    with (out / JOURNAL_FILE).open("a") as f:
        f.write('{"video": "clips/v4.mp4", "status": "ke')  # a line cut by the crash
    teacher = good_teacher()
    report = curate(VIDEOS, media, out, teacher, verifier(), config=cfg)
    asked = sorted(str(r.id).rsplit("/", 1)[-1] for r in teacher.calls)
    assert asked == sorted(f"v{i}.mp4" for i in range(5) if f"clips/v{i}.mp4" not in done)
    final = [e["video"] for e in journal(out)]
    assert sorted(final) == VIDEOS and report.kept == 5 and report.skipped == len(done)
    records = json.loads((out / "stgr_curated.json").read_text())
    assert [r["video_path"] for r in records] == VIDEOS


def test_backend_error_is_recorded_and_the_run_goes_on(media: Path, tmp_path: Path) -> None:
    down = BackendError("openai:x", "gave up after 6 tries", request_index=0, status=503)
    teacher = ScriptedBackend(good_teacher().reply, "teacher", fail_on=1, error=down)
    report = curate(
        VIDEOS[:2], media, tmp_path, teacher, verifier(), config=CurateConfig(num_frames=4)
    )
    assert (report.failed, report.kept, report.errors) == (1, 1, {"BackendError": 1})


# --- the command ---------------------------------------------------------------------------------


def test_command_end_to_end_over_http(media: Path, tmp_path: Path, capsys: Any) -> None:
    def respond(call: Call, n: int) -> Reply:
        user = call.body["messages"][-1]["content"]
        text = "".join(p.get("text", "") for p in user)
        if call.body["model"] == "verifier":
            return Reply(body=chat("Yes" if "red square" in text else "No"))
        assert call.body["response_format"]["json_schema"]["strict"] is True
        return Reply(body=chat(teacher_json(labels_of(text))))

    listing = tmp_path / "videos.txt"
    listing.write_text("# two clips\nclips/v1.mp4\n\nclips/v2.mp4  # again\n")
    with FakeServer(respond) as server:
        argv = [
            "data",
            "curate",
            str(media / "clips/v0.mp4"),
            "--list",
            str(listing),
            "--media-root",
            str(media),
            "--out",
            str(tmp_path / "out"),
            "--teacher-url",
            server.url,
            "--teacher-model",
            "teacher",
            "--verifier-model",
            "verifier",
            "--num-frames",
            "4",
            "--concurrency",
            "2",
        ]
        assert main(argv) == 0  # through `o3video data curate`
        assert sum(c.body["model"] == "teacher" for c in server.calls) == 3
    captured = capsys.readouterr()
    assert "3 videos (0 finished earlier): 3 kept, 0 rejected, 0 failed" in captured.out
    assert "[3/3] clips/" in captured.err
    data = load_stgr(tmp_path / "out" / "stgr_curated.json", strict=True)
    assert sorted(r.video_path for r in data.records) == [
        "clips/v0.mp4",
        "clips/v1.mp4",
        "clips/v2.mp4",
    ]
    assert "curate" in data_curate.EXAMPLES

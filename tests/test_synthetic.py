"""The synthetic world and corpus: determinism, ground truth against decoded frames, records.

One corpus of 12 videos (seed 0) is written per test module and shared; a second one with the
same seed checks byte-identical output, a third with another seed checks that it differs.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from o3video.data.questions import Question, QuestionWriter
from o3video.data.render import write_video
from o3video.data.shapes import COLOURS, placement, shape_mask
from o3video.data.synthetic import SOURCE, SynthResult, _record, synthesize, world_seed
from o3video.data.world import WorldConfig, render_world
from o3video.evidence import parse_trace
from o3video.video import sample_frames

N = 12
TASKS = {
    "visual QA",
    "temporal QA",
    "temporal QA (MCQ)",
    "temporal-spatial free-form QA",
    "General video QA MCQ",
    "General video QA Free-form",
}
VSTAR_KEYS = {
    "vid", "domain", "fps", "width", "height", "frame_count", "question", "answer",
    "temporal_question", "timestamps", "spatial_question", "spatial_question_2", "bboxes",
}  # fmt: skip
SPAN = re.compile(r"\[(\d+(?:\.\d+)?), (\d+(?:\.\d+)?)\]")
MS = 0.001


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    calls: list[tuple[int, int]] = []
    result = synthesize(
        tmp_path_factory.mktemp("a"), N, seed=0, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(i + 1, N) for i in range(N)]
    return result


def load(result: SynthResult, name: str) -> Any:
    return json.loads((result.out_dir / name).read_text())


def gt(result: SynthResult, vid: str) -> dict[str, Any]:
    return json.loads((result.out_dir / "gt" / f"{vid}.json").read_text())


def vid_of(record: dict[str, Any]) -> str:
    """The video id of an STGR record or a V-STaR item."""
    if "vid" in record:
        return str(record["vid"])
    path = record.get("video_path") or record["image_path"]
    return re.search(r"synth_\d{6}", path).group(0)  # type: ignore[union-attr]


def test_same_seed_gives_identical_files_and_another_seed_differs(
    corpus: SynthResult, tmp_path: Path
) -> None:
    again = synthesize(tmp_path / "b", N, seed=0)
    names = sorted(str(p.relative_to(corpus.out_dir)) for p in corpus.out_dir.rglob("*.*"))
    assert names == sorted(str(p.relative_to(again.out_dir)) for p in again.out_dir.rglob("*.*"))
    assert len([n for n in names if n.endswith(".mp4")]) == N
    for name in names:  # JSON, PNG, JPEG and (same PyAV build) MP4: the same bytes
        assert (corpus.out_dir / name).read_bytes() == (again.out_dir / name).read_bytes(), name
    other = synthesize(tmp_path / "c", 3, seed=1)
    sft = load(other, "stgr_sft.json")
    assert sft != load(corpus, "stgr_sft.json")[: len(sft)]
    assert gt(other, "synth_000000") != gt(corpus, "synth_000000")


def test_worker_processes_give_the_same_records(corpus: SynthResult, tmp_path: Path) -> None:
    pooled = synthesize(tmp_path, 4, seed=0, workers=2)
    for name in ("stgr_sft.json", "stgr_rl.json", "vstar.json"):
        mine = [r for r in load(corpus, name) if int(vid_of(r)[-6:]) < 4]
        assert load(pooled, name) == mine


def test_ground_truth_matches_the_decoded_frames(corpus: SynthResult) -> None:
    for i in range(3):
        vid = f"synth_{i:06d}"
        truth = gt(corpus, vid)
        clip = sample_frames(corpus.out_dir / "videos" / f"{vid}.mp4", num_frames=10_000)
        assert len(clip.times_s) == len(truth["times_s"]) == 80
        assert max(abs(a - b) for a, b in zip(clip.times_s, truth["times_s"], strict=True)) < MS
        checked = 0
        for obj in truth["objects"]:
            for fr in obj["frames"]:
                if fr["visible_frac"] < 1.0:  # covered or cut by the edge: skip
                    continue
                x1, y1, x2, y2 = fr["box_xyxy"]
                cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
                rgb = clip.frames[fr["idx"], cy, cx].astype(int)
                dist = {c: np.abs(rgb - v).max() for c, v in COLOURS.items()}
                assert min(dist, key=dist.__getitem__) == obj["colour"], (vid, obj["name"], fr)
                assert dist[obj["colour"]] < 40
                checked += 1
        assert checked > 50


def test_world_is_deterministic_and_times_are_exact_fractions(tmp_path: Path) -> None:
    cfg = WorldConfig(fps=7.5, duration_s=4.0, width=96, height=64, size_px=(10, 24))
    a, b = render_world(5, cfg), render_world(5, cfg)
    assert a.times_s == b.times_s and len(a.times_s) == 30
    assert a.times_s[3] == float(Fraction(3) / Fraction(15, 2)) == 0.4
    for ta, tb in zip(a.tracks, b.tracks, strict=True):
        assert ta.name == tb.name and np.array_equal(ta.box_xyxy, tb.box_xyxy, equal_nan=True)
    names = [t.name for t in a.tracks]
    assert len(set(names)) == len(names)  # colour + shape names every object uniquely
    clip = sample_frames(write_video(a, tmp_path / "w.mp4"), num_frames=100)
    assert max(abs(x - y) for x, y in zip(clip.times_s, a.times_s, strict=True)) < MS


@pytest.mark.parametrize(
    "kwargs",
    [{"num_objects": (0, 2)}, {"size_px": (4, 8)}, {"colours": ("teal",)}, {"width": 223}],
)
def test_bad_configs_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WorldConfig(**kwargs)


def test_all_six_tasks_in_both_files_and_schema(corpus: SynthResult) -> None:
    sft, rl = load(corpus, "stgr_sft.json"), load(corpus, "stgr_rl.json")
    assert corpus.sft_counts == dict(Counter(r["task"] for r in sft))
    assert corpus.rl_counts == dict(Counter(r["task"] for r in rl))
    # Plus five "V-STaR protocol" records per V-STaR item in each file (test_vstar_protocol.py),
    # the same prompts; only the SFT ones carry a reasoning.
    protocol = [[r for r in f if r["task"] == "V-STaR protocol"] for f in (sft, rl)]
    assert len(protocol[0]) == len(protocol[1]) == 5 * corpus.num_vstar
    for a, b in zip(*protocol, strict=True):
        assert "reasoning_process" in a and b == {
            k: v for k, v in a.items() if k != "reasoning_process"
        }
    sft = [r for r in sft if r["task"] != "V-STaR protocol"]
    rl = [r for r in rl if r["task"] != "V-STaR protocol"]
    assert {r["task"] for r in sft} == {r["task"] for r in rl} == TASKS
    assert sum(a["question"] != b["question"] for a, b in zip(sft, rl, strict=True)) > len(sft) / 2
    for rec in sft + rl:
        assert rec["source"] == SOURCE and rec["image_size"] == [224, 224]
        assert ("reasoning_process" in rec) == (rec in sft)
        media = rec.get("video_path") or rec["image_path"]
        assert (corpus.out_dir / media).is_file()
        assert ("image_path" in rec) == (rec["task"] == "visual QA")
        assert ("key_frames" in rec) == (rec["task"] == "temporal-spatial free-form QA")
    manifest = load(corpus, "manifest.json")
    assert manifest["seed"] == 0 and manifest["num_videos"] == N
    assert manifest["counts"]["vstar"] == corpus.num_vstar == len(load(corpus, "vstar.json"))


def options(question: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-F])\. (.+)$", question, flags=re.M))


def test_answers_have_the_task_formats(corpus: SynthResult) -> None:
    for rec in load(corpus, "stgr_sft.json") + load(corpus, "stgr_rl.json"):
        task, answer, times = rec["task"], rec["answer"], gt(corpus, vid_of(rec))["times_s"]
        if task in ("temporal QA", "temporal QA (MCQ)"):
            m = SPAN.fullmatch(answer.split("\n")[-1])
            assert m and float(m[1]) <= float(m[2]) and {float(m[1]), float(m[2])} <= set(times)
        if "MCQ" in task:
            opts = options(rec["question"])
            assert len(opts) == 4 and len(set(opts.values())) == 4  # no two options equal
            assert answer.split("\n")[0] in opts
        if task == "visual QA":
            (claim,) = parse_trace(f"<think></think><answer>{answer}</answer>").claims
            x1, y1, x2, y2 = claim.boxes[0]
            assert 0 <= x1 < x2 <= 224 and 0 <= y1 < y2 <= 224
            image = np.asarray(Image.open(corpus.out_dir / rec["image_path"]).convert("RGB"))
            rgb = image[int((y1 + y2) / 2), int((x1 + x2) / 2)]  # PNG: lossless
            assert tuple(rgb) == COLOURS[claim.name.split()[0]]


def test_reasoning_parses_cleanly_with_normalized_boxes_and_frame_times(
    corpus: SynthResult,
) -> None:
    for rec in load(corpus, "stgr_sft.json"):
        trace = parse_trace(
            f"<think>{rec['reasoning_process']}</think><answer>{rec['answer']}</answer>"
        )
        allowed = {"claim_without_time"} if rec["task"] == "visual QA" else set()
        assert set(trace.kinds) <= allowed, (rec["task"], trace.problems)
        assert trace.claims
        names = {o["name"] for o in gt(corpus, vid_of(rec))["objects"]}
        times = set(gt(corpus, vid_of(rec))["times_s"])
        for claim in trace.claims:
            box = claim.boxes[0]
            if claim.span[0] < trace.answer_span[0]:  # in <think>: normalized
                assert all(0 <= v <= 1 for v in box) and box[0] <= box[2] and box[1] <= box[3]
            assert claim.name in names
            assert claim.t_s is None or claim.t_s in times
        assert set(trace.times_s) <= times


def test_key_frames_and_items_are_the_ground_truth(corpus: SynthResult) -> None:
    seen = 0
    for rec in load(corpus, "stgr_sft.json") + load(corpus, "stgr_rl.json"):
        if "key_frames" not in rec:
            continue
        truth = gt(corpus, vid_of(rec))
        assert [str(kf["idx"]) for kf in rec["key_frames"]] == list(rec["key_items"])
        assert len({kf["idx"] for kf in rec["key_frames"]}) == len(rec["key_frames"])
        for kf in rec["key_frames"]:
            assert (corpus.out_dir / kf["path"]).is_file() and kf["path"].endswith(".jpg")
            assert kf["time"] == truth["times_s"][kf["idx"]]
            for name, boxes in rec["key_items"][str(kf["idx"])].items():
                obj = next(o for o in truth["objects"] if o["name"] == name)
                fr = next(f for f in obj["frames"] if f["idx"] == kf["idx"])
                assert np.allclose(np.array(boxes[0]) * 224, fr["box_xyxy"], atol=0.12)
                seen += 1
    assert seen > 0


def test_vstar_items(corpus: SynthResult) -> None:
    items = load(corpus, "vstar.json")
    assert len(items) >= N // 2
    for item in items:
        assert set(item) == VSTAR_KEYS
        start, end = item["timestamps"]
        assert 0 <= start <= end <= 8 and item["fps"] == 10.0 and item["frame_count"] == 80
        names = {o["name"] for o in gt(corpus, item["vid"])["objects"]}
        assert item["answer"].removeprefix("the ") in names
        assert item["bboxes"]
        for b in item["bboxes"]:
            assert isinstance(b["timestamp"], int) and start <= b["timestamp"] <= end
            assert b["frame_index"] == round(b["timestamp"] * item["fps"])
            assert 0 <= b["xmin"] < b["xmax"] <= 224 and 0 <= b["ymin"] < b["ymax"] <= 224
        stamps = [b["timestamp"] for b in item["bboxes"]]
        assert stamps == sorted(set(stamps))
        assert set(stamps) <= set(range(math.ceil(start), math.floor(end) + 1))


def test_worlds_hold_the_difficulty_they_promise(corpus: SynthResult) -> None:
    worlds = [render_world(world_seed(0, i)) for i in range(N)]
    flags: Counter[str] = Counter()
    for w in worlds:
        colours = Counter(t.colour for t in w.tracks)
        shapes = Counter(t.shape for t in w.tracks)
        flags["same colour"] += max(colours.values()) > 1
        flags["same shape"] += max(shapes.values()) > 1
        flags["late"] += any(t.enter_side for t in w.tracks)
        flags["exit"] += any(t.exit_side for t in w.tracks)
        flags["stop"] += any(t.stop for t in w.tracks)
        flags["occlusion"] += bool(w.occlusions)
        assert 3 <= len(w.tracks) <= 6
    assert all(flags[k] >= 2 for k in ("same colour", "same shape", "late", "exit", "stop"))
    assert flags["occlusion"] == N
    letters = Counter(
        r["answer"][0] for r in load(corpus, "stgr_sft.json") + load(corpus, "stgr_rl.json")
        if "MCQ" in r["task"]
    )  # fmt: skip
    assert len(letters) == 4 and max(letters.values()) <= 0.5 * sum(letters.values())


def test_boxes_are_the_tight_boxes_of_the_pixels_in_the_frame() -> None:
    # World 142 of seed 0 has a triangle leaving through the bottom edge: its square still
    # overlaps the frame at frame 48, where none of its pixels does (once a degenerate box).
    for world in (render_world(world_seed(0, 142)), render_world(world_seed(0, 5))):
        w, h = world.size_wh
        for t in world.tracks:
            for k in range(world.num_frames):
                painted = np.zeros((h, w), dtype=bool)
                if t.placed[k]:
                    x0, y0 = (int(v) for v in t.topleft_px[k])
                    spot = placement(x0, y0, shape_mask(t.shape, t.size_px), w, h)
                    if spot is not None:
                        painted[spot[0], spot[1]] = spot[2]
                if not painted.any():
                    assert not t.in_frame[k], (t.name, k)
                    continue
                ys, xs = np.flatnonzero(painted.any(axis=1)), np.flatnonzero(painted.any(axis=0))
                tight = [xs[0], ys[0], xs[-1] + 1, ys[-1] + 1]
                assert t.box_xyxy[k].tolist() == tight, (t.name, k)


def test_objects_sharing_a_key_frame_share_its_entry() -> None:
    world = render_world(world_seed(0, 0))
    ask = QuestionWriter(world, np.random.default_rng(0))
    key = ((5, (0,)), (9, (1,)), (5, (1,)))  # objects 0 and 1 both at frame 5
    rec = _record(Question("temporal-spatial free-form QA", "Q?", "A.", "R", key), ask, "v", True)
    assert [kf["idx"] for kf in rec["key_frames"]] == [5, 9]
    assert list(rec["key_items"]) == ["5", "9"]
    assert list(rec["key_items"]["5"]) == [world.tracks[0].name, world.tracks[1].name]


def test_gradient_background_gives_position_cues_and_keeps_the_objects() -> None:
    flat_cfg = WorldConfig(width=112, height=112, background_noise=0.0)
    grad_cfg = WorldConfig(width=112, height=112, background_noise=0.0, background="gradient")
    flat, grad = render_world(3, flat_cfg), render_world(3, grad_cfg)
    for a, b in zip(flat.tracks, grad.tracks, strict=True):  # the background draws nothing
        assert a.name == b.name and np.array_equal(a.box_xyxy, b.box_xyxy, equal_nan=True)
    diff = grad.background.astype(int) - flat.background.astype(int)
    # Red rises left to right, blue top to bottom, by gradient_amplitude (120) at most.
    assert diff[:, 0, 0].max() == 0 and diff[:, -1, 0].min() > 100
    assert diff[0, :, 2].max() == 0 and diff[-1, :, 2].min() > 100
    assert (diff[:, :, 1] == 0).all()
    assert np.all(np.diff(diff[50, :, 0]) >= 0) and np.all(np.diff(diff[:, 50, 2]) >= 0)


def test_flat_background_is_the_default() -> None:
    assert WorldConfig().background == "flat"
    with pytest.raises(ValueError, match="background"):
        WorldConfig(background="stripes")  # type: ignore[arg-type]


def test_single_object_grounding_stage() -> None:
    """``visual_qa_crowd=1``: one-object worlds get visual QA questions whose answer box is
    the object's own box in the frame shown (the curriculum's first stage)."""
    cfg = WorldConfig(width=56, height=56, duration_s=1, fps=8, num_objects=(1, 1),
                      size_px=(12, 20), min_occlusions=0, late_entry_prob=0, exit_prob=0,
                      background="gradient", visual_qa_crowd=1)  # fmt: skip
    world = render_world(3, cfg)
    (q,) = QuestionWriter(world, np.random.default_rng(0)).visual_qa()
    (track,) = world.tracks
    assert q.question == f"Where is the {track.name} in the image? Answer with its bounding box."
    assert q.reasoning.startswith(f"I look for a{'n' if track.colour[0] in 'aeiou' else ''} "
                                  f"{track.name} among 1 shape.")  # fmt: skip
    assert q.image_k is not None
    x1, y1, x2, y2 = (float(v) for v in track.box_xyxy[q.image_k])
    assert q.answer == f"<obj>{track.name}</obj><box>[{x1:g},{y1:g},{x2:g},{y2:g}]</box>"
    with pytest.raises(ValueError, match="visual_qa_crowd"):
        WorldConfig(visual_qa_crowd=0)
    # The default keeps visual QA a search among at least three shapes.
    three = render_world(3, WorldConfig(num_objects=(1, 1), min_occlusions=0))
    assert QuestionWriter(three, np.random.default_rng(0)).visual_qa() == []


def test_naming_questions_ask_what_the_pixels_alone_decide() -> None:
    cfg = dict(width=112, height=112, duration_s=1, fps=8.0, num_objects=(3, 3),
               same_colour_prob=0.5, same_shape_prob=0.0, min_occlusions=0)  # fmt: skip
    for seed in range(6):
        plain = render_world(seed, WorldConfig(**cfg))  # type: ignore[arg-type]
        world = render_world(seed, WorldConfig(**cfg, naming_qa=True))  # type: ignore[arg-type]
        before = QuestionWriter(plain, np.random.default_rng(0)).general_free()
        after = QuestionWriter(world, np.random.default_rng(0)).general_free()
        assert after[: len(before)] == before  # off by default: nothing else changes
        named = after[len(before) :]
        expected = set()
        for t in world.tracks:
            if sum(u.colour == t.colour for u in world.tracks) == 1:
                expected.add((f"What shape is the {t.colour} object?", t.shape))
            if sum(u.shape == t.shape for u in world.tracks) == 1:
                expected.add((f"What colour is the {t.shape}?", t.colour))
        assert {(q.question, q.answer) for q in named} == expected
        for q in named:  # the reasoning points at the object, at a time it is seen
            (claim,) = parse_trace(f"<think>{q.reasoning}</think><answer>x</answer>").claims
            assert claim.name.endswith(q.answer) or claim.name.startswith(q.answer)
            assert claim.t_s is not None


def test_what_apart_claims_the_answer_where_it_overlaps_nothing() -> None:
    from o3video.data.synthetic import _protocol_records

    cfg = dict(width=112, height=112, duration_s=6, fps=10.0, num_objects=(2, 3),
               background="gradient", size_px=(24, 40), speed_px_s=(10.0, 30.0))  # fmt: skip
    moved = 0
    for seed in range(8):
        outs = {}
        for apart in (False, True):
            world = render_world(seed, WorldConfig(**cfg, what_apart=apart))  # type: ignore[arg-type]
            ask = QuestionWriter(world, np.random.default_rng(0))
            items = ask.vstar(f"v{seed}", SOURCE)
            outs[apart] = (world, ask, items, [r for it in items for r in
                                               _protocol_records(it, ask, f"v{seed}")])  # fmt: skip
        (world, ask, items, plain), (_, _, items2, apart_records) = outs[False], outs[True]
        assert items == items2  # the V-STaR items themselves do not change
        assert len(plain) == len(apart_records)
        for item in items:
            i = next(t.index for t in world.tracks if f"the {t.name}" == item["answer"])
            middle = item["bboxes"][len(item["bboxes"]) // 2]["frame_index"]
            k = ask.apart(i, middle)
            claims = {}
            for name, records in (("plain", plain), ("apart", apart_records)):
                what = [r for r in records if item["question"] in str(r.get("question"))]
                (claim,) = parse_trace(f"<think>{what[0]['reasoning_process']}</think>").claims
                claims[name] = claim
                assert claim.name == world.tracks[i].name
            assert claims["plain"].t_s == world.times_s[middle]
            assert claims["apart"].t_s == world.times_s[middle if k is None else k]
            if k is not None:
                moved += k != middle
                box = world.tracks[i].box_xyxy[k]
                assert world.tracks[i].visible_frac[k] >= 0.9
                for u in world.tracks:
                    if u.index != i and u.in_frame[k]:
                        o = u.box_xyxy[k]
                        assert min(box[2], o[2]) <= max(box[0], o[0]) or \
                            min(box[3], o[3]) <= max(box[1], o[1])  # fmt: skip
            # Every record but the What one is the same.
            rest = [r for r in plain if item["question"] not in str(r.get("question"))]
            rest2 = [r for r in apart_records if item["question"] not in str(r.get("question"))]
            assert rest == rest2
    assert moved >= 3  # the option changes the claimed frame on several of these worlds

"""General benchmarks through the runner: STAR (MCQ, clip windows), Charades-STA (grounding),
MVBench-style frame folders; unparsable answers counted wrong; the CLI with the tiny model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from videos import encode_video

from o3video.cli.main import main
from o3video.eval.bench import finish_benchmark, item_clip, run_benchmark
from o3video.eval.benchmarks import BenchItem
from o3video.eval.runner import RunError, Shard
from o3video.families import get_family
from o3video.models.base import Request, SamplingParams
from o3video.models.card import VideoSettings

QWEN25 = get_family("qwen2_5_vl")


def video(path: Path, seconds: int, rate: int = 5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_video(path, list(range(seconds * rate)), Fraction(1, rate), rate=rate, size_wh=(64, 48))
    return path


def star_record(qid: str, answer: str) -> dict[str, Any]:
    choices = ["The closet/cabinet.", "The cup/glass/bottle.", "The box.", "The book."]
    return {
        "question_id": qid, "question": "Which object was taken by the person?",
        "video_id": "6H78U", "start": 11.1, "end": 19.6, "answer": answer,
        "choices": [{"choice_id": k, "choice": c} for k, c in enumerate(choices)],
    }  # fmt: skip


@pytest.fixture
def star(tmp_path: Path) -> Path:
    root = tmp_path / "STAR"
    root.mkdir()
    recs = [
        star_record("Interaction_T1_13", "The box."),
        star_record("Sequence_T2_89", "The closet/cabinet."),
        star_record("Sequence_T2_90", "The book."),
    ]
    (root / "STAR_val.json").write_text(json.dumps(recs))
    video(root / "Charades_v1_480" / "6H78U.mp4", 21)
    return root


class Scripted:
    """Answers from a table keyed by item id; checks what it is asked."""

    name = "scripted"

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.requests: list[Request] = []

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[str]]:
        assert params.temperature == 0.0
        self.requests.extend(requests)
        return [[self.answers[str(r.id)]] for r in requests]


def test_star_runs_in_its_window_and_counts_unparsable_as_wrong(star: Path, tmp_path: Path) -> None:
    model = Scripted({
        "Interaction_T1_13": "<think>the box</think><answer>(C)</answer>",
        "Sequence_T2_89": "<answer>B</answer>",
        "Sequence_T2_90": "<answer>I cannot tell</answer>",
    })  # fmt: skip
    out = tmp_path / "run"
    _, stats = run_benchmark(model, QWEN25, "star", star, out, batch_size=2)
    assert stats.done == 3 and len(model.requests) == 3
    for r in model.requests:
        assert r.clip is not None and min(r.clip.times_s) >= 11.1 - 0.2
        assert max(r.clip.times_s) <= 19.6 + 0.2
        system = r.messages[0]["content"][0]["text"]
        assert "multiple-choice question" in system
        assert "A. The closet/cabinet." in r.messages[1]["content"][-1]["text"]
    scores = finish_benchmark(out, label="scripted")
    assert (scores["n"], scores["correct"], scores["unparsable"]) == (3, 1, 1)
    assert scores["accuracy"] == pytest.approx(1 / 3)
    saved = json.loads((out / "scores.json").read_text())
    assert saved["benchmark"] == "star" and saved["scores"]["correct"] == 1
    assert "star" in (out / "report.md").read_text()


def test_charades_grounding_and_missing_items(tmp_path: Path) -> None:
    root = tmp_path / "Charades"
    root.mkdir()
    (root / "charades_sta_test.txt").write_text(
        "AO8RW 1.0 5.0##a person opens a door.\nAO8RW 2.0 4.0##a person sits down.\n"
    )
    video(root / "Charades_v1_480" / "AO8RW.mp4", 8)
    model = Scripted({
        "AO8RW#0": "<answer>From <t>1.0</t>s to <t>5.0</t>s</answer>",
        "AO8RW#1": "<answer>From <t>3.0</t>s to <t>5.0</t>s</answer>",
    })  # fmt: skip
    out = tmp_path / "run"
    run_benchmark(model, QWEN25, "charades_sta", root, out, shard=Shard(1, 2))
    with pytest.raises(RunError, match="1 of 2 item"):  # shard 0 has not run
        finish_benchmark(out)
    run_benchmark(model, QWEN25, "charades_sta", root, out, shard=Shard(0, 2))
    scores = finish_benchmark(out)
    # IoU 1 and [2,4] vs [3,5]: 1/3 → mIoU 2/3; R1@0.3 both, @0.5 and @0.7 one
    assert scores["miou"] == pytest.approx(2 / 3)
    assert scores["r1@0.3"] == 1.0 and scores["r1@0.5"] == 0.5
    system = model.requests[0].messages[0]["content"][0]["text"]
    assert "From <t>start_time</t>s" in system


def test_tvgbench_start_end_are_not_a_window(tmp_path: Path) -> None:
    from o3video.eval.grounding import load_tvgbench

    root = tmp_path / "timer1"
    video(root / "videos" / "tvgbench_data" / "v.mp4", 8)
    record = {
        "path": "./dataset/timer1/videos/tvgbench_data/v.mp4", "question": "a person sits.",
        "answer": "0.5-2.5", "start": 4.0, "end": 12.0, "duration": 8.0,
        "dataset_name": "hirest", "qsemtype": "Human Pose",
    }  # fmt: skip
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "tvgbench.json").write_text(json.dumps([record]))
    (item,) = load_tvgbench(root)
    clip = item_clip(item, QWEN25, VideoSettings(fps=1.0, max_frames=8))
    # The whole 8 s video, so the truth (0.5-2.5 s) is shown; not only 4-8 s.
    assert clip.times_s[0] < 1.0 and clip.times_s[-1] > 6.0


def test_frame_folders_are_read_at_their_rate(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(12):
        Image.new("RGB", (64, 48), (k * 20, 0, 0)).save(folder / f"{k:05d}.jpg")
    item = BenchItem("e1", "mvbench", folder, "What?", ("a", "b"), "A", extra={"fps": 3.0})
    clip = item_clip(item, QWEN25, VideoSettings(fps=1.0, max_frames=8))
    # Times are the frames' own (k / 3 s), whichever frames the budget picks.
    assert len(clip.times_s) == 4 and clip.times_s[0] == 0.0
    assert all(abs(3 * t - round(3 * t)) < 1e-9 for t in clip.times_s)
    empty = BenchItem("e2", "mvbench", tmp_path, "What?", ("a", "b"), "A")
    with pytest.raises(RunError, match="no frames"):
        item_clip(empty, QWEN25, VideoSettings())


def test_cli_bench_with_the_tiny_model_then_report(
    star: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from o3video.models.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "run"
    argv = ["eval", "bench", "star", "--root", str(star), "--model", str(model), "--out", str(out)]
    assert main([*argv, "--max-new-tokens", "6", "--max-frames", "4", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    # A random model's text names no option: every answer unparsable, counted wrong.
    assert printed["n"] == 3 and printed["unparsable"] == 3
    assert printed["accuracy"] == 0.0
    assert main(["eval", "report", str(out), "--out", str(tmp_path / "rep"), "--no-plot"]) == 0
    assert "star" in capsys.readouterr().out

"""The V-STaR pipeline: prompts, a scripted model answering right scores ~1, the CLI end to end
with the tiny model, resume/settings checks, shards + merge, and per-item failures."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from o3video.cli.main import main
from o3video.data.synthetic import SynthResult, synthesize
from o3video.data.vstar import VStarBox, VStarItem, load_vstar
from o3video.eval.judge import ExactMatchJudge
from o3video.eval.runner import read_records, read_run_json
from o3video.eval.vstar import (
    RunError,
    Sampling,
    answer_part,
    finish,
    load_items,
    run_vstar,
    score_config_for,
)
from o3video.families import get_family
from o3video.models.base import Request, SamplingParams
from o3video.models.card import VideoSettings
from o3video.protocols.vstar import item_prompts, whole_seconds

QWEN25 = get_family("qwen2_5_vl")
QWEN3 = get_family("qwen3_vl")


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synthesize(tmp_path_factory.mktemp("synth"), 4, seed=1000)


def _item(**kw: Any) -> VStarItem:
    base: dict[str, Any] = dict(
        index=0, vid="v", domain="d", fps=10.0, width=1280, height=720, frame_count=100,
        question="Which shape stops?", answer="the red circle",
        temporal_question="When does the red circle stop?", span_s=(1.5, 4.0),
        spatial_question="Where is the red circle while it stops?",
        spatial_question_2="Where is the red circle stopping?",
        boxes=(VStarBox(2, 20, (0.0, 0.0, 640.0, 360.0)), VStarBox(3, 30, (640.0, 0, 1280, 720))),
    )  # fmt: skip
    base.update(kw)
    return VStarItem(**base)


def test_five_prompts_ask_the_right_seconds_and_show_boxes_in_the_model_space() -> None:
    item = _item()
    prompts = item_prompts(item, QWEN25, (420, 224))
    assert [k for k, _, _ in prompts] == ["what", "when_1", "where_1", "where_2", "when_2"]
    texts = {k: text for k, _, text in prompts}
    assert texts["what"] == "Which shape stops?"
    assert texts["when_1"] == "When does the red circle stop?"
    assert whole_seconds(item.span_s) == [2, 3, 4]
    assert "at each of these seconds: 2, 3, 4." in texts["where_1"]
    assert "pixels of the 420x224 frames" in texts["where_1"]
    assert "Give 2 bounding boxes" in texts["where_2"]
    # 1280x720 → 420x224: (0,0,640,360) → (0,0,210,112), (640,0,1280,720) → (210,0,420,224)
    assert "[0, 0, 210, 112], [210, 0, 420, 224]" in texts["when_2"]
    qwen3 = {k: text for k, _, text in item_prompts(item, QWEN3, (416, 224))}
    assert "[0, 0, 500, 500], [500, 0, 1000, 1000]" in qwen3["when_2"]
    assert "0-1000 scale" in qwen3["where_1"]
    systems = {k: system for k, system, _ in prompts}
    assert "From <t>start_time</t>s to <t>end_time</t>s" in systems["when_1"]
    assert "JSON object that maps each second" in systems["where_1"]


def test_answer_part() -> None:
    assert answer_part("<think>hm</think><answer>From 1 to 2</answer>") == "From 1 to 2"
    assert answer_part("  no tags ") == "no tags"
    # No <answer>: the think is not part of the answer (it used to read as (9, 2)).
    assert answer_part("<think>at <t>9</t>s</think>From 2 to 5") == "From 2 to 5"


class Oracle:
    """A scripted model that answers every V-STaR prompt right (boxes in its family's space),
    reading the item from the request id; it can fail on chosen items."""

    name = "oracle"

    def __init__(
        self,
        items: Sequence[VStarItem],
        family: Any,
        fail: set[int] = set(),  # noqa: B006
        shrink: float = 1.0,
    ) -> None:
        self.items = {f"{i.index}:{i.vid}": i for i in items}
        self.family = family
        self.fail = fail
        self.shrink = shrink  # boxes this share of the truth's width and height (top left)
        self.requests = 0

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[str]]:
        self.params = params
        out = []
        for r in requests:
            assert r.id is not None and r.clip is not None
            self.requests += 1
            index, vid, key = r.id.split(":")
            if int(index) in self.fail:
                raise RuntimeError(f"boom on {index}")
            item = self.items[f"{index}:{vid}"]
            out.append([f"<think>ok</think><answer>{self.answer(item, key, r)}</answer>"])
        return out

    def answer(self, item: VStarItem, key: str, r: Request) -> str:
        a, b = item.span_s
        if key == "what":
            return item.answer
        if key.startswith("when"):
            return f"From <t>{a}</t>s to <t>{b}</t>s"
        boxes = {}
        for box in item.boxes:
            x1, y1, x2, y2 = box.xyxy
            x2, y2 = x1 + (x2 - x1) * self.shrink, y1 + (y2 - y1) * self.shrink
            model = self.family.from_source_box(
                (x1, y1, x2, y2), source_wh=item.frame_wh, frame_wh=r.clip.frame_wh
            )
            boxes[str(box.timestamp_s)] = [round(v, 3) for v in model]
        return json.dumps(boxes)


def test_a_model_answering_right_scores_about_one(synth: SynthResult, tmp_path: Path) -> None:
    data = synth.out_dir / "vstar.json"
    items = load_items(data, synth.out_dir)
    oracle = Oracle(items, QWEN25)
    done_items, stats = run_vstar(oracle, QWEN25, data, tmp_path, batch_size=2)
    assert stats.done == len(items) == len(done_items) and oracle.requests == 5 * len(items)
    cfg = score_config_for(QWEN25, VideoSettings(), "default")
    result = finish(tmp_path, items, ExactMatchJudge(), cfg, label="oracle")
    o = result.scores.overall
    assert o.acc == 1.0 and o.tiou == (1.0, 1.0)
    assert o.viou[0] == pytest.approx(1.0, abs=0.02) and o.viou[1] == pytest.approx(1.0, abs=0.02)
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert saved["benchmark"] == "vstar" and saved["label"] == "oracle"
    assert saved["scores"]["mam"] == pytest.approx(o.mam)
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results) == len(items) and results[0]["answer_vqa"] == items[0].answer
    assert json.loads((tmp_path / "judgements.json").read_text()) == [3] * len(items)
    # The results file holds parsed values, as the reference pipeline writes them: a perfect
    # reply scores 1.0 on When and Where in official mode too (boxes in original pixels).
    first = results[0]
    assert first["answer_temporal"] == list(items[0].span_s)
    assert first["answer_temporal_pre"].startswith("<think>ok</think><answer>From <t>")
    assert set(first["answer_spatial"]) == {str(b.timestamp_s) for b in items[0].boxes}
    assert first["box_space"] == "frame_px" and len(first["input_shape"]) == 2
    official = finish(
        tmp_path, items, ExactMatchJudge(), score_config_for(QWEN25, VideoSettings(), "official")
    )
    oo = official.scores.overall
    assert oo.acc == 1.0 and oo.tiou == (1.0, 1.0)
    assert oo.viou[0] == pytest.approx(1.0, abs=0.02) and oo.viou[1] == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("mode", ["default", "official"])
def test_vstar_score_of_the_results_file_reproduces_the_run(
    synth: SynthResult, tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    data = synth.out_dir / "vstar.json"
    items = load_items(data, synth.out_dir)
    run_vstar(Oracle(items, QWEN25, shrink=0.8), QWEN25, data, tmp_path, batch_size=2)
    finish(tmp_path, items, ExactMatchJudge(), score_config_for(QWEN25, VideoSettings(), mode))
    saved = json.loads((tmp_path / "scores.json").read_text())["scores"]
    capsys.readouterr()
    argv = ["eval", "vstar-score", str(tmp_path / "results.json")]
    argv += ["--judgements", str(tmp_path / "judgements.json"), "--mode", mode, "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == saved
    assert 0.3 < saved["viou_1"] < 0.9  # boxes 0.8 the size of the truth: not trivially 0 or 1


def test_resume_refuses_other_settings_and_finish_needs_every_item(
    synth: SynthResult, tmp_path: Path
) -> None:
    data = synth.out_dir / "vstar.json"
    items = load_items(data, synth.out_dir)
    run_vstar(Oracle(items, QWEN25), QWEN25, data, tmp_path, limit=2)
    again = Oracle(items, QWEN25)
    run_vstar(again, QWEN25, data, tmp_path, limit=3)  # a larger limit resumes
    assert again.requests == 5
    with pytest.raises(RunError, match="max_new_tokens: 512 there, 64 now"):
        run_vstar(Oracle(items, QWEN25), QWEN25, data, tmp_path, max_new_tokens=64)
    with pytest.raises(RunError, match="1 of 4 item"):
        finish(
            tmp_path, items, ExactMatchJudge(), score_config_for(QWEN25, VideoSettings(), "default")
        )


def test_a_sampled_run_passes_its_sampling_and_keeps_it_in_run_json(
    synth: SynthResult, tmp_path: Path
) -> None:
    data = synth.out_dir / "vstar.json"
    items = load_items(data, synth.out_dir)
    greedy = Oracle(items, QWEN25)
    run_vstar(greedy, QWEN25, data, tmp_path / "greedy", limit=1)
    assert (greedy.params.temperature, greedy.params.top_p, greedy.params.seed) == (0.0, 1.0, 0)
    assert read_run_json(tmp_path / "greedy")["settings"]["sampling"] is None
    sampled = Oracle(items, QWEN25)
    run_vstar(sampled, QWEN25, data, tmp_path / "t1", limit=1, sampling=Sampling(1.0, 0.95, 3))
    p = sampled.params
    assert (p.temperature, p.top_p, p.seed, p.n) == (1.0, 0.95, 3, 1)
    settings = read_run_json(tmp_path / "t1")["settings"]
    assert settings["sampling"] == {"temperature": 1.0, "top_p": 0.95, "seed": 3}
    with pytest.raises(RunError, match="sampling: "):  # another seed is another run
        run_vstar(Oracle(items, QWEN25), QWEN25, data, tmp_path / "t1", limit=1,
                  sampling=Sampling(1.0, 0.95, 4))  # fmt: skip
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        Sampling(0.0)
    with pytest.raises(ValueError, match="top_p must be in"):
        Sampling(1.0, top_p=0.0)


def test_a_failing_item_is_recorded_then_retried(synth: SynthResult, tmp_path: Path) -> None:
    data = synth.out_dir / "vstar.json"
    items = load_items(data, synth.out_dir)
    bad = items[1].index
    _, stats = run_vstar(Oracle(items, QWEN25, fail={bad}), QWEN25, data, tmp_path, batch_size=2)
    assert stats.errors == 1
    record = read_records(tmp_path / "items.jsonl")[f"{bad}:{items[1].vid}"]
    assert record["status"] == "error" and f"boom on {bad}" in record["error"]
    with pytest.raises(RunError, match="ended in error"):
        finish(
            tmp_path, items, ExactMatchJudge(), score_config_for(QWEN25, VideoSettings(), "default")
        )
    _, stats = run_vstar(Oracle(items, QWEN25), QWEN25, data, tmp_path, retry_errors=True)
    assert stats.done == 1
    finish(tmp_path, items, ExactMatchJudge(), score_config_for(QWEN25, VideoSettings(), "default"))


def test_cli_runs_the_tiny_model_end_to_end(synth: SynthResult, tmp_path: Path) -> None:
    from o3video.models.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "run"
    argv = ["eval", "vstar", "--model", str(model), "--data", str(synth.out_dir), "--out", str(out)]
    argv += ["--max-new-tokens", "8", "--max-frames", "4", "--limit", "2", "--json"]
    assert main(argv) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["scores"]["n"] == 2 and scores["judge"] == "exact"
    assert {"acc", "tiou_1", "viou_2", "mam", "mlgm"} <= set(scores["scores"])
    assert "V-STaR (default)" in (out / "report.md").read_text()
    records = list(read_records(out / "items.jsonl").values())
    assert len(records) == 2 and set(records[0]["raw"]) == {
        "what", "when_1", "where_1", "where_2", "when_2"
    }  # fmt: skip
    assert records[0]["timings"]["generate_s"] > 0
    # The same command again: nothing to run, the same scores.
    assert main(argv) == 0
    assert len((out / "items.jsonl").read_text().splitlines()) == 2


def test_cli_shards_then_merge(
    synth: SynthResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from o3video.models.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "run"
    base = ["eval", "vstar", "--model", str(model), "--data", str(synth.out_dir / "vstar.json")]
    base += ["--out", str(out), "--max-new-tokens", "4", "--max-frames", "4"]
    assert main([*base, "--shard", "0/2"]) == 0
    assert "o3video eval merge" in capsys.readouterr().err
    assert main(["eval", "merge", str(out)]) == 1  # shard 1 is missing
    assert "have no record yet" in capsys.readouterr().err
    assert main([*base, "--shard", "1/2"]) == 0
    assert main(["eval", "merge", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n"] == len(load_vstar(synth.out_dir / "vstar.json"))


def test_cli_real_vstar_data_needs_a_judge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from o3video.cli.eval_vstar import resolve_data

    (tmp_path / "V_STaR_test.json").write_text("[]")
    file, root, synthetic = resolve_data(tmp_path, None)
    assert (file.name, root, synthetic) == ("V_STaR_test.json", tmp_path, False)
    assert (
        main(
            [
                "eval",
                "vstar",
                "--model",
                "x",
                "--data",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    assert "no such file or folder" in capsys.readouterr().err


def test_cli_refuses_sampling_options_it_cannot_use_before_loading_a_model(
    synth: SynthResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["eval", "vstar", "--model", str(tmp_path / "no-model"), "--data", str(synth.out_dir)]
    run += ["--out", str(tmp_path / "o")]
    assert main([*run, "--seed", "3"]) == 1
    assert "--top-p and --seed need --temperature" in capsys.readouterr().err
    assert main([*run, "--temperature", "1", "--top-p", "1.5"]) == 1
    assert "top_p must be in (0, 1]" in capsys.readouterr().err
    assert main([*run, "--temperature", "-1"]) == 1
    assert "temperature must be a finite number > 0" in capsys.readouterr().err


def test_cli_takes_the_frame_budget_from_the_model_card(synth: SynthResult, tmp_path: Path) -> None:
    from o3video.models.card import write_card
    from o3video.models.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    write_card(model, VideoSettings(fps=1.0, min_frames=2, max_frames=3, max_pixels=6272))
    out = tmp_path / "run"
    argv = ["eval", "vstar", "--model", str(model), "--data", str(synth.out_dir), "--out", str(out)]
    assert main([*argv, "--limit", "1", "--max-new-tokens", "2", "--max-pixels", "12544"]) == 0
    video = json.loads((out / "run.json").read_text())["settings"]["video"]
    # The card's budget, except what the command line says.
    assert video == {
        "fps": 1.0, "min_frames": 2, "max_frames": 3, "min_pixels": 3136, "max_pixels": 12544,
        "sampler": "true_time",
    }  # fmt: skip


def test_constant_baseline_is_scored_like_a_run(
    synth: SynthResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from o3video.eval.baselines import constant_answers, constant_results

    items = load_items(synth.out_dir / "vstar.json", synth.out_dir)
    answer, span, box = constant_answers(items)
    assert span[0] < span[1]
    raw = json.loads((synth.out_dir / "vstar.json").read_text())
    results = constant_results([raw[i.index] for i in items], items, items)
    first = results[0]
    assert first["answer_vqa"] == answer and first["answer_temporal"] == first["answer_temporal_2"]
    asked = whole_seconds(items[0].span_s)
    assert json.loads(first["answer_spatial"]) == {str(s): box for s in asked}
    assert len(json.loads(first["answer_spatial_2"])) == len(items[0].boxes)
    out = tmp_path / "base"
    argv = ["eval", "vstar-baseline", "--train", str(synth.out_dir), "--data", str(synth.out_dir)]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "scores.json").read_text())
    assert saved["label"] == "constant baseline" and saved["scores"]["mam"] == printed["mam"]
    assert 0.0 <= printed["mam"] < 1.0


def test_cli_runs_a_model_without_card_under_the_reference_protocol(
    synth: SynthResult, tmp_path: Path
) -> None:
    from o3video.models.tiny import build_tiny_model
    from o3video.protocols.vstar import REFERENCE_VIDEO

    model = build_tiny_model(tmp_path / "tiny")
    assert not (model / "o3video.json").exists()
    out = tmp_path / "run"
    argv = ["eval", "vstar", "--model", str(model), "--data", str(synth.out_dir), "--out", str(out)]
    assert main([*argv, "--limit", "1", "--max-new-tokens", "2"]) == 0
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["protocol"] == "reference"
    assert settings["video"] == dataclasses.asdict(REFERENCE_VIDEO)
    assert json.loads((out / "scores.json").read_text())["protocol"] == "reference"
    assert "- protocol: reference," in (out / "report.md").read_text()
    # The same folder under another protocol is another run: it refuses to resume.
    assert main([*argv, "--limit", "1", "--max-new-tokens", "2", "--protocol", "o3video"]) == 1


def test_a_perfect_run_under_the_reference_protocol_scores_one_officially(
    synth: SynthResult, tmp_path: Path
) -> None:
    data = synth.out_dir / "vstar.json"
    items = load_items(data, synth.out_dir)[:2]
    oracle = Oracle(items, QWEN25)
    run_vstar(oracle, QWEN25, data, tmp_path, limit=2, protocol="reference")
    assert json.loads((tmp_path / "run.json").read_text())["settings"]["protocol"] == "reference"
    official = finish(
        tmp_path, items, ExactMatchJudge(), score_config_for(QWEN25, VideoSettings(), "official")
    )
    o = official.scores.overall
    assert o.acc == 1.0 and o.tiou == (1.0, 1.0)
    assert o.viou[0] == pytest.approx(1.0, abs=0.02) and o.viou[1] == pytest.approx(1.0, abs=0.02)

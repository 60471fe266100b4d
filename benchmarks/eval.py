"""Benchmarks of evaluation: scoring V-STaR with cached judgements, the runner's overhead, and
a backend's V-STaR throughput (items/min, generated tokens/s) on a GPU.

    .venv/bin/python benchmarks/eval.py                      # score and runner
    .venv/bin/python benchmarks/eval.py --only score [--items 2000] [--repeats 3]
    .venv/bin/python benchmarks/eval.py --only runner [--items 8] [--max-new-tokens 64]
    # vLLM on a GPU: the reference setting (max_num_seqs 5, one item at a time), then o3video's
    .venv/bin/python benchmarks/eval.py --only backend --backend vllm --model DIR --data SYNTH \
        --items 64 --batch-size 1 --max-num-seqs 5
    .venv/bin/python benchmarks/eval.py --only backend --backend vllm --model DIR --data SYNTH \
        --items 64 --batch-size 16
    .venv/bin/python benchmarks/eval.py --only backend --dry-run   # CPU: the tiny model, 2 items

**backend** — ``run_vstar`` with ``--backend`` (``hf`` or ``vllm``) on ``--model`` and the
first ``--items`` items of ``--data`` (a synthetic corpus of ``o3video data synth``; 16 frames
per item), ``--batch-size`` items per ``generate`` call (five requests each), greedy with the
protocol's token budget. ``--max-num-seqs`` goes to the vLLM engine (the reference evaluation
ran vLLM with ``max_num_seqs=5``, one process per GPU). Prints items/min and generated
tokens/s (replies re-tokenized with the model's tokenizer). ``--dry-run`` runs the same code
with the ``hf`` backend on the tiny random model and 2 synthetic items, so the script is
checked on a machine without a GPU or vLLM.

**score** — ``--items`` V-STaR results (boxes at 2–12 whole seconds per item, answers with
noise: shifted spans, jittered boxes, some missing seconds, fenced JSON, ``mm:ss`` times, a few
unparsable answers), judged by an :class:`~o3video.eval.judge.LLMJudge` whose every rating is
already in its on-disk cache (its backend raises if called), then scored by ``score_vstar`` in
both modes. Timed: judge (cache read + lookups) + scoring, best of ``--repeats``. Target:
2,000 items in < 2 s.

**runner** — ``run_vstar`` with the tiny random Qwen2.5-VL (``build_tiny_model``) on a
synthetic V-STaR corpus (``--items`` videos, 16 frames each at the default budget), greedy,
``--max-new-tokens`` per reply, so every reply runs to the limit. From the per-item timings in
``items.jsonl`` and the runner's stats: generation (``backend.generate``), video decoding,
and the runner's own overhead = wall time − generation − decoding (request building, parsing,
JSON lines, resume bookkeeping). Target: overhead < 5 % of generation time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCORE_TARGET_S = 2.0
OVERHEAD_TARGET = 0.05


def _results(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        w, h = rng.choice([(1280, 720), (640, 360), (1920, 1080), (224, 224)])
        fps = rng.choice([24.0, 25.0, 29.97, 30.0])
        duration = rng.uniform(20, 300)
        a = rng.uniform(0, duration - 15)
        b = a + rng.uniform(2, 12)
        boxes, answer = [], {}
        for sec in range(int(a) + 1, int(b) + 1):
            x, y = rng.uniform(0, w * 0.7), rng.uniform(0, h * 0.7)
            box = [x, y, x + rng.uniform(10, w * 0.3), y + rng.uniform(10, h * 0.3)]
            boxes.append(
                {"timestamp": sec, "frame_index": round(sec * fps), "xmin": box[0],
                 "ymin": box[1], "xmax": box[2], "ymax": box[3]}
            )  # fmt: skip
            if rng.random() < 0.85:
                answer[str(sec)] = [round(v + rng.gauss(0, 15), 1) for v in box]
        jitter = rng.gauss(0, 2)
        span = f"From <t>{a + jitter:.1f}</t>s to <t>{b + rng.gauss(0, 2):.1f}</t>s"
        clock = f"{int(a) // 60}:{int(a) % 60:02d} - {int(b) // 60}:{int(b) % 60:02d}"
        box_text = json.dumps(answer)
        out.append({
            "vid": f"v{i}", "domain": rng.choice(["sports", "cooking", "street"]), "fps": fps,
            "width": w, "height": h, "frame_count": int(duration * fps),
            "question": f"What does person {i} hold?", "answer": f"a {rng.choice('abc')} ball",
            "temporal_question": "When?", "timestamps": [a, b], "spatial_question": "Where?",
            "spatial_question_2": "Where 2?", "bboxes": boxes,
            "answer_vqa": "" if rng.random() < 0.02 else f"a {rng.choice('abcd')} ball",
            "answer_temporal": span if rng.random() < 0.9 else "I don't know",
            "answer_temporal_2": clock,
            "answer_spatial": box_text if rng.random() < 0.5 else f"```json\n{box_text}\n```",
            "answer_spatial_2": box_text,
        })  # fmt: skip
    return out


class _Unreachable:
    name = "judge-under-test"

    def generate(self, requests: Sequence[Any], params: Any) -> list[list[str]]:
        raise AssertionError("every rating should come from the cache")


def bench_score(n: int, repeats: int) -> dict[str, Any]:
    from o3video.eval.judge import JudgeItem, LLMJudge, RatingCache, cache_key
    from o3video.eval.vstar_score import ScoreConfig, score_vstar

    results = _results(n, seed=0)
    items = [JudgeItem(r["question"], r["answer"], r["answer_vqa"]) for r in results]
    with tempfile.TemporaryDirectory() as tmp:
        cache_path = Path(tmp) / "judge_cache.jsonl"
        backend = _Unreachable()
        rng = random.Random(1)
        RatingCache(cache_path).put_many(
            [
                (cache_key(backend.name, it), rng.choice([0, 1, 2, 3, -1]), "n")
                for it in items
                if it.prediction
            ]
        )
        best: dict[str, float] = {}
        for _ in range(repeats):
            t0 = time.perf_counter()
            judge = LLMJudge(backend, cache=cache_path)  # reads the cache file
            ratings = judge.rate(items)
            t1 = time.perf_counter()
            default = score_vstar(results, ratings, ScoreConfig(mode="default"))
            t2 = time.perf_counter()
            score_vstar(results, ratings, ScoreConfig(mode="official"))
            t3 = time.perf_counter()
            for key, value in (
                ("judge_cached_s", t1 - t0),
                ("score_default_s", t2 - t1),
                ("score_official_s", t3 - t2),
                ("judge_plus_default_s", t2 - t0),
            ):
                best[key] = min(best.get(key, float("inf")), value)
        assert judge.stats.called == 0, judge.stats
    return {
        "items": n,
        **{k: round(v, 4) for k, v in best.items()},
        "mam_default": round(default.overall.mam or 0.0, 4),
        "target_s": SCORE_TARGET_S,
        "met": best["judge_plus_default_s"] < SCORE_TARGET_S,
    }


def bench_runner(n: int, max_new_tokens: int) -> dict[str, Any]:
    import torch

    from o3video.data.synthetic import synthesize
    from o3video.eval.runner import read_records
    from o3video.eval.vstar import VideoSettings, run_vstar
    from o3video.models.load import load_backend
    from o3video.models.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthesize(root / "synth", n, seed=1000, workers=1)
        backend: Any = load_backend(build_tiny_model(root / "tiny"), "hf")
        video = VideoSettings(max_frames=16)
        items, stats = run_vstar(
            backend,
            backend.family,
            root / "synth" / "vstar.json",
            root / "run",
            video=video,
            max_new_tokens=max_new_tokens,
        )
        records = list(read_records(root / "run" / "items.jsonl").values())
    gen = sum(r["timings"]["generate_s"] for r in records)
    decode = sum(r["timings"]["decode_s"] for r in records)
    overhead = stats.wall_s - gen - decode
    return {
        "items": len(items),
        "torch_threads": torch.get_num_threads(),
        "max_new_tokens": max_new_tokens,
        "wall_s": round(stats.wall_s, 3),
        "generate_s": round(gen, 3),
        "decode_s": round(decode, 3),
        "overhead_s": round(overhead, 3),
        "generate_s_per_item": round(gen / len(records), 3),
        "overhead_s_per_item": round(overhead / len(records), 4),
        "overhead_over_generate": round(overhead / gen, 4),
        "decode_over_generate": round(decode / gen, 4),
        "target": OVERHEAD_TARGET,
        "met": overhead / gen < OVERHEAD_TARGET,
    }


def bench_backend(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from o3video.data.synthetic import synthesize
    from o3video.eval.runner import read_records
    from o3video.eval.vstar import VideoSettings, run_vstar
    from o3video.models.load import load_backend
    from o3video.models.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        backend_kind, model, data, items = args.backend, args.model, args.data, args.items
        options: dict[str, Any] = {}
        if args.dry_run:
            backend_kind, items = "hf", 2
            model = build_tiny_model(root / "tiny")
            synthesize(root / "synth", items, seed=1000, workers=1)
            data = root / "synth"
            options["max_batch"] = 5 * args.batch_size
        elif model is None or data is None:
            raise SystemExit("--only backend needs --model and --data (or --dry-run)")
        elif backend_kind == "vllm":
            if args.max_num_seqs is not None:
                options["max_num_seqs"] = args.max_num_seqs
        else:
            options["max_batch"] = 5 * args.batch_size
        t0 = time.perf_counter()
        backend: Any = load_backend(model, backend_kind, **options)
        load_s = time.perf_counter() - t0
        _, stats = run_vstar(
            backend,
            backend.family,
            Path(data) / "vstar.json",
            root / "run",
            video=VideoSettings(max_frames=16),
            batch_size=args.batch_size,
            limit=items,
            max_new_tokens=8 if args.dry_run else None,
        )
        records = list(read_records(root / "run" / "items.jsonl").values())
        tokenizer = AutoTokenizer.from_pretrained(model)
        replies = [text for r in records for text in r["raw"].values()]
        tokens = sum(len(tokenizer(text)["input_ids"]) for text in replies)
    return {
        "backend": backend_kind,
        "dry_run": args.dry_run,
        "model": str(model),
        "options": options,
        "items": stats.done,
        "errors": stats.errors,
        "batch_size": args.batch_size,
        "load_s": round(load_s, 2),
        "wall_s": round(stats.wall_s, 2),
        "items_per_min": round(60 * stats.done / stats.wall_s, 2),
        "generated_tokens": tokens,
        "tokens_per_s": round(tokens / stats.wall_s, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--only", choices=("score", "runner", "backend"), default=None)
    p.add_argument("--backend", choices=("hf", "vllm"), default="hf", help="backend: which")
    p.add_argument("--model", default=None, help="backend: checkpoint directory")
    p.add_argument("--data", type=Path, default=None, help="backend: synthetic corpus folder")
    p.add_argument("--batch-size", type=int, default=16, help="backend: items per call")
    p.add_argument("--max-num-seqs", type=int, default=None, help="backend vllm: engine limit")
    p.add_argument("--dry-run", action="store_true", help="backend: tiny model on CPU")
    p.add_argument("--items", type=int, default=None, help="score: 2000; runner: 8")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=64)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    if args.only in (None, "score"):
        print("score:", json.dumps(bench_score(args.items or 2000, args.repeats)))
    if args.only in (None, "runner"):
        print("runner:", json.dumps(bench_runner(args.items or 8, args.max_new_tokens)))
    if args.only == "backend":
        print("backend:", json.dumps(bench_backend(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

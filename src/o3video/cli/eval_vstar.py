"""`o3video eval vstar` and `o3video eval merge`: run a model on V-STaR, resumably.

``eval vstar`` asks the five questions of every item (SPEC §7; :mod:`o3video.eval.vstar`)
and appends one JSON line per finished item to ``RUN_DIR/items.jsonl``; running the same
command again resumes where it stopped. ``--shard i/n`` runs every n-th item (from item i,
0-based) into its own file, so that n processes or GPUs share the work; ``eval merge RUN_DIR``
then joins the shards. When every item has a record, the What answers are judged, the run is
scored and ``results.json`` (official format), ``judgements.json``, ``scores.json`` and
``report.md`` are written.

``--data`` is a V-STaR file (``V_STaR_test.json``, videos under ``--videos``, default its
folder) or a folder holding one: a synthetic corpus (``o3video data synth``; its
``vstar.json``, judged by exact match) or the dataset's folder (``V_STaR_test.json`` and
``videos/``). Real V-STaR needs an LLM judge: ``--judge MODEL`` (the official one is
Qwen2.5-72B-Instruct, e.g. served: ``--judge-backend openai --judge-base-url URL``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from o3video.cli import finite_float
from o3video.cli._model import add_model_arguments, backend_options
from o3video.cli._progress import ProgressLine, format_duration
from o3video.errors import DataError
from o3video.eval.judge import Judge, make_judge
from o3video.eval.runner import RunError, RunStats, Shard, read_run_json
from o3video.eval.vstar import (
    Sampling,
    finish,
    run_items_of,
    run_vstar,
    score_config_for,
)
from o3video.families import ModelFamily, get_family
from o3video.models.base import Backend
from o3video.models.card import VideoSettings, video_settings
from o3video.protocols import INFERENCE_PROTOCOLS, protocol_for_model
from o3video.protocols.vstar import GENERATIONS
from o3video.video import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS

RUN_EXAMPLES = """examples:
  o3video data synth --out runs/synth-eval --n 20 --seed 1000
  o3video eval vstar --model runs/synthetic-tiny-gspo/final --data runs/synth-eval \\
      --out runs/eval/tiny-gspo
  o3video eval vstar --model runs/synthetic-tiny-gspo/final --data runs/synth-eval \\
      --temperature 1.0 --top-p 0.95 --seed 1 --out runs/eval/tiny-gspo-t1-s1   # sampled
  o3video eval vstar --model ckpt/ --data V-STaR/ --judge Qwen/Qwen2.5-72B-Instruct \\
      --judge-backend openai --judge-base-url http://127.0.0.1:8000/v1 --out runs/eval/7b
  for i in 0 1 2 3; do CUDA_VISIBLE_DEVICES=$i o3video eval vstar --model ckpt/ \\
      --data V-STaR/ --backend vllm --shard $i/4 --out runs/eval/7b & done; wait
  o3video eval merge runs/eval/7b --judge Qwen/Qwen2.5-72B-Instruct --judge-backend openai \\
      --judge-base-url http://127.0.0.1:8000/v1
"""

BENCH_DESCRIPTION = """`o3video eval bench NAME`: run a model on a general benchmark, resumably.

NAME is one of the registered benchmarks (:mod:`o3video.eval.benchmarks`): the multiple-choice
and open ones (VideoMME, WorldSense, VideoMMMU, MVBench, STAR; accuracy per group) and the
temporal-grounding ones (Charades-STA, TVGBench; mIoU and R1@{0.3,0.5,0.7}). ``--root`` is the
benchmark's folder or annotation file, ``--videos`` its video folder when it is elsewhere.
Each item is asked once (greedy) and one JSON line per item is appended to
``RUN_DIR/items.jsonl``: running the command again resumes; ``--shard i/n`` splits the work
and ``eval merge RUN_DIR`` joins the shards. When every item has a record, ``scores.json``
and ``report.md`` are written. Loading is strict: a malformed record stops the run naming
its file, index and field, so that no question silently leaves the denominator.

``--protocol``: ``reference`` asks VideoMME, WorldSense and VideoMMMU as the reference
evaluation scripts did (one native video at 2 fps, 4 to 64 frames, their own question texts,
no system prompt of its own) and the others with the reference RL-stage prompt; ``o3video``
with this project's task prompts and true frame times. Default: the model card's protocol,
else ``reference``. The run records it in run.json and scores.json.
``--show-prompts N`` prints the first N items' fully rendered requests (needs only the
processor files, no weights) and exits.
"""

BENCH_EXAMPLES = """examples:
  o3video eval bench videomme --root data/Video-MME --model ckpt/ --out runs/eval/videomme
  o3video eval bench videomme --root data/Video-MME --show-prompts 1 \\
      --model ../shared/reference-data/qwen/qwen2_5_vl_7b_instruct --protocol reference
  o3video eval bench charades_sta --root data/Charades-STA/charades_sta_test.txt \\
      --videos data/Charades_v1_480 --model ckpt/ --backend vllm --out runs/eval/charades
  o3video eval bench mvbench --root data/MVBench --model ckpt/ --shard 0/2 --out runs/eval/mvb
  o3video eval merge runs/eval/mvb
"""

MERGE_EXAMPLES = """examples:
  o3video eval merge runs/eval/7b --judge exact
  o3video eval merge runs/eval/7b --judge Qwen/Qwen2.5-72B-Instruct --mode official
"""


def _judge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--judge",
        default=None,
        help="'exact' (synthetic world) or the judge model; default: exact for synthetic data",
    )
    p.add_argument("--judge-backend", choices=("hf", "vllm", "openai"), default="hf")
    p.add_argument("--judge-base-url", default=None, help="openai judge: http://host:port/v1")
    p.add_argument("--mode", choices=("default", "official"), default="default")
    p.add_argument("--label", default=None, help="the run's name in reports")
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")


def _runner_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", type=Path, default=None, help="the run folder (resumable); needed to run"
    )
    p.add_argument("--shard", type=Shard.parse, default=Shard(), help="i/n: this process's share")
    p.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="items per generate call (V-STaR: their five questions each in one batch)",
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N items")
    p.add_argument("--retry-errors", action="store_true", help="run failed items again")
    frames = "default: the model's o3video.json, else "
    p.add_argument("--fps", type=finite_float, default=None, help=frames + "2")
    p.add_argument("--max-frames", type=int, default=None, help=frames + "16")
    p.add_argument("--min-frames", type=int, default=None, help=frames + "4")
    p.add_argument("--max-pixels", type=int, default=None, help=frames + str(DEFAULT_MAX_PIXELS))
    p.add_argument("--min-pixels", type=int, default=None, help=frames + str(DEFAULT_MIN_PIXELS))
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="default: 2048 under the reference protocol (its V-STaR setting), else 512",
    )
    p.add_argument(
        "--protocol",
        choices=INFERENCE_PROTOCOLS,
        default=None,
        help="prompts, frames and boxes: 'reference' (what the released checkpoint was "
        "evaluated with) or 'o3video'; default: the model card's, else reference",
    )
    p.add_argument(
        "--show-prompts",
        type=int,
        default=None,
        metavar="N",
        help="print the first N items' fully rendered requests (chat template applied, vision "
        "tokens counted) and exit; loads only the processor files, no weights",
    )


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--data", type=Path, required=True, help="V-STaR file or folder")
    p.add_argument("--videos", type=Path, default=None, help="video folder (default: --data's)")
    _runner_arguments(p)
    p.add_argument(
        "--temperature",
        type=finite_float,
        default=None,
        help="sample one reply per prompt at this temperature (> 0) instead of greedy "
        "decoding; kept in run.json",
    )
    p.add_argument("--top-p", type=finite_float, default=1.0, help="with --temperature")
    p.add_argument("--seed", type=int, default=0, help="with --temperature: the sampling seed")
    _judge_arguments(p)


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    from o3video.eval.benchmarks import BENCHMARKS

    p.add_argument("benchmark", choices=sorted(BENCHMARKS), help="which benchmark")
    p.add_argument("--root", type=Path, required=True, help="its folder or annotation file")
    p.add_argument("--videos", type=Path, default=None, help="its video folder (if elsewhere)")
    add_model_arguments(p)
    _runner_arguments(p)
    p.add_argument("--label", default=None, help="the run's name in reports")
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")


def add_baseline_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", type=Path, required=True, help="training V-STaR file or folder")
    p.add_argument("--data", type=Path, required=True, help="evaluation V-STaR file or folder")
    p.add_argument("--out", type=Path, required=True, help="the run folder")
    _judge_arguments(p)


def add_merge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a run folder of `o3video eval vstar|bench`")
    _judge_arguments(p)


def resolve_data(data: Path, videos: Path | None) -> tuple[Path, Path, bool]:
    """(V-STaR file, media root, synthetic?) from ``--data`` and ``--videos``."""
    if data.is_dir():
        names = ("vstar.json", "V_STaR_test.json")
        found = next((data / n for n in names if (data / n).is_file()), None)
        if found is None:
            raise DataError(f"{data}: no {' or '.join(names)} in this folder", path=str(data))
        file = found
    elif data.is_file():
        file = data
    else:
        raise DataError(f"{data}: no such file or folder", path=str(data))
    manifest = file.parent / "manifest.json"
    synthetic = False
    if manifest.is_file():
        try:
            synthetic = "synthetic" in str(json.loads(manifest.read_text()).get("generator", ""))
        except (json.JSONDecodeError, AttributeError):
            synthetic = False
    return file, videos or file.parent, synthetic


def _judge(args: argparse.Namespace, run_dir: Path, synthetic: bool) -> Judge:
    spec = args.judge or ("exact" if synthetic else None)
    if spec is None:
        raise RunError(
            "V-STaR's What answers need a judge: --judge MODEL (the official judge is "
            "Qwen2.5-72B-Instruct) or --judge exact (exact match, for the synthetic world)"
        )
    options: dict[str, Any] = {}
    if args.judge_backend == "openai":
        if not args.judge_base_url:
            raise RunError("--judge-backend openai needs --judge-base-url")
        options["base_url"] = args.judge_base_url
    return make_judge(
        spec, backend=args.judge_backend, cache=run_dir / "judge_cache.jsonl", **options
    )


def _print_scores(args: argparse.Namespace, run_dir: Path, synthetic: bool) -> int:
    meta = read_run_json(run_dir)
    settings = meta["settings"]
    items = run_items_of(run_dir)
    video = VideoSettings(**settings["video"])
    cfg = score_config_for(get_family(settings["family"]), video, args.mode)
    done = finish(run_dir, items, _judge(args, run_dir, synthetic), cfg, label=args.label)
    if args.json:
        print(json.dumps(done.scores.to_dict()))
    else:
        print(done.files["report"].read_text(encoding="utf-8"))
        print(f"wrote {', '.join(str(p) for p in done.files.values())}", file=sys.stderr)
    return 0


def frame_settings(args: argparse.Namespace) -> VideoSettings:
    """The frame budget: each option given, else the model card's (``o3video.json`` in the
    model folder: the budget it was trained with), else the defaults."""
    return video_settings(
        args.model,
        fps=args.fps,
        min_frames=args.min_frames,
        max_frames=args.max_frames,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
    )


def _backend(args: argparse.Namespace) -> tuple[Backend, ModelFamily, VideoSettings]:
    from o3video.models.load import load_backend

    if args.backend == "openai" and not args.base_url:
        raise RunError("--backend openai needs --base-url")
    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise RunError("--batch-size and --limit must be at least 1")
    # One generate call per batch of items: V-STaR asks five questions an item.
    per_item = 1 if getattr(args, "benchmark", None) else len(GENERATIONS)
    options = backend_options(args, max_batch=args.batch_size * per_item)
    backend = load_backend(args.model, args.backend, **options)
    family = getattr(backend, "family", None) or get_family(args.family or "qwen2_5_vl")
    video = frame_settings(args)
    return backend, family, video


def _summary(args: argparse.Namespace, stats: RunStats) -> bool:
    """Print what the run did; whether it may be scored now."""
    per_item = stats.process_s / max(stats.done, 1)
    print(
        f"{stats.done} item(s) run, {stats.skipped} already done, {stats.errors} error(s); "
        f"{format_duration(stats.wall_s)} ({per_item:.2f} s/item)",
        file=sys.stderr,
    )
    if stats.errors:
        print(f"failed: {', '.join(stats.error_ids[:10])} (see {args.out})", file=sys.stderr)
    if args.shard.count > 1:
        print(
            f"shard {args.shard.index}/{args.shard.count} done; when every shard is: "
            f"o3video eval merge {args.out}",
            file=sys.stderr,
        )
        return False
    if stats.errors:
        print("not scored: re-run with --retry-errors once the cause is fixed", file=sys.stderr)
        return False
    return True


def _run_options(args: argparse.Namespace, video: VideoSettings) -> dict[str, Any]:
    """The runner options every benchmark's command takes, as keyword arguments."""
    return {
        "video": video,
        "max_new_tokens": args.max_new_tokens,
        "shard": args.shard,
        "batch_size": args.batch_size,
        "limit": args.limit,
        "retry_errors": args.retry_errors,
        "progress": ProgressLine("items"),
    }


def protocol_of(args: argparse.Namespace) -> str:
    """The protocol of a run: ``--protocol``, else the model card's, else ``reference``.
    Frame options have no effect under ``reference`` (its frames are the reference
    script's): say so."""
    from o3video.protocols.bench import REFERENCE_NATIVE_BENCHMARKS

    protocol = protocol_for_model(args.model, args.protocol)
    frame_options = ("fps", "max_frames", "min_frames", "max_pixels", "min_pixels")
    given = [f"--{o.replace('_', '-')}" for o in frame_options if getattr(args, o) is not None]
    benchmark = getattr(args, "benchmark", None)
    if protocol == "reference" and given and benchmark is None:
        print(
            f"note: {', '.join(given)} ignored: the reference protocol shows V-STaR frames as "
            "the reference script does (1 fps, at most 16, native size)",
            file=sys.stderr,
        )
    elif protocol == "reference" and given and benchmark in REFERENCE_NATIVE_BENCHMARKS:
        print(
            f"note: {', '.join(given)} ignored: the reference protocol shows {benchmark} as "
            "the reference script does (one native video, 2 fps, 4 to 64 frames of 100,352 "
            "to 262,144 pixels)",
            file=sys.stderr,
        )
    return protocol


def _need_out(args: argparse.Namespace) -> None:
    if args.out is None:
        raise RunError("--out RUN_DIR is needed to run (only --show-prompts runs without it)")


def _load_processor(model: str) -> Any:
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(model)
    except (OSError, ValueError) as e:
        raise RunError(f"--show-prompts needs the model's processor files: {model}: {e}") from e


def _print_rendered(shown: list[tuple[str, Any]]) -> int:
    """Print ``--show-prompts`` blocks (:func:`o3video.protocols.show.format_rendered`)."""
    from o3video.protocols.show import format_rendered

    for title, rendered in shown:
        print(format_rendered(title, rendered), end="\n\n")
    return 0


def show_vstar_prompts(args: argparse.Namespace) -> int:
    """``eval vstar --show-prompts N``: print the rendered requests and exit."""
    from o3video.eval.vstar import show_prompts
    from o3video.families import family_for_processor

    file, root, _ = resolve_data(args.data, args.videos)
    processor = _load_processor(args.model)
    family = family_for_processor(processor)
    shown = show_prompts(
        processor,
        family,
        file,
        media_root=root,
        video=frame_settings(args),
        protocol=protocol_of(args),
        n=args.show_prompts,
    )
    return _print_rendered(shown)


def _sampling(args: argparse.Namespace) -> Sampling | None:
    if args.temperature is None:
        if args.top_p != 1.0 or args.seed != 0:
            raise RunError("--top-p and --seed need --temperature (greedy decoding otherwise)")
        return None
    try:
        return Sampling(args.temperature, args.top_p, args.seed)
    except ValueError as e:
        raise RunError(f"--temperature/--top-p: {e}") from e


def run_vstar_command(args: argparse.Namespace) -> int:
    if args.show_prompts is not None:
        return show_vstar_prompts(args)
    _need_out(args)
    file, root, synthetic = resolve_data(args.data, args.videos)
    sampling = _sampling(args)
    backend, family, video = _backend(args)
    _, stats = run_vstar(
        backend,
        family,
        file,
        args.out,
        media_root=root,
        protocol=protocol_of(args),
        sampling=sampling,
        **_run_options(args, video),
    )
    if not _summary(args, stats):
        return 1 if stats.errors else 0
    return _print_scores(args, args.out, synthetic)


def show_bench_prompts(args: argparse.Namespace) -> int:
    """``eval bench NAME --show-prompts N``: print the rendered requests and exit."""
    from o3video.eval.bench import show_benchmark_prompts
    from o3video.families import family_for_processor

    processor = _load_processor(args.model)
    shown = show_benchmark_prompts(
        processor,
        family_for_processor(processor),
        args.benchmark,
        args.root,
        videos=args.videos,
        video=frame_settings(args),
        protocol=protocol_of(args),
        n=args.show_prompts,
    )
    return _print_rendered(shown)


def run_bench_command(args: argparse.Namespace) -> int:
    from o3video.eval.bench import run_benchmark

    if args.show_prompts is not None:
        return show_bench_prompts(args)
    _need_out(args)
    backend, family, video = _backend(args)
    _, stats = run_benchmark(
        backend,
        family,
        args.benchmark,
        args.root,
        args.out,
        videos=args.videos,
        protocol=protocol_of(args),
        **_run_options(args, video),
    )
    if not _summary(args, stats):
        return 1 if stats.errors else 0
    return _print_bench(args, args.out)


def _print_bench(args: argparse.Namespace, run_dir: Path) -> int:
    from o3video.eval.bench import finish_benchmark

    scores = finish_benchmark(run_dir, label=args.label)
    if args.json:
        print(json.dumps(scores))
    else:
        print((run_dir / "report.md").read_text(encoding="utf-8"))
    return 0


def run_merge_command(args: argparse.Namespace) -> int:
    meta = read_run_json(args.run_dir)
    if meta.get("benchmark") != "vstar":
        return _print_bench(args, args.run_dir)
    settings = meta["settings"]
    _, _, synthetic = resolve_data(Path(settings["data"]), Path(settings["media_root"]))
    return _print_scores(args, args.run_dir, synthetic)


def run_baseline_command(args: argparse.Namespace) -> int:
    """Score the constant baseline (:mod:`o3video.eval.baselines`) like a model run."""
    from o3video.data.load import json_entries
    from o3video.eval.baselines import constant_results
    from o3video.eval.judge import JudgeItem
    from o3video.eval.vstar import load_items
    from o3video.eval.vstar_score import ScoreConfig, format_table, score_vstar

    train_file, train_root, _ = resolve_data(args.train, None)
    file, root, synthetic = resolve_data(args.data, None)
    items = load_items(file, root)
    raw = dict(json_entries(file))
    results = constant_results(
        [raw[i.index] for i in items], items, load_items(train_file, train_root)
    )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    judge = _judge(args, out, synthetic)
    ratings = judge.rate(
        [
            JudgeItem(i.question, i.answer, r["answer_vqa"])
            for i, r in zip(items, results, strict=True)
        ]
    )
    scores = score_vstar(results, ratings, ScoreConfig(mode=args.mode))
    label = args.label or "constant baseline"
    doc = {
        "benchmark": "vstar",
        "model": f"constant baseline ({train_file})",
        "label": label,
        "mode": args.mode,
        "judge": judge.name,
        "scores": scores.to_dict(),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (out / "judgements.json").write_text(json.dumps(ratings) + "\n", encoding="utf-8")
    (out / "scores.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    table = format_table(scores)
    (out / "report.md").write_text(f"# V-STaR: {label}\n\n```\n{table}\n```\n", encoding="utf-8")
    print(json.dumps(scores.to_dict()) if args.json else table)
    return 0

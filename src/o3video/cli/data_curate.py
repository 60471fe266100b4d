"""`o3video data curate`: new spatio-temporal STGR records from videos, with a teacher (SPEC §4).

For each video a teacher model behind an OpenAI-compatible endpoint sees the sampled frames
(true-time labels) and proposes a question, an answer, key frames with boxes and a grounded
reasoning; boxes covering more than ``--max-area`` of the frame or degenerate are dropped; a
verifier (default: the teacher) confirms each box on its crop ("Is this a {object}?"); the
reasoning must match the annotations one to one. What survives becomes a
``temporal-spatial free-form QA`` record.

Writes to ``--out``: ``curate.jsonl`` (one line per video as it finishes: a re-run skips the
videos already done and retries the failed ones), ``keyframes/``, ``stgr_curated.json`` (the
kept records) and ``curate_report.json`` (what was dropped or rejected at which step, and
why). Videos given as arguments are paths as usual; those in ``--list`` are relative to
``--media-root`` (or absolute); all must lie under the media root, and the records' video
paths are relative to it. The API key is read from ``--api-key-env`` (no key: none sent).
Progress goes to stderr, the summary to stdout; exit code 0 once every video has an outcome.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from o3video.cli import finite_float
from o3video.data.curate import (
    JOURNAL_FILE,
    RECORDS_FILE,
    REPORT_FILE,
    SOURCE,
    CurateConfig,
    CurateReport,
    curate,
)
from o3video.data.curate_teacher import (
    TEACHER_MAX_PIXELS,
    TEACHER_PARAMS,
)
from o3video.errors import DataError
from o3video.models.openai import OpenAIBackend

NAME = "curate"
HELP = "make STGR spatio-temporal records from videos with a teacher model (SPEC §4)"
EXAMPLES = """examples:
  o3video data curate media/clips/*.mp4 --media-root media --out curated \\
      --teacher-url http://localhost:8000/v1 --teacher-model Qwen/Qwen2.5-VL-72B-Instruct
  o3video data curate --list videos.txt --media-root media --out curated \\
      --teacher-url https://generativelanguage.googleapis.com/v1beta/openai \\
      --teacher-model gemini-2.5-pro --api-key-env GEMINI_API_KEY \\
      --verifier-url http://localhost:8001/v1 --verifier-model Qwen/Qwen2.5-VL-7B-Instruct \\
      --concurrency 8
  o3video data check curated/stgr_curated.json --media-root media \\
      --source-root "curated=.:$PWD/curated"
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``o3video data curate``."""
    parser.add_argument("videos", nargs="*", type=Path, help="video files (under --media-root)")
    parser.add_argument(
        "--list",
        type=Path,
        default=None,
        metavar="FILE",
        help="file with one video per line, relative to --media-root ('#' starts a comment)",
    )
    parser.add_argument(
        "--media-root",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder the records' video paths are relative to",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--teacher-url",
        required=True,
        metavar="URL",
        help="OpenAI-compatible base URL, e.g. http://host:8000/v1",
    )
    parser.add_argument("--teacher-model", required=True, metavar="NAME")
    parser.add_argument(
        "--verifier-url", default=None, metavar="URL", help="default: --teacher-url"
    )
    parser.add_argument(
        "--verifier-model", default=None, metavar="NAME", help="default: --teacher-model"
    )
    parser.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="VAR",
        help="environment variable holding the API key (default OPENAI_API_KEY)",
    )
    parser.add_argument("--num-frames", type=int, default=16, help="frames shown to the teacher")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=TEACHER_PARAMS.max_new_tokens,
        metavar="N",
        help=f"longest teacher reply, thinking included (default {TEACHER_PARAMS.max_new_tokens})",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=TEACHER_MAX_PIXELS,
        help=f"pixels per frame shown (default {TEACHER_MAX_PIXELS})",
    )
    parser.add_argument(
        "--max-area",
        type=finite_float,
        default=0.8,
        metavar="FRAC",
        help="drop boxes covering more of the frame (default 0.8)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="N",
        help="videos in flight, and requests in flight per endpoint (default 4)",
    )
    parser.add_argument(
        "--timeout",
        type=finite_float,
        default=120.0,
        metavar="S",
        help="seconds per HTTP request (default 120)",
    )
    parser.add_argument("--source", default=SOURCE, help=f"the records' source (default {SOURCE})")
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="start afresh: forget what an earlier run in --out did",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def read_list(path: Path) -> list[str]:
    """The video paths of a list file: one a line; blank lines and ``#`` comments skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DataError(f"{path}: cannot read the video list: {e}", path=str(path)) from e
    return [s for line in lines if (s := line.split("#", 1)[0].strip())]


def run(args: argparse.Namespace) -> int:
    """Curate the videos; print a summary. Exit code 0, or an error for bad arguments."""
    videos: list[str | Path] = [Path(os.path.abspath(v)) for v in args.videos]
    if args.list is not None:
        videos += read_list(args.list)
    if not videos:
        raise DataError("no videos: give video files or --list FILE")
    if min(args.concurrency, args.num_frames, args.max_tokens) < 1 or not 0 < args.max_area <= 1:
        raise DataError(
            "need --concurrency, --num-frames, --max-tokens >= 1 and 0 < --max-area <= 1"
        )
    common: dict[str, Any] = {
        "api_key_env": args.api_key_env,
        "timeout_s": args.timeout,
        "max_concurrency": args.concurrency,
    }
    teacher = OpenAIBackend(args.teacher_url, args.teacher_model, **common)
    verifier = teacher
    if args.verifier_url is not None or args.verifier_model is not None:
        verifier = OpenAIBackend(
            args.verifier_url or args.teacher_url,
            args.verifier_model or args.teacher_model,
            **common,
        )
    config = CurateConfig(
        num_frames=args.num_frames,
        max_pixels=args.max_pixels,
        max_area_frac=args.max_area,
        source=args.source,
        teacher_params=replace(TEACHER_PARAMS, max_new_tokens=args.max_tokens),
        workers=args.concurrency,
    )

    def progress(done: int, total: int, entry: dict[str, Any]) -> None:
        why = entry.get("reason") or (entry.get("error") or {}).get("type") or ""
        step = f" at {entry['step']}" if entry.get("step") else ""
        print(
            f"[{done}/{total}] {entry['video']}: {entry['status']}{step} {why}".rstrip(),
            file=sys.stderr,
            flush=True,
        )

    report = curate(
        videos,
        args.media_root,
        args.out,
        teacher,
        verifier,
        config=config,
        resume=not args.no_resume,
        progress=progress,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print_summary(report)
    return 0


def print_summary(report: CurateReport) -> None:
    """Kept, rejected and failed videos; rejections and drops per step and reason."""
    out = report.out_dir
    print(
        f"{out}: {report.total} videos ({report.skipped} finished earlier): {report.kept} kept, "
        f"{report.rejected} rejected, {report.failed} failed"
    )
    for title, table in (("rejected", report.rejections), ("dropped boxes", report.drops)):
        if table:
            print(f"{title}:")
            for step, reasons in table.items():
                for reason, n in reasons.items():
                    print(f"  {step:<13}{reason:<24}{n:>6}")
    if report.errors:
        print("failed (retried on the next run):")
        print("".join(f"  {kind:<37}{n:>6}\n" for kind, n in report.errors.items()), end="")
    print(f"records: {out / RECORDS_FILE}  report: {out / REPORT_FILE}  log: {out / JOURNAL_FILE}")

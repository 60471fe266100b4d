"""`o3video data`: check, summarise, synthesise and curate data files (STGR, SPEC §4; V-STaR, §7).

``o3video data check FILE`` reads every record and checks it: known task, the answer format
of its task (an MCQ letter among the options the question lists), the type of every field,
key frames against key items, boxes (inside the image or the unit square, corners ordered),
times (>= 0; answer, key-frame and reasoning times inside the video when its duration is
known) and the reasoning trace. With ``--media-root`` it looks for every video, image and
key-frame file (under the published layout, see ``--source-root``), with ``--decode`` it
also decodes them (a video: every frame of the default sampling, so a file cut short
fails). It prints counts per task and per problem kind, then the missing files grouped by
directory, so that a person can fetch them. Exit code 0 when every record is usable
(warnings allowed, unless ``--strict``) and there is at least one, 1 otherwise.
``--report`` writes every problem as JSON. A V-STaR file (``V_STaR_test.json``, or the
``vstar.json`` of ``data synth``; recognised by its first entry, or ``--format vstar``) is
checked against SPEC §7: every field's type, the span inside the video, each box inside the
frame at a whole second of the span, boxes in time order; with ``--media-root`` the video
``<vid>.mp4`` is looked for in that folder or its ``videos/``. Counts are then per domain.

``o3video data stats FILE`` prints the composition of an STGR file: tasks, sources, video
durations (from the records, or with ``--media-root DIR --probe`` from the video files),
evidence claims per reasoning trace, and key frames per record.

``o3video data synth --out DIR --n N`` writes a synthetic corpus (``o3video data synth
--help``). ``o3video data curate VIDEOS --teacher-url URL ...`` runs the curation pipeline
of SPEC §4 through OpenAI-compatible endpoints, resumably (``o3video data curate --help``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from o3video.cli import add_command, data_curate, data_synth
from o3video.data.load import CheckedFile, load_stgr
from o3video.data.media import MediaLayout, SourceRoot
from o3video.data.stgr import SpatioTemporalRecord, VideoRecord
from o3video.data.vstar import VStarData, is_vstar_file, load_vstar
from o3video.errors import DataError, VideoDecodeError
from o3video.evidence import parse_trace
from o3video.video import probe_video

# Sub-commands in modules of their own, each with NAME, HELP, EXAMPLES, add_arguments(parser)
# and run(args), like the commands of o3video.cli.main (see o3video.cli.add_command).
SUBCOMMANDS: tuple[ModuleType, ...] = (data_synth, data_curate)

NAME = "data"
HELP = "check, summarise or synthesise STGR and V-STaR data files"
EXAMPLES = """examples:
  o3video data check stgr_rl.json --media-root data/videos
  o3video data check stgr_sft.json --media-root data/videos --decode --report problems.json
  o3video data check mine.json --media-root media --source-root "my_*=clips:clips/kfs"
  o3video data check V_STaR_test.json --media-root V-STaR --decode
  o3video data synth --out synth --n 200 --seed 0
  o3video data stats stgr_sft.json
  o3video data stats stgr_rl.json --media-root data/videos --probe --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    fmt = argparse.RawDescriptionHelpFormatter
    check = sub.add_parser(
        "check",
        help="check every record and its media; exit 1 on unusable records",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=fmt,
    )
    _common(check)
    check.add_argument(
        "--format",
        choices=("auto", "stgr", "vstar"),
        default="auto",
        help="file format (default: V-STaR if the first entry has 'vid' and "
        "'temporal_question', else STGR)",
    )
    check.add_argument("--strict", action="store_true", help="warnings also fail (exit 1)")
    check.add_argument("--decode", action="store_true", help="decode every media file too")
    check.add_argument(
        "--report", type=Path, default=None, metavar="OUT.json", help="write all problems as JSON"
    )
    check.add_argument(
        "--show", type=int, default=10, metavar="N", help="paths/problems listed per group"
    )
    stats = sub.add_parser(
        "stats",
        help="composition: tasks, sources, durations, claims, key frames",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=fmt,
    )
    _common(stats)
    stats.add_argument("--probe", action="store_true", help="read durations from the videos")
    for module in SUBCOMMANDS:
        add_command(sub, module, "_data_run")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="JSON list (or JSON Lines) of records")
    parser.add_argument(
        "--media-root", type=Path, default=None, metavar="DIR", help="folder of the sources"
    )
    parser.add_argument(
        "--source-root",
        action="append",
        default=[],
        type=_source_root,
        metavar="SOURCE=DIR[:KEYFRAME_DIR]",
        help="STGR: where a source's files live under --media-root (SOURCE may end in * to "
        "match a prefix); laid over the published layout; repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _source_root(spec: str) -> tuple[str, SourceRoot]:
    """``SOURCE=DIR[:KEYFRAME_DIR]`` → ``(SOURCE, SourceRoot(DIR, KEYFRAME_DIR))``."""
    source, sep, dirs = spec.partition("=")
    if not sep or not source:
        raise argparse.ArgumentTypeError(f"want SOURCE=DIR[:KEYFRAME_DIR], got {spec!r}")
    media, _, key_frames = dirs.partition(":")
    return source, SourceRoot(media, key_frames or None)


def run(args: argparse.Namespace) -> int:
    if args.data_command == "check":
        return _check(args)
    if hasattr(args, "_data_run"):
        code: int = args._data_run(args)
        return code
    return _stats(args)


def _progress(n: int) -> None:
    if sys.stderr.isatty():
        print(f"\rchecked {n} records", end="", file=sys.stderr, flush=True)


def _check(args: argparse.Namespace) -> int:
    vstar = args.format == "vstar" or (args.format == "auto" and is_vstar_file(args.file))
    data: CheckedFile[Any]
    if vstar:
        data = load_vstar(
            args.file,
            args.media_root,
            decode_media=args.decode,
            report_path=args.report,
            on_progress=_progress,
        )
    else:
        data = load_stgr(
            args.file,
            args.media_root,
            decode_media=args.decode,
            source_roots=dict(args.source_root),
            report_path=args.report,
            on_progress=_progress,
        )
    if sys.stderr.isatty():
        print(file=sys.stderr)
    summary = check_summary(data, args.show)
    failed = bool(data.skipped) or (args.strict and summary["warnings"] > 0)
    if data.total == 0:  # nothing to train or score on is a failed check, not a pass
        failed = True
        print(
            f"o3video data: error: {data.path}: no records (an empty file or list)", file=sys.stderr
        )
    if args.json:
        print(json.dumps({**summary, "ok": not failed, "report": _str(args.report)}))
        return int(failed)
    noun, by = ("V-STaR items", "domain") if vstar else ("records", "task")
    print(
        f"{data.path}: {data.total} {noun}, {len(data)} usable, {len(data.skipped)} skipped, "
        f"{summary['warnings']} warnings"
    )
    print(f"  {by:<32}{'total':>8}{'usable':>8}{'skipped':>9}")
    for name, row in summary[by + "s"].items():
        print(f"  {name:<32}{row['total']:>8}{row['usable']:>8}{row['skipped']:>9}")
    if summary["issue_counts"]:
        print("problems:")
        for key, n in summary["issue_counts"].items():
            severity, kind = key.split(":")
            print(f"  {severity:<8}{kind:<22}{n:>8}")
    missing = summary["missing_media"]
    if missing:
        total = sum(g["count"] for g in missing.values())
        folders = "folder" if len(missing) == 1 else "folders"
        print(f"missing media: {total} files in {len(missing)} {folders}")
        for root, group in missing.items():
            print(f"  {root}  ({group['count']} missing)")
            print("".join(f"    {p}\n" for p in group["paths"]), end="")
            if group["count"] > len(group["paths"]):
                print(f"    ... and {group['count'] - len(group['paths'])} more")
    if summary["first_problems"]:
        print("first problems:")
        print("".join(f"  {p}\n" for p in summary["first_problems"]), end="")
    if args.report is not None:
        print(f"every problem: {args.report}")
    return int(failed)


def check_summary(data: CheckedFile[Any], show: int = 10) -> dict[str, Any]:
    """Counts per task (V-STaR: per domain) and problem kind, missing media grouped by
    folder, first problems."""
    vstar = isinstance(data, VStarData)
    by = "domain" if vstar else "task"
    kept = [r.domain if vstar else r.task for r in data.records]
    lost = [(s.source if vstar else s.task) or f"<no {by}>" for s in data.skipped]
    groups: dict[str, dict[str, int]] = defaultdict(lambda: {"total": 0, "usable": 0, "skipped": 0})
    for name, column in [(n, "usable") for n in kept] + [(n, "skipped") for n in lost]:
        groups[name]["total"] += 1
        groups[name][column] += 1
    missing: dict[str, dict[str, Any]] = {}
    for issue in data.issues:
        if issue.kind == "missing_media" and issue.path is not None:
            group = missing.setdefault(issue.root or "?", {"count": 0, "paths": [], "_seen": set()})
            if issue.path not in group["_seen"]:
                group["_seen"].add(issue.path)
                group["count"] += 1
                if len(group["paths"]) < show:
                    group["paths"].append(issue.path)
    for group in missing.values():
        del group["_seen"]
    shown = [i for i in data.issues if i.kind != "missing_media"]
    return {
        "file": data.path,
        "total": data.total,
        "usable": len(data),
        "skipped": len(data.skipped),
        "warnings": sum(i.severity == "warning" for i in data.issues),
        by + "s": dict(sorted(groups.items())),
        "issue_counts": dict(Counter(f"{i.severity}:{i.kind}" for i in data.issues).most_common()),
        "missing_media": dict(sorted(missing.items(), key=lambda kv: -kv[1]["count"])),
        "first_problems": [str(i) for i in shown[:show]],
    }


def _stats(args: argparse.Namespace) -> int:
    if is_vstar_file(args.file):
        raise DataError(f"{args.file}: a V-STaR file; `data stats` summarises STGR files")
    data = load_stgr(args.file, source_roots=dict(args.source_root), check_media=False)
    durations: dict[str, float] = {}
    layout = MediaLayout(args.media_root or ".", dict(args.source_root))
    for record in data.records:
        if not isinstance(record, VideoRecord):
            continue
        key = f"{record.source}/{record.video_path}"
        if record.duration_s is not None:
            durations[key] = record.duration_s
        elif args.probe and args.media_root is not None and key not in durations:
            try:
                durations[key] = probe_video(
                    layout.path(record.source, record.video_path)
                ).duration_s
            except VideoDecodeError:
                continue
    claims = [
        len(parse_trace(f"<think>{r.reasoning}</think>").claims)
        for r in data.records
        if r.reasoning is not None
    ]
    key_frames = [len(r.key_frames) for r in data.records if isinstance(r, SpatioTemporalRecord)]
    out: dict[str, Any] = {
        "file": data.path,
        "records": len(data),
        "skipped": len(data.skipped),
        "tasks": dict(Counter(r.task for r in data.records).most_common()),
        "sources": dict(Counter(r.source for r in data.records).most_common()),
        "durations_s": _describe(list(durations.values()), _duration_bucket),
        "claims_per_trace": _describe(claims, _count_bucket),
        "key_frames_per_record": _describe(key_frames, _count_bucket),
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{data.path}: {len(data)} records ({len(data.skipped)} unusable, not counted)")
    for title in ("tasks", "sources"):
        print(f"{title}:")
        print("".join(f"  {k:<34}{n:>8}\n" for k, n in out[title].items()), end="")
    for title, unit in (
        ("durations_s", "videos"),
        ("claims_per_trace", "traces"),
        ("key_frames_per_record", "records"),
    ):
        d = out[title]
        if not d["count"]:
            print(f"{title}: none")
            continue
        print(
            f"{title}: {d['count']} {unit}, min {d['min']:g}, median {d['median']:g}, "
            f"mean {d['mean']:.2f}, max {d['max']:g}"
        )
        print("".join(f"  {k:<34}{n:>8}\n" for k, n in d["histogram"].items()), end="")
    return 0


def _describe(values: Sequence[float], bucket: Callable[[float], str]) -> dict[str, Any]:
    """Count, min, median, mean, max and a histogram (buckets in order of first value)."""
    if not values:
        return {"count": 0, "histogram": {}}
    hist = Counter(bucket(v) for v in sorted(values))
    return {
        "count": len(values),
        "min": min(values),
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "max": max(values),
        "histogram": dict(hist),
    }


def _duration_bucket(t_s: float) -> str:
    # V-STaR's duration classes (SPEC §7)
    return "short (< 60 s)" if t_s < 60 else "medium (60-180 s)" if t_s < 180 else "long (>= 180 s)"


def _count_bucket(n: float) -> str:
    return f"{int(n)}" if n < 5 else "5+"


def _str(value: Path | None) -> str | None:
    return None if value is None else str(value)

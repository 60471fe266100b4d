"""Benchmark: ``o3video.data.synthetic.synthesize`` — videos per second, and how guessable.

    .venv/bin/python benchmarks/data_synth.py [--n 1000] [--seed 0] [--workers W] [--out DIR]

Writes ``--n`` videos (default config: 224×224, 8 s at 10 fps, H.264 ultrafast) with their
STGR records and V-STaR items into ``--out`` (a temporary folder by default, removed after),
and prints the wall time, videos per second, the size on disk, the record counts, and two
blind baselines: the share of the most common MCQ letter and of the most common free-form
and V-STaR answer (what a model that ignores the video could score at best by always
giving that answer). Target: 1,000 videos in under 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from o3video.data.synthetic import synthesize


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def _top_share(values: list[str]) -> str:
    if not values:
        return "n/a"
    value, count = Counter(values).most_common(1)[0]
    return f"{count / len(values):.1%} ({value!r}, of {len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="keep the output here")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="o3video-synth-"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{platform.processor() or platform.machine()}, {cores} cores; writing {args.n} videos")

    def progress(done: int, total: int) -> None:
        if done % max(1, total // 10) == 0 or done == total:
            print(f"  {done}/{total} after {time.perf_counter() - start:.1f} s", flush=True)

    start = time.perf_counter()
    result = synthesize(out, args.n, args.seed, progress=progress, workers=args.workers)
    elapsed = time.perf_counter() - start
    print(f"time: {elapsed:.1f} s for {args.n} videos = {args.n / elapsed:.2f} videos/s")
    print(f"disk: {_size_mb(out):.1f} MB in {out}")
    records = [*json.loads((out / "stgr_sft.json").read_text())]
    records += json.loads((out / "stgr_rl.json").read_text())
    vstar = json.loads((out / "vstar.json").read_text())
    print(f"records: SFT {sum(result.sft_counts.values())}, RL {sum(result.rl_counts.values())}, "
          f"V-STaR {result.num_vstar}")  # fmt: skip
    for task, count in sorted(result.sft_counts.items()):
        print(f"  {task}: {count} SFT, {result.rl_counts.get(task, 0)} RL")
    mcq = [r["answer"][0] for r in records if "MCQ" in r["task"]]
    free = [r["answer"] for r in records if r["task"] == "General video QA Free-form"]
    st = [r["answer"] for r in records if r["task"] == "temporal-spatial free-form QA"]
    print(f"blind baselines: MCQ most common letter {_top_share(mcq)}")
    print(f"  general free-form most common answer {_top_share(free)}")
    print(f"  spatio-temporal free-form most common answer {_top_share(st)}")
    print(f"  V-STaR 'what' most common answer {_top_share([v['answer'] for v in vstar])}")
    if args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()

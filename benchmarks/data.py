"""Benchmarks of the data pipeline: validating STGR records, and synthesizing videos.

    .venv/bin/python benchmarks/data.py                       # both parts
    .venv/bin/python benchmarks/data.py --only validate [--records 37000] [--repeats 3]
    .venv/bin/python benchmarks/data.py --only synth [--n 1000] [--workers W] [--out DIR]

**validate** — ``load_stgr`` (JSON reading + every record check, no media) on ``--records``
generated records with STGR-RL-36k's composition (SPEC §4; the released file's task counts,
scaled): 5,000 visual QA, 2,280 temporal QA, 2,904 temporal MCQ, 12,047 spatio-temporal (2–4
key frames of 1–3 objects), 13,000 MCQ, 2,000 free-form — with realistic text sizes
(questions with options, answers of a sentence). Two files are timed: ``rl`` as generated,
and ``sft`` where every record also carries a ``reasoning_process`` of ~1 kB with 3–6
grounded claims (the SFT corpus; each trace is parsed with ``parse_trace``). Each file is
written once to a temporary folder and loaded in a fresh child process: the best of
``--repeats`` runs is reported, with records/s and the peak RSS (Linux VmHWM) the loads add to
the process after its imports. Target: < 10 s for 37,000 records on 2 cores.

**synth** — ``o3video.data.synthetic.synthesize``: ``--n`` videos (default config: 224×224,
8 s at 10 fps, H.264 ultrafast) with their STGR records and V-STaR items, written to ``--out``
(a temporary folder by default, removed after). Prints the wall time, videos per second, the
size on disk, the record counts, and blind baselines: the share of the most common MCQ letter
and of the most common free-form and V-STaR answer (what a model that ignores the video could
score at best by always giving that answer). Target: 1,000 videos in < 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from o3video.data import load_stgr
from o3video.data.synthetic import synthesize

VALIDATE_TARGET_S = 10.0
SYNTH_TARGET_S = 180.0

COMPOSITION = {
    "visual QA": 5000,
    "temporal QA": 2280,
    "temporal QA (MCQ)": 2904,
    "temporal-spatial free-form QA": 12047,
    "General video QA MCQ": 13000,
    "General video QA Free-form": 2000,
}
WORDS = [
    "the", "a", "man", "woman", "dog", "ball", "car", "red", "blue",
    "left", "right", "walks", "picks", "holds", "opens", "table", "door",
]  # fmt: skip


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def norm_box(rng: random.Random) -> list[float]:
    x1, y1 = rng.uniform(0, 0.6), rng.uniform(0, 0.6)
    return [
        round(x1, 3),
        round(y1, 3),
        round(x1 + rng.uniform(0.05, 0.4), 3),
        round(y1 + rng.uniform(0.05, 0.4), 3),
    ]


def reasoning(rng: random.Random, boxes: list[tuple[str, list[float], float]]) -> str:
    parts = []
    for name, box, t in boxes:
        claim = f"<obj>{name}</obj><box>[{','.join(str(v) for v in box)}]</box>at<t>{t}</t>s"
        parts.append(f"{sentence(rng, 18)} {claim} {sentence(rng, 12)}")
    return " ".join(parts)


def make_record(rng: random.Random, task: str, i: int, with_reasoning: bool) -> dict[str, Any]:
    duration = round(rng.uniform(10, 180), 1)
    rec: dict[str, Any] = {"id": i, "task": task, "question": sentence(rng, 25), "source": "x"}
    claims = [
        (rng.choice(WORDS), norm_box(rng), round(rng.uniform(0, duration), 1))
        for _ in range(rng.randint(3, 6))
    ]
    if task == "visual QA":
        w, h = 640, 480
        rec.update(source="gqa", image_path=f"{i}.jpg", image_size=[w, h])
        box = [
            rng.randint(0, 300),
            rng.randint(0, 200),
            rng.randint(320, 640),
            rng.randint(240, 480),
        ]
        rec["answer"] = f"<obj>cup</obj><box>[{','.join(map(str, box))}]</box>"
        claims = [
            (n, [round(b[0] * w), round(b[1] * h), round(b[2] * w), round(b[3] * h)], t)
            for n, b, t in claims
        ]
        text = " ".join(
            f"{sentence(rng, 18)} <obj>{n}</obj><box>[{','.join(map(str, b))}]</box>"
            for n, b, _ in claims
        )
        if with_reasoning:
            rec["reasoning_process"] = text
        return rec
    rec.update(
        video_path=f"videos/{i}.mp4", source=rng.choice(["STR_coin", "TVG_tacos", "videor1_mcq"])
    )
    s = round(rng.uniform(0, duration / 2), 1)
    span = f"[{s}, {round(rng.uniform(s, duration), 1)}]"
    letter = rng.choice("ABCD")
    options = "\n".join(f"{c}. {sentence(rng, 6)}" for c in "ABCD")
    if task == "temporal QA":
        rec["answer"] = span
    elif task == "temporal QA (MCQ)":
        rec.update(answer=f"{letter}\n{span}", question=rec["question"] + "\n" + options)
    elif task == "General video QA MCQ":
        rec.update(answer=letter, question=rec["question"] + "\n" + options)
    else:
        rec["answer"] = sentence(rng, 20)
    if task == "temporal-spatial free-form QA":
        n = rng.randint(2, 4)
        times = sorted(round(rng.uniform(0, duration), 2) for _ in range(n))
        rec["key_frames"] = [
            {"path": f"{i}_{k}.jpg", "time": t, "idx": k} for k, t in enumerate(times)
        ]
        rec["key_items"] = {
            str(k): {f"{rng.choice(WORDS)}{j}": [norm_box(rng)] for j in range(rng.randint(1, 3))}
            for k in range(n)
        }
    if with_reasoning:
        rec["reasoning_process"] = reasoning(rng, claims)
    return rec


def rss_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in MiB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(path: str, repeats: int) -> None:
    """Child process: time ``load_stgr`` and report the peak RSS it adds, as JSON."""
    base = rss_mb("VmRSS")  # after the imports
    times, total = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        data = load_stgr(path, check_media=False)
        times.append(time.perf_counter() - t0)
        total = data.total
        assert not data.skipped, data.skipped[:3]
        del data
    print(json.dumps({"times": times, "total": total, "peak_mb": rss_mb("VmHWM") - base}))


def bench_validate(records: int, repeats: int, seed: int) -> None:
    scale = records / sum(COMPOSITION.values())
    counts = {t: round(n * scale) for t, n in COMPOSITION.items()}
    print(f"validate: load_stgr on {sum(counts.values()):,} records, best of {repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, with_reasoning in (("rl", False), ("sft", True)):
            rng = random.Random(seed)
            tasks = [t for t, n in counts.items() for _ in range(n)]
            rng.shuffle(tasks)
            data = [make_record(rng, t, i, with_reasoning) for i, t in enumerate(tasks)]
            path = Path(tmp) / f"{name}.json"
            path.write_text(json.dumps(data), encoding="utf-8")
            del data
            cmd = [sys.executable, __file__, "--measure", str(path), "--repeats", str(repeats)]
            got = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            best = min(got["times"])
            verdict = "met" if best < VALIDATE_TARGET_S * got["total"] / 37000 else "NOT met"
            print(
                f"  {name}: {got['total']} records, {path.stat().st_size / 2**20:.1f} MB JSON: "
                f"best {best:.2f} s ({got['total'] / best:,.0f} records/s), "
                f"peak RSS +{got['peak_mb']:.0f} MB; target < {VALIDATE_TARGET_S:g} s per 37k: "
                f"{verdict}"
            )


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def _top_share(values: list[str]) -> str:
    if not values:
        return "n/a"
    value, count = Counter(values).most_common(1)[0]
    return f"{count / len(values):.1%} ({value!r}, of {len(values)})"


def bench_synth(n: int, seed: int, workers: int | None, out_dir: Path | None) -> None:
    out = out_dir or Path(tempfile.mkdtemp(prefix="o3video-synth-"))
    print(f"synth: {n} videos (224x224, 8 s at 10 fps) into {out}")

    def progress(done: int, total: int) -> None:
        if done % max(1, total // 10) == 0 or done == total:
            print(f"  {done}/{total} after {time.perf_counter() - start:.1f} s", flush=True)

    start = time.perf_counter()
    result = synthesize(out, n, seed, progress=progress, workers=workers)
    elapsed = time.perf_counter() - start
    verdict = "met" if elapsed * 1000 / max(n, 1) < SYNTH_TARGET_S else "NOT met"
    print(
        f"  time: {elapsed:.1f} s for {n} videos = {n / elapsed:.2f} videos/s; "
        f"target < {SYNTH_TARGET_S:g} s per 1,000: {verdict}"
    )
    print(f"  disk: {_size_mb(out):.1f} MB")
    records = [*json.loads((out / "stgr_sft.json").read_text())]
    records += json.loads((out / "stgr_rl.json").read_text())
    vstar = json.loads((out / "vstar.json").read_text())
    print(
        f"  records: SFT {sum(result.sft_counts.values())}, RL {sum(result.rl_counts.values())}, "
        f"V-STaR {result.num_vstar}"
    )
    for task, count in sorted(result.sft_counts.items()):
        print(f"    {task}: {count} SFT, {result.rl_counts.get(task, 0)} RL")
    mcq = [r["answer"][0] for r in records if "MCQ" in r["task"]]
    free = [r["answer"] for r in records if r["task"] == "General video QA Free-form"]
    st = [r["answer"] for r in records if r["task"] == "temporal-spatial free-form QA"]
    print(f"  blind baselines: MCQ most common letter {_top_share(mcq)}")
    print(f"    general free-form most common answer {_top_share(free)}")
    print(f"    spatio-temporal free-form most common answer {_top_share(st)}")
    print(f"    V-STaR 'what' most common answer {_top_share([v['answer'] for v in vstar])}")
    if out_dir is None:
        shutil.rmtree(out)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--only", choices=("validate", "synth"), default=None)
    ap.add_argument("--records", type=int, default=37000, help="validate: records per file")
    ap.add_argument("--repeats", type=int, default=3, help="validate: loads per file")
    ap.add_argument("--n", type=int, default=1000, help="synth: videos")
    ap.add_argument("--workers", type=int, default=None, help="synth: worker processes")
    ap.add_argument("--out", type=Path, default=None, help="synth: keep the output here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # child process
    args = ap.parse_args()
    if args.measure is not None:
        measure(args.measure, args.repeats)
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"{platform.processor() or platform.machine()}, {cores} cores; "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    if args.only in (None, "validate"):
        bench_validate(args.records, args.repeats, args.seed)
    if args.only in (None, "synth"):
        bench_synth(args.n, args.seed, args.workers, args.out)


if __name__ == "__main__":
    main()

"""Benchmark: ``load_stgr`` (JSON reading + every record check, no media) on 37,000 records.

    .venv/bin/python benchmarks/data_validate.py [--records N] [--repeats R] [--seed S]

Generates STGR-RL-36k's composition (SPEC §4; the released file's task counts, scaled to
``--records``): 5,000 visual QA, 2,280 temporal QA, 2,904 temporal MCQ, 12,047
spatio-temporal (2–4 key frames of 1–3 objects), 13,000 MCQ, 2,000 free-form — with
realistic text sizes (questions with options, answers of a sentence). Two files are timed:
``rl`` as generated, and ``sft`` where every record also carries a ``reasoning_process`` of
~1 kB with 3–6 grounded claims (the SFT corpus; each trace is parsed with ``parse_trace``).
Each file is written once to a temporary folder and loaded in a fresh child process: the best
of ``--repeats`` runs is reported, with records/s and the peak RSS (Linux VmHWM) the loads add
to the process after its imports.
Target: < 10 s for 37,000 records on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from o3video.data import load_stgr

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


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=37000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # child process
    args = ap.parse_args()
    if args.measure is not None:
        measure(args.measure, args.repeats)
        return
    scale = args.records / sum(COMPOSITION.values())
    counts = {t: round(n * scale) for t, n in COMPOSITION.items()}
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for name, with_reasoning in (("rl", False), ("sft", True)):
            rng = random.Random(args.seed)
            tasks = [t for t, n in counts.items() for _ in range(n)]
            rng.shuffle(tasks)
            records = [make_record(rng, t, i, with_reasoning) for i, t in enumerate(tasks)]
            path = Path(tmp) / f"{name}.json"
            path.write_text(json.dumps(records), encoding="utf-8")
            del records
            cmd = [sys.executable, __file__, "--measure", str(path), "--repeats", str(args.repeats)]
            got = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            best = min(got["times"])
            print(
                f"{name}: {got['total']} records, {path.stat().st_size / 2**20:.1f} MB JSON: "
                f"best {best:.2f} s of {args.repeats} ({got['total'] / best:,.0f} records/s), "
                f"peak RSS +{got['peak_mb']:.0f} MB"
            )


if __name__ == "__main__":
    main()

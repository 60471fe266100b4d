"""Throughput on a CPU machine: torch threads, batching, CLI start-up, sampling on a long GOP.

One command measures everything ``benchmarks/README.md`` reports (about 10–20 minutes on two
cores); rerun it on a quiet machine to replace the figures::

    .venv/bin/python benchmarks/throughput.py --all --json /tmp/throughput.json
    .venv/bin/python benchmarks/throughput.py --only cli sampling   # threads batch cli sampling

Every figure is printed with the 1-minute load average (``/proc/loadavg``) before and after
it, because a shared machine disturbs timings. Commands run as subprocesses of this checkout
(``src/`` first on ``PYTHONPATH``), without ``OMP_NUM_THREADS``, so the backend's own thread
choice is what is measured.

**threads** — ``o3video demo`` and ``o3video eval vstar`` (the embedded model on
``--eval-items`` synthetic V-STaR items of its own world) with torch's default threads
(``--threads`` = the CPU count, what torch picks when nobody says) and with the backend's
choice (no flag: one thread for the embedded model), each alone and beside a busy process: a
local ``while`` loop on one core, bounded to 15 minutes, started before and stopped after
each timed run. Wall time of the whole command (start-up included); the median of
``--repeats`` runs, the runs of all settings interleaved so that a drifting load hits each.

**batch** — ``o3video eval vstar --batch-size B`` for B in 1, 4, 8, 16 on ``--batch-items``
items (the backend's thread choice): items/s from the runner's own per-item time, and
whether every reply's text equals batch 1's (greedy decoding must not depend on batching).

**cli** — ``o3video --help``, ``trace``, ``probe``, ``data check`` and ``eval vstar-score``,
each in a fresh interpreter: median wall time of 5 runs, modules imported (``sys.modules``
after ``main``), ours among them, and whether torch or transformers was imported.
``--baseline-src DIR`` measures another checkout's ``src`` the same way (the numbers before).

**sampling** — a 10-minute 1280×720 H.264 file at 29.97 fps with a keyframe every 240 frames
(8.008 s), encoded once with PyAV into ``--cache``: ``sample_frames`` exact, snap with the
default tolerance (half the keyframe interval) and snap at 2 s, for 16 frames and for 2 fps at
most 64 frames; median of 3 runs, frames decoded (from the decoder's debug log), the largest
distance of a snapped frame from the exact frame's time, and, for reference, a plain PyAV loop
that decodes as many lone keyframes (seek, ``skip_frame=NONKEY``, one frame, resize).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PARTS = ("threads", "batch", "cli", "sampling")
BUSY_LIMIT_S = 900
BUSY_LOOP = (
    f"import time\nend = time.monotonic() + {BUSY_LIMIT_S}\nwhile time.monotonic() < end: pass"
)
WRAPPER = """
import json, sys, time
t0 = time.perf_counter()
from o3video.cli.main import main
out, argv = sys.argv[1], sys.argv[2:]
try:
    code = main(argv)
except SystemExit as e:
    code = e.code
json.dump({"code": code, "modules": sorted(sys.modules), "main_s": time.perf_counter() - t0},
          open(out, "w"))
"""


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def env_for(src: Path = SRC) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(
        PYTHONPATH=os.pathsep.join([str(src), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def o3video(*argv: str, src: Path = SRC) -> tuple[float, str]:
    """Run ``o3video ARGV`` in a fresh interpreter; (wall seconds, stderr). Fails loudly."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "o3video.cli.main", *argv],
        env=env_for(src),
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"o3video {' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return wall, done.stderr


@contextlib.contextmanager
def busy_process(on: bool) -> Iterator[None]:
    """A competing process spinning on one core (bounded), for the duration of the block."""
    if not on:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        time.sleep(0.5)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def timed(label: str, fn: Any, *args: Any) -> dict[str, Any]:
    before = load()
    out = fn(*args)
    row = {"label": label, **out, "load_before": before, "load_after": load()}
    print(json.dumps(row), flush=True)
    return row


# ---- threads and batch ---------------------------------------------------------------------


def embedded_model() -> Path:
    model = SRC / "o3video" / "embedded" / "model"
    if not (model / "model.safetensors").is_file():
        raise SystemExit(f"no embedded model at {model}")
    return model


def make_corpus(work: Path, n: int) -> Path:
    corpus = work / f"synth{n}"
    if not (corpus / "vstar.json").is_file():
        o3video(
            "data", "synth", "--out", str(corpus), "--n", str(n), "--seed", "1000",
            "--world-of", str(embedded_model()), "--workers", "1",
        )  # fmt: skip
    return corpus


def bench_threads(
    work: Path, eval_items: int, repeats: int, commands: Sequence[str]
) -> list[dict[str, Any]]:
    """Each (command, busy?, threads) setting ``repeats`` times, interleaved (alone and busy
    runs alternate, so a drifting load hits both); the median wall time of each."""
    model, corpus = embedded_model(), make_corpus(work, eval_items)
    cpus = os.cpu_count() or 1
    settings = {f"torch default ({cpus})": ["--threads", str(cpus)], "chosen (no flag)": []}
    walls: dict[str, list[float]] = {}
    loads: dict[str, list[float]] = {}
    threads: dict[str, list[str]] = {}
    for command in commands:
        for repeat in range(repeats):
            for name, flag in settings.items():
                for busy in (False, True):
                    out = work / f"{command}-{busy}-{len(flag)}-{repeat}"
                    if command == "demo":
                        argv = ["demo", "--out", str(out), "--animation", "none", *flag]
                    else:
                        argv = ["eval", "vstar", "--model", str(model), "--data", str(corpus)]
                        argv += ["--out", str(out), *flag]
                    label = f"{command} {'busy' if busy else 'alone'} threads={name}"
                    before = load()
                    with busy_process(busy):
                        wall, err = o3video(*argv)
                    shutil.rmtree(out, ignore_errors=True)
                    walls.setdefault(label, []).append(round(wall, 2))
                    loads.setdefault(label, []).extend([before, load()])
                    threads[label] = re.findall(r"(\d+) CPU thread\(s\)", err)[:1]
                    run = {"label": label, "wall_s": round(wall, 2), "load_before": before}
                    print(json.dumps({**run, "load_after": load()}), flush=True)
    rows = [
        {"label": label, "wall_s": statistics.median(w), "runs": w,
         "torch_threads": threads[label], "load_min": min(loads[label]),
         "load_max": max(loads[label])}
        for label, w in walls.items()
    ]  # fmt: skip
    by = {r["label"]: r["wall_s"] for r in rows}
    for row in rows:
        print(json.dumps(row), flush=True)
    for command in commands:
        for name in settings:
            ratio = by[f"{command} busy threads={name}"] / by[f"{command} alone threads={name}"]
            print(f"{command}, threads {name}: busy / alone = {ratio:.2f}x (medians)", flush=True)
    return rows


def bench_batch(work: Path, items: int, sizes: Sequence[int]) -> list[dict[str, Any]]:
    model, corpus = embedded_model(), make_corpus(work, items)
    rows, texts = [], {}
    for size in sizes:
        out = work / f"batch{size}"
        shutil.rmtree(out, ignore_errors=True)

        def run(size: int = size, out: Path = out) -> dict[str, Any]:
            argv = ["eval", "vstar", "--model", str(model), "--data", str(corpus)]
            wall, err = o3video(*argv, "--out", str(out), "--batch-size", str(size))
            per_item = float(re.findall(r"\(([\d.]+) s/item\)", err)[0])
            return {
                "batch_size": size,
                "items": items,
                "items_per_s": round(1 / per_item, 3),
                "s_per_item": per_item,
                "wall_s": round(wall, 2),
            }

        rows.append(timed(f"eval vstar batch {size}", run))
        records = [json.loads(line) for line in (out / "items.jsonl").open()]
        texts[size] = {r["index"]: r["raw"] for r in records}
    for row in rows:
        row["same_text_as_batch_1"] = texts[row["batch_size"]] == texts[sizes[0]]
        print(f"batch {row['batch_size']}: same text as batch {sizes[0]}: "
              f"{row['same_text_as_batch_1']}", flush=True)  # fmt: skip
    return rows


# ---- cli -----------------------------------------------------------------------------------


def cli_files(work: Path) -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from fractions import Fraction

    from test_stgr import VALID, valid, write  # type: ignore[import-not-found]
    from test_vstar_score import RATINGS, RECORDS  # type: ignore[import-not-found]
    from videos import encode_video  # type: ignore[import-not-found]

    trace = work / "answer.txt"
    trace.write_text("<think><obj>dog</obj><box>[1,2,3,4]</box> at <t>3</t>s</think><answer>A")
    video = work / "clip.mp4"
    encode_video(video, [k * 1001 for k in range(60)], Fraction(1, 30000))
    results, ratings = work / "results.json", work / "ratings.json"
    results.write_text(json.dumps(RECORDS), encoding="utf-8")
    ratings.write_text(json.dumps(RATINGS), encoding="utf-8")
    stgr = write(work, [valid(t) for t in VALID])
    return {"trace": str(trace), "video": str(video), "stgr": str(stgr),
            "results": str(results), "ratings": str(ratings)}  # fmt: skip


CLI_COMMANDS = (
    ("--help",),
    ("trace", "{trace}"),
    ("probe", "{video}"),
    ("data", "check", "{stgr}"),
    ("eval", "vstar-score", "{results}", "--judgements", "{ratings}"),
)


def bench_cli(work: Path, src: Path, label: str, repeats: int = 5) -> list[dict[str, Any]]:
    files = cli_files(work)
    rows = []
    for command in CLI_COMMANDS:
        argv = [a.format(**files) for a in command]

        def run(argv: list[str] = argv, command: tuple[str, ...] = command) -> dict[str, Any]:
            walls, got = [], {}
            for _ in range(repeats):
                out = work / "modules.json"
                t0 = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-c", WRAPPER, str(out), *argv],
                    env=env_for(src),
                    check=True,
                    capture_output=True,
                )
                walls.append(time.perf_counter() - t0)
                got = json.loads(out.read_text())
            modules = got["modules"]
            top = {m.split(".")[0] for m in modules}
            return {
                "command": " ".join(command[:2]) if command[0] != "--help" else "--help",
                "wall_s": round(statistics.median(walls), 3),
                "modules": len(modules),
                "ours": sum(m.startswith("o3video") for m in modules),
                "torch": "torch" in top,
                "transformers": "transformers" in top,
                "exit": got["code"],
            }

        rows.append(timed(f"cli {label} {' '.join(command[:2])}", run))
    return rows


# ---- sampling ------------------------------------------------------------------------------


class _Decoded(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.frames = 0

    def emit(self, record: logging.LogRecord) -> None:
        if m := re.search(r"decoded (\d+) frames", record.getMessage()):
            self.frames += int(m.group(1))


def lone_keyframes(path: Path, times_s: Sequence[float], size_wh: tuple[int, int]) -> None:
    """The floor snap aims at: one seek and one keyframe decode (and resize) per time."""
    import av
    from PIL import Image

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.skip_frame = "NONKEY"
        assert s.time_base is not None
        t0 = s.start_time or 0
        for t in times_s:
            c.seek(t0 + round(t / s.time_base), stream=s, backward=True)
            frame = next(iter(c.decode(s)))
            Image.fromarray(frame.to_ndarray(format="rgb24")).resize(size_wh)


def bench_sampling(cache: Path, seconds: float, repeats: int = 3) -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from video_sampling import RATE, encode  # type: ignore[import-not-found]

    from o3video.video import sample_frames

    gop = 240
    path = cache / f"long_{seconds:g}s_gop{gop}.mp4"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        encode(path, seconds, gop)
        print(f"encoded {path} in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"video: {path}: {seconds:g} s, keyframe every {float(gop / RATE):.3f} s", flush=True)
    handler = _Decoded()
    logging.getLogger("o3video.decoding").addHandler(handler)
    logging.getLogger("o3video.decoding").setLevel(logging.DEBUG)
    settings = {"16 frames": {"num_frames": 16}, "2 fps, max 64": {"fps": 2.0, "max_frames": 64}}
    modes = {"exact": {}, "snap (default tol)": {"mode": "snap"},
             "snap tol 2 s": {"mode": "snap", "snap_tolerance_s": 2.0}}  # fmt: skip
    rows = []
    for setting, budget in settings.items():
        exact = sample_frames(path, **budget)  # type: ignore[arg-type]

        for mode, options in modes.items():

            def run(
                budget: dict[str, Any] = budget,
                options: dict[str, Any] = options,
                setting: str = setting,
                exact: Any = exact,
            ) -> dict[str, Any]:
                walls = []
                for _ in range(repeats):
                    handler.frames = 0
                    t0 = time.perf_counter()
                    clip = sample_frames(path, **budget, **options)
                    walls.append(time.perf_counter() - t0)
                offsets = [abs(a - b) for a, b in zip(clip.times_s, exact.times_s, strict=True)]
                return {
                    "setting": setting,
                    "frames": clip.num_frames,
                    "wall_s": round(statistics.median(walls), 3),
                    "decoded": handler.frames,
                    "max_offset_s": round(max(offsets), 3),
                }

            rows.append(timed(f"sampling {setting} {mode}", run))

        def floor(exact: Any = exact, setting: str = setting) -> dict[str, Any]:
            times = exact.times_s
            walls = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                lone_keyframes(path, times, exact.frame_wh)
                walls.append(time.perf_counter() - t0)
            return {"setting": setting, "frames": len(times), "wall_s": round(min(walls), 3)}

        rows.append(timed(f"sampling {setting} lone keyframes (PyAV loop)", floor))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--all", action="store_true", help="every part")
    p.add_argument("--only", nargs="+", choices=PARTS, default=None)
    p.add_argument("--eval-items", type=int, default=9, help="threads: V-STaR items")
    p.add_argument("--repeats", type=int, default=3, help="threads: runs of each setting")
    p.add_argument(
        "--threads-commands", nargs="+", choices=("demo", "eval"), default=["demo", "eval"]
    )
    p.add_argument("--batch-items", type=int, default=16, help="batch: V-STaR items")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    p.add_argument("--baseline-src", type=Path, default=None, help="cli: another checkout's src")
    p.add_argument("--seconds", type=float, default=600.0, help="sampling: video length")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "o3video-bench")
    p.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = p.parse_args(argv)
    parts = PARTS if args.all else tuple(args.only or ())
    if not parts:
        p.error("say --all or --only PART ...")
    print(f"cpus {os.cpu_count()}, python {sys.version.split()[0]}, load {os.getloadavg()}")
    out: dict[str, Any] = {"cpus": os.cpu_count(), "load_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "threads" in parts:
            out["threads"] = bench_threads(
                work, args.eval_items, args.repeats, args.threads_commands
            )
        if "batch" in parts:
            out["batch"] = bench_batch(work, args.batch_items, args.batch_sizes)
        if "cli" in parts:
            out["cli"] = bench_cli(work, SRC, "this checkout")
            if args.baseline_src:
                out["cli_baseline"] = bench_cli(work, args.baseline_src, str(args.baseline_src))
        if "sampling" in parts:
            out["sampling"] = bench_sampling(args.cache, args.seconds)
    out["load_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

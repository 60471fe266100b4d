"""Which *questions* of the synthetic world does a model answer well? Per question template,
not per task (``demo_kinds.py`` asks one question per task): the basis for choosing the
questions ``o3video demo`` asks.

Synthesizes ``--n-videos`` held-out videos in the model's world (its card's ``world``;
``--seed`` must not be a training seed) and, for every video, writes *every* question the
world's question writers have for each video task (:meth:`QuestionWriter.all`, not only the
ones a corpus picks), asks each exactly as the demo does (greedy) and scores it with
``demo_kinds.py``'s rules (``right``, ``on_object``). Questions are grouped by template: the
question with the world's colour and shape words replaced by ``COLOUR`` and ``SHAPE`` and the
options left out. Per template it prints ``n``, ``right`` with its 95 % Wilson interval and
the share of timed claims whose box is on the named object.

Example (the shipped model, 40 videos, about 6 minutes on two threads)::

    python benchmarks/demo_questions.py --n-videos 40 --threads 2 --json /tmp/dq.json
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_kinds import VIDEO_TASKS, ask_scored, is_right  # type: ignore[import-not-found]


def template(question: str, colours: Sequence[str], shapes: Sequence[str]) -> str:
    """The question's first line with colour and shape words (and plurals, in any case) as
    placeholders.

    >>> template("How many red triangles appear in the video?\\nA. 1", ["red"], ["triangle"])
    'How many COLOUR SHAPEs appear in the video?'
    >>> template("How many crosses appear?", ["red"], ["cross"])
    'How many SHAPEs appear?'
    """
    text = question.split("\n")[0]
    colour_words = r"\b(" + "|".join(map(re.escape, colours)) + r")\b"
    text = re.sub(colour_words, "COLOUR", text, flags=re.IGNORECASE)
    shape_words = r"\b(" + "|".join(map(re.escape, shapes)) + r")(e?s)?\b"
    return re.sub(shape_words, lambda m: "SHAPEs" if m[2] else "SHAPE", text, flags=re.IGNORECASE)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of ``k`` successes in ``n``.

    >>> [round(v, 3) for v in wilson(8, 10)]
    [0.49, 0.943]
    """
    if n == 0:
        return (float("nan"), float("nan"))
    p, d = k / n, 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def questions_of(seed: int, index: int, cfg: Any) -> dict[str, list[Any]]:
    """Every question of each video task of video ``index`` of the corpus ``synthesize``
    draws with ``seed`` and world ``cfg`` (:func:`o3video.data.synthetic.video_questions`)."""
    from o3video.data.synthetic import video_questions

    return {
        task: qs for task, qs in video_questions(seed, index, cfg).items() if task in VIDEO_TASKS
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    """Per (task, template): n, the share right with its interval, the share of timed claims
    on the named object, and the share of questions both right and with every timed claim
    (at least one) on its object: what a demo answer needs to show."""
    out = [
        "| task | template | n | right [95 % CI] | on_object (claims) | right, boxes on |",
        "|---|---|---|---|---|---|",
    ]
    keys = sorted(
        {(r["task"], r["template"]) for r in rows}, key=lambda k: (VIDEO_TASKS.index(k[0]), k[1])
    )
    for task, tpl in keys:
        rs = [r for r in rows if (r["task"], r["template"]) == (task, tpl)]
        k = sum(r["right"] for r in rs)
        lo, hi = wilson(k, len(rs))
        claims = sum(r["claims"] for r in rs)
        share = sum(r["on_object"] for r in rs) / claims if claims else float("nan")
        both = sum(r["right"] and 0 < r["claims"] == r["on_object"] for r in rs) / len(rs)
        out.append(f"| {task} | {tpl} | {len(rs)} | {k / len(rs):.2f} [{lo:.2f}, {hi:.2f}] "
                   f"| {share:.2f} ({claims}) | {both:.2f} |")  # fmt: skip
    return "\n".join(out)


def demo_picks(rows: Sequence[dict[str, Any]]) -> str:
    """How ``o3video demo`` would fare on these videos: per video, the questions
    :func:`o3video.cli.demo.pick_questions` picks out of that video's rows (kept in the
    writers' order), and how many are right, and right with every box on its object."""
    from o3video.cli.demo import pick_questions
    from o3video.data.questions import Question

    videos: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        videos.setdefault(r["video"], []).append(r)
    asked = right = both = majority = 0
    for rs in videos.values():
        by_task: dict[str, list[Question]] = {}
        for r in rs:
            by_task.setdefault(r["task"], []).append(Question(r["task"], r["question"], "", ""))
        row_of = {r["question"]: r for r in rs}
        picked = [row_of[q.question] for q in pick_questions(by_task)]
        k = sum(bool(r["right"]) for r in picked)
        asked, right, majority = asked + len(picked), right + k, majority + (2 * k > len(picked))
        both += sum(bool(r["right"]) and 0 < r["claims"] == r["on_object"] for r in picked)
    return (
        f"the demo's questions (o3video.cli.demo.pick_questions) on these {len(videos)} videos: "
        f"{right} of {asked} right, most of a video's right on {majority}; right with every "
        f"box on its object: {both}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    from o3video.data.synthetic import synthesize
    from o3video.embedded import embedded_model_dir
    from o3video.evidence import parse_trace
    from o3video.models.card import VideoSettings, video_settings_for
    from o3video.models.load import load_backend
    from o3video.train.card import world_of

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="model folder (default: embedded)")
    p.add_argument("--n-videos", type=int, default=40)
    p.add_argument("--seed", type=int, default=2000, help="held-out corpus seed")
    p.add_argument("--work", type=Path, default=None, help="corpus folder (default: a temp)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="write every reply here")
    p.add_argument(
        "--from-json", type=Path, default=None, help="print a --json file's table and stop"
    )
    args = p.parse_args(argv)
    model = args.model or embedded_model_dir()
    cfg = world_of(model)
    if args.from_json:
        rows = json.loads(args.from_json.read_text())
        for r in rows:  # templates and the right rule as this version writes them
            r["template"] = template(r["question"], cfg.colours, cfg.shapes)
            r["right"] = is_right(r["task"], parse_trace(r["text"]).answer, r["truth"])
        print(table(rows))
        print(demo_picks(rows))
        return 0

    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="demo-questions-"))
    if not (work / "stgr_sft.json").exists():
        synthesize(work, args.n_videos, seed=args.seed, config=cfg, workers=1)
    video = video_settings_for(model) or VideoSettings()
    backend: Any = load_backend(model, "hf", device="cpu", threads=args.threads)
    rows = []
    t0 = time.perf_counter()
    for index in range(args.n_videos):
        vid = f"synth_{index:06d}"
        gt = json.loads((work / "gt" / f"{vid}.json").read_text())
        clip = video.sample(work / "videos" / f"{vid}.mp4", factor=backend.family.factor)
        for task, questions in questions_of(args.seed, index, cfg).items():
            for q in questions:
                row = ask_scored(clip, task, q.question, q.answer, gt, backend,
                                 args.max_new_tokens)  # fmt: skip
                tpl = template(q.question, cfg.colours, cfg.shapes)
                rows.append({"video": vid, "template": tpl, **row})
        print(f"  video {index + 1}/{args.n_videos}: {len(rows)} questions, "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
    print(f"{model}: {len(rows)} questions on {args.n_videos} videos (seed {args.seed}), "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    print(table(rows))
    print(demo_picks(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`o3video demo`: the whole system on this machine, nothing downloaded.

Makes a synthetic video (moving shapes with exact ground truth, :mod:`o3video.data.synthetic`),
asks the embedded tiny model (:mod:`o3video.embedded`; or ``--model DIR``) three grounded
questions about it, streaming its reasoning; prints each answer beside the ground truth with
its evidence table (object, time, box in video pixels), and writes per question
``answer.json``, the evidence animation and ``report.html`` into ``--out``. The video comes from
the synthetic world the model was trained on and frames are sampled as in its training (both
from its ``o3video.json``).

The questions are the first three kinds of :data:`QUESTIONS` that the video has (a kind the
video cannot support, such as a span for an object that is always in view, is passed over):
the kinds the embedded model answers right most often (``benchmarks/demo_questions.py``: every
question the world's writers have, asked on 60 held-out videos and grouped by template; see
the README for the figures and the kinds it still fails).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from o3video.cli._model import add_threads_argument

if TYPE_CHECKING:
    from o3video.data.questions import Question

NAME = "demo"
HELP = "ask the embedded tiny model about a synthetic video and see its evidence (offline)"
EXAMPLES = """examples:
  o3video demo                              # writes ./o3video-demo/
  o3video demo --out /tmp/demo --seed 7     # another video
  o3video demo --model runs/synthetic-tiny-gspo/final --animation mp4
"""
DEMO_SEED = 20261121
NUM_QUESTIONS = 3
QUESTIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("temporal QA", re.compile(r"When is the .+ in the scene\?")),
    ("General video QA Free-form", re.compile(r"How many shapes appear in the video\?")),
    ("General video QA Free-form", re.compile(r"How many shapes can be seen in the last frame\?")),
    (
        "General video QA Free-form",
        re.compile(r"What shape is the .+ object that stands still for a while\?"),
    ),
    ("General video QA Free-form", re.compile(r"What colour is the .+\?")),
)
"""(STGR task, pattern of the question's first line) of the kinds the demo asks, best first:
the embedded model's right answers per kind on 60 held-out videos were 0.88, 0.67, 0.55, 0.51
and 0.49 (``python benchmarks/demo_questions.py --n-videos 60``)."""
FALLBACK_TASKS = (
    "temporal-spatial free-form QA",
    "temporal QA",
    "General video QA MCQ",
    "General video QA Free-form",
)
"""Where a video has fewer than :data:`NUM_QUESTIONS` of those kinds, the first question of
each of these tasks fills the rest (in this order)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="a checkpoint folder (default: embedded)")
    parser.add_argument("--out", type=Path, default=Path("o3video-demo"), help="output folder")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="which synthetic video")
    parser.add_argument("--animation", choices=("gif", "mp4", "none"), default="gif")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--device", default=None, help="cpu (default), cuda, ...")
    add_threads_argument(parser)


def pick_questions(questions: dict[str, list[Question]], n: int = NUM_QUESTIONS) -> list[Question]:
    """The demo's ``n`` questions out of a video's questions per STGR task
    (:func:`o3video.data.synthetic.video_questions`): one of each kind of :data:`QUESTIONS`
    the video has, best kind first, then the first question of each :data:`FALLBACK_TASKS`
    task not yet asked."""
    out: list[Question] = []

    def add(q: Question) -> None:
        if len(out) < n and all(q.question != o.question for o in out):
            out.append(q)

    for task, pattern in QUESTIONS:
        found = next(
            (q for q in questions.get(task, []) if pattern.fullmatch(q.question.split("\n")[0])),
            None,
        )
        if found is not None:
            add(found)
    for task in FALLBACK_TASKS:
        for q in questions.get(task, [])[:1]:
            add(q)
    return out


def run(args: argparse.Namespace) -> int:
    from o3video.ask import ask
    from o3video.cli.ask import print_answer
    from o3video.data.synthetic import synthesize, video_questions
    from o3video.data.world import WorldConfig
    from o3video.embedded import embedded_model_dir
    from o3video.models.card import VideoSettings, video_settings_for
    from o3video.models.load import load_backend
    from o3video.prompts import task_for_stgr
    from o3video.train.card import world_of
    from o3video.viz import write_outputs

    model_dir = Path(args.model) if args.model else embedded_model_dir()
    video = video_settings_for(model_dir) or VideoSettings()
    out: Path = args.out
    print(f"o3video demo: model {model_dir}", flush=True)
    corpus = out / "video"
    world = world_of(model_dir, default=WorldConfig())
    synthesize(corpus, 1, seed=args.seed, config=world, workers=1)
    path = next((corpus / "videos").glob("*.mp4"))
    options: dict[str, Any] = {"device": args.device or "cpu", "threads": args.threads}
    backend: Any = load_backend(model_dir, "hf", **options)
    clip = video.sample(path, factor=backend.family.factor)
    w, h = clip.source_wh
    print(f"video: {path} ({w}x{h}, {clip.duration_s:.1f} s; {clip.num_frames} frames shown)")
    reports = []
    for k, item in enumerate(pick_questions(video_questions(args.seed, 0, world)), start=1):
        print(f"\n[{k}] {item.task}: {item.question}", flush=True)
        print("reasoning: ", end="", flush=True)
        answer = ask(
            clip,
            item.question,
            model=backend,
            task=task_for_stgr(item.task),
            max_new_tokens=args.max_new_tokens,
            on_text=lambda delta: print(delta, end="", flush=True),
        )
        print()
        print_answer(answer)
        print(f"ground truth: {item.answer}")
        animation = None if args.animation == "none" else args.animation
        paths = write_outputs(answer, out / f"q{k}", animation=animation)
        reports.append(paths["report"])
        for kind, p in paths.items():
            print(f"{kind}: {p}")
    print(
        f"\nopen {reports[0] if reports else out} in a browser to see the evidence on the frames."
        "\nYour own video, with a real checkpoint:"
        '\n  o3video ask VIDEO "QUESTION" --model Qwen/Qwen2.5-VL-7B-Instruct --out out/'
        "\nor the web page: o3video serve --model PATH",
        file=sys.stdout,
    )
    return 0

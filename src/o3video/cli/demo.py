"""`o3video demo`: the whole system on this machine, nothing downloaded.

Makes a synthetic video (moving shapes with exact ground truth, :mod:`o3video.data.synthetic`),
asks the embedded tiny model (:mod:`o3video.embedded`; or ``--model DIR``) a few grounded
questions about it — a free-form question answered with evidence, a temporal question, a
multiple-choice question — streaming its reasoning; prints each answer beside the ground truth
with its evidence table (object, time, box in video pixels), and writes per question
``answer.json``, the evidence animation and ``report.html`` into ``--out``. The video comes from
the synthetic world the model was trained on and frames are sampled as in its training (both
from its ``o3video.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from o3video.cli._model import add_threads_argument

NAME = "demo"
HELP = "ask the embedded tiny model about a synthetic video and see its evidence (offline)"
EXAMPLES = """examples:
  o3video demo                              # writes ./o3video-demo/
  o3video demo --out /tmp/demo --seed 7     # another video
  o3video demo --model runs/synthetic-tiny-gspo/final --animation mp4
"""
DEMO_SEED = 20261121
TASKS = (
    ("temporal-spatial free-form QA", "free_form"),
    ("temporal QA", "temporal"),
    ("General video QA MCQ", "mcq"),
)
"""(STGR task of the synthetic record asked, prompt preset), in the order asked."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="a checkpoint folder (default: embedded)")
    parser.add_argument("--out", type=Path, default=Path("o3video-demo"), help="output folder")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="which synthetic video")
    parser.add_argument("--animation", choices=("gif", "mp4", "none"), default="gif")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--device", default=None, help="cpu (default), cuda, ...")
    add_threads_argument(parser)


def _questions(corpus: Path) -> list[tuple[str, str, str, str]]:
    """(task preset, question, ground-truth answer, STGR task) of the demo video."""
    records = json.loads((corpus / "stgr_sft.json").read_text(encoding="utf-8"))
    out = []
    for stgr_task, task in TASKS:
        record = next((r for r in records if r["task"] == stgr_task), None)
        if record is not None:
            out.append((task, record["question"], str(record["answer"]), stgr_task))
    return out


def run(args: argparse.Namespace) -> int:
    from o3video.ask import ask
    from o3video.cli.ask import print_answer
    from o3video.data.synthetic import synthesize
    from o3video.data.world import WorldConfig
    from o3video.embedded import embedded_model_dir
    from o3video.models.card import VideoSettings, video_settings_for
    from o3video.models.load import load_backend
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
    for k, (task, question, truth, stgr_task) in enumerate(_questions(corpus), start=1):
        print(f"\n[{k}] {stgr_task}: {question}", flush=True)
        print("reasoning: ", end="", flush=True)
        answer = ask(
            clip,
            question,
            model=backend,
            task=task,  # type: ignore[arg-type]
            max_new_tokens=args.max_new_tokens,
            on_text=lambda delta: print(delta, end="", flush=True),
        )
        print()
        print_answer(answer)
        print(f"ground truth: {truth}")
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

"""`o3video ask`: ask a model about a video and see its evidence.

Samples frames with their true times, asks the model (``--backend hf`` loads it with
``transformers``, ``vllm`` with vLLM's engine, ``openai`` calls a served model at
``--base-url``), streams the reasoning as it is written (one sample, a backend that streams),
then prints the answer, the evidence table (object, claimed time, time of the frame shown,
box in source pixels) and how many problems the trace parser found. The outputs
(``answer.json``, the evidence animation and ``report.html``) go to ``--out``, by default
``./o3video-out/<video name>``. ``--samples N --vote majority|confidence`` samples N traces
and keeps the winner of the vote (SPEC §8). ``--json`` prints one JSON object instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from o3video.answer import Answer
from o3video.ask import ask
from o3video.cli._model import add_model_arguments, backend_options
from o3video.prompts import TASKS
from o3video.video import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS

logger = logging.getLogger(__name__)

NAME = "ask"
HELP = "ask a model about a video and see its evidence (object, box, time)"
EXAMPLES = """examples:
  o3video ask clip.mp4 "Which shape enters first?"     # the embedded model, its own frames
  o3video ask clip.mp4 "What is the dog doing?" --model Qwen/Qwen2.5-VL-7B-Instruct
  o3video ask clip.mp4 "Which option is right? A. ... B. ..." --task mcq --model ckpt/
  o3video ask clip.mp4 "When does the door open?" --task temporal --presentation video \\
      --model ckpt/ --backend vllm
  o3video ask clip.mp4 "What happens?" --model ckpt/ --samples 8 --vote confidence
  o3video ask clip.mp4 "What happens?" --backend openai --base-url http://127.0.0.1:8000/v1 \\
      --model Qwen/Qwen2.5-VL-72B-Instruct --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="path of the video file")
    parser.add_argument("question", help="the question about the video")
    add_model_arguments(parser, required=False)
    parser.add_argument(
        "--task", choices=[t for t in TASKS if t != "spatial_image"], default="free_form"
    )
    parser.add_argument("--presentation", choices=("frames", "video"), default="frames")
    frames = "default: the model's o3video.json (its training budget), else "
    parser.add_argument("--fps", type=float, default=None, help=frames + "2")
    parser.add_argument("--max-frames", type=int, default=None, help=frames + "16")
    parser.add_argument(
        "--max-pixels", type=int, default=None, help=frames + str(DEFAULT_MAX_PIXELS)
    )
    parser.add_argument(
        "--min-pixels", type=int, default=None, help=frames + str(DEFAULT_MIN_PIXELS)
    )
    parser.add_argument("--samples", type=int, default=1, help="traces to sample")
    parser.add_argument("--vote", choices=("majority", "confidence"), default=None)
    parser.add_argument(
        "--temperature", type=float, default=None, help="default 0 (1 sample), 1.0 (several)"
    )
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=768)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="default ./o3video-out/<video>")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _backend_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.backend == "vllm":
        return {"presentation": args.presentation}
    return backend_options(args)


def _check(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, or ``None``."""
    if args.samples < 1:
        return "--samples must be at least 1"
    if args.vote and args.samples < 2:
        return "--vote needs --samples 2 or more"
    if args.backend == "openai" and not args.base_url:
        return "--backend openai needs --base-url"
    if args.backend == "openai" and not args.model:
        return "--backend openai needs --model (the served model's name)"
    if args.base_url and args.backend != "openai":
        return "--base-url is for --backend openai"
    return None


def write_outputs(answer: Answer, out_dir: Path) -> tuple[dict[str, Path], str | None]:
    """The files written for ``answer`` in ``out_dir``, and a note when the report is missing.

    Uses :func:`o3video.viz.write_outputs` (answer.json, animation, report.html); without
    :mod:`o3video.viz` only ``answer.json`` is written, and the note says so.
    """
    try:
        from o3video.viz import write_outputs as write_viz
    except ImportError as e:
        if e.name not in ("o3video.viz", None):
            raise
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "answer.json"
        text = json.dumps(answer.to_json(), indent=2, ensure_ascii=False)
        path.write_text(text + "\n", encoding="utf-8")
        return {"json": path}, "the animation and report.html need o3video.viz"
    return dict(write_viz(answer, out_dir)), None


def _fmt_box(box: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in box) + ")"


def _fmt_s(t: float | None) -> str:
    return "-" if t is None else f"{t:.2f} s"


def print_answer(answer: Answer) -> None:
    """The answer, the evidence table and the parser's problems, for people."""
    print(f"answer: {answer.answer_text if answer.answer_text is not None else '(none)'}")
    w, h = answer.clip.source_wh
    print(f"evidence: {len(answer.evidence)} claim(s), boxes in source pixels ({w}x{h})")
    if answer.evidence:
        name_w = max(6, *(len(e.name) for e in answer.evidence))
        print(f"  {'object':<{name_w}}  {'time':>9}  {'frame time':>10}  box (x1, y1, x2, y2)")
        for e in answer.evidence:
            boxes = " ".join(_fmt_box(b) for b in e.boxes_source)
            print(f"  {e.name:<{name_w}}  {_fmt_s(e.t_s):>9}  {_fmt_s(e.frame_t_s):>10}  {boxes}")
    problems = answer.trace.problems
    kinds = sorted({p.kind for p in problems})
    print(f"parser problems: {len(problems)}" + (f" ({', '.join(kinds)})" if kinds else ""))
    if answer.votes:
        print(f"vote over {len(answer.samples)} samples: {len(answer.votes)} weighed")
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in answer.timings.items())
    print(f"timings: {stages}")


def run(args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem is not None:
        print(f"o3video ask: error: {problem}", file=sys.stderr)
        return 2
    streamed: list[str] = []

    def on_text(delta: str) -> None:
        if not streamed:
            print("reasoning:", flush=True)
        streamed.append(delta)
        print(delta, end="", flush=True)

    model = args.model
    if model is None:
        from o3video.embedded import embedded_model_dir

        model = str(embedded_model_dir())
    answer = ask(
        args.video,
        args.question,
        model=model,
        backend=args.backend,
        backend_options=_backend_options(args),
        family=args.family,
        task=args.task,
        presentation=args.presentation,
        fps=args.fps,
        max_frames=args.max_frames,
        max_pixels=args.max_pixels,
        min_pixels=args.min_pixels,
        samples=args.samples,
        vote=args.vote,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        on_text=None if args.json else on_text,
    )
    out_dir = args.out if args.out is not None else Path("o3video-out") / Path(args.video).stem
    paths, note = write_outputs(answer, out_dir)
    if args.json:
        payload = answer.to_json()
        payload["outputs"] = {kind: str(path) for kind, path in paths.items()}
        print(json.dumps(payload, ensure_ascii=False))
        return 0
    if streamed:
        print()
    else:
        print("model output:")
        print(answer.text)
    print_answer(answer)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    if note:
        print(f"note: {note}")
    return 0

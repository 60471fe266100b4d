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
from o3video.cli import finite_float
from o3video.cli._model import add_model_arguments, backend_options
from o3video.prompts import TASKS
from o3video.video import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, MAX_SOURCE_PIXELS

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 32_768
"""The longest question asked of a model whose context length is not known here (a hub name
or a served model); a local model folder's own context is the limit otherwise."""

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
    parser.add_argument(
        "--protocol",
        choices=("o3video", "reference"),
        default=None,
        help="how the request is written (README 'Protocols'); default: the model card's, "
        "else reference (a checkpoint without a card, such as the released one)",
    )
    frames = "default: the model's o3video.json (its training budget), else "
    parser.add_argument("--fps", type=finite_float, default=None, help=frames + "2")
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
        "--temperature", type=finite_float, default=None, help="default 0 (1 sample), 1.0 (several)"
    )
    parser.add_argument("--top-p", type=finite_float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=768)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="default ./o3video-out/<video>")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--max-source-pixels",
        type=int,
        default=MAX_SOURCE_PIXELS,
        help="largest video frame (width x height) to decode; default 8192x8192",
    )


def _backend_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.backend == "vllm":
        return {"presentation": args.presentation}
    return backend_options(args)


def context_tokens(model: str) -> int | None:
    """The context length of a local model folder (``max_position_embeddings`` of its
    ``config.json``, or of its ``text_config``); ``None`` when it does not say (a hub name,
    a served model)."""
    config = Path(model) / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # the model's loader will say what is wrong with it
    for part in (data.get("text_config") or {}, data):
        value = part.get("max_position_embeddings") if isinstance(part, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return None


def question_tokens(question: str, model: str) -> int:
    """How many tokens ``question`` is for ``model``'s tokenizer (the ``tokenizer.json`` of a
    local folder); its length in characters when there is none."""
    path = Path(model) / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        return len(Tokenizer.from_file(str(path)).encode(question, add_special_tokens=False))
    return len(question)


def question_problem(question: str, model: str, max_new_tokens: int) -> str | None:
    """Why ``question`` cannot be asked: empty or blank, or longer than the model's context
    (with room for ``max_new_tokens``) or, when the context is not known,
    :data:`MAX_QUESTION_CHARS`."""
    if not question.strip():
        return "the question is empty"
    if len(question) > MAX_QUESTION_CHARS:
        return (
            f"the question is {len(question)} characters; at most {MAX_QUESTION_CHARS} are accepted"
        )
    context = context_tokens(model)
    if context is not None:
        n = question_tokens(question, model)
        if n + max_new_tokens > context:
            return (
                f"the question is {n} tokens; with --max-new-tokens {max_new_tokens} it does "
                f"not fit the model's context of {context} tokens"
            )
    return None


def _check(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, or ``None``. Without ``--model`` (and a local
    backend) the model is the embedded one."""
    if args.backend == "openai" and not args.model:
        return "--backend openai needs --model (the served model's name)"
    if args.model is None:
        from o3video.embedded import embedded_model_dir

        args.model = str(embedded_model_dir())
    problem = question_problem(args.question, args.model, args.max_new_tokens)
    if problem is not None:
        return problem
    if args.samples < 1:
        return "--samples must be at least 1"
    if args.vote and args.samples < 2:
        return "--vote needs --samples 2 or more"
    if args.backend == "openai" and not args.base_url:
        return "--backend openai needs --base-url"
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

    answer = ask(
        args.video,
        args.question,
        model=args.model,
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
        protocol=args.protocol,
        max_source_pixels=args.max_source_pixels,
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

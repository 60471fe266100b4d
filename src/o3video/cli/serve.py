"""`o3video serve`: a local web page for grounded answers.

Loads the model once (``--backend hf`` with ``transformers``, ``vllm`` with vLLM's engine,
``openai`` calls a served model at ``--base-url``) and serves a page where you upload a video
or pick an example, ask a question with a task preset, watch the reasoning stream in, and
click each evidence chip to see the video at that time with the box drawn over it; then the
answer, the parser's problems, the timings, optional test-time voting, and ``answer.json`` /
``report.html`` to download.

Security: it listens on 127.0.0.1 unless ``--host`` says otherwise; uploads are limited by
``--max-upload-mb``, ``--max-duration-s`` and ``--max-source-pixels`` (the frame size, read
from the headers before anything is decoded), kept in a private temporary folder (mode 0700)
and deleted when the server stops; the page names videos by id only, never by path; one
question runs at a time, the others wait in a queue the page shows.

Without ``--model`` it serves the embedded tiny model (:mod:`o3video.embedded`), offline.
Frames are sampled as the model's card (``o3video.json``) says it was trained, unless
``--fps``, ``--max-frames``, ``--max-pixels`` or ``--min-pixels`` say otherwise.

Example videos are made once (synthetic moving shapes, a few seconds) into ``--examples``,
by default ``$XDG_CACHE_HOME/o3video/examples`` (for a model trained on the synthetic world, a
folder of videos of that world: ``examples/<world digest>``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from o3video.cli import finite_float
from o3video.cli._model import add_model_arguments
from o3video.cli.ask import _backend_options
from o3video.embedded import EmbeddedModelMissing, embedded_model_dir
from o3video.models.card import VideoSettings, read_card, video_settings
from o3video.models.load import load_backend
from o3video.protocols import protocol_for_model
from o3video.serve.state import ensure_examples
from o3video.train.card import world_of
from o3video.video import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, MAX_SOURCE_PIXELS

logger = logging.getLogger(__name__)

NAME = "serve"
HELP = "a local web page: ask about a video, watch the reasoning, click the evidence"
EXAMPLES = """examples:
  o3video serve                                 # the embedded model; open http://127.0.0.1:7860/
  o3video serve --model Qwen/Qwen2.5-VL-7B-Instruct --port 8080 --max-upload-mb 500
  o3video serve --backend openai --base-url http://127.0.0.1:8000/v1 \\
      --model Qwen/Qwen2.5-VL-72B-Instruct --family qwen2_5_vl
"""
NO_MODEL = (
    "o3video serve: error: no model: this install has no embedded model, so pass --model "
    "PATH_OR_NAME (a checkpoint directory or a hub name). To try the page offline, make a "
    "tiny random model first:\n"
    "  python -c \"from o3video.models.tiny import build_tiny_model; build_tiny_model('tiny')\"\n"
    "  o3video serve --model tiny"
)


def default_examples_dir() -> Path:
    """``$XDG_CACHE_HOME/o3video/examples`` (``~/.cache`` when the variable is unset)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "o3video" / "examples"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, required=False)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=7860, help="port (0: any free port)")
    parser.add_argument("--max-upload-mb", type=finite_float, default=200.0, help="default 200")
    parser.add_argument("--max-duration-s", type=finite_float, default=600.0, help="default 600")
    parser.add_argument("--max-samples", type=int, default=8, help="most samples of a vote")
    parser.add_argument(
        "--max-source-pixels",
        type=int,
        default=MAX_SOURCE_PIXELS,
        help="largest video frame (width x height) accepted; default 8192x8192",
    )
    parser.add_argument(
        "--examples", type=Path, default=None, help="example videos (made there if missing)"
    )
    parser.add_argument("--no-examples", action="store_true", help="offer no example videos")
    parser.add_argument("--presentation", choices=("frames", "video"), default="frames")
    parser.add_argument(
        "--protocol",
        choices=("o3video", "reference"),
        default=None,
        help="how requests are written (README 'Protocols'); default: the model card's, else "
        "reference (a checkpoint without a card)",
    )
    parser.add_argument(
        "--fps",
        type=finite_float,
        default=None,
        help="sampling rate (default: the model card's, or 2)",
    )
    parser.add_argument("--max-frames", type=int, default=None, help="default: card, or 16")
    parser.add_argument(
        "--max-pixels", type=int, default=None, help=f"default: card, or {DEFAULT_MAX_PIXELS}"
    )
    parser.add_argument(
        "--min-pixels", type=int, default=None, help=f"default: card, or {DEFAULT_MIN_PIXELS}"
    )
    parser.add_argument(
        "--temperature", type=finite_float, default=None, help="default 0 (1 sample), 1.0 (several)"
    )
    parser.add_argument("--top-p", type=finite_float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=768)
    parser.add_argument("--seed", type=int, default=None)


def _problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, or ``None``."""
    if args.backend == "openai" and not args.base_url:
        return "--backend openai needs --base-url"
    if args.base_url and args.backend != "openai":
        return "--base-url is for --backend openai"
    if args.max_upload_mb <= 0 or args.max_duration_s <= 0:
        return "--max-upload-mb and --max-duration-s must be positive"
    if args.max_samples < 1:
        return "--max-samples must be at least 1"
    if args.max_source_pixels < 1:
        return "--max-source-pixels must be positive"
    if not 0 <= args.port <= 65535:
        return f"--port {args.port} is not a port"
    return None


def frame_options(args: argparse.Namespace, model: str) -> VideoSettings:
    """The frame budget: each option given, else the model card's (a local model folder with
    ``o3video.json``), else the defaults of :class:`~o3video.models.card.VideoSettings`."""
    return video_settings(
        model,
        fps=args.fps,
        max_frames=args.max_frames,
        max_pixels=args.max_pixels,
        min_pixels=args.min_pixels,
    )


def examples_for(args: argparse.Namespace, model: str) -> Path:
    """The examples folder: ``--examples``, else the default one, in a sub-folder of the
    model's synthetic world when its card names one (the videos are made of that world)."""
    if args.examples is not None:
        return ensure_examples(args.examples)
    card = read_card(model) if Path(model).is_dir() else None
    world = (card or {}).get("world")
    if world is None:
        return ensure_examples(default_examples_dir())
    config = world_of(model)
    digest = hashlib.sha1(json.dumps(world, sort_keys=True).encode()).hexdigest()[:12]
    return ensure_examples(default_examples_dir() / f"world-{digest}", world=config)


def run(args: argparse.Namespace) -> int:
    from o3video.serve import AskOptions, Limits, make_server
    from o3video.serve.app import LOOPBACK

    if args.model is None:
        try:
            args.model = str(embedded_model_dir())
        except EmbeddedModelMissing:
            print(NO_MODEL, file=sys.stderr)
            return 2
    problem = _problem(args)
    if problem is not None:
        print(f"o3video serve: error: {problem}", file=sys.stderr)
        return 2
    video = frame_options(args, args.model)
    examples = None if args.no_examples else examples_for(args, args.model)
    print(f"loading {args.backend}:{args.model} ...", flush=True)
    backend = load_backend(args.model, args.backend, **_backend_options(args))
    limits = Limits(
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_duration_s=args.max_duration_s,
        max_samples=args.max_samples,
        max_source_pixels=args.max_source_pixels,
    )
    options = AskOptions(
        presentation=args.presentation,
        video=video,
        protocol=protocol_for_model(args.model, args.protocol),
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
    )
    try:
        server = make_server(
            backend,
            args.family,
            args.host,
            args.port,
            limits=limits,
            examples_dir=examples,
            options=options,
        )
    except OSError as e:
        print(
            f"o3video serve: error: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr
        )
        return 1
    if args.host not in LOOPBACK:
        print(
            f"warning: listening on {args.host}: anyone who can reach this address can use "
            "the model and upload videos",
            file=sys.stderr,
        )
    print(f"o3video serve: {server.url}  (Ctrl-C stops it)", flush=True)
    # A plain `kill` stops it as Ctrl-C does, so the uploads are deleted then too.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
    finally:
        server.server_close()  # also deletes the uploads
        signal.signal(signal.SIGTERM, previous)
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt

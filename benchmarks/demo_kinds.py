"""Which kinds of question does a model of the synthetic world answer well? The basis for the
questions ``o3video demo`` asks.

Synthesizes ``--n-videos`` held-out videos in the model's world (its card's ``world``;
``--seed`` must not be a training seed), and for every video and every video task of the
synthetic world asks the first question of that task exactly as the demo does
(:func:`o3video.ask.ask` on the clip sampled with the model's video settings, greedy). Per
task it prints:

- ``right``: the answer is right by the task's rule: the option letter (MCQ; the temporal MCQ
  reads it after ``Correct Option:``, as its reward does and its training answers write it,
  and also needs the span's tIoU >= 0.5), the span's tIoU >= 0.5 (temporal QA), the synthetic
  world's What judge (:func:`o3video.eval.judge.exact_match`; free-form);
- ``on_object``: of the answer's timed claims, the share whose best box has IoU >= 0.5 with
  the named object's true box at the world frame nearest the claimed time (an unknown name or
  an object out of view counts as off);
- ``claims`` and ``valid`` (the reply parses without a problem).

With ``--json`` every reply is written with its scores. Example (the kept SFT stage)::

    python benchmarks/demo_kinds.py --model benchmarks/embedded-sft --n-videos 30
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from o3video.boxes import interval_iou, iou
from o3video.evidence import parse_span

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedded_probe import gt_boxes  # type: ignore[import-not-found]

VIDEO_TASKS = (
    "temporal-spatial free-form QA",
    "General video QA Free-form",
    "General video QA MCQ",
    "temporal QA",
    "temporal QA (MCQ)",
)
"""The synthetic world's STGR tasks asked about a whole video (visual QA asks about a frame)."""


def is_right(task: str, answer: str | None, truth: Any) -> bool:
    """The task's rule (module docstring) for one answer against the record's ``answer``.

    >>> is_right("temporal QA", "From <t>1.0</t>s to <t>3.0</t>s", [1.0, 2.5])
    True
    >>> span = "From <t>4.0</t>s to <t>5.0</t>s."
    >>> is_right("temporal QA (MCQ)", span + "\\nCorrect Option: B", "B\\n[4.0, 5.0]")
    True
    >>> is_right("temporal QA (MCQ)", span + "\\nCorrect Option: A", "B\\n[4.0, 5.0]")
    False
    >>> is_right("General video QA Free-form", "yellow", "yellow")
    True
    """
    from o3video.eval.judge import exact_match
    from o3video.protocols.readers import read_letter
    from o3video.rewards.answer import after_correct_option

    if answer is None:
        return False
    if task == "temporal QA":
        truth = json.loads(truth) if isinstance(truth, str) else truth
        span = parse_span(answer)
        return span is not None and interval_iou(span, (float(truth[0]), float(truth[1]))) >= 0.5
    if task in ("General video QA MCQ", "temporal QA (MCQ)"):
        letter, _, rest = str(truth).partition("\n")
        # the temporal MCQ answers "From <t>a</t>s to <t>b</t>s.\nCorrect Option: X"
        said = after_correct_option(answer) if task == "temporal QA (MCQ)" else answer
        if said is None or read_letter(said, None) != letter.strip():
            return False
        if not rest:
            return True
        a, b = json.loads(rest)
        span = parse_span(answer)
        return span is not None and interval_iou(span, (float(a), float(b))) >= 0.5
    return exact_match(str(truth), answer)


def on_object(evidence: Sequence[Any], gt: dict[str, Any]) -> list[bool]:
    """Per timed claim: does its best box have IoU >= 0.5 with the named object's box?"""
    out = []
    for ev in evidence:
        if ev.t_s is None:
            continue
        target = gt_boxes(gt, ev.t_s).get(ev.name)
        out.append(
            bool(target) and max((iou(b, target) for b in ev.boxes_source), default=0) >= 0.5
        )
    return out


def ask_scored(
    clip: Any, task: str, question: str, truth: Any, gt: dict[str, Any], backend: Any,
    max_new_tokens: int,
) -> dict[str, Any]:  # fmt: skip
    """Ask ``question`` about ``clip`` as the demo does (greedy, the task's preset) and score
    the reply against ``truth`` and the video's ground truth ``gt``: one row of ``--json``."""
    from o3video.ask import ask
    from o3video.prompts import task_for_stgr

    answer = ask(clip, question, model=backend, task=task_for_stgr(task),
                 max_new_tokens=max_new_tokens)  # fmt: skip
    hits = on_object(answer.evidence, gt)
    return {
        "task": task,
        "question": question,
        "truth": truth,
        "text": answer.text,
        "right": is_right(task, answer.trace.answer, truth),
        "claims": len(hits),
        "on_object": sum(hits),
        "valid": not answer.trace.kinds and answer.trace.answer is not None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    from o3video.data.synthetic import synthesize
    from o3video.models.card import VideoSettings, video_settings_for
    from o3video.models.load import load_backend
    from o3video.train.card import world_of

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="a model folder with its card")
    p.add_argument("--n-videos", type=int, default=30)
    p.add_argument("--seed", type=int, default=2000, help="held-out corpus seed")
    p.add_argument("--work", type=Path, default=None, help="corpus folder (default: a temp)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="write every reply here")
    args = p.parse_args(argv)

    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="demo-kinds-"))
    if not (work / "stgr_sft.json").exists():
        synthesize(work, args.n_videos, seed=args.seed, config=world_of(args.model), workers=1)
    records = json.loads((work / "stgr_sft.json").read_text())
    video = video_settings_for(args.model) or VideoSettings()
    backend: Any = load_backend(args.model, "hf", device="cpu", threads=args.threads)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for path in sorted((work / "videos").glob("*.mp4")):
        gt = json.loads((work / "gt" / f"{path.stem}.json").read_text())
        clip = video.sample(path, factor=backend.family.factor)
        for task in VIDEO_TASKS:
            record = next(
                (
                    r
                    for r in records
                    if r["task"] == task and Path(r["video_path"]).stem == path.stem
                ),
                None,
            )
            if record is None:
                continue
            row = ask_scored(clip, task, record["question"], record["answer"], gt, backend,
                             args.max_new_tokens)  # fmt: skip
            rows.append({"video": path.stem, **row})
    seconds = time.perf_counter() - t0
    print(f"{args.model}: {len(rows)} questions on {args.n_videos} videos (seed {args.seed}), "
          f"{seconds:.0f} s")  # fmt: skip
    print("| task | n | right | on_object (claims) | valid |")
    print("|---|---|---|---|---|")
    for task in VIDEO_TASKS:
        rs = [r for r in rows if r["task"] == task]
        if not rs:
            continue
        claims = sum(r["claims"] for r in rs)
        share = sum(r["on_object"] for r in rs) / claims if claims else float("nan")
        right = np.mean([r["right"] for r in rs])
        valid = np.mean([r["valid"] for r in rs])
        print(f"| {task} | {len(rs)} | {right:.2f} | {share:.2f} ({claims}) | {valid:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

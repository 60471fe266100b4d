"""Does a model trained on the synthetic world ground its claims? A held-out probe.

Reads a training run (``<run>/config.yaml`` and ``<run>/final``), synthesizes a held-out
corpus with the run's world settings and another seed, asks its spatio-temporal and visual QA
records with the run's prompt and frame settings (``to_example``, as training does), and
scores the replies against the world's exact per-frame ground truth (``gt/*.json``):

- ``format_valid``: the trace parses without a problem (an untimed claim is fine in visual
  QA), has an answer and at least one claim;
- ``box_iou``: per claim, the best IoU of its boxes (mapped to video pixels by the family,
  :func:`o3video.answer.build_answer`) with the named object's box at the world frame
  nearest the claimed time (visual QA: the image's frame); 0 for an unknown name or an
  object out of view; averaged over all claims of all replies;
- ``box_iou_any``: the same against the best-matching object of that frame, name ignored;
- ``baseline_iou`` / ``baseline_iou_any``: the same claims (names, times), each box replaced
  by the average box of all objects in the training corpus (a model that ignores the image);
- ``time_err_s``: spatio-temporal claims, mean ``|t - nearest key-frame time|``;
- ``accuracy``: spatio-temporal answers equal to the ground truth (case, "the" and
  punctuation ignored); visual QA answers whose box has IoU >= 0.5.

    .venv/bin/python benchmarks/embedded_probe.py /tmp/emb/grad --n-videos 40 --seed 1
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from o3video.answer import build_answer
from o3video.boxes import iou
from o3video.data.examples import to_example
from o3video.data.load import load_stgr
from o3video.data.stgr import SpatioTemporalRecord, VisualQARecord
from o3video.data.synthetic import synthesize
from o3video.models.base import Request, SamplingParams
from o3video.models.load import load_backend
from o3video.train.config import load_config

TASKS = (SpatioTemporalRecord, VisualQARecord)


def _norm(text: str) -> str:
    text = re.sub(r"[^a-z0-9 ]", " ", text.lower())
    return " ".join(w for w in text.split() if w != "the")


def mean_box(gt_dir: Path) -> list[float]:
    """The average in-view box of every object in every frame of a corpus (video pixels)."""
    boxes = [
        fr["box_xyxy"]
        for path in sorted(gt_dir.glob("*.json"))
        for obj in json.loads(path.read_text())["objects"]
        for fr in obj["frames"]
    ]
    return [float(v) for v in np.mean(np.asarray(boxes), axis=0)]


def gt_boxes(gt: dict[str, Any], t_s: float) -> dict[str, list[float]]:
    """Each object's box at the world frame nearest ``t_s`` (objects in view only)."""
    k = int(np.argmin(np.abs(np.asarray(gt["times_s"]) - t_s)))
    return {
        obj["name"]: fr["box_xyxy"]
        for obj in gt["objects"]
        for fr in obj["frames"]
        if fr["idx"] == k
    }


def score(
    record: Any, text: str, clip: Any, family: str, gt: dict[str, Any], avg: list[float]
) -> dict[str, Any]:
    """Per-reply metrics (see the module docstring)."""
    answer = build_answer(text, clip, family)
    trace = answer.trace
    # Visual QA claims have no time (one image): that "problem" is the format there.
    untimed_ok = {"claim_without_time"} if isinstance(record, VisualQARecord) else set()
    problems = [k for k in trace.kinds if k not in untimed_ok]
    out: dict[str, Any] = {
        "valid": not problems and trace.answer is not None and bool(trace.claims),
        "ious": [],
        "ious_any": [],
        "base": [],
        "base_any": [],
        "terr": [],
    }
    image_k = None
    if isinstance(record, VisualQARecord):
        image_k = int(re.search(r"_f(\d+)\.png$", str(record.image_path)).group(1))  # type: ignore[union-attr]
    for ev in answer.evidence:
        if image_k is not None:
            t_s = gt["times_s"][image_k]
        elif ev.t_s is not None:
            t_s = ev.t_s
        else:
            out["ious"].append(0.0)
            out["ious_any"].append(0.0)
            out["base"].append(0.0)
            out["base_any"].append(0.0)
            continue
        frame = gt_boxes(gt, t_s)
        target = frame.get(ev.name)
        best = max((iou(b, target) for b in ev.boxes_source), default=0.0) if target else 0.0
        out["ious"].append(best)
        out["ious_any"].append(
            max((iou(b, g) for b in ev.boxes_source for g in frame.values()), default=0.0)
        )
        out["base"].append(iou(avg, target) if target else 0.0)
        out["base_any"].append(max((iou(avg, g) for g in frame.values()), default=0.0))
        if isinstance(record, SpatioTemporalRecord) and ev.t_s is not None:
            out["terr"].append(min(abs(ev.t_s - kf.time_s) for kf in record.key_frames))
    if isinstance(record, SpatioTemporalRecord):
        out["correct"] = trace.answer is not None and _norm(trace.answer) == _norm(record.answer)
    else:
        target_box = gt_boxes(gt, gt["times_s"][image_k]).get(record.answer.split("</obj>")[0][5:])
        first = next(
            (e for e in answer.evidence if e.span[0] >= (trace.answer_span or (0,))[0]), None
        )
        out["correct"] = bool(
            first is not None
            and target_box
            and trace.answer_span is not None
            and max(iou(b, target_box) for b in first.boxes_source) >= 0.5
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run", type=Path, help="training output folder (config.yaml, final/)")
    p.add_argument("--model", type=Path, default=None, help="checkpoint (default: RUN/final)")
    p.add_argument("--n-videos", type=int, default=40)
    p.add_argument("--seed", type=int, default=1, help="held-out corpus seed (train used 0)")
    p.add_argument("--limit", type=int, default=60, help="records asked at most")
    p.add_argument(
        "--tasks",
        choices=("both", "spatio-temporal", "visual"),
        default="both",
        help="which records to ask",
    )
    p.add_argument("--max-new-tokens", type=int, default=320)
    p.add_argument("--show", type=int, default=3, help="replies printed")
    p.add_argument("--json", type=Path, default=None, help="write per-reply results here")
    p.add_argument(
        "--oracle", action="store_true", help="score the SFT targets instead (checks the probe)"
    )
    args = p.parse_args(argv)

    cfg = load_config(args.run / "config.yaml")
    data = cfg.data
    assert data.synth is not None, "the probe needs a run trained on data.synth"
    held = args.run / f"heldout-seed{args.seed}"
    if not (held / "stgr_sft.json").exists():
        synthesize(held, args.n_videos, seed=args.seed, config=data.synth.world_config(), workers=1)
    kinds = {"both": TASKS, "spatio-temporal": (SpatioTemporalRecord,), "visual": (VisualQARecord,)}
    wanted = kinds[args.tasks]
    records = [r for r in load_stgr(held / "stgr_sft.json", held) if isinstance(r, wanted)]
    records = records[: args.limit]
    avg = mean_box(args.run / "data" / "gt")
    backend = None
    if not args.oracle:
        backend = load_backend(args.model or args.run / "final", "hf", device="cpu", max_batch=4)
    params = SamplingParams(max_new_tokens=args.max_new_tokens)
    results: dict[str, list[dict[str, Any]]] = {"spatio-temporal": [], "visual QA": []}
    t0 = time.perf_counter()
    for i, record in enumerate(records):
        ex = to_example(
            record,
            held,
            data.family,
            fps=data.fps,
            max_frames=data.max_frames,
            max_pixels=data.max_pixels,
            min_frames=data.min_frames,
        )
        if backend is None:
            text = ex.target or ""
        else:
            text = backend.generate([Request(ex.messages, clip=ex.clip)], params)[0][0]
        media = getattr(record, "video_path", None) or getattr(record, "image_path", "")
        vid = Path(str(media)).stem
        gt = json.loads((held / "gt" / f"{vid.split('_f')[0]}.json").read_text())
        res = score(record, text, ex.clip, data.family, gt, avg)
        kind = "visual QA" if isinstance(record, VisualQARecord) else "spatio-temporal"
        results[kind].append({**res, "text": text, "question": record.question})
        if i < args.show:
            print(f"Q: {record.question}\nA: {text}\n")
    seconds = time.perf_counter() - t0
    summary: dict[str, Any] = {"model": str(args.model or args.run / "final"), "seconds": seconds}
    everything = [r for rs in results.values() for r in rs]
    for kind, rs in (*results.items(), ("all", everything)):
        if not rs:
            continue

        def mean(key: str, rs: list[dict[str, Any]] = rs) -> float | None:
            values = [v for r in rs for v in r[key]]
            return round(float(np.mean(values)), 3) if values else None

        summary[kind] = {
            "n": len(rs),
            "format_valid": round(float(np.mean([r["valid"] for r in rs])), 3),
            "claims": sum(len(r["ious"]) for r in rs),
            "box_iou": mean("ious"),
            "box_iou_any": mean("ious_any"),
            "baseline_iou": mean("base"),
            "baseline_iou_any": mean("base_any"),
            "time_err_s": mean("terr"),
            "accuracy": round(float(np.mean([r["correct"] for r in rs])), 3),
        }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

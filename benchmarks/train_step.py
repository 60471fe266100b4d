"""Seconds per GSPO step on the tiny synthetic recipe (CPU), split into rollout, reward,
data preparation and optimisation.

    python benchmarks/train_step.py [--steps 8] [--out /tmp/bench-train]

Rollout = ``GRPOTrainer._generate`` (sampling the completions); reward =
``_calculate_rewards``; data preparation = building rows from records (frames decoded once,
then cached: ``ExampleSource.prep_seconds``) plus the rest of ``_generate_and_score_completions``
(processor on the frames, old log-probs); optimisation = the training step minus those.
The time of the whole ``trainer.train`` is divided by the number of optimizer steps.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from o3video.train.config import load_config
from o3video.train.dataset import source_from_config
from o3video.train.rl import build_rl_trainer

ROOT = Path(__file__).resolve().parents[1]


def _timed(totals: dict[str, float], name: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - t0

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("/tmp/o3video-bench-train"))
    args = parser.parse_args()
    cfg = load_config(
        ROOT / "recipes" / "synthetic-tiny-gspo.yaml",
        [f"output_dir={args.out}", f"max_steps={args.steps}", "save_steps=100000"],
        stage="rl",
    )
    source = source_from_config(cfg.data, args.out, stage="rl")
    trainer = build_rl_trainer(cfg, source)
    totals: dict[str, float] = defaultdict(float)
    for name, attr in (
        ("rollout", "_generate"),
        ("reward", "_calculate_rewards"),
        ("generate_and_score", "_generate_and_score_completions"),
    ):
        setattr(trainer, attr, _timed(totals, name, getattr(trainer, attr)))
    t0 = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t0
    steps = trainer.state.global_step
    rows = source.prep_seconds
    score_other = totals["generate_and_score"] - totals["rollout"] - totals["reward"]
    parts = {
        "rollout (generate)": totals["rollout"],
        "reward": totals["reward"],
        "data prep (rows+decode)": rows,
        "data prep (processor, old logps)": score_other,
        "optimisation (+ trainer overhead)": total - totals["generate_and_score"] - rows,
    }
    print(
        f"tiny GSPO, {steps} optimizer steps, G={cfg.rl.num_generations}, "
        f"steps_per_generation={cfg.rl.steps_per_generation}, {source.decodes} decodes"
    )
    print(f"{'part':36s} {'s/step':>8s} {'share':>7s}")
    for name, seconds in parts.items():
        print(f"{name:36s} {seconds / steps:8.4f} {seconds / total:7.1%}")
    print(f"{'total':36s} {total / steps:8.4f} {1:7.1%}")
    share = rows / total
    print(
        f"data preparation (rows + decode): {share:.1%} of a step -> "
        f"{'OK (< 10%)' if share < 0.10 else 'OVER 10%'}"
    )


if __name__ == "__main__":
    main()

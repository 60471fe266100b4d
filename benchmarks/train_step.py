"""Seconds per GSPO step on the tiny synthetic recipe (CPU), split into rollout, reward,
data preparation and optimisation.

    python benchmarks/train_step.py [--steps 8] [--out /tmp/bench-train]
    python benchmarks/train_step.py --steps 8 --recipe RECIPE --set KEY=VALUE ...
    # e.g. RECIPE = recipes/synthetic-tiny-embedded-gspo112.yaml with
    #      model.path=benchmarks/embedded-sft112-long data.stgr=... data.media_root=...

(``--recipe`` other than the tiny one: the recipe's own model unless ``--set model.path=``;
its probe is switched off, as it is not part of a step.)

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
TINY_RECIPE = ROOT / "recipes" / "synthetic-tiny-gspo.yaml"


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
    parser.add_argument("--recipe", type=Path, default=TINY_RECIPE)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more recipe overrides")  # fmt: skip
    args = parser.parse_args()
    overrides = [f"output_dir={args.out}", f"max_steps={args.steps}", "save_steps=100000"]
    if args.recipe.resolve() == TINY_RECIPE:
        # The recipe starts from the SFT model; the step's cost is the same from random weights.
        overrides.append("model.path=tiny:0")
    else:
        overrides.append("rl.probe_every=0")
    cfg = load_config(args.recipe, overrides + args.set, stage="rl")
    source = source_from_config(cfg.data, args.out, stage="rl")
    trainer = build_rl_trainer(cfg, source)
    totals: dict[str, float] = defaultdict(float)
    for name, attr in (
        ("rollout", "_generate"),
        ("reward", "_calculate_rewards"),
        ("generate_and_score", "_generate_and_score_completions"),
    ):
        setattr(trainer, attr, _timed(totals, name, getattr(trainer, attr)))
    # The log-prob forward passes inside generate-and-score (old and reference policy) are
    # model compute, not data preparation: time them apart. The same method also runs in the
    # loss, so count it only while generate-and-score is on the stack.
    scoring = [False]
    score = trainer._generate_and_score_completions
    logps = trainer._get_per_token_logps_and_entropies

    def flagged_score(*a: Any, **k: Any) -> Any:
        scoring[0] = True
        try:
            return score(*a, **k)
        finally:
            scoring[0] = False

    def split_logps(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return logps(*a, **k)
        finally:
            if scoring[0]:
                totals["score_logps"] += time.perf_counter() - t

    trainer._generate_and_score_completions = flagged_score
    trainer._get_per_token_logps_and_entropies = split_logps
    t0 = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t0
    steps = trainer.state.global_step
    rows = source.prep_seconds
    logp = totals["score_logps"]
    # What remains of generate-and-score: the processor on the frames (patches, grids) and
    # TRL's bookkeeping around it: counted as data preparation.
    processing = totals["generate_and_score"] - totals["rollout"] - totals["reward"] - logp
    parts = {
        "rollout (generate)": totals["rollout"],
        "reward": totals["reward"],
        "data prep: rows + decode (ours)": rows,
        "data prep: processor on frames (TRL)": processing,
        "old/ref log-probs (forward)": logp,
        "optimisation (+ trainer overhead)": total - totals["generate_and_score"] - rows,
    }
    print(
        f"{args.recipe.name}, {steps} optimizer steps, G={cfg.rl.num_generations}, "
        f"steps_per_generation={cfg.rl.steps_per_generation}, {source.decodes} decodes"
    )
    print(f"{'part':36s} {'s/step':>8s} {'share':>7s}")
    for name, seconds in parts.items():
        print(f"{name:36s} {seconds / steps:8.4f} {seconds / total:7.1%}")
    print(f"{'total':36s} {total / steps:8.4f} {1:7.1%}")
    for label, seconds in (
        ("rows + decode", rows),
        ("rows + decode + processor", rows + processing),
    ):
        share = seconds / total
        verdict = "OK (< 10%)" if share < 0.10 else "OVER 10%"
        print(f"data preparation ({label}): {share:.1%} of a step -> {verdict}")


if __name__ == "__main__":
    main()

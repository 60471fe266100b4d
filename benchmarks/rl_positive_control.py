"""Positive control for the RL loop: can GSPO raise a reward the policy controls directly?

Before asking whether RL improves grounding, check that the loop itself learns: reward a
completion 1.0 when its ``<answer>`` contains a word (default ``red``), 0.0 otherwise, and
train the real RL trainer (:func:`o3video.train.rl.build_rl_trainer`, the recipe's settings
with the overrides given) on the recipe's prompts. A working loop drives the rate of that word
up within tens of steps; a broken one (gradients not reaching the sampled tokens, advantages
of the wrong sign, a loss forward that sees other inputs than the rollout) leaves it flat.

The script prints the reward of every logged step and the mean of the first and the last
quarter of the logged steps; the trainer's own files go to ``--out``.

Example (the embedded model, the synthetic RL records)::

    OMP_NUM_THREADS=1 python benchmarks/rl_positive_control.py \\
        --recipe recipes/synthetic-tiny-embedded-gspo.yaml \\
        --out runs/rl-control-lr2e-4 model.path=src/o3video/embedded/model \\
        data.stgr=runs/exp-tp-data/stgr_rl.json "data.tasks=[temporal-spatial free-form QA]" \\
        rl.max_steps=40 rl.num_generations=8 rl.per_device_train_batch_size=16 \\
        rl.steps_per_generation=1 rl.learning_rate=2.0e-4 rl.logging_steps=5
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def make_word_reward(word: str) -> Any:
    """The control reward: 1.0 when the text after the last ``<answer>`` holds ``word``.

    >>> r = make_word_reward("red")
    >>> r(["<think>red</think><answer>a blue cross</answer>", "<answer>the red circle</answer>"])
    [0.0, 1.0]
    """

    from o3video.rewards.base import completion_text

    def reward(completions: Sequence[Any], **_: Any) -> list[float]:
        texts = [completion_text(c) or "" for c in completions]
        return [1.0 if word in t.split("<answer>")[-1] else 0.0 for t in texts]

    reward.__name__ = f"says_{word}"
    return reward


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, required=True, help="an RL recipe (YAML)")
    parser.add_argument("--out", type=Path, required=True, help="the run folder")
    parser.add_argument("--word", default="red", help="the rewarded word (default: red)")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args(argv)

    from o3video.train.config import load_config
    from o3video.train.rl import build_rl_trainer

    overrides = [*args.overrides, f"output_dir={args.out}", "rl.probe_every=0"]
    config = load_config(args.recipe, overrides, stage="rl")
    reward = make_word_reward(args.word)
    trainer = build_rl_trainer(config, reward_funcs=[reward], reward_weights=[1.0])
    trainer.train()
    key = f"rewards/{reward.__name__}/mean"
    curve = [(e["step"], float(e[key])) for e in trainer.state.log_history if key in e]
    if not curve:
        raise SystemExit(f"no {key} in the trainer's log (set rl.logging_steps)")
    quarter = max(1, len(curve) // 4)
    first = sum(v for _, v in curve[:quarter]) / quarter
    last = sum(v for _, v in curve[-quarter:]) / quarter
    summary = {"reward": key, "curve": curve, "first_quarter": first, "last_quarter": last}
    (args.out / "control.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    for step, value in curve:
        print(f"step {step:4d}  {key} {value:.3f}")
    print(f"first quarter {first:.3f} -> last quarter {last:.3f} ({last - first:+.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

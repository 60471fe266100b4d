"""A learning curve that means something: the RL policy scored on a fixed held-out probe set.

The per-batch training reward moves with whatever prompts the batch happened to hold. The
probe set is the same prompts every time, never trained on (the first ``rl.probe_items``
records of the RL file are held out of the training rows), answered greedily every
``rl.probe_every`` optimizer steps (and before the first), and scored with every reward of
the run **at the end of training's progress** (p = 1: an annealed σ at its final, strictest
value), so that every evaluation is measured with the same yardstick — scored at each step's
own progress, an annealed reward would fall as σ shrinks while the policy stands still. Each
evaluation is one JSON line in ``<output_dir>/probe.jsonl`` — ``{"step", "progress",
"rewards": {name: mean}, "total", "items": {name: [per item]}, "completions"}``,
``total`` the weighted sum, ``items`` each reward per probe item and ``completions`` the
answers themselves — and the same means go into the trainer's log as
``probe/<name>`` and ``probe/total``.

One process only: under several processes (DeepSpeed ZeRO-3 splits the weights, and a
generation on one rank would wait forever for the others) the probe is refused at build time.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from o3video.prompts import processor_inputs
from o3video.rewards.base import RewardFn
from o3video.train.dataset import ExampleSource

logger = logging.getLogger(__name__)

PROBE_PROGRESS = 1.0
"""The training progress every probe evaluation is scored at (module docstring)."""


def probe_split(n_records: int, probe_items: int) -> tuple[list[int], list[int]]:
    """``(probe indices, training indices)``: the first ``probe_items`` records are the
    probe set, the rest train. ``ValueError`` when nothing would be left to train on.

    >>> probe_split(10, 3)
    ([0, 1, 2], [3, 4, 5, 6, 7, 8, 9])
    """
    if probe_items < 1:
        raise ValueError(f"probe_items must be at least 1, got {probe_items}")
    if probe_items >= n_records:
        raise ValueError(
            f"the probe set ({probe_items} records) would leave none of the {n_records} "
            "records to train on: lower rl.probe_items"
        )
    return list(range(probe_items)), list(range(probe_items, n_records))


def score_probe(
    completions: Sequence[str],
    columns: Sequence[dict[str, Any]],
    reward_funcs: Sequence[RewardFn],
    weights: Sequence[float],
    progress: float,
) -> dict[str, Any]:
    """Mean of every reward over the probe completions (``columns``: each one's reward
    columns) at training ``progress``, their weighted ``total``, and each reward's value per
    item (``items``: name → list in probe order), so that two evaluations can be compared
    item by item."""
    batch: dict[str, list[Any]] = {}
    for key in {k for c in columns for k in c}:
        batch[key] = [c.get(key) for c in columns]
    batch["progress"] = [progress] * len(completions)
    means: dict[str, float] = {}
    items: dict[str, list[float]] = {}
    total = 0.0
    for func, weight in zip(reward_funcs, weights, strict=True):
        name = getattr(func, "__name__", "reward")
        values = [float(v) for v in func(list(completions), **batch)]
        means[name] = sum(values) / max(len(values), 1)
        items[name] = values
        total += weight * means[name]
    return {"rewards": means, "total": total, "items": items}


class Probe:
    """Greedy answers of the policy to the probe prompts, scored (module docstring)."""

    def __init__(
        self,
        source: ExampleSource,
        indices: Sequence[int],
        rewards: Mapping[str, Any],
        *,
        processor: Any,
        out_path: Path,
        max_new_tokens: int,
        suppress_tokens: Sequence[int] = (),
    ) -> None:
        """``rewards``: the run's reward spec (:func:`o3video.rewards.registry.build_rewards`);
        the probe builds its own functions of it, whose training progress is the probe's
        (the progress of the steps done when it runs)."""
        from o3video.rewards.registry import build_rewards

        self.source, self.indices = source, list(indices)
        self._progress = 0.0
        funcs, weights = build_rewards(rewards, progress_fn=lambda: self._progress)
        self.reward_funcs, self.weights = list(funcs), list(weights)
        self.processor, self.out_path = processor, out_path
        self.max_new_tokens, self.suppress_tokens = max_new_tokens, list(suppress_tokens)

    def answers(self, model: Any) -> list[str]:
        """The policy's greedy completion of each probe prompt."""
        import torch

        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        texts = []
        was_training = model.training
        model.eval()
        try:
            for i in self.indices:
                example = self.source.example(i)
                inputs = processor_inputs(self.processor, example.messages, example.clip)
                inputs = inputs.to(next(model.parameters()).device)
                with torch.no_grad():
                    ids = model.generate(
                        **inputs,
                        max_new_tokens=self.max_new_tokens,
                        do_sample=False,
                        suppress_tokens=self.suppress_tokens or None,
                        pad_token_id=tokenizer.pad_token_id,
                    )
                new = ids[0, inputs["input_ids"].shape[1] :]
                texts.append(tokenizer.decode(new, skip_special_tokens=True))
        finally:
            model.train(was_training)
        return texts

    def run(self, model: Any, step: int, progress: float) -> dict[str, Any]:
        """Answer, score at training ``progress``, append one line to ``probe.jsonl``;
        returns the line."""
        self._progress = progress
        completions = self.answers(model)
        columns = [self.source.example(i).columns for i in self.indices]
        scored = score_probe(completions, columns, self.reward_funcs, self.weights, progress)
        line = {"step": step, "progress": progress, **scored, "completions": completions}
        if not all(math.isfinite(v) for v in scored["rewards"].values()):
            raise ValueError(f"probe rewards are not finite: {scored}")
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        with self.out_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        logger.info("probe at step %d: total %.4f %s", step, scored["total"], scored["rewards"])
        return line

    def callback(self, every: int) -> Any:
        """A ``TrainerCallback``: the probe before the first step and every ``every`` optimizer
        steps, its means added to the trainer's log history as ``probe/<name>``."""
        from transformers import TrainerCallback

        probe = self

        class _ProbeCallback(TrainerCallback):
            def _run(self, state: Any, model: Any) -> None:
                line = probe.run(model, state.global_step, PROBE_PROGRESS)
                entry = {f"probe/{k}": v for k, v in line["rewards"].items()}
                entry.update({"probe/total": line["total"], "step": state.global_step})
                state.log_history.append(entry)

            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if state.global_step == 0 and kw.get("model") is not None:
                    self._run(state, kw["model"])

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if state.global_step % every == 0 and kw.get("model") is not None:
                    self._run(state, kw["model"])

        return _ProbeCallback()

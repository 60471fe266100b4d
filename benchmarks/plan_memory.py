"""The memory plan against a real step: peak RSS of SFT steps on CPU vs ``estimate``.

    python benchmarks/plan_memory.py [--steps 16] [--out /tmp/plan-memory]

The tiny recipe (``recipes/synthetic-tiny-sft.yaml``) with a wider tiny model (24 M
parameters, so that the step's memory stands out of the interpreter's), ``sft.max_length``
at the corpus's longest sequence (no record is cut), fp32 on CPU. A first process builds the
model and the data; a second one (with a fixed ``MALLOC_MMAP_THRESHOLD_``, see ``main``)
imports everything, decodes every record's frames, reads its resident memory, then loads the
model, trains ``--steps`` steps and reads its peak resident memory (``ru_maxrss``) at each
step's end. The difference is what the plan estimates for one process
(``estimate(..., mode="full", device="cpu")``: weights, gradients, AdamW states,
activations, logits). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDE = (
    "model.tiny={hidden_size: 512, num_layers: 8, num_heads: 8, num_kv_heads: 4, "
    "vision_hidden_size: 256, vision_depth: 4, vision_num_heads: 4}"
)
MAX_LENGTH = 704
"""Longer than every SFT sequence of the recipe's corpus (692 tokens at most)."""


def overrides(out: Path, steps: int) -> list[str]:
    return [f"output_dir={out}", WIDE, f"sft.max_length={MAX_LENGTH}", f"max_steps={steps}",
            "save_steps=100000", "logging_steps=100000", "data.limit=null"]  # fmt: skip


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure(out: Path, steps: int) -> dict[str, float]:
    from o3video.train.config import load_config
    from o3video.train.dataset import source_from_config
    from o3video.train.plan import estimate, model_shape
    from o3video.train.sft import build_sft_trainer

    recipe = ROOT / "recipes/synthetic-tiny-sft.yaml"
    config = load_config(recipe, overrides(out, steps), stage="sft")
    source = source_from_config(config.data, out, stage="sft")
    for i, record in enumerate(source.records):
        if record.reasoning is not None:
            source.sft_row(i)  # frames decoded and cached before the baseline
    from transformers import TrainerCallback
    from trl import SFTTrainer  # noqa: F401  (its modules load on first use: before the baseline)

    peaks: list[int] = []

    class Peak(TrainerCallback):  # read at each step's end, before any checkpoint is written
        def on_step_end(self, args: object, state: object, control: object, **kw: object) -> None:
            peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # KiB

    before = rss_bytes()
    trainer = build_sft_trainer(config, source, callbacks=[Peak()])
    trainer.train()
    peak = max(peaks)
    shape, _ = model_shape(config)
    planned = estimate(config, shape, "full", stage="sft", device="cpu")
    return {
        "measured_mib": (peak - before) / 2**20,
        "planned_mib": planned.total / 2**20,
        "weights_mib": planned.weights / 2**20,
        "activations_mib": planned.activations / 2**20,
        "params": shape.params(),
        "steps": trainer.state.global_step,
    }


def prepare(out: Path) -> None:
    from o3video.train.config import load_config
    from o3video.train.dataset import source_from_config
    from o3video.train.sft import resolve_model_path

    config = load_config(ROOT / "recipes/synthetic-tiny-sft.yaml", overrides(out, 1), stage="sft")
    resolve_model_path(config.model, out)
    source_from_config(config.data, out, stage="sft")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("/tmp/plan-memory"))
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.out, args.steps)))
        return 0
    prepare(args.out)
    cmd = [
        sys.executable,
        __file__,
        "--measure",
        "--steps",
        str(args.steps),
        "--out",
        str(args.out),
    ]
    # glibc's malloc otherwise keeps freed activations of one step in its heap and serves the
    # next step's larger ones beside them: resident memory would measure fragmentation, which
    # a GPU's caching allocator does not have in this form. A fixed mmap threshold returns
    # every large tensor's memory when it is freed, so resident memory follows live tensors.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        return done.returncode
    print(done.stdout.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())

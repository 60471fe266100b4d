"""Run SFT then GSPO of the tiny recipes in every process of an ``accelerate launch``, logging
what each process writes and which records it trains on (tests/test_train_multiprocess.py).

    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 \\
        tests/multiprocess_train.py OUT

Writes ``OUT/log-rank<R>.jsonl``: one ``{"write": name, "path": ...}`` line per file-making
call (tiny model build, data synthesis, resolved config, model card, model and processor
saves), and ``{"stage": ..., "records": [...]}`` lines with the records a rank used.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main(out: Path) -> int:
    import transformers

    import o3video.data.synthetic
    import o3video.models.tiny
    import o3video.train.card
    import o3video.train.rl
    import o3video.train.sft
    from o3video.cli.main import main as cli
    from o3video.train.dataset import ExampleSource

    rank = int(os.environ.get("RANK", "0"))
    out.mkdir(parents=True, exist_ok=True)
    log = (out / f"log-rank{rank}.jsonl").open("a", encoding="utf-8")

    def record(**entry: Any) -> None:
        log.write(json.dumps(entry) + "\n")
        log.flush()

    def logged(owner: Any, name: str, path_arg: int) -> None:
        real = getattr(owner, name)

        @functools.wraps(real)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            record(write=name, path=str(args[path_arg]) if len(args) > path_arg else None)
            return real(*args, **kwargs)

        setattr(owner, name, wrapper)

    logged(o3video.models.tiny, "build_tiny_model", 0)
    logged(o3video.data.synthetic, "synthesize", 0)
    logged(o3video.train.sft, "save_resolved", 1)
    logged(o3video.train.rl, "save_resolved", 1)
    logged(o3video.train.card, "write_card", 0)
    real_model_save = transformers.PreTrainedModel.save_pretrained
    real_processor_save = transformers.ProcessorMixin.save_pretrained

    def model_save(self: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        record(write="model.save_pretrained", path=str(path))
        return real_model_save(self, path, *args, **kwargs)

    def processor_save(self: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        record(write="processor.save_pretrained", path=str(path))
        return real_processor_save(self, path, *args, **kwargs)

    transformers.PreTrainedModel.save_pretrained = model_save  # type: ignore[method-assign]
    transformers.ProcessorMixin.save_pretrained = processor_save  # type: ignore[method-assign]

    real_sft_row = ExampleSource.sft_row
    real_train = transformers.Trainer.train
    training = []

    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        training.append(True)  # rows read before (TRL peeks at row 0) are not trained on
        return real_train(self, *args, **kwargs)

    def sft_row(self: ExampleSource, i: int) -> dict[str, Any]:
        if training:
            record(stage="sft", records=[self.records[i].index])
        return real_sft_row(self, i)

    transformers.Trainer.train = train  # type: ignore[method-assign]

    ExampleSource.sft_row = sft_row  # type: ignore[method-assign]

    real_rewards = o3video.train.rl.build_reward_functions

    def rewards(spec: Any, progress: Any) -> Any:
        funcs, weights = real_rewards(spec, progress)

        def seen(completions: list[Any], **columns: Any) -> list[float]:
            record(stage="rl", records=sorted(set(columns["index"])))
            return [0.0] * len(completions)

        return [*funcs, seen], [*weights, 0.0]

    o3video.train.rl.build_reward_functions = rewards

    common = ["save_steps=1000", "logging_steps=1"]
    sft = out / "sft"
    code = cli(["train", "sft", "--config", str(ROOT / "recipes/synthetic-tiny-sft.yaml"),
                f"output_dir={sft}", "max_steps=2", *common])  # fmt: skip
    if code != 0:
        return code
    return cli(["train", "rl", "--config", str(ROOT / "recipes/synthetic-tiny-gspo.yaml"),
                f"output_dir={out / 'rl'}", f"model.path={sft / 'final'}", "max_steps=1",
                "max_completion_length=8", *common])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

"""Build the SFT trainer of the tiny recipe in every process of a DeepSpeed ZeRO-3 launch and
print how many policy parameters each process holds (tests/test_train_multiprocess.py).

    ACCELERATE_USE_CPU=true DS_ACCELERATOR=cpu accelerate launch --use_deepspeed \\
        --deepspeed_config_file recipes/accelerate/zero3.json --zero3_init_flag true \\
        --num_processes 2 tests/zero3_load.py OUT

Prints ``{"rank": R, "local": n, "full": N}``: ``local`` counts the elements this process
materialised, ``full`` the model's (DeepSpeed's ``ds_numel`` of a partitioned parameter).
Only the load is checked: on CPU accelerate wraps the model in DDP rather than DeepSpeed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(out: Path) -> int:
    from o3video.train.config import load_config
    from o3video.train.sft import build_sft_trainer

    recipe = ROOT / "recipes/synthetic-tiny-sft.yaml"
    config = load_config(recipe, [f"output_dir={out}", "max_steps=1"], stage="sft")
    model = build_sft_trainer(config).model
    local = sum(p.numel() for p in model.parameters())
    full = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())
    print(json.dumps({"rank": int(os.environ.get("RANK", "0")), "local": local, "full": full}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

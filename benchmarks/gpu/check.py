"""The GPU check: a full-width Qwen2.5-VL-7B-shaped model (random weights, the real
``config.json``) trained with LoRA on 16 frames — one SFT step and one GSPO step with
``transformers`` rollouts — with the measured peak memory against ``o3video train plan``.

    python benchmarks/gpu/check.py --config-json DIR  # DIR: the 7B config.json and processor
    python benchmarks/gpu/check.py --dry-run          # CPU, the tiny model: the same path

Run through ``benchmarks/gpu/check.sh`` (which installs what the GPU machine lacks). Writes
``RESULTS.md`` (``benchmarks/gpu/RESULTS.md`` on a GPU; ``<out>/RESULTS.md`` in a dry run)
naming the card, the versions, and per stage: seconds, measured peak and planned peak.
Measured peak on a GPU is ``torch.cuda.max_memory_allocated`` (tensors; the CUDA context
and allocator slack, which the plan counts as "other", are not in it); on CPU the step's
growth of peak resident memory. The throughput check adds its generation figures here.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WORLD = "{width: 448, height: 224, duration_s: 8, fps: 10.0}"
"""8 s at 2 fps: 16 frames of 448×224 = 100 352 pixels, the 7B recipes' max_pixels."""


def _peak_reset(device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return float(torch.cuda.memory_allocated())
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def _peak(device: str, start: float) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated())
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) - start


def build_random_model(config_dir: Path, out: Path, dry_run: bool) -> Path:
    """A random-weight model of ``config_dir``'s shape with its processor, saved to ``out``
    (the tiny model in a dry run)."""
    if dry_run:
        from o3video.models.tiny import build_tiny_model

        return build_tiny_model(out, seed=0)
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    config = AutoConfig.from_pretrained(config_dir)
    torch.manual_seed(0)
    with torch.device("cuda"):  # random init on the GPU: minutes faster than on the CPU
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(config_dir).save_pretrained(out)
    del model
    torch.cuda.empty_cache()
    return out


def run_stage(stage: str, model_dir: Path, out: Path, dry_run: bool) -> dict[str, Any]:
    """One LoRA step of ``stage`` (sft or rl) from the 7B LoRA recipe, on 16 frames."""
    from o3video.train.config import load_config
    from o3video.train.plan import estimate, model_shape

    recipe = ROOT / f"recipes/qwen2.5-vl-7b-lora-{'sft' if stage == 'sft' else 'gspo'}.yaml"
    overrides = [
        f"output_dir={out / stage}",
        f"model.path={model_dir}",
        "model.attn_implementation=sdpa",  # flash-attn is not on the GPU machine
        "data.stgr=''",
        "data.cache_dir=null",
        "data.media_root=null",
        f"data.synth={{n: 2, seed: 0, world: {WORLD}}}",
        "data.min_frames=16",
        "data.limit=4",
        f"{stage}.max_steps=1",
        f"{stage}.gradient_accumulation_steps=1",
        f"{stage}.save_steps=100000",
        f"{stage}.logging_steps=1",
    ]
    if stage == "rl":
        overrides += ["rl.use_vllm=false", "rl.max_completion_length=64",
                      "rl.steps_per_generation=1"]  # fmt: skip
    if dry_run:
        overrides += ["model.dtype=float32", f"{stage}.bf16=false", "data.max_pixels=12544",
                      "model.lora.r=4", "rl.max_completion_length=8"]  # fmt: skip
    config = load_config(recipe, overrides, stage=stage)  # type: ignore[arg-type]
    device = "cpu" if dry_run else "cuda"
    if stage == "sft":
        from o3video.train.sft import build_sft_trainer

        trainer = build_sft_trainer(config)
    else:
        from o3video.train.rl import build_rl_trainer

        trainer = build_rl_trainer(config)
    start = _peak_reset(device)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    measured = _peak(device, start)
    shape, _ = model_shape(config)
    plan = estimate(config, shape, "lora", stage=stage, device=device)
    del trainer
    return {
        "stage": stage,
        "seconds": round(seconds, 1),
        "measured_gib": round(measured / 2**30, 3),
        "planned_gib": round((plan.total - plan.overhead) / 2**30, 3),
        "frames": config.data.max_frames,
        "max_pixels": config.data.max_pixels,
    }


def write_results(path: Path, rows: list[dict[str, Any]], device_name: str, dry_run: bool) -> None:
    import torch
    import transformers

    lines = [
        "# GPU check" + (" (dry run on CPU, tiny model)" if dry_run else ""),
        "",
        f"Card: {device_name}. torch {torch.__version__}, transformers "
        f"{transformers.__version__}, Python {platform.python_version()}.",
        (
            "The tiny model, fp32, 16 frames of 12 544 pixels"
            if dry_run
            else "Qwen2.5-VL-7B shape (random weights, bf16), 16 frames of 100 352 pixels"
        )
        + ", LoRA from the 7B LoRA recipes (transformers rollouts), one step each; planned ="
        " `o3video train plan` without its CUDA overhead term.",
        "",
        "| stage | frames × pixels | seconds | measured peak GiB | planned GiB |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['frames']} × {r['max_pixels']} | {r['seconds']} | "
                     f"{r['measured_gib']} | {r['planned_gib']} |")  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU and the tiny model")
    parser.add_argument("--config-json", type=Path, default=None,
                        help="folder with the 7B config.json and processor files (default: "
                        "shared/reference-data/qwen/qwen2_5_vl_7b_instruct in or beside the "
                        "checkout)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("/tmp/o3video-gpu-check"))
    args = parser.parse_args(argv)
    if args.config_json is None:
        where = "shared/reference-data/qwen/qwen2_5_vl_7b_instruct"
        found = [p / where for p in (ROOT, ROOT.parent) if (p / where / "config.json").exists()]
        args.config_json = found[0] if found else ROOT / where
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: run with --dry-run on a CPU", file=sys.stderr)
        return 2
    device_name = "CPU" if args.dry_run else torch.cuda.get_device_name(0)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model_dir = build_random_model(args.config_json, args.out / "model", args.dry_run)
    print(f"model built in {time.perf_counter() - t0:.0f} s: {model_dir}", flush=True)
    rows = []
    for stage in ("sft", "rl"):
        rows.append(run_stage(stage, model_dir, args.out, args.dry_run))
        print(json.dumps(rows[-1]), flush=True)
    results = args.out / "RESULTS.md" if args.dry_run else ROOT / "benchmarks/gpu/RESULTS.md"
    write_results(results, rows, device_name, args.dry_run)
    print(f"results: {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

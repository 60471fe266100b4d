"""`o3video train sft|rl`: train a model — SFT cold start, then GSPO (SPEC §6).

``o3video train sft --config RECIPE [key=value ...]`` runs stage 1 on TRL's SFTTrainer (loss on
the assistant answer only); ``o3video train rl --config RECIPE [key=value ...]`` runs stage 2 on
TRL's GRPOTrainer with the sequence-level importance ratio (GSPO; ``rl.importance_sampling_level
=token`` gives GRPO). Overrides are ``section.key=value`` (``rl.num_generations=8``) or a bare
key of the stage (``max_steps=2``). The resolved config, package version and git commit are
written to the output folder; the final model and processor go to ``<output_dir>/final``.
Multi-GPU / multi-node: run the same command under ``accelerate launch`` (see the recipes).
``o3video train plan --config RECIPE [--gpus N] [--gpu-memory 80]`` prints the estimated peak
memory per GPU of each way of training the recipe (:mod:`o3video.train.plan`), loading no weight.
With ``model.lora`` the final folder holds a LoRA adapter (:mod:`o3video.train.lora`);
``o3video train merge ADAPTER_DIR --out DIR`` writes its merged weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from o3video.cli import finite_float

NAME = "train"
HELP = "train a model: SFT (sft), then GSPO/GRPO (rl); memory plan (plan); merge LoRA (merge)"
EXAMPLES = """examples:
  o3video train sft --config recipes/synthetic-tiny-sft.yaml
  o3video train rl --config recipes/synthetic-tiny-gspo.yaml model.path=runs/tiny-sft/final
  o3video train rl --config recipes/synthetic-tiny-gspo.yaml rl.importance_sampling_level=token
  o3video train sft --config recipes/synthetic-tiny-sft.yaml max_steps=2 output_dir=/tmp/x
  accelerate launch --config_file recipes/accelerate/zero3.yaml -m o3video.cli.main \\
      train rl --config recipes/qwen2.5-vl-7b-gspo.yaml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for stage, help_text in (
        ("sft", "stage 1: supervised fine-tuning on reasoning traces"),
        ("rl", "stage 2: GSPO (or GRPO) with the grounded rewards"),
    ):
        p = sub.add_parser(
            stage,
            help=help_text,
            description=__doc__,
            epilog=EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--config", type=Path, default=None, help="recipe YAML (recipes/*.yaml)")
        p.add_argument(
            "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. max_steps=2"
        )
        p.add_argument(
            "--print-config", action="store_true", help="print the resolved config and exit"
        )
    p = sub.add_parser(
        "plan",
        help="estimate the peak memory per GPU of a recipe (no weights loaded)",
        description="Estimated peak memory per GPU of full, ZeRO-2, ZeRO-3, LoRA and QLoRA "
        "training of the recipe, from the model's config.json: weights, gradients, optimizer "
        "states, activations, logits, reference model, rollouts; which fit, and what to change.",
        epilog="examples:\n  o3video train plan --config recipes/qwen2.5-vl-7b-gspo.yaml "
        "--gpus 8\n  o3video train plan --config recipes/qwen2.5-vl-7b-lora-sft.yaml "
        "--gpu-memory 24",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, required=True, help="recipe YAML (recipes/*.yaml)")
    p.add_argument("--gpus", type=int, default=1, help="GPUs the work is divided among (1)")
    p.add_argument("--gpu-memory", type=finite_float, default=80.0, help="GiB per GPU (80)")
    p.add_argument(
        "--stage",
        dest="stage_to_plan",
        choices=("sft", "rl"),
        default=None,
        help="stage to plan (default: rl if the recipe has an rl section, else sft)",
    )
    p.add_argument(
        "--model-config",
        type=Path,
        default=None,
        help="config.json (or its folder) of the model, when model.path is not local or cached",
    )
    p.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cpu: per process, without CUDA's overhead and vLLM (default: cuda)",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p = sub.add_parser(
        "merge",
        help="merge a LoRA adapter folder into its base: plain weights",
        description="Load the base model an adapter folder names, apply the adapter, merge "
        "it into the weights and save model, processor and card to --out (for vLLM, or to "
        "share one folder).",
        epilog="example:\n  o3video train merge runs/qwen2.5-vl-7b-lora-sft/final "
        "--out runs/qwen2.5-vl-7b-lora-sft/merged",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("adapter", type=Path, metavar="ADAPTER_DIR", help="o3video train's final/")
    p.add_argument("--out", type=Path, required=True, help="folder for the merged model")
    p.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16", "float16"),
        default="auto",
        help="dtype to load and save the weights in (auto: the base's)",
    )


def run(args: argparse.Namespace) -> int:
    from o3video.train.config import load_config, to_dict

    if args.stage == "plan":
        return _plan(args)
    if args.stage == "merge":
        from o3video.train.lora import merge_adapter

        print(f"merged model: {merge_adapter(args.adapter, args.out, args.dtype)}")
        return 0
    config = load_config(args.config, args.overrides, stage=args.stage)
    if args.print_config:
        import yaml  # type: ignore[import-untyped]

        print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
        return 0
    if args.stage == "sft":
        from o3video.train.sft import run_sft

        final = run_sft(config)
    else:
        from o3video.train.rl import run_rl

        final = run_rl(config)
    print(f"final model: {final}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    import yaml

    from o3video.train.config import ConfigError, load_config
    from o3video.train.plan import format_plan, model_shape

    stage = args.stage_to_plan
    if stage is None:
        raw = (
            yaml.safe_load(args.config.read_text(encoding="utf-8")) if args.config.exists() else {}
        )
        stage = "rl" if isinstance(raw, dict) and "rl" in raw else "sft"
    if args.gpus < 1 or args.gpu_memory <= 0:
        raise ConfigError(f"--gpus {args.gpus} / --gpu-memory {args.gpu_memory}: must be positive")
    config = load_config(args.config, args.overrides, stage=stage)
    shape, source = model_shape(config, args.model_config)
    text = format_plan(
        config, stage, shape, source, gpus=args.gpus, gpu_memory_gib=args.gpu_memory,
        device=args.device,
    )  # fmt: skip
    print(text)
    return 0

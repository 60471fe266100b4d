"""`o3video train sft|rl`: train a model — SFT cold start, then GSPO (SPEC §6).

``o3video train sft --config RECIPE [key=value ...]`` runs stage 1 on TRL's SFTTrainer (loss on
the assistant answer only); ``o3video train rl --config RECIPE [key=value ...]`` runs stage 2 on
TRL's GRPOTrainer with the sequence-level importance ratio (GSPO; ``rl.importance_sampling_level
=token`` gives GRPO). Overrides are ``section.key=value`` (``rl.num_generations=8``) or a bare
key of the stage (``max_steps=2``). The resolved config, package version and git commit are
written to the output folder; the final model and processor go to ``<output_dir>/final``.
Multi-GPU / multi-node: run the same command under ``accelerate launch`` (see the recipes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "train"
HELP = "train a model: SFT cold start (sft), then GSPO/GRPO (rl)"
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


def run(args: argparse.Namespace) -> int:
    from o3video.train.config import load_config, to_dict

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

#!/bin/bash
# A1 (experiments round 19): round 14's C1 SFT round from B1 (600 steps, new worlds of seed
# 10 with the naming questions) with data.synth.world.what_apart=true: the V-STaR-protocol
# What reasoning names the answer object at a frame where its box overlaps no other object's
# (nearest the middle of its boxes), instead of during the event. Then held-out V-STaR.
# Compared with C1 (benchmarks/rl112-long-runs/sft-c1). Two threads; resumes a stopped run.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
O=runs/r19/A1; H=runs/e112/heldout; K=benchmarks/rl112-long-runs
mkdir -p runs/r19
if [ ! -e $O/final/model.safetensors ]; then
  .venv/bin/o3video train sft --config recipes/synthetic-tiny-embedded-sft112.yaml \
    model.path=benchmarks/embedded-sft112-long output_dir=$O data.synth.seed=10 \
    data.synth.world.naming_qa=true data.synth.world.what_apart=true sft.max_steps=600 \
    > runs/r19/A1.log 2>&1
fi
.venv/bin/o3video eval vstar --model $O/final --data $H --out $O/vstar --batch-size 4 --threads 2 \
  > runs/r19/eval-A1.log 2>&1
.venv/bin/python benchmarks/vstar_paired.py $K/sft-c1/vstar $O/vstar > runs/r19/A1-vs-C1.txt
.venv/bin/python benchmarks/what_errors.py --data $H $K/sft-c1/vstar $O/vstar > runs/r19/A1-what.txt

#!/bin/bash
# usage: run.sh SEED [THREADS] -> runs/r20/GA1-sSEED: the recipe's GSPO
# (recipes/synthetic-tiny-embedded-gspo112.yaml) from A1 (experiments round 19: C1's SFT
# round with data.synth.world.what_apart, weights in runs/r19/A1/final, made by
# benchmarks/what-apart-sft/run.sh), then its held-out V-STaR evaluation, paired with A1 and
# with the GSPO run of the same seed from B1. Resumes a stopped run from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/../.."
seed=$1; th=${2:-1}; name=GA1-s$seed
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=$th MKL_NUM_THREADS=$th
H=runs/e112/heldout; R=runs/e112/rl-data; O=runs/r20/$name; K=benchmarks/rl112-long-runs
A=benchmarks/what-apart-sft/A1
mkdir -p runs/r20
if [ ! -e $O/final/model.safetensors ]; then
  .venv/bin/o3video train rl --config recipes/synthetic-tiny-embedded-gspo112.yaml \
    model.path=runs/r19/A1/final output_dir=$O rl.seed=$seed rl.save_steps=200 \
    data.stgr=$R/stgr_vstar.json data.media_root=$R rl.probe_stgr=$H/stgr_vstar.json rl.probe_media_root=$H \
    >> runs/r20/$name.log 2>&1
fi
.venv/bin/o3video eval vstar --model $O/final --data $H --out $O/vstar --label $name --batch-size 4 --threads $th \
  > runs/r20/eval-$name.log 2>&1
.venv/bin/python benchmarks/vstar_paired.py $A/vstar $O/vstar > runs/r20/paired-A1-$name.txt 2>&1
.venv/bin/python benchmarks/vstar_paired.py $K/gspo-s$seed/vstar $O/vstar > runs/r20/paired-gspo-$name.txt 2>&1
.venv/bin/python benchmarks/what_errors.py --data $H $A/vstar $O/vstar > runs/r20/what-$name.txt 2>&1
echo done > runs/r20/$name.done

#!/bin/bash
# usage: run.sh NAME MODEL_DIR [SEEDS] [THREADS] -> runs/sampled/NAME-sSEED: held-out V-STaR
# (runs/e112/heldout) with one sampled reply per prompt at the RL stage's sampling
# (temperature 1.0, top-p 0.95), once per seed (default 1 2 3 4). Read with
# benchmarks/vstar_bestof.py. Each run resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$1; model=$2; seeds=${3:-1 2 3 4}; th=${4:-1}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=$th MKL_NUM_THREADS=$th
mkdir -p runs/sampled
for s in $seeds; do
  .venv/bin/o3video eval vstar --model "$model" --data runs/e112/heldout --out runs/sampled/$name-s$s \
    --label $name-s$s --batch-size 4 --threads $th --temperature 1.0 --top-p 0.95 --seed $s \
    > runs/sampled/eval-$name-s$s.log 2>&1
done
echo done > runs/sampled/$name.done

#!/bin/bash
# R1 (experiments round 18): B1's vision tower taught the world's shapes again per token
# (tower_pretrain.py --corpus on the RL corpus's frames; the language model untouched), then
# round 14's C1 SFT round (600 steps, new worlds of seed 10, naming questions) from it with
# the tower at 0.2 of the learning rate (model.vision_lr_scale=0.2); then held-out V-STaR.
# Needs runs/e112/rl-data and runs/e112/heldout (benchmarks/what-parts-rl/README.md says how
# to make them from their seeds). Two threads; 98 min in all on this round's machine.
# Then R1b, the control: the same round from B1T on R1's corpus with the tower at the full
# rate (resumes from its last checkpoint-N when re-run; not finished in round 18).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
O=${OUT:-runs/r18}
mkdir -p "$O"
run() { local name=$1; shift; if [ -e "$O/$name.done" ]; then echo "skip $name"; return; fi
  echo "[$(date +%T)] $name: $*"; local s=$(date +%s); "$@" > "$O/$name.log" 2>&1
  echo "[$(date +%T)] $name done in $(( $(date +%s) - s )) s"; touch "$O/$name.done"; }
run B1T .venv/bin/python benchmarks/tower_pretrain.py benchmarks/embedded-sft112-long "$O/B1T" \
  --side 112 --steps 1000 --corpus runs/e112/rl-data
run R1 .venv/bin/o3video train sft --config recipes/synthetic-tiny-embedded-sft112.yaml \
  model.path="$O/B1T" output_dir="$O/R1" data.synth.seed=10 data.synth.world.naming_qa=true \
  sft.max_steps=600 model.vision_lr_scale=0.2
run eval-R1 .venv/bin/o3video eval vstar --model "$O/R1/final" --data runs/e112/heldout \
  --out "$O/R1/vstar" --batch-size 4 --threads 2
run R1b .venv/bin/o3video train sft --config recipes/synthetic-tiny-embedded-sft112.yaml \
  model.path="$O/B1T" output_dir="$O/R1b" data.synth=null data.stgr="$O/R1/data/stgr_sft.json" \
  sft.max_steps=600
run eval-R1b .venv/bin/o3video eval vstar --model "$O/R1b/final" --data runs/e112/heldout \
  --out "$O/R1b/vstar" --batch-size 4 --threads 2

#!/bin/bash
# usage: run.sh SEED -> runs/r17/P-sSEED: the GSPO112 recipe from B1 with the V-STaR What
# answers paid by their parts (answer: {vstar_what: parts}), then its held-out evaluation,
# paired with B1 (SFT) and with the recipe's GSPO run of the same seed.
cd "$(dirname "$0")/../.."
seed=$1; name=P-s$seed
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
H=runs/e112/heldout; R=runs/e112/rl-data; O=runs/r17/$name; K=benchmarks/rl112-long-runs
.venv/bin/o3video train rl --config recipes/synthetic-tiny-embedded-gspo112.yaml \
  model.path=benchmarks/embedded-sft112-long output_dir=$O rl.seed=$seed \
  "rl.rewards={answer: {vstar_what: parts}, format: 1.0}" \
  data.stgr=$R/stgr_vstar.json data.media_root=$R rl.probe_stgr=$H/stgr_vstar.json rl.probe_media_root=$H \
  > runs/r17/$name.log 2>&1 || { echo "train failed" > runs/r17/$name.failed; exit 1; }
.venv/bin/o3video eval vstar --model $O/final --data $H --out $O/vstar --label $name --batch-size 4 > runs/r17/eval-$name.log 2>&1
.venv/bin/python benchmarks/vstar_paired.py $K/sft/vstar $O/vstar > runs/r17/paired-sft-$name.txt 2>&1
.venv/bin/python benchmarks/vstar_paired.py $K/gspo-s$seed/vstar $O/vstar > runs/r17/paired-gspo-$name.txt 2>&1
.venv/bin/python benchmarks/what_errors.py --data $H $K/sft/vstar $K/gspo-s$seed/vstar $O/vstar > runs/r17/what-$name.txt 2>&1
echo done > runs/r17/$name.done

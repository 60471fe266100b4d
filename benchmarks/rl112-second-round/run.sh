#!/bin/bash
# usage: cont.sh NAME SEED PARENT_MODEL -> runs/r16/NAME: a second GSPO round of 400 steps
# (the GSPO112 recipe, max_steps 400) from a finished GSPO run, then its held-out evaluation
cd /work/main
name=$1; seed=$2; model=$3
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
H=runs/e112/heldout; R=runs/e112/rl-data; O=runs/r16/$name
.venv/bin/o3video train rl --config recipes/synthetic-tiny-embedded-gspo112.yaml \
  model.path=$model output_dir=$O rl.seed=$seed rl.max_steps=400 \
  data.stgr=$R/stgr_vstar.json data.media_root=$R rl.probe_stgr=$H/stgr_vstar.json rl.probe_media_root=$H \
  > runs/r16/$name.log 2>&1 || { echo "train failed" > runs/r16/$name.failed; exit 1; }
.venv/bin/o3video eval vstar --model $O/final --data $H --out $O/vstar --label $name --batch-size 4 > runs/r16/eval-$name.log 2>&1
.venv/bin/python benchmarks/vstar_paired.py runs/abl-long/sft/vstar $O/vstar > runs/r16/paired-$name.txt 2>&1
.venv/bin/python benchmarks/what_errors.py --data $H runs/abl-long/sft/vstar $O/vstar > runs/r16/what-$name.txt 2>&1
echo done > runs/r16/$name.done

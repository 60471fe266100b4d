#!/bin/bash
# F1: the build's sft-b round (800 SFT steps from tower-world, the same data) with the vision tower frozen
cd /work/main
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
.venv/bin/o3video train sft --config recipes/synthetic-tiny-embedded-sft112.yaml \
  output_dir=runs/r16/F1 model.path=runs/e112/tower-world model.freeze_vision=true \
  data.synth=null data.stgr=runs/e112/sft-b/data/stgr_sft.json > runs/r16/F1.log 2>&1
echo done > runs/r16/F1.done

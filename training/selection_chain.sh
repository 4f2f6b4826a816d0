#!/bin/bash
# The selection chain of training/README.md for one variant, on 1 thread, outputs in training/cache/sel/.
#   training/selection_chain.sh NAME STEPS [train_presence.py options, e.g. --crop 128 --roof-recolour 0.5]
set -e
cd "$(dirname "$0")/.."
D=${SITEWATCH_REALDATA:-../shared/data}
N=$1; S=$2; shift 2
C=training/cache/sel
mkdir -p $C
# 1. drone regions alone (Harvey, both LEVIR sets left out)
.venv/bin/python training/train_presence.py $C/$N-noH.pt --exclude harvey levir256 levir1024 --steps "$S" --threads 1 "$@" > $C/$N-noH.log 2>&1
.venv/bin/python training/export_presence.py $C/$N-noH.pt $C/$N-noH.npz
# 2. + Harvey + LEVIR tile test_12 (no levir-cd-256 crop, no other levir-cd-1024 tile)
.venv/bin/python training/train_presence.py $C/$N-256out.pt --exclude levir256 --exclude-names 'levir1024_._(test_102|test_7)$' \
   --init $C/$N-noH.pt --steps 1000 --lr 1e-3 --threads 1 "$@" > $C/$N-256out.log 2>&1
.venv/bin/python training/export_presence.py $C/$N-256out.pt $C/$N-256out.npz
# A: Harvey presence IoU of step 1; C: Harvey building false alarms of step 1; B: levir-cd-256 building F1 of step 2
.venv/bin/python training/validate_presence.py $C/$N-noH.npz > $C/$N-val.jsonl
.venv/bin/python benchmarks/evaluate_weights.py $C/$N-noH.npz "$D/realcd/xbd-harvey-nochange:0.5" --method building >> $C/$N-val.jsonl
.venv/bin/python benchmarks/evaluate_weights.py $C/$N-256out.npz "$D/realcd/levir-cd-256:0.5" --method building >> $C/$N-val.jsonl
.venv/bin/python benchmarks/evaluate_weights.py $C/$N-256out.npz "$D/realcd/levir-cd-256:0.5" --method presence >> $C/$N-val.jsonl
echo "chain $N done"

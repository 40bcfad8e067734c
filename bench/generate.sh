#!/usr/bin/env bash
# One 1:1 28-step flux-tiny image as a whole process — `likeness engine generate` with a LoRA applied, from process
# start to the PNG on disk — N times (default 3), with its peak RSS; then the transformer's forward pass alone
# (`engine bench --mode forward`, the prompt/empty-prompt batch of 2 a classifier-free step runs) on 1 and 2 threads.
# Usage: bench/generate.sh [runs]
source "$(dirname "$0")/common.sh"
runs=${1:-3}
python3 bench/make-dataset.py "$work/dataset.zip" 15
# The adapter's training length does not change the cost of applying it: 50 steps make one quickly.
likeness engine train --dataset "$work/dataset.zip" --output "$work/adapter.safetensors" --steps 50 --rank 32 --work "$work/train" >/dev/null
for i in $(seq 1 "$runs"); do
  echo "== run $i: one 1:1 28-step flux-tiny image with a rank-32 adapter"
  timed engine generate --lora "$work/adapter.safetensors" --prompt "a photo of BENCH object on a teal background" \
    --output "$work/image$i.png" --steps 28 --seed "$i" 2>&1 | grep -v '^image:'
done
for threads in 1 2; do
  echo "== forward pass, batch 2 (64 image + 96 text tokens), $threads thread(s)"
  likeness engine bench --preset tiny --mode forward --batch 2 --img-tokens 64 --txt-tokens 96 --threads "$threads" | tail -1
done

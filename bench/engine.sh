#!/usr/bin/env bash
# Engine figures on this machine: the train-full FLOP/s ratio (issue config), a 1000-step flux-tiny rank-16 LoRA,
# and one 1:1 28-step flux-tiny image, each with its peak RSS (GNU time). Median of N runs (default 3).
# Usage: bench/engine.sh [runs]
source "$(dirname "$0")/common.sh"
runs=${1:-3}
python3 bench/make-dataset.py "$work/dataset.zip" 15

echo "== train-full, config bench/configs/train-full-512.json, batch 2, 1024 image + 64 text tokens, 2 threads"
timed engine bench --config bench/configs/train-full-512.json --mode train-full --batch 2 --img-tokens 1024 --txt-tokens 64 --threads 2
echo "== flux-tiny LoRA step (rank 16, 64 image + 96 text tokens: a 128² image)"
timed engine bench --preset tiny --mode train-lora --batch 1 --img-tokens 64 --txt-tokens 96 --threads 2
for i in $(seq 1 "$runs"); do
  echo "== run $i: 1000-step flux-tiny LoRA (15 images, rank 16), wall time including caching"
  rm -rf "$work/train"
  timed engine train --dataset "$work/dataset.zip" --output "$work/adapter.safetensors" --steps 1000 --rank 16 --work "$work/train" | tail -1
  echo "== run $i: one 1:1 28-step flux-tiny image with that adapter"
  timed engine generate --lora "$work/adapter.safetensors" --prompt "a photo of BENCH object" --output "$work/image.png" --steps 28 --seed $i
done

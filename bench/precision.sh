#!/usr/bin/env bash
# fp32 against bf16 weights on this machine's CPU (--engine-precision): a 200-step flux-tiny rank-16 LoRA on 15
# images and one 1:1 28-step flux-tiny image with it, wall time of the whole process and peak RSS (GNU time).
# N runs each (default 3); report the median. On CUDA, auto means bf16; on the CPU it means fp32.
# Usage: bench/precision.sh [runs]
source "$(dirname "$0")/common.sh"
runs=${1:-3}
python3 bench/make-dataset.py "$work/dataset.zip" 15

for precision in fp32 bf16; do
  for i in $(seq 1 "$runs"); do
    echo "== $precision run $i: 200-step flux-tiny LoRA (15 images, rank 16)"
    rm -rf "$work/train"
    timed engine train --engine-precision "$precision" --dataset "$work/dataset.zip" --output "$work/adapter.safetensors" \
      --steps 200 --rank 16 --work "$work/train" | tail -1
    echo "== $precision run $i: one 1:1 28-step flux-tiny image with that adapter"
    timed engine generate --engine-precision "$precision" --lora "$work/adapter.safetensors" --prompt "a photo of BENCH object" \
      --output "$work/image.png" --steps 28 --seed "$i"
  done
done

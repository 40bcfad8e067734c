#!/usr/bin/env bash
# The engine on a quiet and on a shared machine (issue #11, item 7): a 300-step flux-tiny rank-32 LoRA on 15 images
# (`engine train`, whole process) alone, then two such trainings at once (the goal: each within 2.5× of one alone).
# Median of N runs (default 3). `engine bench --mode train-lora --threads 1|2` compares thread counts.
# Usage: bench/threads.sh [runs]
source "$(dirname "$0")/common.sh"
runs=${1:-3}
python3 bench/make-dataset.py "$work/dataset.zip" 15
train() { # $1: label, $2: work folder; prints the wall seconds
  rm -rf "$work/$2"
  /usr/bin/time -f "%e" -o "$work/$2.time" dotnet "$out/likeness.dll" engine train --dataset "$work/dataset.zip" \
    --output "$work/$2.safetensors" --steps 300 --rank 32 --work "$work/$2" >/dev/null
  echo "$1 $(cat "$work/$2.time") s"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
quiet=(); shared=()
for i in $(seq 1 "$runs"); do
  quiet+=("$(train "run $i quiet:" q | tee /dev/stderr | awk '{print $(NF-1)}')")
  train "run $i shared (A):" a > "$work/a.out" & pid=$!
  train "run $i shared (B):" b > "$work/b.out"
  wait $pid
  cat "$work/a.out" "$work/b.out" >&2
  shared+=("$(awk '{print $(NF-1)}' "$work/a.out")" "$(awk '{print $(NF-1)}' "$work/b.out")")
done
echo "median alone: $(printf '%s\n' "${quiet[@]}" | median) s;" \
  "two at once: $(printf '%s\n' "${shared[@]}" | median) s each (median of ${#shared[@]})"

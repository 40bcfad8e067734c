#!/usr/bin/env bash
# The new user's loop against the real binary: start `likeness serve` on a fresh data folder, upload 15 PNGs
# (object, steps=500, loraRank=8 — or the API's defaults, 1000 steps at rank 32, with DEFAULTS=1), poll until READY,
# generate 2 PNGs with 4 steps. Prints the wall times.
# Usage: [DEFAULTS=1] bench/service-loop.sh [runs]   (median over runs)
source "$(dirname "$0")/common.sh"
runs=${1:-1}
python3 bench/make-pngs.py "$work/photos" 15
port=18231
api=http://127.0.0.1:$port
results=(); ready=()
for run in $(seq 1 "$runs"); do
  data="$work/data$run"
  dotnet bench/out/likeness/likeness.dll serve --data "$data" --urls "$api" > "$work/serve$run.log" 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  until curl -sf "$api/health" >/dev/null; do sleep 0.2; done
  key=$(cat "$data/default-api-key")
  args=(); for f in "$work"/photos/*.png; do args+=(-F "images=@$f"); done
  t0=$(date +%s.%N)
  shape=(-F steps=500 -F loraRank=8); [ -n "${DEFAULTS:-}" ] && shape=()
  id=$(curl -sf -X POST "$api/v2/loras" -H "X-API-Key: $key" -F name=bench -F subjectKind=object "${shape[@]}" "${args[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  seen=""
  while :; do
    status=$(curl -sf "$api/v2/loras/$id" -H "X-API-Key: $key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [[ "$seen" == *"$status"* ]] || seen="$seen $status"
    [[ "$status" == READY || "$status" == FAILED ]] && break
    sleep 0.5
  done
  t1=$(date +%s.%N)
  curl -sf -X POST "$api/v2/images/generate" -H "X-API-Key: $key" -H 'Content-Type: application/json' \
    -d "{\"model\":\"flux-lora\",\"prompt\":\"a photo\",\"fluxLoraParams\":{\"loraId\":\"$id\",\"num_outputs\":2,\"num_inference_steps\":4,\"seed\":1}}" > "$work/gen$run.json"
  t2=$(date +%s.%N)
  credits=$(curl -sf "$api/v2/team" -H "X-API-Key: $key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["credits"])')
  kill $pid; wait $pid 2>/dev/null || true
  train=$(echo "$t1 - $t0" | bc); gen=$(echo "$t2 - $t1" | bc); total=$(echo "$t2 - $t0" | bc)
  echo "run $run: statuses:$seen; upload→READY ${train}s; generate 2 images ${gen}s; total ${total}s; credits $credits"
  results+=("$total"); ready+=("$train")
done
printf '%s\n' "${ready[@]}" | sort -n | awk '{a[NR]=$1} END {print "median upload→READY: " a[int((NR+1)/2)] " s over " NR " run(s)"}'
printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$1} END {print "median total: " a[int((NR+1)/2)] " s over " NR " run(s)"}'
rm -rf "$work"

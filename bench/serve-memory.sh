#!/usr/bin/env bash
# Memory of `likeness serve` on flux-tiny (issue #11): idle, after a 500-step LoRA on 15 PNGs, after 4 generations
# with it, and the peak of its RSS sampled every 0.5 s throughout.
# Usage: bench/serve-memory.sh
source "$(dirname "$0")/common.sh"
python3 bench/make-pngs.py "$work/photos" 15
port=18232
api=http://127.0.0.1:$port
dotnet "$out/likeness.dll" serve --data "$work/data" --urls "$api" > "$work/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
until curl -sf "$api/health" >/dev/null; do sleep 0.2; done
sleep 1
idle=$(ps -o rss= -p $pid)
( while kill -0 $pid 2>/dev/null; do ps -o rss= -p $pid; sleep 0.5; done > "$work/rss.txt" ) &
key=$(cat "$work/data/default-api-key")
args=(); for f in "$work"/photos/*.png; do args+=(-F "images=@$f"); done
id=$(curl -sf -X POST "$api/v2/loras" -H "X-API-Key: $key" -F name=memory -F subjectKind=object -F steps=500 "${args[@]}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
while :; do
  status=$(curl -sf "$api/v2/loras/$id" -H "X-API-Key: $key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [[ "$status" == READY || "$status" == FAILED ]] && break
  sleep 0.5
done
trained=$(ps -o rss= -p $pid)
for seed in 1 2 3 4; do
  curl -sf -X POST "$api/v2/images/generate" -H "X-API-Key: $key" -H 'Content-Type: application/json' \
    -d "{\"model\":\"flux-lora\",\"prompt\":\"a photo\",\"fluxLoraParams\":{\"loraId\":\"$id\",\"num_outputs\":1,\"seed\":$seed}}" > /dev/null
done
sleep 1
generated=$(ps -o rss= -p $pid)
echo "LoRA $status; RSS KiB: idle $idle, after the training $trained, after 4 generations $generated, peak $(sort -n "$work/rss.txt" | tail -1)"

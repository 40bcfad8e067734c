#!/usr/bin/env bash
# Claim latency on the scale-out topology: one `serve --role api` and one idle `worker` on PostgreSQL; each of N
# LoRAs (15 PNGs, 500 steps floor lowered to 4 for the measurement) is submitted only when the workers are idle.
# Reports submit → UPLOADING (the caption job's claim) and submit → TRAINING start, from the API's own timestamps.
# Usage: LIKENESS_TEST_POSTGRES="Host=…;Username=…;Password=…;Database=postgres" bench/claim-latency.sh [runs]
: "${LIKENESS_TEST_POSTGRES:?set LIKENESS_TEST_POSTGRES}"
source "$(dirname "$0")/common.sh"
runs=${1:-5}
python3 bench/make-pngs.py "$work/photos" 15
db="likeness_latency_$RANDOM"
admin=$LIKENESS_TEST_POSTGRES
PGCS="${admin/Database=postgres/Database=$db}"
export LIKENESS_TRAINING_MIN_STEPS=4 Likeness__Workers__PollInterval=00:00:01
psql "postgresql://$(echo "$admin" | sed -E 's/.*Username=([^;]*).*/\1/'):$(echo "$admin" | sed -E 's/.*Password=([^;]*).*/\1/')@127.0.0.1/postgres" -qc "CREATE DATABASE $db" >/dev/null
key=$(dotnet bench/out/likeness/likeness.dll teams create --name bench --credits 100000 --database "$PGCS" --data "$work/admin" | tail -1)
dotnet bench/out/likeness/likeness.dll serve --role api --database "$PGCS" --blobs "file:$work/blobs" --data "$work/api" --urls http://127.0.0.1:18240 >"$work/api.log" 2>&1 &
api=$!
dotnet bench/out/likeness/likeness.dll worker --database "$PGCS" --blobs "file:$work/blobs" --data "$work/worker" >"$work/worker.log" 2>&1 &
worker=$!
trap 'kill $api $worker 2>/dev/null || true' EXIT
until curl -sf http://127.0.0.1:18240/health >/dev/null; do sleep 0.2; done
sleep 3
args=(); for f in "$work"/photos/*.png; do args+=(-F "images=@$f"); done
for i in $(seq 1 "$runs"); do
  id=$(curl -sf -X POST http://127.0.0.1:18240/v2/loras -H "X-API-Key: $key" -F name=lat -F subjectKind=object -F steps=4 -F loraRank=8 "${args[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  while :; do
    body=$(curl -sf http://127.0.0.1:18240/v2/loras/$id -H "X-API-Key: $key")
    status=$(echo "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [[ "$status" == READY || "$status" == FAILED ]] && break
    sleep 0.2
  done
  echo "$body" | python3 -c '
import json, sys, datetime as d
l = json.load(sys.stdin)
t = lambda k: d.datetime.fromisoformat(l[k].replace("Z", "+00:00"))
claim = (t("startedAt") - t("createdAt")).total_seconds() * 1000
train = (t("trainingStartedAt") - t("createdAt")).total_seconds() * 1000
print("claim %.0f ms, training start %.0f ms" % (claim, train))'
  sleep 2
done
psql "postgresql://$(echo "$admin" | sed -E 's/.*Username=([^;]*).*/\1/'):$(echo "$admin" | sed -E 's/.*Password=([^;]*).*/\1/')@127.0.0.1/postgres" -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null 2>&1 || true
rm -rf "$work"

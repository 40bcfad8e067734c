#!/usr/bin/env bash
# Load on the HTTP service (issue #11 item 4), against bench/LoadHost: the service exactly as `likeness serve` builds
# it plus GET /bench/bare, a LoRA-shaped JSON answer from memory through the same pipeline, and GET /bench/bare-list,
# a page of ten of them (routes that exist only in the bench program).
#  1. `wrk -t2 -c32 -d8s --latency` on GET /bench/bare, GET /v2/loras/{id} and GET /v2/loras (10 LoRAs, limit 24),
#     side by side in each run on one server (--role api: no workers), after a warm-up of each; each real endpoint's
#     ratio to the bare one of its shape (one LoRA; a page of ten) is per run, then the median over runs (goal ≥ 0.5×).
#  2. Memory: a fresh server (--role api) per run; RSS idle (after a warm-up GET), then sampled every 0.1 s while 4
#     clients at once each upload 30 distinct 3 MB PNGs (goal: peak ≤ idle + 64 MB).
#  3. p99 of GET /v2/loras/{id} (same wrk) while two trainings run (--role all, two training slots, 500 steps,
#     15 PNGs, rank 8), once both are TRAINING; the two are cancelled after each run.
# Usage: [PARTS="1 2 3"] bench/load.sh [runs]   (default 3; medians over runs; PARTS picks the measurements)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-3}
parts=${PARTS:-1 2 3}
part() { [[ " $parts " == *" $1 "* ]]; }
out=bench/out/loadhost
dotnet build bench/LoadHost -c Release -o "$out" -v q -nologo >/dev/null
command -v wrk >/dev/null || { echo "wrk is needed (Debian: apt-get install wrk)"; exit 1; }
work=$(mktemp -d)
pid=""
stop() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi; }
trap 'stop; rm -rf "$work"' EXIT
port=18233
api=http://127.0.0.1:$port
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# start DATA [flags…]: a fresh loadhost on $api; sets $pid and $key.
start() {
  local data=$1; shift
  dotnet "$out/loadhost.dll" --data "$data" --urls "$api" "$@" > "$data.log" 2>&1 &
  pid=$!
  until curl -sf "$api/health" >/dev/null; do kill -0 "$pid" || { cat "$data.log"; exit 1; }; sleep 0.2; done
  key=$(cat "$data/default-api-key")
}
# upload NAME FOLDER [fields…]: POST /v2/loras with every file of FOLDER; prints the id.
upload() {
  local name=$1 folder=$2; shift 2
  local args=(); for f in "$folder"/*; do args+=(-F "images=@$f"); done
  curl -sf -X POST "$api/v2/loras" -H "X-API-Key: $key" -F name="$name" -F subjectKind=object "$@" "${args[@]}" | json '["id"]'
}
# bench URL [wrk args…]: one wrk run; prints "req/s p50 p99" (latencies in ms) and the non-2xx count.
bench() {
  local url=$1; shift
  wrk -t2 -c32 -d8s --latency "$@" "$url" | python3 -c '
import re, sys
text = sys.stdin.read()
def ms(label):
    m = re.search(r"^\s*" + label + r"\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    v = float(m.group(1)); return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
p50, p99 = ms("50%"), ms("99%")
print(f"{rps:.0f} {p50:.2f} {p99:.2f} {bad.group(1) if bad else 0}")'
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"

python3 bench/make-pngs.py "$work/photos" 15

# 1. Throughput and latency, side by side.
if part 1; then
start "$work/data-rps" --role api
ids=(); for i in $(seq 1 10); do ids+=("$(upload "load$i" "$work/photos")"); done
id=${ids[0]}
get=(-H "X-API-Key: $key")
for url in "$api/bench/bare" "$api/bench/bare-list" "$api/v2/loras/$id" "$api/v2/loras"; do wrk -t2 -c32 -d15s "${get[@]}" "$url" >/dev/null; done
ratios_get=(); ratios_list=(); rps_bare=(); rps_bare_list=(); rps_get=(); rps_list=()
for run in $(seq 1 "$runs"); do
  read -r b_rps b_p50 b_p99 _ < <(bench "$api/bench/bare")
  read -r bl_rps _ _ _ < <(bench "$api/bench/bare-list")
  read -r g_rps g_p50 g_p99 g_bad < <(bench "$api/v2/loras/$id" "${get[@]}")
  read -r l_rps l_p50 l_p99 l_bad < <(bench "$api/v2/loras" "${get[@]}")
  [ "$g_bad$l_bad" == "00" ] || { echo "non-2xx answers: get $g_bad, list $l_bad"; exit 1; }
  rg=$(echo "scale=3; $g_rps / $b_rps" | bc); rl=$(echo "scale=3; $l_rps / $bl_rps" | bc)
  echo "run $run: bare $b_rps req/s (p50 $b_p50 ms, p99 $b_p99 ms); GET /v2/loras/{id} $g_rps req/s (p50 $g_p50, p99 $g_p99) = ${rg}×; bare list $bl_rps req/s; GET /v2/loras (10 items) $l_rps req/s (p50 $l_p50, p99 $l_p99) = ${rl}×"
  ratios_get+=("$rg"); ratios_list+=("$rl"); rps_bare+=("$b_rps"); rps_bare_list+=("$bl_rps"); rps_get+=("$g_rps"); rps_list+=("$l_rps")
done
stop
echo "median of $runs: bare $(printf '%s\n' "${rps_bare[@]}" | median) req/s; GET one $(printf '%s\n' "${rps_get[@]}" | median) req/s, ratio $(printf '%s\n' "${ratios_get[@]}" | median)×; list $(printf '%s\n' "${rps_list[@]}" | median) req/s against bare list $(printf '%s\n' "${rps_bare_list[@]}" | median), ratio $(printf '%s\n' "${ratios_list[@]}" | median)× (goal ≥ 0.5×)"
fi

# 2. Memory while 4 clients each upload 30 × 3 MB photos.
if part 2; then
python3 - "$work/big" <<'PY'
import os, struct, sys, zlib
folder = sys.argv[1]; os.makedirs(folder, exist_ok=True)
w, h = 1000, 1000   # 3,000,000 bytes of RGB noise: stored, not compressed, so each file is ~3 MB
def chunk(kind, data): return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
for i in range(30):
    rows = b"".join(b"\0" + os.urandom(w * 3) for _ in range(h))
    with open(os.path.join(folder, f"big{i:02d}.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows, 0)) + chunk(b"IEND", b""))
PY
growth=()
for run in $(seq 1 "$runs"); do
  start "$work/data-mem$run" --role api
  # Warm-up: one small upload loads the code an upload runs (multipart, Skia, hashing), so idle counts it.
  upload warm "$work/photos" >/dev/null; curl -sf -X POST "$api/v2/loras/$(upload warm2 "$work/photos")/cancel" -H "X-API-Key: $key" >/dev/null
  sleep 1
  idle=$(ps -o rss= -p "$pid")
  anon_idle=$(awk '/RssAnon/ {print $2}' /proc/$pid/status)
  ( while kill -0 "$pid" 2>/dev/null; do awk '/VmRSS|RssAnon|RssFile/ {printf "%s ", $2} END {print ""}' /proc/$pid/status 2>/dev/null; sleep 0.1; done > "$work/rss$run.txt" ) &
  sampler=$!
  t0=$(date +%s.%N)
  clients=(); for c in 1 2 3 4; do upload "mem$c" "$work/big" > "$work/up$run-$c.txt" & clients+=($!); done
  for c in "${clients[@]}"; do wait "$c" || true; done
  t1=$(date +%s.%N)
  accepted=$(cat "$work"/up$run-*.txt | grep -c "^lora_" || true)
  stop; wait "$sampler" 2>/dev/null || true
  peak=$(awk 'NF == 3 {print $1}' "$work/rss$run.txt" | sort -n | tail -1)
  anon_peak=$(awk 'NF == 3 {print $2}' "$work/rss$run.txt" | sort -n | tail -1)
  g=$(( (peak - idle) / 1024 ))
  echo "run $run: 4 × 30 × 3 MB uploads in $(echo "$t1 - $t0" | bc | xargs printf '%.1f') s, $accepted of 4 accepted; RSS idle $((idle / 1024)) MB, peak $((peak / 1024)) MB: +$g MB (anonymous memory +$(( (anon_peak - anon_idle) / 1024 )) MB)"
  growth+=("$g")
done
echo "median of $runs: +$(printf '%s\n' "${growth[@]}" | median) MB over idle (goal ≤ 64 MB)"
fi

# 3. p99 of GET /v2/loras/{id} while two trainings run.
if part 3; then
export Likeness__Workers__Concurrency__training=2
start "$work/data-train" --role all
p99s=(); rps=()
for run in $(seq 1 "$runs"); do
  a=$(upload "train${run}a" "$work/photos" -F steps=500 -F loraRank=8)
  b=$(upload "train${run}b" "$work/photos" -F steps=500 -F loraRank=8)
  for l in $a $b; do
    while :; do
      status=$(curl -sf "$api/v2/loras/$l" -H "X-API-Key: $key" | json '["status"]')
      [ "$status" == TRAINING ] && break
      [[ "$status" == PENDING || "$status" == UPLOADING ]] || { echo "LoRA $l is $status before training; see $work/data-train.log"; exit 1; }
      sleep 0.5
    done
  done
  read -r t_rps t_p50 t_p99 t_bad < <(bench "$api/v2/loras/$a" -H "X-API-Key: $key")
  both=$(for l in $a $b; do curl -sf "$api/v2/loras/$l" -H "X-API-Key: $key" | json '["status"]'; done | sort -u | xargs)
  echo "run $run: while two trainings run (statuses after: $both): $t_rps req/s, p50 $t_p50 ms, p99 $t_p99 ms, non-2xx $t_bad"
  for l in $a $b; do curl -sf -X POST "$api/v2/loras/$l/cancel" -H "X-API-Key: $key" >/dev/null || true; done
  p99s+=("$t_p99"); rps+=("$t_rps")
done
stop
echo "median of $runs: GET /v2/loras/{id} during two trainings: p99 $(printf '%s\n' "${p99s[@]}" | median) ms, $(printf '%s\n' "${rps[@]}" | median) req/s"
fi

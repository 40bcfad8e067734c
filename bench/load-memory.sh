#!/usr/bin/env bash
# Peak host memory while loading a ~2 GB synthetic sharded BF16 checkpoint (diffusers layout, 500 MB shards) into
# fp32 through `likeness engine forward --weights <folder>` (one tiny forward after the load), against the goal
# peak RSS ≤ final parameter bytes + 1.2 × the largest shard.
source "$(dirname "$0")/common.sh"
likeness engine init --config bench/configs/load-2gb.json --output "$work/transformer" --layout diffusers --dtype bf16 --shard-mb 500
python3 - "$work/in.safetensors" <<'PY'
import json, struct, sys, random
shapes = {"img": [1, 4, 64], "img_ids": [1, 4, 3], "txt": [1, 2, 4096], "txt_ids": [1, 2, 3], "timesteps": [1], "y": [1, 768], "guidance": [1]}
header, data, offset = {}, b"", 0
for name, shape in shapes.items():
    n = 1
    for d in shape: n *= d
    blob = struct.pack(f"<{n}f", *[random.uniform(-1, 1) for _ in range(n)])
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
    data += blob; offset += len(blob)
h = json.dumps(header).encode(); h += b" " * ((8 - (8 + len(h)) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + data)
PY
shards=$(ls -l "$work"/transformer/*.safetensors | awk '{print $5}')
total=$(echo "$shards" | paste -sd+ - | bc)
largest=$(echo "$shards" | sort -n | tail -1)
/usr/bin/time -f "%M" -o "$work/rss" dotnet "$out/likeness.dll" engine forward --config bench/configs/load-2gb.json \
  --weights "$work/transformer" --inputs "$work/in.safetensors" --output "$work/out.safetensors"
rss_kib=$(cat "$work/rss")
params_bytes=$((total * 2))   # BF16 → FP32
echo "checkpoint: $(echo "$shards" | wc -l) shards, $total bytes (largest $largest); fp32 parameters: $params_bytes bytes"
echo "peak RSS: $((rss_kib * 1024)) bytes; goal ≤ $((params_bytes + largest * 12 / 10)) bytes"

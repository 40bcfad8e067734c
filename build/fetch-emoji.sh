#!/usr/bin/env bash
# Fetches the pretraining data for flux-tiny with npm and lays it out in one folder:
#   DIR/assets/<code points>.webp   Microsoft Fluent Emoji 3D renders (npm @lobehub/fluent-emoji-3d 1.1.0, MIT)
#   DIR/emoji.json                  names, categories and skin variations (npm emoji-datasource 16.0.0, MIT)
#   DIR/LICENSE-*                   the two packages' licences
# The scenes themselves are composed from these by `likeness engine scenes` / `likeness engine pretrain`.
set -euo pipefail
dir=${1:-data/emoji}
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @lobehub/fluent-emoji-3d@1.1.0 emoji-datasource@16.0.0 >/dev/null)
mkdir -p "$tmp/fluent" "$tmp/datasource"
tar xzf "$tmp"/lobehub-fluent-emoji-3d-1.1.0.tgz -C "$tmp/fluent"
tar xzf "$tmp"/emoji-datasource-16.0.0.tgz -C "$tmp/datasource" package/emoji.json package/LICENSE
rm -rf "$dir/assets"
mv "$tmp/fluent/package/assets" "$dir/assets"
mv "$tmp/datasource/package/emoji.json" "$dir/emoji.json"
cp "$tmp/datasource/package/LICENSE" "$dir/LICENSE-emoji-datasource"
# The Fluent package states MIT in its package.json (Microsoft's fluentui-emoji repository is MIT).
node -e 'const p=require(process.argv[1]);console.log(`${p.name} ${p.version}: ${p.license}`)' "$tmp/fluent/package/package.json" > "$dir/LICENSE-fluent-emoji-3d" 2>/dev/null \
  || grep -m1 '"license"' "$tmp/fluent/package/package.json" > "$dir/LICENSE-fluent-emoji-3d"
echo "$(ls "$dir/assets" | wc -l) renders and $(grep -o '"unified"' "$dir/emoji.json" | wc -l) names in $dir"

# Sourced by the bench scripts: from the repository root, publishes the Release binary (ReadyToRun, as deployed)
# into bench/out/likeness, makes a scratch folder ($work, removed on exit) and defines `likeness` (the binary) and
# `timed` (the binary under GNU time: wall seconds and peak RSS).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=bench/out/likeness
dotnet publish src/Likeness -c Release -o "$out" -v q -nologo >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
likeness() { dotnet "$out/likeness.dll" "$@"; }
timed() { /usr/bin/time -f "%e s, peak RSS %M KiB" dotnet "$out/likeness.dll" "$@"; }

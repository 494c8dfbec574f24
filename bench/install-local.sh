#!/usr/bin/env bash
# Install speed from a local code area, side by side with the standard tools, in one run:
#   lava-boot install (file://)  vs  tar -xjf  vs  lbzip2 -dc | tar -x
# Runs are interleaved; prints medians and ratios to the faster standard pipeline.
# Usage: bench/install-local.sh [payload MiB, default 150] [runs, default 5] [base dir, default /dev/shm (tmpfs)]
cd "$(dirname "$0")/.."
. bench/lib.sh
mb="${1:-150}"; runs="${2:-5}"; base="${3:-/dev/shm}"
build_release
work="$(mktemp -d "$base/lava-bench.XXXXXX")"; trap 'rm -rf "$work"' EXIT
make_bundle "$work/code" "$mb"
make_root "$work/root"
echo '{"realm": "bench", "x-workers": {}}' > "$work/realms.json"

lava() { rm -rf "$work/root/opt" "$work/root/usr/local"; "$bin" install "file://$work/code" bench w --realms-file "$work/realms.json" --root "$work/root" --level error; }
tarj() { rm -rf "$work/out"; mkdir "$work/out"; tar -C "$work/out" -xjf "$bundle"; }
lbz() { rm -rf "$work/out"; mkdir "$work/out"; lbzip2 -dc < "$bundle" | tar -C "$work/out" -x; }

A=(); B=(); C=()
for _ in $(seq "$runs"); do A+=("$(time_ms lava)"); B+=("$(time_ms tarj)"); C+=("$(time_ms lbz)"); done
ma=$(median "${A[@]}"); mt=$(median "${B[@]}"); ml=$(median "${C[@]}"); fast=$(( mt < ml ? mt : ml ))
rm -rf "$work/root/opt" "$work/root/usr/local"
rss=$(peak_rss_kib "$bin" install "file://$work/code" bench w --realms-file "$work/realms.json" --root "$work/root" --level error)
echo "root on $base, $runs interleaved runs, medians:"
echo "  lava-boot install       $ma ms  ($(ratio "$ma" "$fast") of the faster standard pipeline)"
echo "  tar -xjf                $mt ms"
echo "  lbzip2 -dc | tar -x     $ml ms"
echo "  lava-boot peak RSS      $rss KiB"

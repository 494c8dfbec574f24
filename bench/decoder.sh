#!/usr/bin/env bash
# The bzip2 decoder alone, side by side in one run: lava-boot's parallel decoder on one thread and
# on every core, against lbzip2 -dc -n 1, lbzip2 -dc and bzip2 -dc, on the bench bundle.
# Interleaved runs; prints medians and ratios (SPEC §15: one thread at least 1.25x lbzip2 -n 1).
# Usage: bench/decoder.sh [payload MiB, default 150] [runs, default 3]
cd "$(dirname "$0")/.."
. bench/lib.sh
mb="${1:-150}"; runs="${2:-3}"
swift build -c release --product lava-bzip2-decode >/dev/null
decode="$(swift build -c release --show-bin-path)/lava-bzip2-decode"
work="$(mktemp -d /dev/shm/lava-decoder.XXXXXX)"; trap 'rm -rf "$work"' EXIT
make_bundle "$work/code" "$mb"
one() { "$decode" --threads 1 < "$bundle" > /dev/null; }
all() { "$decode" < "$bundle" > /dev/null; }
lbz1() { lbzip2 -dc -n 1 < "$bundle" > /dev/null; }
lbz() { lbzip2 -dc < "$bundle" > /dev/null; }
bz() { bzip2 -dc < "$bundle" > /dev/null; }
A=(); B=(); C=(); D=(); E=()
for _ in $(seq "$runs"); do
  A+=("$(time_ms one)"); B+=("$(time_ms lbz1)"); C+=("$(time_ms all)"); D+=("$(time_ms lbz)"); E+=("$(time_ms bz)")
done
a=$(median "${A[@]}"); b=$(median "${B[@]}"); c=$(median "${C[@]}"); d=$(median "${D[@]}"); e=$(median "${E[@]}")
echo "decoder alone, $runs interleaved runs, medians ($(nproc) cores):"
echo "  lava-boot decoder, 1 thread    $a ms  (throughput $(ratio "$b" "$a")x lbzip2 -dc -n 1)"
echo "  lbzip2 -dc -n 1                $b ms"
echo "  lava-boot decoder, all cores   $c ms  (throughput $(ratio "$d" "$c")x lbzip2 -dc)"
echo "  lbzip2 -dc                     $d ms"
echo "  bzip2 -dc                      $e ms"

#!/usr/bin/env bash
# Install speed from a local code area, side by side with the standard tools, in one run:
#   lava-boot install (file://)  vs  tar -xjf  vs  lbzip2 -dc | tar -x
# Runs are interleaved; prints each tool's median and its ratio to the faster pipeline.
# Usage: bench/install-local.sh [MB of payload, default 150] [runs, default 5] [root dir, default a tmpfs-backed /dev/shm dir]
set -euo pipefail
cd "$(dirname "$0")/.."
mb="${1:-150}"; runs="${2:-5}"; base="${3:-/dev/shm}"
swift build -c release >/dev/null
bin="$(swift build -c release --show-bin-path)/lava-boot"
command -v lbzip2 >/dev/null || apt-get install -y -qq lbzip2 >/dev/null

work="$(mktemp -d "$base/lava-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
. /etc/os-release; os="$ID${VERSION_ID%%.*}"; arch="$(uname -m)"
py="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
area="$work/code"; dist="$area/_dist_/pkg/$os"; mkdir -p "$dist"
bundle="$dist/lava-8.2.0-$os-py$py-$arch.tar.bz2"

# A bundle shaped like a Python release: tens of thousands of small and medium files.
python3 - "$work/tree" "$mb" <<'PY'
import os, random, sys
root, mb = sys.argv[1], int(sys.argv[2])
random.seed(7)
words = [("".join(random.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(random.randint(2, 12)))) for _ in range(5000)]
total, n = 0, 0
while total < mb * 1024 * 1024:
    d = os.path.join(root, "lib", "python3", "site-packages", "pkg%03d" % (n // 60), "sub%d" % (n % 7))
    os.makedirs(d, exist_ok=True)
    size = random.choice([300, 1200, 4000, 9000, 30000])
    text = " ".join(random.choice(words) for _ in range(size // 6)) + "\n"
    with open(os.path.join(d, "mod%05d.py" % n), "w") as f:
        f.write(text)
    total += len(text); n += 1
os.makedirs(os.path.join(root, "bin"), exist_ok=True)
with open(os.path.join(root, "bin", "lava-worker"), "w") as f:
    f.write("#!/bin/sh\n")
os.chmod(os.path.join(root, "bin", "lava-worker"), 0o755)
print("files:", n, "bytes:", total)
PY
tar -C "$work/tree" -cf - . | lbzip2 -9 > "$bundle"
rm -rf "$work/tree"
echo "bundle: $(du -h "$bundle" | cut -f1) compressed"
echo '{"realm": "bench", "x-workers": {}}' > "$work/realms.json"
mkdir -p "$work/root/etc" "$work/root/usr/bin"; cp /etc/os-release "$work/root/etc/"; ln -s "python$py" "$work/root/usr/bin/python3"

time_ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
lava() { rm -rf "$work/root/opt" "$work/root/usr/local"; "$bin" install "file://$area" bench w --realms-file "$work/realms.json" --root "$work/root" --level error; }
tarj() { rm -rf "$work/out"; mkdir "$work/out"; tar -C "$work/out" -xjf "$bundle"; }
lbz() { rm -rf "$work/out"; mkdir "$work/out"; lbzip2 -dc < "$bundle" | tar -C "$work/out" -x; }

declare -a A B C
for i in $(seq "$runs"); do
  A+=("$(time_ms lava)"); B+=("$(time_ms tarj)"); C+=("$(time_ms lbz)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ma=$(median "${A[@]}"); mb_=$(median "${B[@]}"); mc=$(median "${C[@]}")
fast=$(( mb_ < mc ? mb_ : mc ))
rm -rf "$work/root/opt" "$work/root/usr/local"
rss=$( { /usr/bin/time -f '%M' "$bin" install "file://$area" bench w --realms-file "$work/realms.json" --root "$work/root" --level error; } 2>&1 | tail -n 1 )
printf 'root on %s, %d runs, medians:\n' "$base" "$runs"
printf '  lava-boot install        %6d ms  (%.2f of the faster pipeline)\n' "$ma" "$(echo "$ma / $fast" | bc -l)"
printf '  tar -xjf                 %6d ms\n' "$mb_"
printf '  lbzip2 -dc | tar -x      %6d ms\n' "$mc"
printf '  lava-boot peak RSS during an install  %s KiB\n' "$rss"

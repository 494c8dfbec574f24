# Shared by the bench scripts: build, a realistic bundle, timing and medians.
set -euo pipefail

# As shipped: release, static Swift standard library.
build_release() {
  swift build -c release --static-swift-stdlib --product lava-boot >/dev/null
  bin="$(swift build -c release --static-swift-stdlib --show-bin-path)/lava-boot"
}

# make_bundle DIR MB: a bundle shaped like a Python release (tens of thousands of files) at
# DIR/_dist_/pkg/<os>/...; sets $bundle, $bundle_key, $os, $py, $arch.
make_bundle() {
  local area="$1" mb="$2" tree
  . /etc/os-release; os="$ID${VERSION_ID%%.*}"; arch="$(uname -m)"
  py="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  bundle_key="_dist_/pkg/$os/lava-8.2.0-$os-py$py-$arch.tar.bz2"
  bundle="$area/$bundle_key"
  mkdir -p "$(dirname "$bundle")"
  tree="$(mktemp -d)"
  python3 - "$tree" "$mb" <<'PY'
import os, random, sys
root, mb = sys.argv[1], int(sys.argv[2])
random.seed(7)
words = ["".join(random.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(random.randint(2, 12))) for _ in range(5000)]
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
print("bundle payload: %d files, %d MiB" % (n, total >> 20))
PY
  tar -C "$tree" -cf - . | lbzip2 -9 > "$bundle"
  rm -rf "$tree"
  echo "bundle: $(du -h "$bundle" | cut -f1) compressed"
}

# make_root DIR: an image root with this machine's os-release and python3.
make_root() {
  mkdir -p "$1/etc" "$1/usr/bin"
  cp /etc/os-release "$1/etc/"
  ln -sfn "python$py" "$1/usr/bin/python3"
}

time_ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }

# peak_rss_kib CMD...: the command's peak RSS (its own ru_maxrss, read by a python3 parent).
peak_rss_kib() {
  python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"
}

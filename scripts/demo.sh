#!/usr/bin/env bash
# Builds lava-boot, makes a demo code area with real bundles on local disk and a realms file,
# then runs `plan` and `install` into a temporary root and shows what happened.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build >/dev/null
bin="$(swift build --show-bin-path)/lava-boot"

demo="$(mktemp -d /tmp/lava-boot-demo.XXXXXX)"
area="$demo/code"
root="$demo/root"
mkdir -p "$area/_boot_" "$root/etc" "$root/usr/bin"

# The image root: this machine's os-release and python3, as a real AMI would have them.
cp /etc/os-release "$root/etc/os-release"
py="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo 3.11)"
ln -s "python$py" "$root/usr/bin/python3"
. /etc/os-release
os="$ID${VERSION_ID%%.*}"
arch="$(uname -m)"

make_bundle() {  # make_bundle VERSION FILE
  local work; work="$(mktemp -d)"
  mkdir -p "$work/bin" "$work/lib/lava"
  cp scripts/fake-lava-worker.sh "$work/bin/lava-worker"
  cat > "$work/bin/lava-admin" <<SH
#!/usr/bin/env python3
print("lava-admin $1")
SH
  cat > "$work/lava-run" <<'SH'
#!/bin/sh
here="$(dirname "$(readlink -f "$0")")"
exec python3 "$here/bin/$(basename "$0")" "$@"
SH
  echo "VERSION = '$1'" > "$work/lib/lava/version.py"
  chmod 755 "$work/bin/"* "$work/lava-run"
  mkdir -p "$(dirname "$2")"
  tar -C "$work" -cjf "$2" .
  rm -rf "$work"
}
dist="$area/_dist_/pkg/$os"
make_bundle 8.1.0 "$dist/lava-8.1.0-$os-py$py-$arch.tar.bz2"
make_bundle 8.2.0 "$dist/lava-8.2.0-$os-py$py-$arch.tar.bz2"
make_bundle 8.3.0rc1 "$dist/lava-8.3.0rc1-$os-py$py-$arch.tar.bz2"   # pre-release: only when pinned
make_bundle 8.9.0 "$dist/lava-8.9.0-$os-py3.1-$arch.tar.bz2"         # another platform's newer build
make_bundle 9.0.0 "$dist/lava-9.0.0.tar.bz2"                         # old-style: only a fallback

for s in 10-hello.sh 50-lava.sh 90-motd.sh; do printf '#!/bin/sh\necho "%s: $*"\n' "$s" > "$area/_boot_/$s"; done
echo "Boot scriptlets; lava-boot skips README*." > "$area/_boot_/README.md"
chmod 755 "$area/_boot_/"*.sh

cat > "$demo/realms.json" <<'JSON'
{"Item": {
  "realm": {"S": "demo"},
  "x-workers": {"M": {
    "_":     {"M": {"daemons": {"N": "2"}, "env": {"M": {"LAVA_TIER": {"S": "demo"}}}}},
    "core":  {"M": {"workers": {"S": "core batch"}, "threads": {"S": "4"}}},
    "batch": {"M": {"version": {"S": "8.1.0"}, "daemons": {"N": "1"}}}
  }}
}}
JSON

run() { echo; echo "\$ lava-boot $*"; "$bin" "$@"; }
run versions "file://$area" --root "$root"
run plan "file://$area" demo core --realms-file "$demo/realms.json" --root "$root"
run install "file://$area" demo core --realms-file "$demo/realms.json" --root "$root"
echo
echo "\$ ls -l $root/opt/lava $root/usr/local/bin"
ls -l "$root/opt/lava" "$root/usr/local/bin"

# A real boot in user mode: scriptlets, install, three supervised workers; then status and a clean stop.
echo
echo "\$ lava-boot boot file://$area demo core --realms-file $demo/realms.json --root $root --user-mode --log $demo/boot.log &"
"$bin" boot "file://$area" demo core --realms-file "$demo/realms.json" --root "$root" --user-mode --log "$demo/boot.log" &
agent=$!
for _ in $(seq 100); do
  "$bin" status --root "$root" --json 2>/dev/null | grep -q '"state": "running"' && break
  sleep 0.1
done
sleep 0.5
run status --root "$root"
run stop --wait --root "$root"
wait "$agent"
echo "agent exited with status $?"
echo
echo "\$ cat $demo/boot.log"
cat "$demo/boot.log"
echo
echo "demo files are in $demo (remove with: rm -rf $demo)"

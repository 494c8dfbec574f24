#!/usr/bin/env bash
# The agent's steady RSS supervising 4 daemons (VmRSS sampled every second for 30 s), next to a
# python3 process holding a boto3 client. Also counts the agent's threads and fds before and
# after 20 daemon restarts (no growth expected).
# Usage: bench/agent-rss.sh [seconds, default 30]
cd "$(dirname "$0")/.."
. bench/lib.sh
seconds="${1:-30}"
build_release
work="$(mktemp -d /tmp/lava-rss.XXXXXX)"
. /etc/os-release; os="$ID${VERSION_ID%%.*}"; arch="$(uname -m)"
py="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
mkdir -p "$work/tree/bin" "$work/code/_dist_/pkg/$os"
cp scripts/fake-lava-worker.sh "$work/tree/bin/lava-worker"
tar -C "$work/tree" -cjf "$work/code/_dist_/pkg/$os/lava-8.2.0-$os-py$py-$arch.tar.bz2" .
make_root "$work/root"
echo '{"realm": "bench", "x-workers": {"w": {"daemons": 4}}}' > "$work/realms.json"
"$bin" boot "file://$work/code" bench w --realms-file "$work/realms.json" --root "$work/root" --user-mode --log "$work/boot.log" &
agent=$!
python3 -c 'import boto3, time; c = boto3.client("s3", region_name="us-east-1"); time.sleep(3600)' &
boto=$!
trap 'kill $boto 2>/dev/null; "$bin" stop --wait --root "$work/root" >/dev/null 2>&1; rm -rf "$work"' EXIT
sleep 3
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
a=(); b=()
for _ in $(seq "$seconds"); do a+=("$(rss $agent)"); b+=("$(rss $boto)"); sleep 1; done
# Where the agent's resident memory is: its own binary, private memory, each shared library.
breakdown() {
  python3 - "$1" <<'PY'
import collections, os, re, sys
pid = sys.argv[1]
exe = os.readlink(f"/proc/{pid}/exe")
rss, anon, current = collections.Counter(), 0, None
for line in open(f"/proc/{pid}/smaps"):
    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
        parts = line.split()
        current = parts[5] if len(parts) > 5 else "[anon]"
    elif line.startswith("Rss:"):
        rss[current] += int(line.split()[1])
status = {l.split(":")[0]: l.split(":")[1].strip() for l in open(f"/proc/{pid}/status") if ":" in l}
print(f"    VmRSS {status['VmRSS']}, RssAnon {status['RssAnon']}, RssFile {status['RssFile']}")
print(f"    lava-boot binary: {rss.pop(exe, 0)} kB")
for name, kib in rss.most_common(12):
    print(f"    {kib:6d} kB  {name}")
PY
}
steady="$(breakdown "$agent")"
threads() { ls "/proc/$agent/task" | wc -l; }
fds() { ls "/proc/$agent/fd" | wc -l; }
t0=$(threads); f0=$(fds); r0=$(rss $agent)
for i in $(seq 20); do
  # A different daemon each time, so each one's backoff stays short.
  pid=$(pgrep -P "$agent" | sort -n | sed -n "$(( i % 4 + 1 ))p"); kill -9 "$pid"; sleep 0.3
  for _ in $(seq 100); do [ "$(pgrep -P "$agent" | wc -l)" -ge 4 ] && break; sleep 0.2; done
done
# The agent releases its pages again once restarts have settled for 5 s.
sleep 8
settled="$(breakdown "$agent")"
echo "agent mappings, supervising 4 daemons (start-up pages released):"
echo "$steady"
echo "agent mappings after 20 restarts, settled:"
echo "$settled" | head -3
echo "python3 + boto3 client mappings:"
boto_maps="$(breakdown "$boto")"; echo "$boto_maps" | head -4
echo "over ${seconds}s, medians (max):"
echo "  lava-boot agent, 4 daemons   $(median "${a[@]}") KiB ($(printf '%s\n' "${a[@]}" | sort -n | tail -n 1) KiB)"
echo "  python3 + boto3 client       $(median "${b[@]}") KiB ($(printf '%s\n' "${b[@]}" | sort -n | tail -n 1) KiB)"
echo "  after 20 restarts: threads $t0 -> $(threads), fds $f0 -> $(fds), RSS $r0 -> $(rss $agent) KiB"

#!/usr/bin/env bash
# A fleet booting at once (SPEC §15): N concurrent `lava-boot plan` runs against a realms table
# throttled like 3 RCU (bench/throttle_proxy.py: 6 GetItem/s, small burst, DynamoDB's
# ProvisionedThroughputExceededException beyond), then the same N `aws dynamodb get-item` reads
# through the same throttle. Interleaved per N; one table. S3 (the code area listing) goes to moto
# directly: only the realm read is throttled. Percentiles are over all N runs, failed ones too.
# Usage: LAVA_BOOT_BIN=path/to/lava-boot bench/fleet-plan.sh ["N list", default "50 200 600"]
cd "$(dirname "$0")/.."
. bench/lib.sh
bin="${LAVA_BOOT_BIN:?set LAVA_BOOT_BIN to a built lava-boot (this bench builds nothing)}"
sizes="${1:-50 200 600}"; rate=6; burst=6
bin="$(realpath "$bin")"; [ -x "$bin" ] || { echo "not executable: $bin" >&2; exit 1; }
# The real aws script, not pyenv's shim: the shim's own start-up is no part of the CLI's cost.
awscli="$(pyenv which aws 2>/dev/null || command -v aws)"
# Hundreds of processes, each with sockets and pipes; the proxy holds one thread per client.
[ "$(ulimit -n)" -ge 8192 ] || ulimit -n "$(ulimit -Hn)"

work="$(mktemp -d /tmp/lava-fleet.XXXXXX)"
# Kill every descendant (moto, the proxy, timeout and whatever it runs) on any exit.
descendants() { local c; for c in $(pgrep -P "$1"); do descendants "$c"; echo "$c"; done; }
trap 'kill $(descendants $$) 2>/dev/null; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mport=$(free_port)
moto_server -H 127.0.0.1 -p "$mport" >"$work/moto.log" 2>&1 &
moto="http://127.0.0.1:$mport"
for _ in $(seq 50); do curl -s "$moto" >/dev/null && break; sleep 0.2; done
python3 bench/throttle_proxy.py --upstream "$moto" --rate "$rate" --burst "$burst" >"$work/proxy.out" 2>"$work/proxy.log" &
for _ in $(seq 50); do grep -q '^PORT ' "$work/proxy.out" && break; sleep 0.1; done
proxy="http://127.0.0.1:$(awk '/^PORT /{print $2}' "$work/proxy.out")"

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
       AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL_S3="$moto" AWS_ENDPOINT_URL_DYNAMODB="$proxy"
unset AWS_ENDPOINT_URL AWS_PROFILE AWS_MAX_ATTEMPTS AWS_RETRY_MODE LAVA_BOOT_RETRY_BASE_SECONDS

# The realm item and a code area holding one package for this host (plan lists and picks it).
# The platform is what lava-boot sees: python3 on /usr/local/bin:/usr/bin.
. /etc/os-release; os="$ID${VERSION_ID%%.*}"; arch="$(uname -m)"
py="$(PATH=/usr/local/bin:/usr/bin python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
"$awscli" dynamodb create-table --endpoint-url "$moto" --table-name lava.realms --billing-mode PAY_PER_REQUEST \
  --attribute-definitions AttributeName=realm,AttributeType=S --key-schema AttributeName=realm,KeyType=HASH >/dev/null
"$awscli" dynamodb put-item --endpoint-url "$moto" --table-name lava.realms \
  --item '{"realm":{"S":"bench"},"x-workers":{"M":{"w":{"M":{"daemons":{"N":"1"}}}}}}'
mkdir -p "$work/tree/bin"; printf '#!/bin/sh\n' >"$work/tree/bin/lava-worker"; chmod +x "$work/tree/bin/lava-worker"
tar -C "$work/tree" -cjf "$work/bundle.tar.bz2" .
"$awscli" s3 mb s3://bench --endpoint-url "$moto" >/dev/null
"$awscli" s3 cp "$work/bundle.tar.bz2" "s3://bench/_dist_/pkg/$os/lava-8.2.0-$os-py$py-$arch.tar.bz2" --endpoint-url "$moto" >/dev/null
"$awscli" s3 cp "$work/tree/bin/lava-worker" "s3://bench/_boot_/50-lava.sh" --endpoint-url "$moto" >/dev/null
"$bin" plan s3://bench bench w >/dev/null || { echo "lava-boot plan fails even alone" >&2; exit 1; }

# The CLI leg only where N copies of it fit in memory (a python3 each).
cli_kb=$(/usr/bin/time -f %M "$awscli" dynamodb get-item --table-name lava.realms --key '{"realm":{"S":"bench"}}' \
         --endpoint-url "$proxy" 2>&1 >/dev/null | tail -1)
avail_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
cli_mode="${AWS_RETRY_MODE:-$("$(head -1 "$awscli" | sed 's/^#!//')" -c 'import botocore.configprovider as c; print(c._DEFAULT_RETRY_MODE)' 2>/dev/null || echo default)}"

# fleet DIR N CMD...: N copies of CMD at once, each writing "exit-status wall-ms" to DIR/i.res.
fleet() {
  local dir="$1" n="$2" i; shift 2
  rm -rf "$dir"; mkdir -p "$dir"
  curl -s -X POST "$proxy/__reset__" >/dev/null
  for i in $(seq "$n"); do
    ( start=$(date +%s%N); rc=0
      timeout 1200 "$@" >/dev/null 2>"$dir/$i.err" || rc=$?
      echo "$rc $(( ($(date +%s%N) - start) / 1000000 ))" >"$dir/$i.res" ) &
    pids+=($!)
  done
  wait "${pids[@]}"; pids=()
  curl -s "$proxy/__stats__" >"$dir/stats.json"
}

# row N TOOL DIR: one line of the table, and the commonest error of any failed run.
row() {
  python3 - "$@" "$rate" <<'PY'
import collections, glob, json, math, os, sys
n, tool, d, rate = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
res = [tuple(map(int, open(f).read().split())) for f in glob.glob(os.path.join(d, "*.res"))]
ms = sorted(t for _, t in res)
ok = sum(1 for rc, _ in res if rc == 0)
pct = lambda p: ms[max(0, math.ceil(p * len(ms)) - 1)]
stats = json.load(open(os.path.join(d, "stats.json")))
calls = "%.2f" % (stats["getitem"] / ok) if ok else "-"
limit = ratio = ""
if tool == "lava-boot":
    limit, ratio = "%.1f" % (n / rate), "%.2f" % (pct(0.99) / 1000 / (n / rate))
print("%5d  %-9s %5d/%-5d %8d %8d %8d %8s %8s %8s" % (n, tool, ok, n, pct(0.5), pct(0.99), ms[-1], calls, limit, ratio))
errors = collections.Counter()
for f in glob.glob(os.path.join(d, "*.res")):
    if open(f).read().split()[0] != "0":
        lines = [l.strip() for l in open(f[:-4] + ".err", errors="replace") if l.strip()]
        errors["exit %s: %s" % (open(f).read().split()[0], lines[-1][:150] if lines else "(no stderr)")] += 1
for text, count in errors.most_common(2):
    print("       %s: %d failed, %s" % (tool, count, text), file=sys.stderr)
PY
}

echo "$(date -u +%FT%TZ)  $(nproc) cores; realm GetItem throttled to $rate/s (burst $burst) by bench/throttle_proxy.py"
echo "lava-boot: $bin ($("$bin" --version 2>/dev/null))"
echo "aws CLI: $("$awscli" --version 2>&1), retry mode $cli_mode (CLI default, not set), one process ${cli_kb} KiB RSS"
printf '%5s  %-9s %11s %8s %8s %8s %8s %8s %8s\n' N tool ok/N "p50 ms" "p99 ms" "max ms" "GetItem" "limit s" p99/limit
pids=()
for n in $sizes; do
  fleet "$work/lava-$n" "$n" "$bin" plan s3://bench bench w
  row "$n" lava-boot "$work/lava-$n" 2>&1
  if [ $(( n * cli_kb )) -lt $(( avail_kb * 7 / 10 )) ]; then
    fleet "$work/cli-$n" "$n" "$awscli" dynamodb get-item --table-name lava.realms --key '{"realm":{"S":"bench"}}' --endpoint-url "$proxy"
    row "$n" "aws CLI" "$work/cli-$n" 2>&1
  else
    printf '%5d  %-9s skipped (memory: %d x %d KiB > 70%% of %d KiB available)\n' "$n" "aws CLI" "$n" "$cli_kb" "$avail_kb"
  fi
done
echo "GetItem = GetItem calls per success (proxy counters); limit = N / $rate s, the physical limit; §15: at 600 all succeed,"
echo "p99/limit <= 1.25 and GetItem < 2; at 50 and 200 lava-boot's p99 no worse than the CLI's."

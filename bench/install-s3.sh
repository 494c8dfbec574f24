#!/usr/bin/env bash
# Install speed from S3 (moto on loopback), side by side in one run, on a tmpfs root and on a
# disk root (SPEC §15):
#   lava-boot install (s3://)  vs  aws s3 cp + tar -xjf  vs  curl --aws-sigv4 | lbzip2 -dc | tar -x
# Runs are interleaved; prints medians, ratios to the faster pipeline, lava-boot's peak RSS and
# where its time went (one extra run at --level debug).
# Usage: bench/install-s3.sh [payload MiB, default 150] [runs, default 3] [disk dir, default /var/tmp]
cd "$(dirname "$0")/.."
. bench/lib.sh
mb="${1:-150}"; runs="${2:-3}"; disk="${3:-/var/tmp}"
build_release
store="$(mktemp -d /dev/shm/lava-bench-code.XXXXXX)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 & moto=$!
roots=()
trap 'kill $moto; rm -rf "$store" "${roots[@]}"' EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
       AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_EC2_METADATA_DISABLED=true
for _ in $(seq 50); do curl -s "$AWS_ENDPOINT_URL" >/dev/null && break; sleep 0.2; done
make_bundle "$store/code" "$mb"
aws --endpoint-url "$AWS_ENDPOINT_URL" s3 mb s3://bench >/dev/null
aws --endpoint-url "$AWS_ENDPOINT_URL" s3 cp "$bundle" "s3://bench/code/$bundle_key" >/dev/null
size=$(stat -c %s "$bundle")
rm -rf "$store/code"
echo '{"realm": "bench", "x-workers": {}}' > "$store/realms.json"
url="$AWS_ENDPOINT_URL/bench/code/$bundle_key"
echo "$(date -u +%FT%TZ)  $(nproc) cores; bundle $((size >> 20)) MiB compressed; moto on loopback; $runs interleaved runs per root"

for base in /dev/shm "$disk"; do
  work="$(mktemp -d "$base/lava-bench.XXXXXX")"; roots+=("$work")
  make_root "$work/root"
  install=("$bin" install s3://bench/code bench w --realms-file "$store/realms.json" --root "$work/root")
  lava() { rm -rf "$work/root/opt" "$work/root/usr/local"; sync; "${install[@]}" --level error; }
  awscp() { rm -rf "$work/out" "$work/b.tar.bz2"; mkdir "$work/out"; sync
            aws --endpoint-url "$AWS_ENDPOINT_URL" s3 cp "s3://bench/code/$bundle_key" "$work/b.tar.bz2" && tar -C "$work/out" -xjf "$work/b.tar.bz2"; }
  curlbz() { rm -rf "$work/out"; mkdir "$work/out"; sync
             curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user bench:bench "$url" | lbzip2 -dc | tar -C "$work/out" -x; }
  A=(); B=(); C=()
  for _ in $(seq "$runs"); do A+=("$(time_ms lava)"); B+=("$(time_ms awscp)"); C+=("$(time_ms curlbz)"); done
  ma=$(median "${A[@]}"); mb_=$(median "${B[@]}"); mc=$(median "${C[@]}"); fast=$(( mb_ < mc ? mb_ : mc ))
  rm -rf "$work/root/opt" "$work/root/usr/local" "$work/out" "$work/b.tar.bz2"
  rss=$(peak_rss_kib "${install[@]}" --level error)
  rm -rf "$work/root/opt" "$work/root/usr/local"
  timing=$("${install[@]}" --level debug 2>&1 | sed -n 's/.*DEBUG \[install\] timing [^:]*: \(.*\) (realm=.*/\1/p')
  echo "root on $base ($(df -T "$base" | awk 'NR == 2 {print $2}')), medians:"
  echo "  lava-boot install                    $ma ms  ($(ratio "$ma" "$fast") of the faster pipeline; SPEC: tmpfs <= 0.85, disk <= 1.0)"
  echo "  aws s3 cp + tar -xjf                 $mb_ ms"
  echo "  curl --aws-sigv4 | lbzip2 -dc | tar  $mc ms"
  echo "  lava-boot peak RSS                   $rss KiB (SPEC: under 65536)"
  echo "  lava-boot time: $timing"
done

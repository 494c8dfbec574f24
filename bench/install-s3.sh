#!/usr/bin/env bash
# Install speed from S3 (moto on loopback), side by side in one run:
#   lava-boot install (s3://)  vs  aws s3 cp + tar -xjf  vs  curl | lbzip2 -dc | tar -x
# Runs are interleaved; prints medians and ratios.
# Usage: bench/install-s3.sh [payload MiB, default 100] [runs, default 5] [base dir, default /dev/shm]
cd "$(dirname "$0")/.."
. bench/lib.sh
mb="${1:-100}"; runs="${2:-5}"; base="${3:-/dev/shm}"
command -v lbzip2 >/dev/null || apt-get install -y -qq lbzip2 >/dev/null
build_release
work="$(mktemp -d "$base/lava-bench.XXXXXX")"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 & moto=$!
trap 'kill $moto; rm -rf "$work"' EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
       AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_EC2_METADATA_DISABLED=true
for _ in $(seq 50); do curl -s "$AWS_ENDPOINT_URL" >/dev/null && break; sleep 0.2; done
make_bundle "$work/code" "$mb"
make_root "$work/root"
aws --endpoint-url "$AWS_ENDPOINT_URL" s3 mb s3://bench >/dev/null
aws --endpoint-url "$AWS_ENDPOINT_URL" s3 cp "$bundle" "s3://bench/code/$bundle_key" >/dev/null
echo '{"realm": "bench", "x-workers": {}}' > "$work/realms.json"
auth="Authorization: AWS4-HMAC-SHA256 Credential=bench/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"

lava() { rm -rf "$work/root/opt" "$work/root/usr/local"; "$bin" install s3://bench/code bench w --realms-file "$work/realms.json" --root "$work/root" --level error; }
awscp() { rm -rf "$work/out" "$work/b.tar.bz2"; mkdir "$work/out"; aws --endpoint-url "$AWS_ENDPOINT_URL" s3 cp "s3://bench/code/$bundle_key" "$work/b.tar.bz2" && tar -C "$work/out" -xjf "$work/b.tar.bz2"; }
curlbz() { rm -rf "$work/out"; mkdir "$work/out"; curl -sf -H "$auth" "$AWS_ENDPOINT_URL/bench/code/$bundle_key" | lbzip2 -dc | tar -C "$work/out" -x; }

A=(); B=(); C=()
for _ in $(seq "$runs"); do A+=("$(time_ms lava)"); B+=("$(time_ms awscp)"); C+=("$(time_ms curlbz)"); done
ma=$(median "${A[@]}"); mb_=$(median "${B[@]}"); mc=$(median "${C[@]}")
size=$(stat -c %s "$bundle")
echo "moto on loopback, root on $base, $runs interleaved runs, medians:"
echo "  lava-boot install                  $ma ms  ($(ratio "$ma" "$mb_") of aws s3 cp + tar, $(ratio "$ma" "$mc") of curl | lbzip2 | tar)"
echo "  aws s3 cp + tar -xjf               $mb_ ms"
echo "  curl | lbzip2 -dc | tar -x         $mc ms"
echo "  lava-boot throughput               $(echo "$size / 1048576 / ($ma / 1000)" | bc -l | xargs printf '%.1f') MiB/s of bundle"

#!/usr/bin/env bash
# Builds the block decoder's libFuzzer target (lava-bzip2-fuzz: the Swift decoder against libbz2,
# trapping on any disagreement) with ASan and coverage, and runs it for a bounded time.
#   scripts/fuzz-bzip2.sh [SECONDS, default 60]
# Exits non-zero when libFuzzer finds a crash, a hang or a mismatch; the input is kept under
# .build/fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
seconds="${1:-60}"
scratch=.build/fuzz
# -sanitize=fuzzer instruments for libFuzzer and links it; the target's own main calls
# LLVMFuzzerRunDriver, so libFuzzer's main stays out (gold trips over the duplicate, lld not).
swift build -c release --scratch-path "$scratch" --product lava-bzip2-fuzz -Xswiftc -DFUZZING \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld
corpus="$scratch/corpus"
mkdir -p "$corpus" "$scratch/artifacts"
# Seeds: small streams from bzip2 and lbzip2: text, binary, runs, a fill, two blocks, empty.
if [ -z "$(ls -A "$corpus")" ]; then
  printf '' | bzip2 -9 > "$corpus/empty.bz2"
  printf 'hello, hello, hello world\n' | bzip2 -9 > "$corpus/hello.bz2"
  head -c 3000 README.md | bzip2 -9 > "$corpus/text.bz2"
  head -c 3000 README.md | lbzip2 -9 > "$corpus/text-lbzip2.bz2"
  head -c 600 /bin/ls | bzip2 -1 > "$corpus/binary.bz2"
  printf 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbbbcccc' | bzip2 > "$corpus/runs.bz2"
  head -c 120000 /dev/zero | tr '\0' 'x' | bzip2 -1 > "$corpus/fill.bz2"
  (head -c 101000 /dev/urandom | base64; head -c 101000 /bin/ls) | bzip2 -1 > "$corpus/two-blocks.bz2"
fi
# ASan and libFuzzer report crashes themselves (Swift's backtracer would hang on an ASan process).
export SWIFT_BACKTRACE=enable=no
"$scratch/release/lava-bzip2-fuzz" "$corpus" -max_total_time="$seconds" -max_len=2048 -rss_limit_mb=4096 \
  -artifact_prefix="$scratch/artifacts/" -print_final_stats=1

#!/usr/bin/env bash
# Release build: static Swift stdlib, stripped, checked to need no glibc newer than 2.34
# (Amazon Linux 2023) and only the four C libraries of the design; tarball + SHA-256.
set -euo pipefail
cd "$(dirname "$0")/.."
version="$(sed -n 's/.*static let version = "\(.*\)".*/\1/p' Sources/lava-boot/LavaBoot.swift)"
arch="$(uname -m)"
swift build -c release --static-swift-stdlib
bin="$(swift build -c release --static-swift-stdlib --show-bin-path)/lava-boot"
out="packaging/out"
rm -rf "$out" && mkdir -p "$out/lava-boot-$version"
cp "$bin" "$out/lava-boot-$version/lava-boot"
strip "$out/lava-boot-$version/lava-boot"

# Newest glibc symbol version the binary asks for.
newest="$(objdump -T "$out/lava-boot-$version/lava-boot" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -n 1)"
echo "needs $newest"
if [ "$(printf '%s\n' "$newest" GLIBC_2.34 | sort -V | tail -n 1)" != GLIBC_2.34 ]; then
  echo "error: the binary needs $newest; Amazon Linux 2023 has GLIBC_2.34" >&2
  exit 1
fi
# Shared libraries: glibc's own plus curl, crypto, archive, bz2 and nothing else.
unexpected="$(objdump -p "$out/lava-boot-$version/lava-boot" | awk '/NEEDED/ {print $2}' \
  | grep -vE '^(libc|libm|libpthread|libdl|librt|ld-linux[^ ]*|libcurl|libcrypto|libarchive|libbz2|libgcc_s|libstdc\+\+)\.so' || true)"
if [ -n "$unexpected" ]; then
  echo "error: unexpected shared libraries: $unexpected" >&2
  exit 1
fi
cp README.md CHANGELOG.md "$out/lava-boot-$version/"
tar -C "$out" -czf "$out/lava-boot-$version-linux-$arch.tar.gz" "lava-boot-$version"
(cd "$out" && sha256sum "lava-boot-$version-linux-$arch.tar.gz" > "lava-boot-$version-linux-$arch.tar.gz.sha256")
ls -l "$out"

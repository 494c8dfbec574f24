#!/usr/bin/env bash
# Release build for Amazon Linux 2023 (SPEC §12): static Swift stdlib, stripped, no libbz2 (the
# product decodes bzip2 itself; AL2023 would name it libbz2.so.1, Debian libbz2.so.1.0), no
# CURL_* symbol versions, checked by check-binary.sh; tarball + SHA-256 and an RPM.
#   packaging/build-release.sh [--scratch-path DIR] [--out DIR]
# DIR defaults: .build/release-static (its own, so a debug build beside it is left alone) and
# packaging/out.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=.build/release-static
out=packaging/out
while [ $# -gt 0 ]; do
  case "$1" in
    --scratch-path) scratch="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--scratch-path DIR] [--out DIR]" >&2; exit 64 ;;
  esac
done
version="$(sed -n 's/.*static let version = "\(.*\)".*/\1/p' Sources/lava-boot/LavaBoot.swift)"
arch="$(uname -m)"

# What the release link looks in first. SwiftPM puts the -L of each C library's pkg-config file
# before any -L given with -Xlinker, so copies of those .pc files name this directory first. It
# holds a stub libcurl.so (soname libcurl.so.4, no version script) defining every function the
# real one exports: the binary binds to the same library at run time but asks for no
# CURL_OPENSSL_4, which AL2023's unversioned libcurl lacks.
link="$scratch/release-link"
rm -rf "$link" && mkdir -p "$link/pkgconfig"
libdir="$(pkg-config --variable=libdir libcurl)"
nm -D --defined-only "$libdir/libcurl.so" | awk '$2 == "T" {sub(/@.*/, "", $3); print "void " $3 "(void) {}"}' \
  > "$link/curl-stub.c"
cc -shared -fPIC -nostdlib -Wl,-soname,libcurl.so.4 -o "$link/libcurl.so" "$link/curl-stub.c"
for pc in libcurl libcrypto libarchive; do
  sed "s|^Libs:|Libs: -L$(realpath "$link")|" "$(pkg-config --variable=pcfiledir "$pc")/$pc.pc" > "$link/pkgconfig/$pc.pc"
done

build=(swift build -c release --static-swift-stdlib --disable-local-rpath --product lava-boot
       --scratch-path "$scratch" --pkg-config-path "$link/pkgconfig")
"${build[@]}"
bin="$("${build[@]}" --show-bin-path)/lava-boot"

stage="lava-boot-$version"
rm -rf "$out" && mkdir -p "$out/$stage"
cp "$bin" "$out/$stage/lava-boot"
strip "$out/$stage/lava-boot"
if ! check="$(bash packaging/check-binary.sh "$out/$stage/lava-boot" 2>&1)"; then
  echo "$check" >&2
  exit 1
fi

cp README.md CHANGELOG.md boot/lava-boot.service boot/user-data.sh boot/MIGRATION.md boot/LIFECYCLE.md "$out/$stage/"
tarball="lava-boot-$version-linux-$arch.tar.gz"
tar -C "$out" -czf "$out/$tarball" "$stage"
(cd "$out" && sha256sum "$tarball" > "$tarball.sha256")

rpmbuild -bb packaging/lava-boot.spec --quiet \
  --define "_topdir $(realpath "$out")/rpmbuild" --define "_sourcedir $(realpath "$out")" \
  --define "_rpmdir $(realpath "$out")" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
  --define "lava_version $version" --define "tarball $tarball"
rm -rf "$out/rpmbuild"
rpm="$out/lava-boot-$version-1.$arch.rpm"
[ -f "$rpm" ] || { echo "error: rpmbuild made no $rpm" >&2; exit 1; }

# The start-up time of SPEC §15: median of 21 runs of --version (EPOCHREALTIME: no fork to time).
times=()
for _ in $(seq 21); do
  start="${EPOCHREALTIME//[.,]/}"
  "$out/$stage/lava-boot" --version > /dev/null
  times+=($(( ${EPOCHREALTIME//[.,]/} - start )))
done
median="$(printf '%s\n' "${times[@]}" | sort -n | sed -n 11p)"

echo
echo "binary: $(stat -c %s "$out/$stage/lava-boot") bytes, lava-boot --version $("$out/$stage/lava-boot" --version)"
echo "$check"
echo "start-up (--version, median of 21): $((median / 1000)).$(printf '%03d' $((median % 1000))) ms"
echo "rpm -qpR $(basename "$rpm"):"
rpm -qpR "$rpm" | sed 's/^/  /'
echo "rpm -qpl $(basename "$rpm"):"
rpm -qpl "$rpm" | sed 's/^/  /'
ls -l "$out"

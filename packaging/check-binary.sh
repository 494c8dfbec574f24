#!/usr/bin/env bash
# Fails unless BINARY would start on Amazon Linux 2023 as shipped (SPEC §12): it needs no shared
# library beyond glibc's, libgcc_s, libstdc++, libcrypto, libcurl and libarchive, and no symbol
# version newer than AL2023's (glibc 2.34, GCC 11's libgcc_s and libstdc++, OpenSSL 3.0). Its
# libcurl exports no versions, so any CURL_* requirement fails too (the loader would warn).
# Prints the NEEDED lines and the highest version asked of each library family.
set -euo pipefail
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
  echo "usage: $0 BINARY" >&2
  exit 64
fi
binary="$1"
headers="$(objdump -p "$binary")"
failed=0

echo "$headers" | grep NEEDED
while read -r library; do
  case "$library" in
    libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | ld-linux-*.so.*) ;;
    libgcc_s.so.1 | libstdc++.so.6 | libcrypto.so.3 | libcurl.so.4 | libarchive.so.13) ;;
    *) echo "error: needs $library, which is not one of the libraries SPEC §12 allows" >&2; failed=1 ;;
  esac
done < <(echo "$headers" | awk '$1 == "NEEDED" {print $2}')

# Version references: "required from LIB:" followed by one line per version, name last.
versions="$(echo "$headers" | awk '/^Version References:/ {on = 1; next}
  on && /^  required from / {sub(/:$/, "", $3); library = $3; next}
  on && /^    0x/ {print library, $NF; next}
  on && NF == 0 {exit}')"

highest() { echo "$versions" | awk '{print $2}' | grep "^$1" | sort -Vu | tail -n 1 || true; }
# Is version $1 later than $2? (sort -V orders GLIBC_2.9 before GLIBC_2.34.)
later() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n 1)" = "$1" ]; }

# The newest of each family AL2023 defines; GCC_7.0.0 is the newest libgcc_s tag of GCC 7, all
# of which GCC 11 has (a newer tag might be there too, but need not be).
for limit in GLIBC_2.34 GLIBCXX_3.4.29 CXXABI_1.3.13 GCC_7.0.0 OPENSSL_3.0.0; do
  family="${limit%%_*}"
  top="$(highest "${family}_")"
  echo "highest $family: ${top:-none} (allowed up to $limit)"
  if [ -n "$top" ] && later "$top" "$limit"; then
    echo "error: needs $top; Amazon Linux 2023 has $limit" >&2
    failed=1
  fi
done
# Anything else (CURL_OPENSSL_4 above all) is a version AL2023's libraries do not define.
unexpected="$(echo "$versions" | awk '$2 !~ /^(GLIBC|GLIBCXX|CXXABI|GCC|OPENSSL)_[0-9.]+$/ {print "  " $0}')"
if [ -n "$unexpected" ]; then
  echo "error: symbol versions Amazon Linux 2023's libraries do not define:" >&2
  echo "$unexpected" >&2
  failed=1
fi
if [ "$failed" -ne 0 ]; then
  echo "check-binary: $binary would not start cleanly on Amazon Linux 2023" >&2
  exit 1
fi
echo "check-binary: $binary OK for Amazon Linux 2023"

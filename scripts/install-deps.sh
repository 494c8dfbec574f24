#!/usr/bin/env bash
# What building and testing lava-boot needs on Debian/Ubuntu, installed when missing.
set -euo pipefail
need=()
# The release build (packaging/) and its tests also need binutils and gcc (check, stub, strip),
# rpm (rpmbuild), packer (the AMI template's syntax check) and shellcheck; the benches time and strace.
for pkg in libcurl4-openssl-dev libssl-dev libbz2-dev libarchive-dev pkg-config bzip2 lbzip2 curl tar passwd \
    binutils gcc rpm packer shellcheck time strace; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v moto_server >/dev/null 2>&1; then
  python3 -m pip install -q 'moto[server]'
fi
# The benches run the AWS CLI beside lava-boot.
if ! command -v aws >/dev/null 2>&1; then
  python3 -m pip install -q awscli
fi
command -v swift >/dev/null || { echo "swift is not on PATH (expected /opt/swift/usr/bin)" >&2; exit 1; }

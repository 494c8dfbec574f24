#!/bin/bash
# Packer provisioning of the lava AMI (ami/lava-boot.pkr.hcl), as root on Amazon Linux 2023:
# lava-boot from its RPM with its unit enabled, then Oracle Instant Client from the code area.
#   SOURCE=s3://BUCKET/PREFIX  RPM=/tmp/lava-boot.rpm  ORACLE_TYPE=basiclite
set -euo pipefail
: "${SOURCE:?SOURCE must name the code area (s3://BUCKET/PREFIX) holding _ami_/oracle/}"
RPM="${RPM:-/tmp/lava-boot.rpm}"
ORACLE_TYPE="${ORACLE_TYPE:-basiclite}"

# dnf brings what the RPM Requires (libcurl, openssl-libs, libarchive) from the AL2023 repos.
dnf install -y "$RPM"
rm -f "$RPM"
lava-boot --version

# Enabled, the unit runs `lava-boot boot` at every start of an instance from this AMI (warm
# pools included); it reads LAVA_SOURCE, LAVA_REALM and LAVA_WORKER from /etc/lava-boot.env,
# which the user data writes (boot/user-data.sh); none is baked into the image.
systemctl enable lava-boot.service
rm -f /etc/lava-boot.env

# The build instance's profile reads SOURCE/_ami_/oracle/ (boot/iam/instance-role.json).
lava-boot ami oracle "$SOURCE" --type "$ORACLE_TYPE"

dnf clean all

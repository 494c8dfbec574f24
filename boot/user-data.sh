#!/bin/bash
# EC2 user data: hand the instance to lava-boot. The positionals are the old root boot
# script's, so the change from `root.boot.sh SOURCE REALM WORKER` is one word.
# lava-boot itself comes with the AMI (see ami/); it needs nothing else on the host.
set -euo pipefail
SOURCE=s3://my-lava-code/prod
REALM=prod
WORKER=core

cat > /etc/lava-boot.env <<ENV
LAVA_SOURCE=$SOURCE
LAVA_REALM=$REALM
LAVA_WORKER=$WORKER
ENV
systemctl daemon-reload
systemctl enable --now lava-boot.service

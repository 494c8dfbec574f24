#!/usr/bin/env bash
# Runs every test: unit tests and the integration tests that drive the built binary.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
LAVA_BOOT_BIN="$(swift build --show-bin-path)/lava-boot" swift test --skip-build

# `make demo`: build lava-boot and run plan + install from a local demo code area.
# `make test`: install what the tests need and run every test.
# `make release`: the release build for Amazon Linux 2023: checked binary, tarball, RPM (packaging/out).
.PHONY: deps demo test build release

deps:
	bash scripts/install-deps.sh

build: deps
	swift build

demo: deps
	bash scripts/demo.sh

test: deps
	bash scripts/test.sh

release: deps
	bash packaging/build-release.sh

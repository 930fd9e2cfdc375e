# Two commands do all the set-up on a fresh machine:
#   make run    install what is missing, build, serve channels.yaml on 127.0.0.1:8080
#   make test   install what is missing, build, run every test
SWIFT ?= swift
APT_PACKAGES := libcurl4-openssl-dev libssl-dev libyaml-dev libsqlite3-dev sqlite3 python3-aiosmtpd openssl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps build run test bench release clean

deps:
	@command -v $(SWIFT) >/dev/null || { echo "swift is not on PATH (expected the Swift 6 toolchain)"; exit 1; }
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

run: build
	.build/debug/herald serve --config channels.yaml

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

clean:
	rm -rf .build .build-static dist

# A binary to ship: release build with the Swift runtime linked in (no toolchain needed on the
# target; it needs the Debian libraries libcurl4 and libsqlite3-0), stripped, in dist/.
release: deps
	$(SWIFT) build -c release --static-swift-stdlib --product herald --scratch-path .build-static
	mkdir -p dist
	strip -o dist/herald .build-static/release/herald
	@ls -l dist/herald

# Release build, then the load generator against the real binary (see BENCHMARKS.md).
bench: deps
	$(SWIFT) build -c release
	taskset -c 1 .build/release/herald-bench --herald .build/release/herald --herald-cpu 0
	taskset -c 0 .build/release/herald-bench --otp-table Tests/HeraldCoreTests/Fixtures/otp-table.txt
	taskset -c 0 .build/release/herald-bench --webhook-micro

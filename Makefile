# Two commands do all the set-up on a fresh machine:
#   make run    install what is missing, build, serve channels.yaml on 127.0.0.1:8080
#   make test   install what is missing, build, run every test
SHELL := /bin/bash
SWIFT ?= swift
APT_PACKAGES := libcurl4-openssl-dev libssl-dev libyaml-dev libsqlite3-dev sqlite3 python3-aiosmtpd openssl postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps build run test bench release fuzz clean

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

# The PostgreSQL tests run against a throwaway cluster started here (scripts/test-postgres) and
# removed afterwards, whatever the tests did.
test: deps
	$(SWIFT) build --build-tests
	@pg=$$(mktemp -d /tmp/herald-pg.XXXXXX); chmod 755 $$pg; \
	url=$$(scripts/test-postgres init $$pg/cluster) || { scripts/test-postgres destroy $$pg/cluster; exit 1; }; \
	echo "PostgreSQL for the tests: $$url"; \
	HERALD_TEST_POSTGRES=$$url HERALD_SOURCE_ROOT=$(CURDIR) $(SWIFT) test --skip-build; status=$$?; \
	scripts/test-postgres destroy $$pg/cluster; rmdir $$pg; exit $$status

clean:
	rm -rf .build .build-static dist

# A binary to ship: release build with the Swift runtime linked in (no toolchain needed on the
# target; it needs the Debian libraries libcurl4 and libsqlite3-0), stripped, in dist/.
release: deps
	$(SWIFT) build -c release --static-swift-stdlib --product herald --scratch-path .build-static
	mkdir -p dist
	strip -o dist/herald .build-static/release/herald
	@ls -l dist/herald

# libFuzzer targets (Fuzz/HeraldFuzz), each run FUZZ_SECONDS from its seed corpus in
# Fuzz/corpus/<target>; a crash stops here and leaves its input as .build-fuzz/crash-*.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := form finder config json email
fuzz: deps
	@# (the sanitizer runtime makes the linker warn about every local symbol it cannot export)
	set -o pipefail; HERALD_FUZZ=1 $(SWIFT) build --product herald-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address 2>&1 \
		| grep -v "Cannot export local symbol"
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p .build-fuzz/corpus/$$t && cp Fuzz/corpus/$$t/* .build-fuzz/corpus/$$t/ && \
		echo "fuzz $$t for $(FUZZ_SECONDS) s" && \
		HERALD_FUZZ_TARGET=$$t .build-fuzz/debug/herald-fuzz -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=.build-fuzz/crash-$$t- \
			-print_final_stats=1 .build-fuzz/corpus/$$t 2>&1 | grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec|ERROR|SUMMARY|Test unit written" ; \
		test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

# Release build, then the load generator against the real binary (see BENCHMARKS.md).
bench: deps
	$(SWIFT) build -c release
	taskset -c 1 .build/release/herald-bench --herald .build/release/herald --herald-cpu 0
	taskset -c 1 .build/release/herald-bench --herald .build/release/herald --herald-cpu 0 --scenarios postgres
	taskset -c 0 .build/release/herald-bench --otp-table Tests/HeraldCoreTests/Fixtures/otp-table.txt
	taskset -c 0 .build/release/herald-bench --webhook-micro
	taskset -c 0 .build/release/herald-bench --store-micro
	taskset -c 1 .build/release/herald-bench --library-floor --herald-cpu 0 --throughput-seconds 5

# Veza Stream. `make demo` runs the main job, `make test` runs every test (CI runs the same).
SWIFT ?= swift
# Zero warnings is policy: tests build with warnings as errors, locally and in CI.
# Tests run optimised (-c release): the DSP suites process minutes of audio.
SWIFT_FLAGS ?= -Xswiftc -warnings-as-errors
# Optimised test builds keep internal symbols visible to `@testable import`. They get their own
# build folder: with other flags in .build, `make test` and `make demo` would rebuild each other.
TEST_FLAGS ?= -c release -Xswiftc -enable-testing --scratch-path .build-test

.PHONY: watermark-robustness bench-analytics fuzz fuzz-short bench-webhooks openapi-check webrtc-shim bench-live-listeners demo test test-scale deps build examples docs coverage bench bench-check bench-thresholds bench-host bench-delivery bench-listeners clean

deps:
	scripts/install-deps.sh

demo:
	scripts/demo.sh

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

test: deps examples webrtc-shim
	$(SWIFT) build --build-tests $(TEST_FLAGS) $(SWIFT_FLAGS)
	$(SWIFT) test $(TEST_FLAGS) --skip-build

# The OpenAPI document against a live host for 10 minutes of schemathesis (CI runs 60 s in make test).
openapi-check: deps
	$(SWIFT) build --build-tests $(TEST_FLAGS) $(SWIFT_FLAGS)
	SCHEMATHESIS_SECONDS=600 $(SWIFT) test $(TEST_FLAGS) --skip-build --filter OpenAPITests

# libFuzzer harnesses of every parser that reads outside input (Fuzz/, issue 27): 10 minutes
# each, two at a time; CI runs each for 15 s (fuzz-short). Crash inputs land in Fuzz/Findings/;
# once fixed they move to Fuzz/Regressions/<harness>/, which every run replays first. `make test`
# replays the seeds and regressions of every harness in the optimised test build (FuzzReplayTests,
# which holds Harness.swift; Fuzz/ links it), so CI needs no build with sanitizers.
FUZZ_SECONDS ?= 600
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

fuzz-short: deps
	scripts/fuzz.sh 15

# The C glue under WebRTC (Sources/CWebRTC: OpenSSL DTLS-SRTP, libsrtp2) against a DTLS client
# and an SRTP peer built from the same libraries, with AddressSanitizer and UBSan (2 s).
webrtc-shim: deps
	mkdir -p .build
	gcc -std=c11 -Wall -Wextra -Werror -g -fsanitize=address,undefined -I Sources/CWebRTC/include Sources/CWebRTC/*.c \
	  Tests/CWebRTCTest/shim_test.c -lssl -lcrypto -lsrtp2 -lpthread -o .build/cwebrtc-shim-test
	.build/cwebrtc-shim-test

# Examples/ (issue 20): a package that depends on this one by path, built with the test build's
# flags into its folder (only the four example programs are compiled again; a debug build of its
# own cost CI about 10 minutes), then run: the StreamKit-only program must link no FFmpeg, the
# embedded host must answer both its routes. The debug configuration users build is checked for
# warnings by the fuzz build (scripts/fuzz.sh: debug, warnings as errors).
# The root package's snippets (Snippets/) have names of their own: with the same names as these
# programs, the two packages' builds replaced each other's products and recompiled StreamHost.
EXAMPLES_BIN = .build-test/release
examples: deps
	@# SwiftPM keeps a path dependency's source list in its build plan: a file added to this
	@# package later would be missing, so the plan is made afresh.
	rm -f .build-test/release.yaml
	cd Examples && $(SWIFT) build -c release -Xswiftc -enable-testing --scratch-path ../.build-test $(SWIFT_FLAGS)
	@if ldd $(EXAMPLES_BIN)/ManifestOnly | grep -E 'libav|libswresample|libopus|libmp3lame|libFLAC'; then \
	  echo "error: ManifestOnly (StreamKit only) links a media library" >&2; exit 1; fi
	$(EXAMPLES_BIN)/ManifestOnly > /dev/null
	cd Examples && rm -rf example-data && env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u all_proxy ../$(EXAMPLES_BIN)/EmbedInHummingbird --check && rm -rf example-data

# The same host suites against S3 (SeaweedFS) + PostgreSQL, plus multi-node, outage and CDN
# tests; the servers are started and stopped by scripts/services.sh. CI runs it after `test`.
test-scale: deps
	$(SWIFT) build --build-tests $(TEST_FLAGS) $(SWIFT_FLAGS)
	TEST_FLAGS="$(TEST_FLAGS)" scripts/test-scale.sh

# The forensic watermark's robustness suite (issue 23) at full length: 150 leaks of real music
# through MP3 128k, AAC 96k and Opus 64k at 44.1 kHz, ±6 dB, 3 minutes from a random start, each
# against 10,000 candidate sessions (bound over 1,000,000), plus the unmarked master leaked the same
# way and a two-colluder average every tenth trial. About 35 minutes; `make test` runs 3 trials.
# Each trial is a JSON line in .build-test/watermark-robustness.jsonl.
watermark-robustness: deps
	$(SWIFT) build --build-tests $(TEST_FLAGS) $(SWIFT_FLAGS)
	rm -f .build-test/watermark-robustness.jsonl
	VEZA_WATERMARK_TRIALS=150 VEZA_WATERMARK_REPORT=$(CURDIR)/.build-test/watermark-robustness.jsonl $(SWIFT) test $(TEST_FLAGS) --skip-build --filter WatermarkRobustnessTests

# Documentation (DocC/ links the three catalogs): built with warnings as errors, and no public
# symbol left out of a catalog's Topics (scripts/check-docs.py reads the archives). CI runs it.
# It builds with the test build's flags and folder, so after `make test` nothing is compiled
# again (a build of its own took CI about 7 minutes).
DOCS_OUT = .build-test/plugins/Swift-DocC/outputs
docs: deps
	$(SWIFT) package $(TEST_FLAGS) $(SWIFT_FLAGS) generate-documentation --target MediaCore --target StreamKit --target StreamHost --target StreamRPC --warnings-as-errors
	python3 scripts/check-docs.py $(DOCS_OUT)/MediaCore.doccarchive $(DOCS_OUT)/StreamKit.doccarchive $(DOCS_OUT)/StreamHost.doccarchive $(DOCS_OUT)/StreamRPC.doccarchive

# Line coverage per library (figures in the README). Optimised like `make test` (the DSP suites
# process minutes of audio), in a build folder of its own.
COVERAGE_FLAGS ?= -c release -Xswiftc -enable-testing --scratch-path .build-coverage
coverage: deps
	$(SWIFT) test $(COVERAGE_FLAGS) --enable-code-coverage
	COVERAGE_FLAGS="$(COVERAGE_FLAGS)" scripts/coverage.sh

bench: deps
	$(SWIFT) build -c release --product streamhost
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark

# The benchmark gate CI runs (issue 20): the StreamKit and loudness benchmarks against the figures
# in Benchmarks/Thresholds/ with the tolerances written beside each benchmark (allocations, and
# the loudness meter's speed relative to libebur128 in the same run). Exit 2 is a regression;
# exit 4 (only improvements) passes with a reminder to record the new figures.
# The gate builds into the test build's folder with its flags (../.build-test): MediaCore and
# StreamKit compiled by `make test` are reused and only the benchmark tooling is compiled (a
# build folder of its own cost CI several minutes). The thresholds are recorded the same way.
BENCH_GATED = --target StreamKitBenchmarks --target DSPBenchmarks
BENCH_GATE_FLAGS = -c release -Xswiftc -enable-testing --scratch-path ../.build-test $(SWIFT_FLAGS)
bench-check: deps
	@cd Benchmarks && { $(SWIFT) package $(BENCH_GATE_FLAGS) benchmark thresholds check $(BENCH_GATED) --no-progress; rc=$$?; \
	  if [ $$rc -eq 4 ]; then echo "benchmarks improved: record the figures with make bench-thresholds"; rc=0; fi; exit $$rc; }

# Records the current figures as the thresholds (after an intended change; commit the files).
bench-thresholds: deps
	cd Benchmarks && $(SWIFT) package $(BENCH_GATE_FLAGS) --allow-writing-to-package-directory benchmark thresholds update $(BENCH_GATED) --no-progress
	python3 scripts/bench-thresholds.py Benchmarks/Thresholds

# The host end to end over HTTP (issue 6): upload → ready, jobs per minute.
bench-host: deps
	Benchmarks/host-throughput.sh

# Segment serving (issue 7): requests/s and time to first byte beside nginx, same files, same run.
bench-delivery: deps
	$(SWIFT) build -c release --product streamhost
	STREAMHOST=.build/release/streamhost Benchmarks/delivery-throughput.sh

# Listener load (issue 9): 10,000 listeners at 1× and 4×, then 1,000 progressive listeners who
# stop after 30 s, then 1,000 listeners beside 500 slow connections; nginx on the same files in
# the same run. About 20 minutes.
bench-listeners: deps
	$(SWIFT) build -c release --product streamhost
	$(SWIFT) build -c release --product veza-loadgen
	STREAMHOST=.build/release/streamhost LOADGEN=.build/release/veza-loadgen Benchmarks/listener-load.sh
	SCENARIO=progressive STREAMHOST=.build/release/streamhost LOADGEN=.build/release/veza-loadgen Benchmarks/listener-load.sh
	SCENARIO=hostile STREAMHOST=.build/release/streamhost LOADGEN=.build/release/veza-loadgen Benchmarks/listener-load.sh

# Listening analytics against a known truth (issue 24): 10,000 listeners that complete, skip,
# abandon, pause and seek (half sending beacons) over six tracks, on SQLite and then on ClickHouse
# (stopped for 60 s mid-run); the host's figures against veza-loadgen's truth. About 25 minutes.
bench-analytics: deps
	$(SWIFT) build -c release --product streamhost
	$(SWIFT) build -c release --product veza-loadgen
	STREAMHOST=.build/release/streamhost LOADGEN=.build/release/veza-loadgen Benchmarks/analytics-accuracy.sh

# Live (issue 21): glass-to-glass latency beside icecast2 (LL-HLS player and ICY listeners) and the
# cost of 20 transcoded mounts on this machine. About 3 minutes.
bench-live: deps
	$(SWIFT) build -c release --product streamhost
	STREAMHOST=.build/release/streamhost Benchmarks/live.sh

# Live listeners at scale (issue 22): 10,000 ICY listeners on one mount, the host and then
# icecast2, same source, same burst (veza-loadgen). About 5 minutes.
bench-live-listeners: deps
	$(SWIFT) build -c release --product streamhost
	$(SWIFT) build -c release --product veza-loadgen
	STREAMHOST=.build/release/streamhost LOADGEN=.build/release/veza-loadgen Benchmarks/live-listeners.sh

# Webhook delivery (issue 27): latency from the state change to a receiver, and the outbox's
# drain rate, against the release host. About a minute.
bench-webhooks: deps
	$(SWIFT) build -c release --product streamhost
	STREAMHOST=.build/release/streamhost Benchmarks/webhooks.sh

clean:
	rm -rf .build .build-test .build-coverage Benchmarks/.build Examples/.build

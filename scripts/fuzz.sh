#!/usr/bin/env bash
# Builds the libFuzzer harnesses (Fuzz/, with AddressSanitizer, in debug so that assertions and
# bounds checks stay on; warnings are errors: this is CI's check of the debug configuration that
# users build) and runs each for SECONDS, two at a time (2 cores), starting from its
# committed seeds (Fuzz/Corpus/<harness>) and the inputs of crashes found and fixed
# (Fuzz/Regressions/<harness>, run first, every time). A new crash is written to
# Fuzz/Findings/ and fails the run; the table at the end gives executions per harness.
# Usage: scripts/fuzz.sh SECONDS [HARNESS ...]   (make fuzz: 600 s each; make fuzz-short: 15 s each)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: scripts/fuzz.sh SECONDS [HARNESS ...]}
shift
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(media live-source icecast-source hls live-request playback-target ranges signed-url jwt multipart webrtc client-address)
jobs=${FUZZ_JOBS:-2}
# A Swift trap is reported by libFuzzer's own handler (with the stack); Swift's backtracer,
# which reads its own memory under AddressSanitizer, would only add a false report after it.
export SWIFT_BACKTRACE=enable=no

# SwiftPM keeps a path dependency's source list in its build plan: a file added to the package
# since the last build would be missing, so the plan is made afresh (as for Examples/).
rm -f Fuzz/.build/debug.yaml
(cd Fuzz && swift build --sanitize=fuzzer --sanitize=address -Xswiftc -warnings-as-errors)
binary=Fuzz/.build/debug/veza-fuzz
work=Fuzz/.build/corpus
mkdir -p Fuzz/Findings "$work"

run() {
    local harness=$1 log="$work/$1.log"
    mkdir -p "$work/$harness" "Fuzz/Regressions/$harness"
    # The regressions alone first: each must pass on its own.
    if [ -n "$(ls -A "Fuzz/Regressions/$harness")" ]; then
        VEZA_FUZZ_TARGET=$harness ASAN_OPTIONS=detect_leaks=0 "$binary" -runs=0 "Fuzz/Regressions/$harness"/* > "$log.regressions" 2>&1 \
            || { echo "$harness: a regression input fails again"; tail -40 "$log.regressions"; return 1; }
    fi
    # Leaks are not findings here (FFmpeg and the Swift runtime keep caches); memory errors are.
    VEZA_FUZZ_TARGET=$harness ASAN_OPTIONS=detect_leaks=0 "$binary" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="Fuzz/Findings/$harness-" \
        "$work/$harness" "Fuzz/Corpus/$harness" "Fuzz/Regressions/$harness" > "$log" 2>&1
}

failed=()
pids=()
names=()
for harness in "${harnesses[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
    run "$harness" &
    pids+=($!)
    names+=("$harness")
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed+=("${names[$i]}")
done

printf '%-16s %12s %10s %8s %s\n' harness executions exec/s corpus result
for harness in "${harnesses[@]}"; do
    log="$work/$harness.log"
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    corpus=$(ls "$work/$harness" | wc -l)
    result=ok
    [[ " ${failed[*]} " == *" $harness "* ]] && result=FAILED
    printf '%-16s %12s %10s %8s %s\n' "$harness" "$runs" "$rate" "$corpus" "$result"
done
if [ ${#failed[@]} -gt 0 ]; then
    for harness in "${failed[@]}"; do
        echo "=== $harness"
        grep -A30 -E 'ERROR: (AddressSanitizer|libFuzzer)|Fatal error|==ERROR|SUMMARY' "$work/$harness.log" | head -60 || tail -40 "$work/$harness.log"
    done
    echo "findings: $(ls Fuzz/Findings)"
    exit 1
fi

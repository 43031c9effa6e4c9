#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer) of every parser fed from outside.
#
#   scripts/fuzz.sh [seconds] [target...]
#
# Runs each target (all of them by default) in turn for `seconds` (default 600), one fuzzer
# process at a time. The corpus grows in fuzz/corpus/<target> (starting from the committed
# seeds in fuzz/seeds/<target>), crashes land in fuzz/artifacts/<target>, logs in
# fuzz/logs/<target>.log. Prints one summary line per target and exits non-zero if any
# target crashed. Needs the nightly toolchain; installs cargo-fuzz if missing. Not part of CI.
set -euo pipefail

cd "$(dirname "$0")/.."

seconds="${1:-600}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [seconds] [target...]" >&2
    exit 2
fi
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

mkdir -p fuzz/logs
# Build up front so the timed runs measure fuzzing, not compiling.
for t in "${targets[@]}"; do
    cargo +nightly fuzz build "$t"
done

failed=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
    log="fuzz/logs/$t.log"
    echo "== $t: ${seconds}s (log: $log)"
    touch "fuzz/logs/$t.start"
    status=0
    cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    last=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]* ft: [0-9]*' | tail -1 || true)
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    crashes=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) -newer "fuzz/logs/$t.start" 2>/dev/null | wc -l || true)
    if [ "$status" -ne 0 ] || grep -qE '^(==[0-9]+== ?ERROR: libFuzzer|SUMMARY: libFuzzer)|panicked at' "$log"; then
        failed=1
        verdict="CRASH (exit $status, see $log)"
    else
        verdict="ok"
    fi
    line="$t: ${seconds}s execs=${execs:-?} exec/s=${speed:-?} ${last:-cov: ? ft: ?} corpus=$corpus crashes=$crashes $verdict"
    echo "$line"
    summary+=("$line")
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"

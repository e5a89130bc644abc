#!/bin/bash
# The background engine on an NVIDIA GPU, measured on a machine that has
# the GPU, PyTorch and the CUDA 13 Python packages (nvidia-cublas, -cudnn,
# -cuda-nvrtc, -cuda-runtime) but no Rust and no network:
#   1. parity: the tiny fp32 bundle on the GPU against diffusers' waveforms;
#   2. speed and memory: the real-size random-weight bundle, grown here
#      from its skeleton (quantize/skeleton.py), with `vivid bench
#      background --device cuda`;
#   3. the reference: diffusers (PyTorch fp32) on the same GPU, with the
#      real-size random pipeline built here (quantize/realsize.py).
#
# Usage: tests/bench/gpu.sh KIT_DIR OUT_DIR 2>&1 | tee OUT_DIR/gpu.log
# KIT_DIR holds what was built elsewhere: vivid (a release build with
# `--features cuda-background`, maybe as vivid.xz), lib/ and lib-base/
# (the shared libraries vivid links that the machine may lack: libespeak-ng,
# libasound and theirs; common base libraries apart), whl/ (diffusers and importlib_metadata wheels) and skel/
# (the skeleton of the real-size fp32 bundle).
set -u
KIT=$(realpath "$1")
OUT=$(realpath "$2")
mkdir -p "$OUT"
REPO=$(pwd)
STEPS=${STEPS:-25}
log() { echo "== $(date +%T) $*"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv

# vivid: unpacked, with the libraries it links that this machine may lack.
if [ -f "$KIT/vivid.xz" ]; then xz -dc "$KIT/vivid.xz" >/tmp/vivid; else cp "$KIT/vivid" /tmp/vivid; fi
chmod +x /tmp/vivid

# The CUDA libraries under the names tract-cuda's loader (cudarc) tries:
# the Python wheels ship libcudnn.so.9 and libcublas.so.13, cudarc asks
# for libcudnn.so or libcublas.so.13.
SITE=$(python3 -c 'import site; print(site.getsitepackages()[0])')
mkdir -p /tmp/cudalibs
CUDA_DIRS=$(find "$SITE/nvidia" -name 'lib*.so*' -printf '%h\n' | sort -u | tr '\n' ':')
for f in $(find "$SITE/nvidia" -name 'lib*.so*'); do
    b=$(basename "$f"); n=${b%%.so*}.so
    [ -e "/tmp/cudalibs/$n" ] || ln -s "$f" "/tmp/cudalibs/$n"
done
# The driver's libcuda: where the machine's own loader path says, or in
# /usr/local/nvidia/lib64 (containers).
VIVID_LIBS="/tmp/cudalibs:${CUDA_DIRS}${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/nvidia/lib64:$KIT/lib"
# Base libraries (libsystemd, libzstd, ...) only where this machine lacks
# them: its own are newer than the build machine's.
if LD_LIBRARY_PATH="$VIVID_LIBS" ldd /tmp/vivid | grep -q "not found"; then
    VIVID_LIBS="$VIVID_LIBS:$KIT/lib-base"
fi
LD_LIBRARY_PATH="$VIVID_LIBS" ldd /tmp/vivid | grep "not found"
echo "CUDA libraries: $(ls /tmp/cudalibs | tr '\n' ' ')"
echo "driver: $(ldconfig -p | grep -o 'libcuda.so[.0-9]*' | sort -u | tr '\n' ' ')"
vivid() { LD_LIBRARY_PATH="$VIVID_LIBS" /tmp/vivid "$@"; }

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$KIT"/whl/*.whl && export PYTHONPATH=/tmp/site

log "growing the real-size bundle and building the diffusers pipeline (side by side)"
(python3 "$REPO/quantize/skeleton.py" grow "$KIT/skel" /tmp/rs-fp32 >/tmp/grow.log 2>&1; echo "grow rc $?" >>/tmp/grow.log) &
GROW=$!
(timeout 300 python3 "$REPO/quantize/realsize.py" /tmp/rs-pipeline >/tmp/realsize.log 2>&1; echo "realsize rc $?" >>/tmp/realsize.log) &
PIPE=$!

log "parity: tiny fp32 bundle on the GPU against diffusers"
TINY="$REPO/tests/fixtures/audioldm2/tiny-fp32"
REF="$REPO/tests/fixtures/audioldm2/reference"
printf '[background]\ndevice = "cuda"\ncache_dir = "/tmp/vivid-cache"\n' >/tmp/gpu.toml
parity() {  # CASE: vivid on the GPU against diffusers' waveform; prints the comparison
    local case=$1
    args=$(python3 - "$REF/$case/case.json" <<'EOF'
import json, shlex, sys
c = json.load(open(sys.argv[1]))
a = [c["prompt"], "--seconds", str(c["seconds"]), "--steps", str(c["steps"]),
     "--scheduler", c["scheduler"], "--guidance", str(c["guidance_scale"])]
# No negative prompt is an empty one (diffusers' default), not the config's.
a += ["--negative", c.get("negative_prompt") or ""]
print(shlex.join(a))
EOF
)
    eval "set -- $args"
    rm -f "/tmp/tiny_$case.wav"
    RUST_LOG=info timeout 90 env VIVID_CPU_GRAPHS="${VIVID_CPU_GRAPHS:-}" LD_LIBRARY_PATH="$VIVID_LIBS" /tmp/vivid --config /tmp/gpu.toml \
        background "$@" --bundle "$TINY" --init-latents "$REF/$case/latents_init.npy" \
        -o "/tmp/tiny_$case.wav" >>"$OUT/tiny.log" 2>&1
    echo "vivid rc $?"
    python3 - "/tmp/tiny_$case.wav" "$REF/$case/waveform.npy" <<'EOF'
import sys, wave
import numpy as np
with wave.open(sys.argv[1]) as w:
    ours = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64) / 32767
theirs = np.clip(np.load(sys.argv[2]).astype(np.float64).ravel(), -1, 1)
n = min(len(ours), len(theirs))
diff = np.abs(ours[:n] - theirs[:n]).max()
corr = np.corrcoef(ours[:n], theirs[:n])[0, 1]
print(f"{sys.argv[1]}: {n} samples, max abs diff {diff:.2e} ({diff / np.abs(theirs).max():.2e} of peak), correlation {corr:.6f}",
      "OK" if diff <= 1e-2 * np.abs(theirs).max() else "MISMATCH")
EOF
}
GRAPHS="clap_text t5_encoder projection gpt2 unet vae_decoder vocoder"
for case in dpm_negative dpm_plain ddim_negative ddim_plain; do
    result=$(parity $case 2>&1); echo "$result"
    if echo "$result" | grep -q MISMATCH; then
        # Which graph does it: each kept on the CPU in turn.
        for graph in $GRAPHS; do
            echo "  $graph on the CPU: $(VIVID_CPU_GRAPHS=$graph parity $case 2>&1 | tail -1)"
        done
    fi
done

wait $GROW
cat /tmp/grow.log
log "real-size bundle on the GPU: graphs that give NaN move to the CPU"
CPU_GRAPHS=""
for attempt in 1 2 3 4; do
    VIVID_CPU_GRAPHS="$CPU_GRAPHS" RUST_LOG=warn timeout 150 env LD_LIBRARY_PATH="$VIVID_LIBS" \
        /tmp/vivid --config /tmp/gpu.toml background "Rain on a tin roof and distant thunder." \
        --negative "Low quality." --seconds 10.24 --steps 2 --bundle /tmp/rs-fp32 --no-cache \
        -o /tmp/rs_gpu.wav >/tmp/rs_try.log 2>&1
    rc=$?
    grep -E "error|wrote" /tmp/rs_try.log | tail -2
    bad=$(grep -o "running the [a-z0-9_]* graph failed" /tmp/rs_try.log | head -1 | awk '{print $3}')
    if [ $rc -eq 0 ] || [ -z "$bad" ]; then break; fi
    CPU_GRAPHS="${CPU_GRAPHS:+$CPU_GRAPHS,}$bad"
done
echo "graphs kept on the CPU: ${CPU_GRAPHS:-none}"
export VIVID_CPU_GRAPHS="$CPU_GRAPHS"
log "vivid on the real-size bundle"
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >/tmp/gpumem_vivid.txt &
SMI=$!
RUST_LOG=info timeout 300 env LD_LIBRARY_PATH="$VIVID_LIBS" /tmp/vivid bench background \
    --bundle /tmp/rs-fp32 --device cuda --steps "$STEPS" 2>"$OUT/bench_vivid.log"
echo "vivid bench rc $?"
kill $SMI
echo "vivid: peak GPU memory used (MiB): $(sort -n /tmp/gpumem_vivid.txt | tail -1)"

wait $PIPE
cat /tmp/realsize.log
log "diffusers on the same GPU"
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >/tmp/gpumem_diffusers.txt &
SMI=$!
timeout 200 python3 "$REPO/tests/bench/audioldm2_reference.py" diffusers-cuda /tmp/rs-pipeline \
    "$(nproc)" "$STEPS" 2>"$OUT/diffusers.log"
echo "diffusers rc $?"
kill $SMI
echo "diffusers: peak GPU memory used (MiB): $(sort -n /tmp/gpumem_diffusers.txt | tail -1)"
log done

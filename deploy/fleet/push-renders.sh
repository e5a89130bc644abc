#!/usr/bin/env bash
# GPU host: narrations rendered once (vivid render, e.g. with AudioLDM2 on
# CUDA) go to devices that only play them. Each device's kiosk mode
# (service.kiosk_interval_s) plays every WAV in its done/ folder.
#
#   vivid render hall.txt -o renders/hall.wav      # writes hall.wav + hall.json
#   deploy/fleet/push-renders.sh renders hall-1.museum.lan hall-2.museum.lan
#
# The WAV/JSON pairs are copied into /var/spool/vivid/done as the vivid user
# (done/ belongs to it); rsync's temporary names keep a half-copied WAV from
# being played. Needs sudo for the SSH user on the device.
set -euo pipefail
renders=${1:?usage: push-renders.sh RENDERS DEVICE...}
shift
for device in "$@"; do
  rsync --times --include='*.wav' --include='*.json' --exclude='*' \
    --rsync-path='sudo -u vivid rsync' --timeout=60 \
    "$renders/" "$device:/var/spool/vivid/done/"
  echo "push-renders: $device: up to date"
done

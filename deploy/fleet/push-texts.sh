#!/usr/bin/env bash
# Central host: sends each device the texts waiting for it, with rsync over
# SSH, and removes them here once they arrived. Run it from cron or a
# systemd timer; a device that is off gets its texts next time.
#
#   deploy/fleet/push-texts.sh OUTBOX
#
# OUTBOX/<device>/ holds the .txt (or .toml job) files for <device> (its SSH
# name). rsync writes each file under a hidden temporary name and renames it
# when complete, so vivid never reads half a file. The SSH user must be in
# the device's vivid group (usermod -a -G vivid technician), which may write
# to the inbox.
set -euo pipefail
outbox=${1:?usage: push-texts.sh OUTBOX}
for dir in "$outbox"/*/; do
  device=$(basename "$dir")
  shopt -s nullglob
  files=("$dir"*)
  shopt -u nullglob
  [ ${#files[@]} -gt 0 ] || continue
  if rsync --times --chmod=F0660 --remove-source-files --timeout=60 \
      "${files[@]}" "$device:/var/spool/vivid/inbox/"; then
    echo "push-texts: $device: sent ${#files[@]} file(s)"
  else
    echo "push-texts: $device: not reached; its texts wait here" >&2
  fi
done

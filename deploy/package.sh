#!/usr/bin/env bash
# Builds vivid's Debian package with cargo-deb:
#   target/debian/vivid_<version>-1_<arch>.deb
# holding /usr/bin/vivid, the hardened unit (enabled and started on install
# where systemd runs), /etc/vivid/vivid.toml as a conffile, the docs and an
# example text. Models are not in the package: `vivid models fetch` after
# installing (the postinst says how).
#
# Usage: deploy/package.sh amd64|arm64 [--profile PROFILE] [--no-build]
#   amd64      built on this machine for x86-64 (deploy/deps.sh first)
#   arm64      cross-built for Jetson and other arm64 boards
#              (deploy/deps.sh --arm64 first; see README, Building for Jetson)
#   --profile  cargo profile to package (default dist: fat LTO, for devices;
#              the tests package their quicker `ci` build)
#   --no-build package what that profile already built
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:-}
shift || true
profile=dist
build=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --no-build) build=(--no-build); shift ;;
    *) echo "package.sh: unknown option $1 (see the top of this file)" >&2; exit 2 ;;
  esac
done

# cargo and cargo-deb build into CARGO_TARGET_DIR where it is set (CI keeps
# it in a cache outside the clone).
target_dir=${CARGO_TARGET_DIR:-target}
cargo_deb=(cargo deb --locked --profile "$profile" --output target/debian/ "${build[@]}")
case "$arch" in
  amd64)
    deploy/deps.sh --check >/dev/null || { deploy/deps.sh --check; exit 1; }
    [ "$(dpkg --print-architecture)" = amd64 ] || {
      echo "package.sh: amd64 packages are built on an x86-64 machine (this one is $(dpkg --print-architecture))" >&2
      exit 1
    }
    binary=$target_dir/$profile/vivid ;;
  arm64)
    if [ "$(dpkg --print-architecture)" = arm64 ]; then
      binary=$target_dir/$profile/vivid
    else
      # Names the missing package of the cross toolchain, if any.
      deploy/deps.sh --arm64 --check
      export RUSTC=/usr/bin/rustc
      cargo_deb+=(--target aarch64-unknown-linux-gnu)
      binary=$target_dir/aarch64-unknown-linux-gnu/$profile/vivid
    fi ;;
  *) echo "usage: deploy/package.sh amd64|arm64 [--profile PROFILE] [--no-build]" >&2; exit 2 ;;
esac
command -v cargo-deb >/dev/null || {
  echo "package.sh: cargo-deb is missing: deploy/deps.sh --arm64 installs it (or: cargo install --locked cargo-deb)" >&2
  exit 1
}
if [ ${#build[@]} -gt 0 ] && [ ! -x "$binary" ]; then
  echo "package.sh: --no-build, but $binary is not built" >&2
  exit 1
fi

# The packaged unit runs the packaged binary.
mkdir -p target/debian-unit
sed -e 's|/usr/local/bin/vivid|/usr/bin/vivid|g' \
    -e 's|^# Installed by deploy/install.sh to /etc/systemd/system/vivid.service.|# Installed by the vivid package (deploy/package.sh).|' \
    deploy/vivid.service > target/debian-unit/vivid.service

"${cargo_deb[@]}"
deb=$(ls -t target/debian/vivid_*_"$arch".deb | head -n1)
echo "package.sh: $deb"

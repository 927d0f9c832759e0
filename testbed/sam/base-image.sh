#!/usr/bin/env bash
# Builds the stand-in for AWS's Lambda base image (public.ecr.aws/lambda/provided:al2023), which cannot
# be pulled here: a root filesystem with a static busybox (the `sh`, `mv` and `chmod` that SAM CLI's
# image build runs) and the C libraries a `bootstrap` built for x86_64-unknown-linux-gnu links to,
# taken from this machine (Debian), and its CA certificates. SAM CLI adds the Lambda Runtime Interface
# Emulator itself.
# With internet access, leave out `--invoke-image` and SAM uses AWS's image instead.
# Usage: testbed/sam/base-image.sh [TAG]; does nothing when TAG already exists (the tag's version
# suffix changes with what goes in).
set -euo pipefail
tag=${1:-openclaw-ops/lambda-base:local-2}

if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ! file -L "$busybox" | grep -q 'statically linked'; then
  echo "base-image: a static busybox is needed (Debian: apt-get install busybox-static)" >&2
  exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,tmp,var/task,var/runtime,var/rapid,etc,lib64,lib/x86_64-linux-gnu}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in sh mv chmod cp ls cat mkdir rm ln env; do
  ln -s busybox "$root/bin/$applet"
done
# glibc's loader and the libraries Rust's std links to (libc, libm, libgcc_s for unwinding).
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
for lib in libc.so.6 libm.so.6 libgcc_s.so.1 libpthread.so.0 libdl.so.2 librt.so.1; do
  cp -L "/lib/x86_64-linux-gnu/$lib" "$root/lib/x86_64-linux-gnu/"
done
# The CA certificates, where Amazon Linux keeps them: the SDK's TLS loads the native roots at start and
# stops when there are none, even for a plain-HTTP endpoint.
mkdir -p "$root/etc/pki/tls/certs" "$root/etc/ssl/certs"
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/pki/tls/certs/ca-bundle.crt"
ln -s /etc/pki/tls/certs/ca-bundle.crt "$root/etc/ssl/certs/ca-certificates.crt"
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin' \
  --change 'ENV LAMBDA_TASK_ROOT=/var/task' \
  --change 'ENV LAMBDA_RUNTIME_DIR=/var/runtime' \
  --change 'WORKDIR /var/task' \
  - "$tag" >/dev/null
# SAM CLI tags the image it builds on top (with its emulator) <repository>:rapid-<arch> whatever the
# base's tag, and reuses it: drop the ones made from an older base.
docker images --format '{{.Repository}}:{{.Tag}}' "${tag%%:*}" | { grep ':rapid-' || true; } | xargs -r docker rmi -f >/dev/null
echo "base-image: built $tag" >&2

#!/usr/bin/env bash
# Installs libfaketime (Debian's package) if missing, and makes the test bed's pinned Python venvs
# at the repository root: .venv (moto server, freezegun, cfn-lint, AWS CLI) from testbed/requirements.txt, and .venv-checkov (checkov and the AWS SAM
# translator, apart because checkov pins an old boto3) from testbed/checkov-requirements.txt.
# Those two are lock files: every package of the resolved set, pinned with the sha256 of each of its
# PyPI files, compiled from the top-level pins in the matching .in file. pip installs with
# --require-hashes, so a file that changed on the index (or a dependency the lock lacks) fails the
# install instead of entering the bed. After editing an .in file, compile its lock again:
#   pip-compile --allow-unsafe --generate-hashes --no-emit-find-links --no-emit-index-url \
#     --strip-extras --output-file=testbed/requirements.txt testbed/requirements.in
# (pip-tools 7.x, with the Python the bed runs: 3.11; the lock's header says the command).
# Does nothing for a venv that already matches its lock file.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

ensure_venv() {
  local venv="$1" requirements="$2" python="${3:-python3}"
  local stamp="$venv/.requirements.sha256"
  local want
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  echo "testbed: installing Python tools into $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$requirements"
  echo "$want" > "$stamp"
}

# libfaketime: integration tests run a function's process on its scenario's clock
# (tests/src/runtime.rs, Function::start_at).
if ! ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1; then
  echo "testbed: installing libfaketime (Debian package)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libfaketime >/dev/null
fi

ensure_venv "$root/.venv" "$root/testbed/requirements.txt"
ensure_venv "$root/.venv-checkov" "$root/testbed/checkov-requirements.txt"

# The backup test's switch-over runs the printed steps, which use sudo; the gateway boot tests
# redirect the metadata address with iptables. Installed here, once and before any test runs: two
# boot tests installing it at the same moment race for dpkg's lock (CI failed so).
missing=()
command -v sudo >/dev/null || missing+=(sudo)
command -v iptables >/dev/null || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
  echo "testbed: installing ${missing[*]} (Debian packages)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

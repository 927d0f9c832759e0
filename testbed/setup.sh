#!/usr/bin/env bash
# Installs libfaketime (Debian's package) if missing, and makes the test bed's pinned Python venvs
# at the repository root: .venv (moto server, freezegun, cfn-lint, AWS CLI) from testbed/requirements.txt, and .venv-checkov (checkov and the AWS SAM
# translator, apart because checkov pins an old boto3) from testbed/checkov-requirements.txt.
# Does nothing for a venv that already matches its requirements file.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

ensure_venv() {
  local venv="$1" requirements="$2"
  local stamp="$venv/.requirements.sha256"
  local want
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  echo "testbed: installing Python tools into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
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

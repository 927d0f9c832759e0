#!/usr/bin/env bash
# SAM CLI for real, offline: `sam validate --lint`, `sam build` of every function through cargo-lambda
# (x86_64, dev profile), then `sam local invoke` of every function with every sample event against
# the test bed's emulator, in Docker, in a locally built stand-in for AWS's base image. Run by
# scripts/test.sh; runs alone too. Needs root on a machine without Docker or busybox (it installs
# Debian's docker.io and busybox-static) and starts dockerd when none runs. It never skips: a step
# that cannot run fails with the reason.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

step() { printf '\n== %s\n' "$*"; }
fail() { echo "sam-test: $*" >&2; exit 1; }

step "SAM tools: Debian's docker.io and busybox-static; SAM CLI, cargo-lambda, zig (pinned in testbed/sam/requirements.txt)"
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v busybox >/dev/null && file -L "$(command -v busybox)" 2>/dev/null | grep -q 'statically linked' \
  || missing+=(busybox-static)
command -v file >/dev/null || missing+=(file)
command -v ip >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "needs ${missing[*]}: run as root, or apt-get install them"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

venv=$root/.venv-sam
requirements=$root/testbed/sam/requirements.txt
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if ! [ -x "$venv/bin/sam" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "installing SAM CLI, cargo-lambda and zig into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$venv/.requirements.sha256"
fi
# cargo-lambda finds zig through the venv's Python (the ziglang package), so the venv goes first.
export PATH="$venv/bin:$PATH" SAM_CLI_TELEMETRY=0
sam --version
cargo lambda --version
python -m ziglang version

mkdir -p target/sam-local
started_dockerd=
if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || fail "no Docker daemon runs and only root can start one"
  echo "starting dockerd (log: target/sam-local/dockerd.log)"
  setsid dockerd >target/sam-local/dockerd.log 2>&1 </dev/null &
  started_dockerd=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || fail "dockerd did not come up: $(tail -5 target/sam-local/dockerd.log)"
fi
stop_dockerd() {
  if [ -n "$started_dockerd" ]; then
    kill "$started_dockerd" 2>/dev/null || true
    wait "$started_dockerd" 2>/dev/null || true
  fi
}
trap stop_dockerd EXIT

step "sam validate --lint"
sam validate --lint

# Dev profile (SAM_BUILD_MODE=debug): the release profile's LTO makes a build of the five functions
# take about half an hour on two cores; this checks that SAM and cargo-lambda build them, not how small.
step "sam build (x86_64, dev profile, through cargo-lambda and zig)"
build_started=$(date +%s)
SAM_BUILD_MODE=debug nice -n 10 sam build --parameter-overrides Architecture=x86_64
echo "sam build took $(($(date +%s) - build_started)) s"
for fn in EbsSnapshotsFunction S3BackupFunction TelegramNotifyFunction CostCheckFunction SpotRecoveryFunction; do
  [ -x ".aws-sam/build/$fn/bootstrap" ] || fail "sam build made no .aws-sam/build/$fn/bootstrap"
done
# The gateway stack's Spot twin shares the user data by a YAML alias, which CloudFormation itself
# refuses: what SAM hands on must hold the text twice and no alias.
built=.aws-sam/build/Gateway/template.yaml
[ -f "$built" ] || fail "sam build made no $built"
# Read as YAML, not grepped: SAM writes long strings double-quoted and folded at any space.
python - "$built" <<'PY' || fail "$built: the launch templates' user data is not as CloudFormation needs it"
import sys, yaml
from samcli.yamlhelper import yaml_parse
text = open(sys.argv[1], encoding="utf-8").read()
aliases = [t for t in yaml.scan(text, Loader=yaml.SafeLoader) if isinstance(t, (yaml.AliasToken, yaml.AnchorToken))]
assert not aliases, f"YAML anchors or aliases left: {aliases[:3]}"
resources = yaml_parse(text)["Resources"]
data = [resources[name]["Properties"]["LaunchTemplateData"]["UserData"]
        for name in ("GatewayLaunchTemplate", "GatewaySpotLaunchTemplate")]
assert data[0] == data[1], "the two launch templates' user data differ"
assert "cat > /usr/local/libexec/openclaw-data-volume" in str(data[0]), "the user data lost its data-volume script"
PY

step "stand-in Lambda base image"
testbed/sam/base-image.sh

# SAM CLI leaves the function's container on Docker's default bridge; it reaches this machine at the
# bridge's address, where the sam-local runner listens (a relay to the emulator, a fake Telegram).
bridge=$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1)
[ -n "$bridge" ] || fail "Docker's bridge docker0 has no IPv4 address"

step "sam local invoke: every function, every sample event, against the emulator"
# The whole workspace, as scripts/test.sh builds it (one package alone, or `--bins` alone, would
# resolve other dependency features and rebuild the SDKs); a no-op after test.sh.
cargo build --locked --quiet --workspace --all-targets
OPENCLAW_SAM_HOST_ADDRESS=$bridge target/debug/sam-local

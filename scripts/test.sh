#!/usr/bin/env bash
# Every test: template lint, formatting and lints, unit tests, and the integration tests against the
# local AWS emulator. Installs what it needs (the test bed's Python venv) on a fresh machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*"; }

step "test bed (Python venv: moto server, freezegun, cfn-lint)"
./testbed/setup.sh

step "cfn-lint template.yaml stacks/*.yaml"
.venv/bin/cfn-lint template.yaml stacks/*.yaml

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test (unit and integration)"
cargo build --workspace --bins
cargo test --workspace

#!/usr/bin/env bash
# Every test: template lint, formatting and lints, unit tests, the integration tests against the
# local AWS emulator, and SAM CLI's build and local invocation of every function. Installs what it
# needs (the test bed's Python venvs, SAM CLI's venv, Docker) on a fresh machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*"; }

step "test bed (Python venvs: moto server, freezegun, cfn-lint; checkov, SAM translator)"
./testbed/setup.sh

step "cfn-lint template.yaml stacks/*.yaml"
.venv/bin/cfn-lint template.yaml stacks/*.yaml

# What CloudFormation would receive: template.yaml through the SAM transform with the gateway on,
# and the gateway stack once per tier with its conditions resolved (no S3, no AWS account needed).
step "every template the stack deploys, rendered offline (SAM translator, both gateway tiers): cfn-lint, checkov"
# checkov fails on any failed check: each one skipped is skipped in the template itself
# (Metadata: checkov: skip), with its reason beside it.
rendered=target/gateway-stack
.venv-checkov/bin/python testbed/render_gateway.py "$rendered"
.venv/bin/cfn-lint "$rendered"/*.json
for file in "$rendered/template.json" "$rendered/gateway-full.json" "$rendered/gateway-budget.json" stacks/backup-replica.yaml stacks/dr-region.yaml; do
  echo "checkov, $file:"
  .venv-checkov/bin/checkov --quiet --compact --skip-download --framework cloudformation -f "$file"
done

step "the test bed's own tests (IAM evaluator against AWS's documented examples, pre-signed URLs)"
(cd testbed && ../.venv/bin/python -m pytest -q tests)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --workspace --all-targets --quiet -- -D warnings

step "cargo test (unit and integration)"
# Every emulator writes its IAM decisions here; the least-privilege check below reads them all.
export OPENCLAW_IAM_DECISIONS="$PWD/target/iam-decisions"
rm -rf "$OPENCLAW_IAM_DECISIONS"
# The functions' binaries (the integration tests run them) built with the tests, in one build: `--bins`
# alone leaves out the dev-dependencies' features (the SDKs' `test-util`), and `cargo test` would
# then compile every SDK crate a second time.
cargo build --locked --workspace --all-targets
cargo test --locked --workspace

step "least privilege, both ways, over every test: each template grant used, nothing used that is not granted"
# (built with the workspace above: a `cargo run -p` would resolve features anew and rebuild the SDKs)
target/debug/iam-coverage

step "SAM CLI for real: sam validate --lint, sam build (x86_64), sam local invoke of every sample event"
# Last in the command: it needs Docker (installed and started here when missing) and builds every
# function again through cargo-lambda (about 5 minutes cold on two cores; kept in target/ between runs).
./scripts/sam-test.sh

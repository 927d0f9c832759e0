#!/usr/bin/env bash
# The suite's main job, locally: starts the embedded AWS emulator, seeds a small OpenClaw account and
# runs ebs-snapshots over simulated days (dry run first, then for real), printing each day; then
# s3-backup (backup, duplicate, restore), spot-recovery (a reclaimed Spot gateway replaced), cost-check (a month against the estimate) and telegram-notify.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./testbed/setup.sh
# Built as the test command builds (`--all-targets`: the same dependency features), so the demo and
# the tests share one build; `cargo run -p` would resolve features anew and rebuild the SDKs.
cargo build --quiet --workspace --all-targets
exec target/debug/demo

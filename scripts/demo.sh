#!/usr/bin/env bash
# The suite's main job, locally: starts the embedded AWS emulator, seeds a small OpenClaw account and
# runs ebs-snapshots over simulated days (dry run first, then for real), printing each day; then
# s3-backup (backup, duplicate, restore), spot-recovery (a reclaimed Spot gateway replaced), cost-check (a month against the estimate) and telegram-notify.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./testbed/setup.sh
cargo build --quiet --workspace --bins
exec cargo run --quiet -p integration-tests --bin demo

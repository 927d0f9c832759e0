//! The bash script that SSM Run Command runs on the gateway to restore a backup.
//!
//! It runs as the state directory's owner, never as root ([`super::owner`]). It downloads the
//! archive and its manifest, checks the archive's size and SHA-256, unpacks it beside the live state
//! directory (never over it, never over anything that exists, and on the state directory's own
//! filesystem: the data volume, where the switch-over is two renames), checks every file against the
//! manifest and every SQLite database's integrity, and only then moves the result into place under
//! its new name, in one rename. The live state is left alone: switching over is a person's decision,
//! and the script prints the steps for it.

use serde::{Deserialize, Serialize};

use super::owner::run_as_owner;
use super::script::quote;

/// The line the script prints last, followed by the result as JSON.
pub const RESULT_MARKER: &str = "OPENCLAW_RESTORE_RESULT ";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restore {
    /// The live state directory: the script runs as its owner; it is never written.
    pub state_dir: String,
    /// Pre-signed GETs of exactly the verified versions: the instance holds no grant on the bucket.
    pub archive_url: String,
    pub manifest_url: String,
    /// A new directory; the script refuses one that exists, lies inside the live state, or whose
    /// parent is not on the live state's filesystem.
    pub target_dir: String,
    /// What a person does next, printed at the end.
    pub switch_over: Vec<String>,
}

/// What the script reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreResult {
    pub target_dir: String,
    pub files: u64,
    pub bytes: u64,
    pub sha256: String,
    pub openclaw_version: String,
}

/// The commands that put a restored directory in place of the live one, keeping the live one.
/// The restored directory and the kept one sit beside the state directory, on its filesystem (the
/// data volume, mounted one level above it): both moves are renames there. `mv -T` never moves a
/// directory into one that happens to exist. OpenClaw's CLI is named by its full path (sudo's
/// `secure_path` leaves /usr/local/bin out on Amazon Linux) and told the state directory.
pub fn switch_over_steps(state_dir: &str, target_dir: &str, stamp: &str) -> Vec<String> {
    let state_dir = state_dir.trim_end_matches('/');
    let kept = kept_dir(state_dir, stamp);
    let owner = owner_of(state_dir);
    vec![
        "sudo systemctl stop openclaw-gateway".to_owned(),
        format!("sudo mv -T {} {}", quote(state_dir), quote(&kept)),
        format!("sudo mv -T {} {}", quote(target_dir), quote(state_dir)),
        format!("sudo -u {owner} -H env OPENCLAW_STATE_DIR={} /usr/local/bin/openclaw doctor", quote(state_dir)),
        "sudo systemctl start openclaw-gateway".to_owned(),
        "curl -fsS http://127.0.0.1:18789/healthz".to_owned(),
        format!("# if it is not healthy: stop it again and move {} back", quote(&kept)),
    ]
}

/// Where the switch-over keeps the live state: beside it, on its filesystem.
pub fn kept_dir(state_dir: &str, stamp: &str) -> String {
    format!("{}.before-restore-{stamp}", state_dir.trim_end_matches('/'))
}

/// `/home/<user>/...` belongs to `<user>`; anything else is run as `openclaw`, the seed's user.
fn owner_of(state_dir: &str) -> String {
    state_dir
        .strip_prefix("/home/")
        .and_then(|rest| rest.split('/').next())
        .filter(|user| !user.is_empty() && user.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .unwrap_or("openclaw")
        .to_owned()
}

impl Restore {
    pub fn script(&self) -> String {
        format!(
            r#"#!/bin/bash
# openclaw-ops s3-backup restore: a verified copy of a backup beside the live state, never over it.
set -euo pipefail
umask 077
STATE_DIR={state_dir}
{as_owner}"#,
            state_dir = quote(&self.state_dir),
            as_owner = run_as_owner("openclaw-restore", &self.owners_part()),
        )
    }

    /// What runs as the state directory's owner.
    fn owners_part(&self) -> String {
        let steps: String = self.switch_over.iter().map(|s| format!("echo {}\n", quote(&format!("  {s}")))).collect();
        format!(
            r#"set -euo pipefail
umask 077
STATE_DIR={state_dir}
ARCHIVE_URL={archive_url}
MANIFEST_URL={manifest_url}
TARGET_DIR={target_dir}

fail() {{ echo "openclaw-restore: $*" >&2; exit 4; }}
case "$TARGET_DIR" in
  /*) ;;
  *) fail "the target $TARGET_DIR is not an absolute path" ;;
esac
case "${{TARGET_DIR%/}}/" in
  "${{STATE_DIR%/}}/"*) fail "the target $TARGET_DIR is the live state directory or inside it" ;;
esac
[ -e "$TARGET_DIR" ] && fail "$TARGET_DIR already exists; a restore never writes over anything"
parent=$(dirname "$TARGET_DIR")
mkdir -p "$parent"
# On the live state's filesystem (the data volume): the switch-over's moves are renames there, and
# the restored copy is not left on a root volume that goes with the instance.
[ "$(stat -c %d "$parent")" = "$(stat -c %d "$STATE_DIR")" ] \
  || fail "$parent is not on the filesystem of the state directory $STATE_DIR ($(stat -c %m "$STATE_DIR")); restore beside it instead"
# Beside the target, so the final move is one rename on the same filesystem.
work=$(mktemp -d "$parent/.openclaw-restore.XXXXXX")
trap 'rm -rf "$work"' EXIT

curl -fsS --retry 3 -o "$work/manifest.json" "$MANIFEST_URL" || fail "downloading the manifest failed (curl exit $?)"
curl -fsS --retry 3 -o "$work/archive.tar.gz" "$ARCHIVE_URL" || fail "downloading the archive failed (curl exit $?)"

python3 - "$work/manifest.json" "$work/archive.tar.gz" <<'PY'
import hashlib, json, os, sys
manifest = json.load(open(sys.argv[1]))
archive = sys.argv[2]
h = hashlib.sha256()
with open(archive, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
size, sha = os.path.getsize(archive), h.hexdigest()
want = manifest["archive"]
if size != want["size"] or sha != want["sha256"]:
    sys.exit("openclaw-restore: the archive is %d bytes with SHA-256 %s; the manifest says %d bytes, %s"
             % (size, sha, want["size"], want["sha256"]))
PY

mkdir "$work/state"
tar -xzf "$work/archive.tar.gz" -C "$work/state" --no-same-owner

python3 - "$work/manifest.json" "$work/state" "$work/result.json" <<'PY'
import hashlib, json, os, sqlite3, sys, urllib.parse
manifest = json.load(open(sys.argv[1]))
root, result_path = sys.argv[2], sys.argv[3]
def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
found = {{}}
for top, dirs, names in os.walk(root):
    for name in names:
        path = os.path.join(top, name)
        if os.path.islink(path) or not os.path.isfile(path):
            sys.exit("openclaw-restore: %s is not a regular file" % os.path.relpath(path, root))
        found[os.path.relpath(path, root)] = path
listed = {{f["path"]: f for f in manifest["files"]}}
problems = []
for rel in sorted(set(listed) - set(found)):
    problems.append("missing " + rel)
for rel in sorted(set(found) - set(listed)):
    problems.append("not in the manifest " + rel)
for rel in sorted(set(found) & set(listed)):
    path, want = found[rel], listed[rel]
    if os.path.getsize(path) != want["size"] or digest(path) != want["sha256"]:
        problems.append("differs from the manifest " + rel)
for rel in sorted(found):
    if rel.endswith(".sqlite"):
        # immutable: no -wal/-shm files appear beside the copy just checked.
        db = sqlite3.connect("file:%s?mode=ro&immutable=1" % urllib.parse.quote(found[rel]), uri=True)
        verdict = db.execute("pragma integrity_check").fetchone()[0]
        db.close()
        if verdict != "ok":
            problems.append("database %s: %s" % (rel, verdict))
if problems:
    sys.exit("openclaw-restore: the unpacked backup does not match its manifest:\n  " + "\n  ".join(problems[:50]))
json.dump({{"files": len(found), "bytes": sum(f["size"] for f in manifest["files"]),
           "sha256": manifest["archive"]["sha256"], "openclaw_version": manifest.get("openclaw_version", "unknown")}},
          open(result_path, "w"))
PY

# Made by the state directory's owner, so the gateway can read it after the switch.
chmod 700 "$work/state"
mv -T "$work/state" "$TARGET_DIR"

echo "Restored $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["files"])' "$work/result.json") files into $TARGET_DIR (the live state is untouched)."
echo "To switch over:"
{steps}python3 -c 'import json, sys
r = json.load(open(sys.argv[1])); r["target_dir"] = sys.argv[2]
print(sys.argv[3] + json.dumps(r))' "$work/result.json" "$TARGET_DIR" {marker}
"#,
            state_dir = quote(&self.state_dir),
            archive_url = quote(&self.archive_url),
            manifest_url = quote(&self.manifest_url),
            target_dir = quote(&self.target_dir),
            marker = quote(RESULT_MARKER),
        )
    }
}

/// Finds the script's result line in the command's output.
pub fn parse_result(stdout: &str) -> Option<RestoreResult> {
    stdout.lines().rev().find_map(|l| l.strip_prefix(RESULT_MARKER)).and_then(|json| serde_json::from_str(json).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restore() -> Restore {
        let state = "/home/openclaw/data/openclaw";
        let target = "/home/openclaw/data/openclaw.restored-20261125T093000Z";
        Restore {
            state_dir: state.into(),
            archive_url: "https://b.s3.amazonaws.com/a.tar.gz?versionId=1&X-Amz-Signature=ab".into(),
            manifest_url: "https://b.s3.amazonaws.com/a.manifest.json?versionId=2&X-Amz-Signature=cd".into(),
            target_dir: target.into(),
            switch_over: switch_over_steps(state, target, "20261125T093000Z"),
        }
    }

    #[test]
    fn switch_over_stops_renames_on_the_volume_checks_and_starts() {
        let steps = restore().switch_over;
        assert_eq!(steps[0], "sudo systemctl stop openclaw-gateway");
        assert_eq!(
            steps[1],
            "sudo mv -T '/home/openclaw/data/openclaw' '/home/openclaw/data/openclaw.before-restore-20261125T093000Z'"
        );
        assert_eq!(
            steps[2],
            "sudo mv -T '/home/openclaw/data/openclaw.restored-20261125T093000Z' '/home/openclaw/data/openclaw'"
        );
        assert_eq!(
            steps[3],
            "sudo -u openclaw -H env OPENCLAW_STATE_DIR='/home/openclaw/data/openclaw' /usr/local/bin/openclaw doctor"
        );
        assert_eq!(steps[4], "sudo systemctl start openclaw-gateway");
        assert_eq!(
            switch_over_steps("/home/openclaw/data/openclaw/", "/t", "s")[1],
            steps_for("/home/openclaw/data/openclaw", "s")
        );
    }

    fn steps_for(state: &str, stamp: &str) -> String {
        format!("sudo mv -T '{state}' '{}'", kept_dir(state, stamp))
    }

    #[test]
    fn the_owner_comes_from_the_home_directory() {
        assert_eq!(owner_of("/home/alice/data/state"), "alice");
        assert_eq!(owner_of("/srv/openclaw"), "openclaw");
        assert_eq!(owner_of("/home/x;rm/.openclaw"), "openclaw");
    }

    #[test]
    fn every_value_is_one_quoted_word() {
        let mut r = restore();
        r.target_dir = "/tmp/a'; rm -rf / #".into();
        let s = r.owners_part();
        assert!(s.contains(r"TARGET_DIR='/tmp/a'\''; rm -rf / #'"));
        assert!(s.contains("echo '  sudo systemctl stop openclaw-gateway'"));
        assert!(r.script().contains(&format!("as_owner={}", quote(&s))));
    }

    #[test]
    fn finds_the_result_line() {
        let out = "Restored 3 files\nOPENCLAW_RESTORE_RESULT {\"target_dir\":\"/t\",\"files\":3,\"bytes\":9,\"sha256\":\"ff\",\"openclaw_version\":\"2026.11.1\"}\n";
        assert_eq!(parse_result(out).unwrap().files, 3);
        assert!(parse_result("Restored").is_none());
    }
}

//! The bash script that SSM Run Command (`AWS-RunShellScript`) runs on the gateway to make a backup.
//!
//! It runs as the state directory's owner, never as root ([`super::owner`]), and reads the live
//! tree once, into a private copy, without following a symbolic link at any component (a directory
//! swapped for a symlink while it runs is left out, never followed): every file as it is on disk,
//! and each SQLite database in one read transaction (`sqlite3 -nofollow … "VACUUM INTO …"`: the
//! sqlite3 shell's `.backup` copies 100 pages at a time and starts over whenever the gateway writes,
//! so a busy database of some size is never copied). Where the gateway's OpenClaw CLI has
//! `openclaw backup create --verify`, OpenClaw then makes its snapshot from that copy (it knows which
//! of its files are state) and the script repacks it. Either way it leaves logs and media caches out
//! unless asked, packs a tar.gz, writes a manifest (every file with its size and SHA-256, the
//! archive's, the OpenClaw version, host, time, trigger), uploads the archive and then the manifest
//! with SSE-KMS, and prints one result line for the function. Everything it is told comes in as
//! single-quoted shell words: no value can run as code.

use serde::{Deserialize, Serialize};

use super::owner::{OPEN_DIR_PY, run_as_owner};

/// The line the script prints last, followed by the result as JSON.
pub const RESULT_MARKER: &str = "OPENCLAW_BACKUP_RESULT ";

/// A pre-signed PUT: the URL and the headers that must go with it (they are signed: the
/// encryption and `If-None-Match: *`, so the URL writes its one key once and never overwrites).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

impl Upload {
    /// `curl` options sending the signed headers, each one quoted word.
    fn curl_headers(&self) -> String {
        self.headers.iter().map(|(name, value)| format!(" -H {}", quote(&format!("{name}: {value}")))).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub state_dir: String,
    /// The keys, as the manifest and the result name them.
    pub archive_key: String,
    pub manifest_key: String,
    /// Where the script uploads them: the instance holds no grant on the bucket.
    pub archive_upload: Upload,
    pub manifest_upload: Upload,
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

/// Python: copies a directory tree into a new private one without following a symbolic link at
/// any component, even while the tree changes under it (a directory swapped for a symlink between
/// listing and reading). `os.fwalk(follow_symlinks=False)` opens each directory through the one
/// before it and checks it is the directory it listed (lstat, open, fstat); each file is opened
/// through its directory's descriptor with `O_NOFOLLOW` and copied only if `fstat` says it is a
/// regular file. Symlinks, sockets and the like are left out, as `find -type f` left them.
/// `copy-tree live SRC DST WORK [EXCLUDED...]`: every `*.sqlite` through `sqlite3 -nofollow` (one
/// read transaction, `VACUUM INTO`), SQLite's side files left out; `copy-tree plain ...` copies
/// databases as files. EXCLUDED are top-level directories left out (logs, media).
const COPY_TREE_PY: &str = r#"{open_dir}
import errno, shutil, stat, subprocess, sys
mode, src, dst, work, excluded = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], set(sys.argv[5:])
SIDE_FILES = (".sqlite-wal", ".sqlite-shm", ".sqlite-journal")
top = open_dir(src)
os.mkdir(dst, 0o700)

def note(rel, why):
    print("openclaw-backup: left out %s: %s" % (rel, why), file=sys.stderr)

def copy_database(dir_fd, name, rel, out):
    if shutil.which("sqlite3") is None:
        sys.exit("openclaw-backup: sqlite3 is needed to copy the database %s (the gateway stack installs it)" % rel)
    # -nofollow: SQLite refuses a symbolic link anywhere in the database's path. It refuses
    # /proc/self/fd/N as one too, so the directory walked is the working directory instead (set
    # through its descriptor) and the database is named relative to it. To a plain temporary name
    # first: the database's own name never has to be quoted for SQLite.
    copy = os.path.join(work, "copy.sqlite")
    copied = subprocess.run(["sqlite3", "-nofollow", name, ".timeout 10000", "VACUUM INTO '%s'" % copy],
                            cwd="/proc/self/fd/%d" % dir_fd, pass_fds=(dir_fd,))
    if copied.returncode != 0:
        sys.exit("openclaw-backup: sqlite3 could not copy the database %s (exit %d)" % (rel, copied.returncode))
    os.rename(copy, out)

for rel_dir, dirs, files, dir_fd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
    dirs.sort()
    if rel_dir == ".":
        dirs[:] = [d for d in dirs if d not in excluded]
    target = os.path.normpath(os.path.join(dst, rel_dir))
    os.makedirs(target, 0o700, exist_ok=True)
    for name in sorted(files):
        rel = os.path.normpath(os.path.join(rel_dir, name))
        if mode == "live" and name.endswith(SIDE_FILES):
            continue
        if mode == "live" and name.endswith(".sqlite"):
            if stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                copy_database(dir_fd, name, rel, os.path.join(target, name))
            else:
                note(rel, "not a regular file")
            continue
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                note(rel, "a symbolic link")
                continue
            if e.errno == errno.ENOENT:
                note(rel, "removed while the backup ran")
                continue
            raise
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                note(rel, "not a regular file")
                continue
            with open(os.path.join(target, name), "xb") as out:
                shutil.copyfileobj(f, out, 1 << 20)
"#;

impl Backup {
    pub fn script(&self) -> String {
        format!(
            r#"#!/bin/bash
# openclaw-ops s3-backup: a consistent archive of OpenClaw's state, uploaded with its manifest.
set -euo pipefail
umask 077
STATE_DIR={state_dir}
{as_owner}"#,
            state_dir = quote(&self.state_dir),
            as_owner = run_as_owner("openclaw-backup", &self.owners_part()),
        )
    }

    /// What runs as the state directory's owner.
    fn owners_part(&self) -> String {
        let excluded = if self.include_logs_and_media { "" } else { " logs media" };
        let copy_tree = COPY_TREE_PY.replace("{open_dir}", OPEN_DIR_PY);
        format!(
            r#"set -euo pipefail
umask 077
STATE_DIR={state_dir}
ARCHIVE_URL={archive_url}
MANIFEST_URL={manifest_url}
ARCHIVE_KEY={archive_key}
MANIFEST_KEY={manifest_key}
TRIGGER={trigger}
INSTANCE_ID={instance_id}
GATEWAY={gateway}
export ARCHIVE_KEY MANIFEST_KEY TRIGGER INSTANCE_ID GATEWAY

work=$(mktemp -d /tmp/openclaw-backup.XXXXXX)
trap 'rm -rf "$work"' EXIT
stage="$work/state"

copy_tree() {{
  python3 - "$@" <<'PY'
{copy_tree}
PY
}}

# The live tree is read once, here, into a private copy: everything but the live databases' side
# files (and, by default, logs and media caches) as it is on disk, and each database through
# SQLite in one read transaction, a consistent copy while the gateway keeps writing. Nothing after
# this reads the live tree.
copy_tree live "$STATE_DIR" "$work/copy" "$work"{excluded}

# OpenClaw's own snapshot where its CLI has one (`openclaw backup create --verify`: it knows which
# of its files are state and checks its archive), made from a copy of that private copy (so the CLI
# never reads the live tree, and a failure leaves the copy as it was), unpacked so every backup has
# the same layout. Called in an `if`, where `set -e` does not apply: every step says `|| return 1`,
# and a failure falls back to the copy.
copy_with_openclaw_cli() {{
  command -v openclaw >/dev/null 2>&1 || return 1
  openclaw backup create --help >/dev/null 2>&1 || return 1
  mkdir -p "$work/cli" "$work/cli-unpacked" || return 1
  cp -a "$work/copy" "$work/cli-state" || return 1
  if ! OPENCLAW_STATE_DIR="$work/cli-state" openclaw backup create --verify --json --no-include-workspace \
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
  copy_tree plain "$source" "$stage" "$work"{excluded} || return 1
  rm -rf "$work/cli" "$work/cli-unpacked" "$work/cli-state" "$work/copy"
}}

if copy_with_openclaw_cli; then
  method=openclaw-cli
else
  rm -rf "$stage" "$work/cli" "$work/cli-unpacked" "$work/cli-state"
  mv "$work/copy" "$stage"
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
# Each through its pre-signed URL, which writes its key once (a second PUT answers 412), so a
# retried PUT whose first answer was lost fails here and the run is retried with new keys.
# A single PUT takes at most 5 GiB: bigger state needs logs and media left out (the default).
upload() {{
  local file=$1 url=$2 name=$3 status
  shift 3
  status=$(curl -sS -o "$work/upload.out" -w '%{{http_code}}' -X PUT --upload-file "$file" "$@" "$url") || {{
    echo "openclaw-backup: uploading the $name failed (curl exit $?)" >&2; return 1; }}
  if [ "$status" != 200 ]; then
    echo "openclaw-backup: uploading the $name answered HTTP $status: $(head -c 600 "$work/upload.out")" >&2
    return 1
  fi
}}
if [ "$(stat -c %s "$work/archive.tar.gz")" -gt 5368709120 ]; then
  echo "openclaw-backup: the archive is over 5 GiB, the most one upload takes" >&2
  exit 5
fi
upload "$work/archive.tar.gz" "$ARCHIVE_URL" archive{archive_headers}
upload "$work/manifest.json" "$MANIFEST_URL" manifest{manifest_headers}
echo "{marker}$(cat "$work/result.json")"
"#,
            state_dir = quote(&self.state_dir),
            archive_url = quote(&self.archive_upload.url),
            manifest_url = quote(&self.manifest_upload.url),
            archive_headers = self.archive_upload.curl_headers(),
            manifest_headers = self.manifest_upload.curl_headers(),
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

    fn upload(what: &str) -> Upload {
        Upload {
            url: format!("https://b.s3.amazonaws.com/{what}?X-Amz-Signature=ab&x='q'"),
            headers: vec![
                ("if-none-match".into(), "*".into()),
                ("x-amz-server-side-encryption".into(), "aws:kms".into()),
            ],
        }
    }

    fn backup() -> Backup {
        Backup {
            state_dir: "/home/openclaw/.openclaw".into(),
            archive_key: "openclaw/daily/gw/2026/11/25/openclaw-20261125T023000Z.tar.gz".into(),
            manifest_key: "openclaw/daily/gw/2026/11/25/openclaw-20261125T023000Z.manifest.json".into(),
            archive_upload: upload("archive"),
            manifest_upload: upload("manifest"),
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
        assert!(b.owners_part().contains(r"STATE_DIR='/tmp/x'\''; touch /tmp/pwned; '\'''"));
        // The owner's part travels as one quoted word.
        assert!(b.script().contains(&format!("as_owner={}", quote(&b.owners_part()))));
    }

    #[test]
    fn logs_and_media_are_left_out_unless_asked() {
        assert!(backup().owners_part().contains(r#"copy_tree live "$STATE_DIR" "$work/copy" "$work" logs media"#));
        let mut b = backup();
        b.include_logs_and_media = true;
        assert!(b.owners_part().contains("copy_tree live \"$STATE_DIR\" \"$work/copy\" \"$work\"\n"));
        assert!(!b.owners_part().contains("logs media"));
    }

    #[test]
    fn the_live_tree_is_read_once_without_following_symlinks() {
        let s = backup().owners_part();
        assert!(s.contains("os.fwalk(\".\", dir_fd=top, follow_symlinks=False)"));
        assert!(s.contains("os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd"));
        assert!(s.contains(r#"["sqlite3", "-nofollow", name"#));
        assert!(s.contains(r#"OPENCLAW_STATE_DIR="$work/cli-state" openclaw backup create"#));
        assert_eq!(s.matches("\"$STATE_DIR\"").count(), 1, "the live tree is read in one place: {s}");
    }

    #[test]
    fn uploads_through_the_urls_with_their_signed_headers_and_the_manifest_last() {
        let s = backup().owners_part();
        assert!(s.contains(r"ARCHIVE_URL='https://b.s3.amazonaws.com/archive?X-Amz-Signature=ab&x='\''q'\'''"));
        let archive = s.find(r#"upload "$work/archive.tar.gz" "$ARCHIVE_URL" archive -H 'if-none-match: *' -H 'x-amz-server-side-encryption: aws:kms'"#);
        let manifest = s.find(r#"upload "$work/manifest.json" "$MANIFEST_URL" manifest -H 'if-none-match: *'"#);
        assert!(archive.unwrap() < manifest.unwrap());
        assert!(!s.contains("aws s3"), "the instance holds no grant on the bucket");
    }

    #[test]
    fn finds_the_result_line() {
        let out = "noise\nOPENCLAW_BACKUP_RESULT {\"archive_key\":\"a\",\"manifest_key\":\"m\",\"size\":3,\"sha256\":\"ff\",\"files\":2}\n";
        assert_eq!(parse_result(out).unwrap().size, 3);
        assert!(parse_result("nothing").is_none());
    }
}

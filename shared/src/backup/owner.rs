//! What the backup and restore scripts share to run as the state directory's owner, never as root,
//! and to reach the state directory without following a symbolic link anywhere on its path.
//!
//! SSM runs a script as root. The state directory belongs to the gateway's user, who can change
//! anything in it at any moment (and, on a taken-over gateway, does): root reading or writing there
//! could be steered by a symlink to anything on the machine. So the script's first lines, as root,
//! only find the directory's owner (through the same no-symlink walk) and start the rest of the
//! script as that user (`runuser`, as the gateway's user data runs OpenClaw's CLI), refusing a
//! directory root owns. The rest travels as one quoted argument to `bash -c`: SSM's `_script.sh`
//! lies in a directory only root can read, so the owner could not run a copy of it from there.

use super::script::quote;

/// Python: `open_dir(path)` opens a directory with every component of its path opened through the
/// one before it with `O_NOFOLLOW`, so no symlink anywhere on the path is followed (where `openat2`'s
/// `RESOLVE_NO_SYMLINKS` is not at hand: Python has no binding for it).
pub const OPEN_DIR_PY: &str = r#"import os
def open_dir(path):
    if not path.startswith("/") or ".." in path.split("/"):
        raise ValueError("%s is not an absolute path without '..'" % path)
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    for part in [p for p in path.split("/") if p]:
        try:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        finally:
            os.close(fd)
        fd = next_fd
    return fd
"#;

/// Bash that runs `body` as the owner of `$STATE_DIR` (which the script has set): from root, as that
/// user; as that user already, as is; anyone else, or a directory root owns, is refused (exit 5). A
/// state directory that is missing or lies behind a symlink ends the script (exit 3). `label` starts
/// every message.
pub fn run_as_owner(label: &str, body: &str) -> String {
    format!(
        r#"# As root only this: find the state directory's owner (no symlink followed on its path), then run
# the rest as that user. Nothing in the tree is read or written as root.
owner=$(python3 - "$STATE_DIR" {label} <<'PY'
{open_dir}
import errno, sys
path, label = sys.argv[1], sys.argv[2]
try:
    fd = open_dir(path)
except OSError as e:
    if e.errno == errno.ENOENT:
        sys.exit("%s: state directory %s not found" % (label, path))
    if e.errno in (errno.ELOOP, errno.ENOTDIR):
        sys.exit("%s: state directory %s: a component of its path is a symbolic link or not a directory; "
                 "refusing to follow it" % (label, path))
    raise
print(os.fstat(fd).st_uid)
PY
) || exit 3
as_owner={body}
if [ "$(id -u)" = 0 ]; then
  if [ "$owner" = 0 ]; then
    echo {label}": the state directory $STATE_DIR belongs to root; refusing to read it as root (it must belong to the gateway's user)" >&2
    exit 5
  fi
  user=$(getent passwd "$owner" | cut -d: -f1 || true)
  if [ -z "$user" ]; then
    echo {label}": the state directory's owner (uid $owner) has no account here" >&2
    exit 5
  fi
  cd /
  exec runuser -u "$user" -- /bin/bash -c "$as_owner" {label}
elif [ "$(id -u)" != "$owner" ]; then
  echo {label}": running as uid $(id -u), but the state directory $STATE_DIR belongs to uid $owner" >&2
  exit 5
fi
exec /bin/bash -c "$as_owner" {label}
"#,
        label = quote(label),
        open_dir = OPEN_DIR_PY,
        body = quote(body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_one_quoted_word_run_by_the_owner() {
        let s = run_as_owner("openclaw-backup", "echo 'it''s' \"$HOME\"");
        assert!(s.contains(r#"as_owner='echo '\''it'\'''\''s'\'' "$HOME"'"#), "{s}");
        assert!(s.contains(r#"exec runuser -u "$user" -- /bin/bash -c "$as_owner" 'openclaw-backup'"#), "{s}");
        // The owner is found before anything else, and root is refused as the owner.
        assert!(s.find("owner=$(python3").unwrap() < s.find("exec runuser").unwrap());
        assert!(s.contains(r#"if [ "$owner" = 0 ]; then"#));
    }
}

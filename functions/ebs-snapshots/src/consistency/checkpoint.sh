# As the state directory's owner: every SQLite database under it (`*.sqlite`, walked without
# following a symlink, as the backup walks it) has its write-ahead log checkpointed into the
# database and truncated. Prints one JSON list: each database with SQLite's answer (busy: a reader
# kept part of the log from being copied; log: frames in the log; checkpointed: frames copied).
set -euo pipefail
python3 - "$STATE_DIR" <<'PY'
{open_dir}
import json, stat, subprocess, sys
top = open_dir(sys.argv[1])
results = []
for rel_dir, dirs, files, dir_fd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
    dirs.sort()
    for name in sorted(files):
        if not name.endswith(".sqlite"):
            continue
        rel = os.path.normpath(os.path.join(rel_dir, name))
        if not stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            continue
        # -nofollow, and named relative to its directory's descriptor: no symlink anywhere.
        done = subprocess.run(
            ["sqlite3", "-nofollow", name, ".timeout 5000", "PRAGMA wal_checkpoint(TRUNCATE);"],
            cwd="/proc/self/fd/%d" % dir_fd, pass_fds=(dir_fd,), capture_output=True, text=True,
        )
        if done.returncode != 0:
            sys.exit("openclaw-freeze: sqlite3 could not checkpoint %s: %s" % (rel, done.stderr.strip()))
        busy, log, copied = (int(x) for x in done.stdout.strip().split("|"))
        results.append({"database": rel, "busy": busy == 1, "log": log, "checkpointed": copied})
print(json.dumps(results))
PY

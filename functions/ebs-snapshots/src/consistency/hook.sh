# openclaw-ops ebs-snapshots: the application-consistency hook around the data volume's snapshot.
# Rust prepends the settings (MODE, VOLUME_ID, DEVICE, STATE_DIR, LIMIT, TOKEN, each one quoted
# word) and `checkpoint`, which runs as the state directory's owner (never root) and prints the
# databases' checkpoint results as JSON.
#
# MODE=freeze: (1) checkpoint the SQLite databases' write-ahead logs as their owner; (2) start a
# timer that thaws at LIMIT seconds whatever happens to this script or to the function; (3)
# `fsfreeze -f` the data volume's mount point; (4) print the result line.
# MODE=thaw: thaw what the freeze of the same TOKEN froze (or make sure it never freezes, when it
# has not run yet), and say how the filesystem was found.
#
# Only ever the data volume's filesystem: its mount point is found from the volume id (the NVMe
# by-id link udev makes on Nitro instances) or EC2's device name, and refused when it is `/`, holds
# the root filesystem, is not mounted, or does not hold the state directory. Freezing `/` would
# freeze the SSM agent too, which could then never deliver the thaw.
set -euo pipefail
umask 077
RESULT_MARKER='OPENCLAW_FREEZE_RESULT '
RUN_DIR=/run/openclaw-freeze

refuse() {
  echo "openclaw-freeze: refused: $1" >&2
  exit 4
}
die() {
  echo "openclaw-freeze: $1" >&2
  exit 1
}

case "$MODE" in freeze|thaw) ;; *) refuse "MODE must be freeze or thaw, not $MODE" ;; esac
case "$LIMIT" in ''|*[!0-9]*) refuse "LIMIT must be a whole number of seconds, not $LIMIT" ;; esac
[ "$LIMIT" -ge 1 ] && [ "$LIMIT" -le 600 ] || refuse "LIMIT must be between 1 and 600 seconds, not $LIMIT"
case "$TOKEN" in ''|*[!A-Za-z0-9-]*) refuse "TOKEN must be letters, digits and -" ;; esac

# The data volume's mount point, printed; every check that makes it the data volume's refuses
# (exit 4) when it fails. Read as root from what only root and the kernel write (/dev, mountinfo).
find_mount() {
  python3 - "$VOLUME_ID" "$DEVICE" "$STATE_DIR" <<'PY'
{open_dir}
import codecs, stat, sys
volume_id, device, state_dir = sys.argv[1:4]

def refuse(why):
    print("openclaw-freeze: refused: " + why, file=sys.stderr)
    sys.exit(4)

if not volume_id.startswith("vol-") or not volume_id[4:].isalnum():
    refuse("%r is not a volume id" % volume_id)
# Nitro: /dev/nvmeXn1, named by udev after the volume id. Xen: EC2's device name, or its xvd form.
candidates = ["/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol" + volume_id[4:]]
if device.startswith("/dev/sd"):
    candidates += [device, "/dev/xvd" + device[len("/dev/sd"):]]
elif device.startswith("/dev/"):
    candidates.append(device)
found = None
for path in candidates:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        continue
    if stat.S_ISBLK(st.st_mode):
        found = path
        break
if found is None:
    refuse("no block device for %s (looked for %s)" % (volume_id, ", ".join(candidates)))
rdev = st.st_rdev
if rdev == os.stat("/").st_dev:
    refuse("%s (%s) holds the root filesystem" % (found, volume_id))
mounts = []
with open("/proc/self/mountinfo") as f:
    for line in f:
        fields = line.split()
        major, minor = fields[2].split(":")
        # Whole-filesystem mounts of that device only (field 4 is the mounted root; binds of a
        # subdirectory are not its mount point).
        if os.makedev(int(major), int(minor)) == rdev and fields[3] == "/":
            mounts.append(codecs.decode(fields[4], "unicode_escape"))
if not mounts:
    refuse("%s (%s) is not mounted" % (found, volume_id))
mount = mounts[0]
if mount == "/":
    refuse("%s (%s) is mounted at /" % (found, volume_id))
if ".." in state_dir.split("/") or not state_dir.startswith(mount.rstrip("/") + "/"):
    refuse("the state directory %s is not on %s's filesystem (mounted at %s)" % (state_dir, volume_id, mount))
# The path, walked without following a symlink, is that filesystem.
fd = open_dir(mount)
if os.fstat(fd).st_dev != rdev:
    refuse("%s is not the filesystem of %s" % (mount, volume_id))
print(mount)
PY
}

MNT=$(find_mount)
mkdir -p "$RUN_DIR"
chmod 700 "$RUN_DIR"
key=$(printf '%s' "$MNT" | sha256sum | cut -c1-16)
state="$RUN_DIR/$key.frozen"
# Freeze and thaw of one mount point take turns: a thaw that comes first (the function gave up
# waiting) leaves a mark the freeze then sees, so the freeze never happens after it.
exec 9>"$RUN_DIR/$key.lock"
flock 9

result() {
  python3 -c 'import json, sys; print(sys.argv[1] + json.dumps(dict(zip(sys.argv[2::2], sys.argv[3::2]))))' \
    "$RESULT_MARKER" "$@"
}

if [ "$MODE" = thaw ]; then
  : >"$RUN_DIR/cancelled-$TOKEN"
  holder=$(head -n 1 "$state" 2>/dev/null || true)
  if [ -z "$holder" ]; then
    # Never frozen by this token, or thawed at its limit already.
    result mount "$MNT" thawed "not-frozen-by-this-run"
  elif [ "$holder" != "$TOKEN" ]; then
    refuse "$MNT is frozen by another run ($holder), not this one ($TOKEN): left to it and its limit"
  else
    if fsfreeze -u "$MNT" 2>"$RUN_DIR/thaw.err"; then how=thawed; else how="was-not-frozen: $(cat "$RUN_DIR/thaw.err")"; fi
    timer=$(sed -n 2p "$state")
    [ -n "$timer" ] && kill "$timer" 2>/dev/null || true
    rm -f "$state"
    result mount "$MNT" thawed "$how"
  fi
  exit 0
fi

# MODE=freeze. Marks of runs that gave up long ago go.
find "$RUN_DIR" -maxdepth 1 -name 'cancelled-*' -mmin +60 -delete 2>/dev/null || true
[ -e "$RUN_DIR/cancelled-$TOKEN" ] && refuse "the function gave up on this freeze before it began"
if [ -e "$state" ]; then
  holder=$(head -n 1 "$state")
  timer=$(sed -n 2p "$state")
  if [ -n "$timer" ] && kill -0 "$timer" 2>/dev/null; then
    refuse "$MNT is frozen by another run ($holder) until its limit"
  fi
  # A record whose timer is gone: its run and its limit are over; thaw (in case) and go on.
  fsfreeze -u "$MNT" 2>/dev/null || true
  rm -f "$state"
fi

# (1) The write-ahead logs into the databases, as their owner (without the lock's descriptor).
checkpoints=$(checkpoint 9>&-) || die "checkpointing the databases failed (exit $?): nothing frozen"

# (2) The hard limit, before the freeze: its own session (the agent's end of this script, or its
# kill at the execution timeout, does not reach it; the agent's unit has KillMode=process), no
# descriptor of this script's (the agent would wait for its output; fd 9 is the lock). At LIMIT it
# thaws unless another run's freeze holds the mount since.
printf '%s\n' "$TOKEN" >"$state"
setsid bash -c '
  sleep "$1"
  holder=$(head -n 1 "$4" 2>/dev/null || true)
  if [ -z "$holder" ] || [ "$holder" = "$2" ]; then
    fsfreeze -u "$3" 2>/dev/null || true
    [ "$holder" = "$2" ] && rm -f "$4"
  fi
' openclaw-thaw-timer "$LIMIT" "$TOKEN" "$MNT" "$state" </dev/null >/dev/null 2>&1 9>&- &
timer=$!
printf '%s\n%s\n' "$TOKEN" "$timer" >"$state"

# (3) The freeze: everything written so far reaches the volume, and writes wait from here on.
if ! fsfreeze -f "$MNT" 2>"$RUN_DIR/freeze.err"; then
  kill "$timer" 2>/dev/null || true
  rm -f "$state"
  die "fsfreeze -f $MNT: $(cat "$RUN_DIR/freeze.err")"
fi

# (4) Frozen.
result mount "$MNT" limit "$LIMIT" timer "$timer" checkpoints "$checkpoints"

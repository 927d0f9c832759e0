"""EBS snapshot copies as AWS makes them, for ebs-snapshots' off-region copy.

What the bed enforces, as AWS does:

* **A copy's `VolumeId` is not its source's**: EC2 reports the arbitrary `vol-ffffffff` for a
  snapshot made by `CopySnapshot` (moto gives the source's volume), so what a copy says about its
  volume can only be checked through its source.
* **Only a completed snapshot can be copied**: `CopySnapshot` of a `pending` or `error` source
  answers `IncorrectState` (moto copies anything).
* `CopySnapshot` is sent to the destination region and reads the source from `SourceRegion` (moto
  does this already; its server keeps one EC2 per region, addressed by the request's signing region).

Test controls:

* `POST /_testbed/ec2/snapshot-state {"region": "us-east-1", "snapshot_id": "snap-...", "state":
  "pending" | "completed" | "error"}`: a snapshot that is still being made (moto completes each one
  at once), or one EC2 gave up on.
* `POST /_testbed/ec2/copy-barrier {"parties": 2, "rounds": 1, "timeout_seconds": 20}`: the next
  `parties * rounds` `CopySnapshot` requests meet in groups of `parties`, each waiting until its
  group has arrived (or the timeout, real seconds) before copying: two runs that both saw no copy then both copy, whatever the scheduling, so a test
  of concurrent runs exercises the race rather than hoping for it.

What it still does not do: a copy is `completed` at once (AWS: `pending` for minutes to hours); KMS
is not called (the key is recorded, not used).
"""

import threading

import bed_routes

COPY_VOLUME_ID = "vol-ffffffff"

_lock = threading.Lock()
_barrier: dict = {"barrier": None, "left": 0, "timeout": 20.0}


class _CopyVolume:
    """Stands in for a copy's volume: EC2's arbitrary id, the source volume's size."""

    def __init__(self, size: int) -> None:
        self.id = COPY_VOLUME_ID
        self.size = size


def _wait_at_barrier() -> None:
    with _lock:
        barrier = _barrier["barrier"]
        if barrier is None:
            return
        _barrier["left"] -= 1
        if _barrier["left"] <= 0:
            _barrier["barrier"] = None
        timeout = _barrier["timeout"]
    try:
        barrier.wait(timeout)
    except threading.BrokenBarrierError:
        pass  # the others never came: copy anyway, as AWS would


def _copies_as_aws() -> None:
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.elastic_block_store import EBSBackend

    original = EBSBackend.copy_snapshot

    def copy_snapshot(self, source_snapshot_id, source_region, description, kms_key_id):  # noqa: ANN001, ANN202
        source = ec2_backends[self.account_id][source_region].get_snapshot(source_snapshot_id)
        if source.status != "completed":
            raise EC2ClientError(
                "IncorrectState", f"Snapshot '{source_snapshot_id}' is not 'completed' (it is '{source.status}')."
            )
        _wait_at_barrier()
        snapshot = original(self, source_snapshot_id, source_region, description, kms_key_id)
        snapshot.volume = _CopyVolume(source.volume.size)
        return snapshot

    EBSBackend.copy_snapshot = copy_snapshot


def install() -> None:
    _copies_as_aws()

    @bed_routes.route("POST", "/_testbed/ec2/snapshot-state")
    def _state(request: dict) -> dict:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ec2.models import ec2_backends

        state = request["state"]
        if state not in ("pending", "completed", "error"):
            raise ValueError(f"state must be pending, completed or error, not {state!r}")
        snapshot = ec2_backends[DEFAULT_ACCOUNT_ID][request["region"]].get_snapshot(request["snapshot_id"])
        snapshot.status = state
        return {"snapshot_id": snapshot.id, "state": state}

    @bed_routes.route("POST", "/_testbed/ec2/copy-barrier")
    def _copy_barrier(request: dict) -> dict:
        parties = int(request["parties"])
        if parties < 2:
            raise ValueError("parties must be at least 2")
        with _lock:
            _barrier["barrier"] = threading.Barrier(parties)
            _barrier["left"] = parties * int(request.get("rounds", 1))
            _barrier["timeout"] = float(request.get("timeout_seconds", 20))
        return {"parties": parties}

"""S3 Object Lock retention changes as AWS rules them, where moto overwrites any retention it is sent.

What the bed enforces, as AWS does (Amazon S3 User Guide, "Locking objects with Object Lock"):

* **Compliance mode cannot be weakened** by anyone while it lasts: a `PutObjectRetention` that moves
  the retain-until date earlier, removes the retention, or changes the mode is refused with
  `AccessDenied`. Extending it is allowed.
* **Governance mode is weakened only with the bypass**: shortening, removing, or switching to
  another mode needs the `x-amz-bypass-governance-retention: true` header, and the bypass is then
  authorized as `s3:BypassGovernanceRetention` by iam_bed (iam_requests adds it). Extending, or
  moving to compliance, needs nothing more.
* A retention that has passed restricts nothing.

moto already refuses a delete of a locked version (without the bypass, for governance) and a
retention on a bucket without Object Lock. What the bed still does not do: legal holds are moto's
as they are; a bucket's default retention is applied by moto, including its checksum requirement.
"""

from datetime import datetime, timezone


def _parse(until: str | None) -> datetime | None:
    if not until:
        return None
    for pattern in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(until, pattern).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise ValueError(f"unreadable retain-until date {until!r}")


def refusal(current_mode: str | None, current_until: str | None, new_mode: str | None, new_until: str | None,
            bypass: bool, now: datetime) -> str | None:
    """Why AWS refuses this retention change, or None when it allows it."""
    until = _parse(current_until)
    if not current_mode or until is None or until <= now:
        return None
    wanted = _parse(new_until)
    weakened = new_mode != current_mode or wanted is None or wanted < until
    if current_mode == "GOVERNANCE" and new_mode == "COMPLIANCE" and wanted is not None and wanted >= until:
        weakened = False
    if not weakened:
        return None
    if current_mode == "COMPLIANCE":
        return "the object version is locked in compliance mode until %s" % current_until
    if not bypass:
        return "the object version is locked in governance mode until %s; only a request with x-amz-bypass-governance-retention can change that" % current_until
    return None


def install() -> None:
    from moto.s3.exceptions import S3ClientError
    from moto.s3.responses import S3Response

    original = S3Response.put_object_retention

    def put_object_retention(self):  # noqa: ANN001, ANN202
        version_id = self._get_param("versionId")
        key = self.backend.get_object(self.bucket_name, self.parse_key_name(), version_id=version_id)
        if key is not None:
            new_mode, new_until = self._mode_until_from_body()
            bypass = str(self.headers.get("x-amz-bypass-governance-retention", "")).lower() == "true"
            why = refusal(key.lock_mode, key.lock_until, new_mode, new_until, bypass, datetime.now(timezone.utc))
            if why:
                raise S3ClientError("AccessDenied", why)
        return original(self)

    S3Response.put_object_retention = put_object_retention

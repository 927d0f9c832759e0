"""SSM's `DescribeInstanceInformation`, which moto lacks: the managed instances, as fake_ssm.py knows
them (an instance is managed once the test registered it, `POST /_testbed/ssm/instances`).

What it answers, as AWS does: one entry per managed instance, `PingStatus` `Online` while EC2 says
it is running (or EC2 does not know it: a hybrid node, the test's own machine) and `ConnectionLost`
otherwise (its agent stopped answering); an instance never registered is not listed at all. The
`Filters` keys `InstanceIds` and `PingStatus` narrow the list; any other key is refused with
`InvalidInstanceInformationFilterValue` rather than ignored (the suite uses only `InstanceIds`).
`InstanceInformationFilterList` (the older form) is refused the same way. Everything fits one page.
"""

from datetime import datetime, timezone

import fake_ssm

# Filter key -> the entry's field it matches.
KNOWN_FILTERS = {"InstanceIds": "InstanceId", "PingStatus": "PingStatus"}


def _entries() -> list[dict]:
    with fake_ssm._lock:
        registered = list(fake_ssm._instances)
    out = []
    for instance_id in sorted(registered):
        state = fake_ssm._ec2_state(instance_id)
        online = state in (None, "running")
        out.append(
            {
                "InstanceId": instance_id,
                "PingStatus": "Online" if online else "ConnectionLost",
                "LastPingDateTime": datetime.now(timezone.utc),
                "AgentVersion": "3.3.0.0",
                "IsLatestVersion": True,
                "PlatformType": "Linux",
                "PlatformName": "Amazon Linux",
                "ResourceType": "EC2Instance" if instance_id.startswith("i-") else "ManagedInstance",
            }
        )
    return out


def install() -> None:
    from moto.core.exceptions import JsonRESTError
    from moto.core.responses import ActionResult
    from moto.ssm.responses import SimpleSystemManagerResponse

    def describe_instance_information(self):  # noqa: ANN001, ANN202
        if self._get_param("InstanceInformationFilterList"):
            raise JsonRESTError(
                "InvalidInstanceInformationFilterValue", "the test bed answers Filters only, not InstanceInformationFilterList"
            )
        entries = _entries()
        for f in self._get_param("Filters") or []:
            key, values = f.get("Key"), f.get("Values") or []
            if key not in KNOWN_FILTERS:
                raise JsonRESTError("InvalidInstanceInformationFilterValue", f"the test bed does not know the filter {key!r}")
            entries = [e for e in entries if e[KNOWN_FILTERS[key]] in values]
        return ActionResult({"InstanceInformationList": entries})

    SimpleSystemManagerResponse.describe_instance_information = describe_instance_information

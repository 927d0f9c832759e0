"""The SSM agent's own calls, as the instance makes them with its role's credentials: what keeps a
node managed and what carries Run Command and Session Manager, so that the instance role's grants
(stacks/gateway.yaml, GatewayRole) are exercised by every test that plays a managed instance.

fake_ssm.py runs the commands; this module adds the agent in front of it. For an instance
registered with keys (`POST /_testbed/ssm/instances` with `AWS_ACCESS_KEY_ID` in its `env`):

* **Start**: `ssm:UpdateInstanceInformation` (the heartbeat that makes the node managed), then
  `ssmmessages:CreateControlChannel` and `ssmmessages:OpenControlChannel` (Session Manager's
  control channel, opened when the agent starts). A denied heartbeat leaves the instance unmanaged
  (SendCommand then refuses it, as AWS does) and the registration fails with the bed's reason.
* **Each command**: `ec2messages:GetMessages` and `ec2messages:AcknowledgeMessage` before the script
  runs (a denied one: the agent never receives the command, which ends `DeliveryTimedOut`), and
  `ec2messages:SendReply` with the outcome.

Every request carries `ec2:SourceInstanceARN` (the instance's ARN), as AWS adds it to requests made
with an instance's role credentials. The calls are authorized and logged by iam_bed.py exactly as
live requests are (`GET /_testbed/calls`, the decision logs), without a network exchange: the
Message Gateway and Message Delivery services have no public API for moto to serve, and moto has no
UpdateInstanceInformation. An instance registered without keys has no agent calls (the tests that
play one with the admin's environment, or none).

Not modelled: the data channel (`Create/OpenDataChannel`: a Session Manager session, which no test
starts; tests/tests/iam_probes.rs probes those grants), the agent's association and inventory calls
(the suite has no State Manager association), and heartbeats after the first.
"""

import sys

import bed_clock
import bed_routes
import fake_ssm
import iam_bed
from iam_policy import Request

ACCOUNT = "123456789012"


def _instance_arn(instance_id: str) -> str:
    kind = "managed-instance" if instance_id.startswith("mi-") else "instance"
    return f"arn:aws:ec2:{fake_ssm.REGION}:{ACCOUNT}:{kind}/{instance_id}"


def _call(instance_id: str, keys: str, action: str) -> dict:
    """One agent call as the instance: `action` on `*` (none of them has resource-level permissions)."""
    request = Request(action, "*", {"ec2:SourceInstanceARN": _instance_arn(instance_id)})
    entry = iam_bed.authorize_as(keys, action, [request], fake_ssm.REGION)
    if not entry["allowed"]:
        why = entry["error"] or "; ".join(a["reason"] for a in entry["authorizations"])
        print(f"testbed SSM agent on {instance_id}: {action} denied: {why}", file=sys.stderr, flush=True)
    return entry


def _keys(instance_id: str) -> str | None:
    with fake_ssm._lock:
        return fake_ssm._instances.get(instance_id, {}).get("AWS_ACCESS_KEY_ID")


def install() -> None:
    register = bed_routes.ROUTES[("POST", "/_testbed/ssm/instances")]

    @bed_routes.route("POST", "/_testbed/ssm/instances")
    def _register(request: dict) -> dict:
        answer = register(request)
        instance_id = request["instance_id"]
        keys = _keys(instance_id)
        if keys is None:
            return answer
        for action in ("ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel", "ssmmessages:OpenControlChannel"):
            entry = _call(instance_id, keys, action)
            if not entry["allowed"]:
                with fake_ssm._lock:
                    fake_ssm._instances.pop(instance_id, None)
                raise ValueError(
                    f"the SSM agent on {instance_id} was denied {action} with the registered keys: "
                    f"the instance does not become a managed node ({entry['error'] or entry['authorizations']})"
                )
        return answer

    deliver, end = fake_ssm._deliver, fake_ssm._end

    def _deliver(command, invocation: dict, script: str, timeout: float, delivery_timeout: float, sent: float) -> None:  # noqa: ANN001
        instance_id = invocation["InstanceId"]
        keys = _keys(instance_id)
        if keys is not None and fake_ssm._managed(instance_id):
            for action in ("ec2messages:GetMessages", "ec2messages:AcknowledgeMessage"):
                if not _call(instance_id, keys, action)["allowed"]:
                    # The agent cannot take the command: SSM gives up at the delivery timeout.
                    bed_clock.at(
                        sent + delivery_timeout,
                        lambda: end(command, invocation, {"Status": "TimedOut", "StatusDetails": "DeliveryTimedOut", "ResponseCode": -1}),
                    )
                    return
        deliver(command, invocation, script, timeout, delivery_timeout, sent)

    def _end(command, invocation: dict, result: dict) -> None:  # noqa: ANN001
        keys = _keys(invocation["InstanceId"])
        # Only a run the agent saw through reports (one whose instance went away does not).
        if keys is not None and "StandardOutputContent" in result:
            _call(invocation["InstanceId"], keys, "ec2messages:SendReply")
        end(command, invocation, result)

    fake_ssm._deliver = _deliver
    fake_ssm._end = _end

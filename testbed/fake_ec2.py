"""EC2 as strict as AWS where spot-recovery depends on it: reclaiming a Spot instance takes time,
a volume is attached to one instance at a time, and `RunInstances` is idempotent.

What the bed enforces, as AWS does:

* **Reclaiming a Spot instance** (moto cannot by itself):
  `POST /_testbed/ec2/spot-interruption {"instance_id": "i-...", "action": "terminate" | "stop", "seconds": 60}`.
  The instance turns `shutting-down` (or `stopping`) at once with the state reason EC2 gives
  (`Server.SpotInstanceTermination` / `Server.SpotInstanceShutdown`); its volumes stay attached and
  what runs on it dies (fake_ssm). After `seconds` of bed time (the scenario's; 30 by default,
  settable with `POST /_testbed/ec2/settings {"shutting_down_seconds": 30}`) it is `terminated`, its
  volumes `available` (deleted where DeleteOnTermination), or `stopped` with its volumes still
  attached. Tests then deliver the EventBridge events themselves.
* **A volume is attached to one instance at a time**: `AttachVolume` of a volume that is attached
  (to the shutting-down instance, say) answers `VolumeInUse`; of a volume in another zone,
  `InvalidVolume.ZoneMismatch`; to an instance that is not `running` or `stopped`,
  `IncorrectState` (moto re-attaches silently in all three cases).
* **`RunInstances` idempotency**: the same `ClientToken` answers the instances the first request
  launched (even once they are terminated); the same token with other parameters (but the Availability Zone) answers
  `IdempotentParameterMismatch` (moto stores the token and never reads it). Only a request that
  launched records its token: a refused one (no capacity) may be sent again with the same token.
* **Spot capacity runs out** (moto always has some):
  `POST /_testbed/ec2/spot-capacity {"refuse": 1, "gather": 2, "gather_seconds": 10}`. The next
  `refuse` Spot launches (Spot by the request's market options or by its launch template's, as EC2
  merges them) answer `InsufficientInstanceCapacity`; On-Demand ones still launch. With `gather`,
  the next that many `RunInstances` calls wait for each other (at most `gather_seconds` of real
  time) before any is decided, so concurrent deliveries really race for the capacity.

Durations are bed time (bed_clock.py).

What it still does not do: a new instance is `running` at once (AWS: `pending` first); a token
does not expire; `TerminateInstances` by a caller is still immediate.
"""

import json
import threading

import bed_clock
import bed_routes
import fake_ssm

REGION = "us-east-1"

_lock = threading.Lock()
_settings = {"shutting_down_seconds": 30.0}
# client token -> (the request's other parameters, the reservation it made)
_tokens: dict[str, tuple[str, object]] = {}
# Spot launches still to refuse; RunInstances calls still to gather, and the barrier they meet at.
_capacity = {"refuse": 0}
_gather: dict[str, object] = {"barrier": None}


def _backend():  # noqa: ANN202
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID

    return get_backend("ec2")[DEFAULT_ACCOUNT_ID][REGION]


def interrupt(instance_id: str, action: str, seconds: float | None) -> dict:
    from moto.ec2.models.instances import StateReason

    instance = _backend().get_instance(instance_id)
    if seconds is None:
        with _lock:
            seconds = _settings["shutting_down_seconds"]
    if seconds < 0:
        raise ValueError("seconds must not be negative")
    if action == "terminate":
        code, message, transitional, code_number = (
            "Server.SpotInstanceTermination", "Spot instance termination", "shutting-down", 32
        )
    elif action == "stop":
        code, message, transitional, code_number = "Server.SpotInstanceShutdown", "Spot instance shutdown", "stopping", 64
    else:
        raise ValueError(f"action must be terminate or stop, not {action!r}")
    reason = StateReason(f"{code}: {message}", code)
    instance._state.name, instance._state.code = transitional, code_number
    instance.state_reason = reason
    fake_ssm.instance_lost(instance_id)

    def finish() -> None:
        if action == "terminate":
            instance.terminate()
        else:
            instance.stop()
        instance.state_reason = reason

    bed_clock.at(bed_clock.now() + seconds, finish)
    return {"instance_id": instance_id, "state": instance.state, "state_reason": code, "seconds": seconds}


def _strict_attach() -> None:
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.elastic_block_store import EBSBackend

    original = EBSBackend.attach_volume

    def attach_volume(self, volume_id, instance_id, device_path, delete_on_termination=False):  # noqa: ANN001, ANN202
        volume = self.get_volume(volume_id)
        instance = self.get_instance(instance_id)
        if volume is not None and instance is not None:
            if volume.attachment is not None:
                raise EC2ClientError("VolumeInUse", f"{volume_id} is already attached to an instance")
            if volume.zone is not None and volume.zone.name != instance.availability_zone:
                raise EC2ClientError(
                    "InvalidVolume.ZoneMismatch",
                    f"The volume '{volume_id}' is not in the same availability zone as instance '{instance_id}'",
                )
            if instance.state not in ("running", "stopped"):
                raise EC2ClientError(
                    "IncorrectState", f"Instance '{instance_id}' is not 'running' or 'stopped' (it is '{instance.state}')."
                )
        return original(self, volume_id, instance_id, device_path, delete_on_termination)

    EBSBackend.attach_volume = attach_volume


def _idempotent_run_instances() -> None:
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.responses.instances import InstanceResponse

    original = InstanceResponse.run_instances
    run_lock = threading.Lock()

    def is_spot(response) -> bool:  # noqa: ANN001
        if response._get_param("InstanceMarketOptions.MarketType"):
            return response._get_param("InstanceMarketOptions.MarketType") == "spot"
        template_id = response._get_param("LaunchTemplate.LaunchTemplateId")
        template_name = response._get_param("LaunchTemplate.LaunchTemplateName")
        if not (template_id or template_name):
            return False
        arg = {"LaunchTemplateId": template_id} if template_id else {"LaunchTemplateName": template_name}
        version = response._get_param("LaunchTemplate.Version")
        if version:
            arg["Version"] = version
        data = response.ec2_backend._get_template_from_args(arg).data
        return (data.get("InstanceMarketOptions") or {}).get("MarketType") == "spot"

    def refuse_spot(response) -> None:  # noqa: ANN001
        with _lock:
            if _capacity["refuse"] <= 0 or not is_spot(response):
                return
            _capacity["refuse"] -= 1
        raise EC2ClientError(
            "InsufficientInstanceCapacity",
            "We currently do not have sufficient capacity in the Availability Zone you requested (test bed).",
        )

    def gather() -> None:
        with _lock:
            barrier = _gather["barrier"]
        if barrier is None:
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass  # fewer calls came than gathered for: each goes on alone after the wait
        with _lock:
            if _gather["barrier"] is barrier:
                _gather["barrier"] = None

    def run_instances(self):  # noqa: ANN001, ANN202
        gather()
        token = self._get_param("ClientToken")
        if not token:
            with run_lock:
                refuse_spot(self)
                return original(self)
        # EC2 compares every parameter but the Region and the Availability Zone.
        ignored = {"Action", "Version", "ClientToken", "Placement.AvailabilityZone"}
        parameters = json.dumps({k: v for k, v in self.querystring.items() if k not in ignored}, sort_keys=True)
        with run_lock:
            with _lock:
                seen = _tokens.get(token)
            if seen is not None:
                if seen[0] != parameters:
                    raise EC2ClientError(
                        "IdempotentParameterMismatch",
                        "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
                    )
                return ActionResult(seen[1])
            refuse_spot(self)
            result = original(self)
            with _lock:
                _tokens[token] = (parameters, result.result)
            return result

    InstanceResponse.run_instances = run_instances


def install() -> None:
    _strict_attach()
    _idempotent_run_instances()

    @bed_routes.route("POST", "/_testbed/ec2/spot-interruption")
    def _interrupt(request: dict) -> dict:
        seconds = request.get("seconds")
        return interrupt(request["instance_id"], request["action"], None if seconds is None else float(seconds))

    @bed_routes.route("POST", "/_testbed/ec2/spot-capacity")
    def _spot_capacity(request: dict) -> dict:
        unknown = set(request) - {"refuse", "gather", "gather_seconds"}
        if unknown:
            raise ValueError(f"unknown spot-capacity settings {sorted(unknown)}")
        refuse, gathered = int(request.get("refuse", 0)), int(request.get("gather", 0))
        if refuse < 0 or gathered < 0:
            raise ValueError("refuse and gather must not be negative")
        with _lock:
            _capacity["refuse"] = refuse
            _gather["barrier"] = (
                threading.Barrier(gathered, timeout=float(request.get("gather_seconds", 10))) if gathered > 1 else None
            )
        return {"refuse": refuse, "gather": gathered}

    @bed_routes.route("POST", "/_testbed/ec2/settings")
    def _configure(request: dict) -> dict:
        unknown = set(request) - set(_settings)
        if unknown:
            raise ValueError(f"unknown EC2 settings {sorted(unknown)}; known: {sorted(_settings)}")
        with _lock:
            for key, value in request.items():
                if float(value) < 0:
                    raise ValueError(f"{key} must not be negative")
                _settings[key] = float(value)
            return dict(_settings)

"""Load balancer target health as AWS reports it, where moto calls every registered target healthy.

What the bed enforces, as AWS does:

* **A new target is `initial`** (reason `Elb.RegistrationInProgress`, "Target registration is in
  progress") from `RegisterTargets` until its health check could first have passed: the target
  group's HealthyThresholdCount x HealthCheckIntervalSeconds (2 x 30 s with the template's
  WebhookTargetGroup), plus the instance's boot time, which the scenario sets. Registering it again
  while it is registered changes nothing, as in AWS.
* **Then `healthy` or `unhealthy`, as the scenario says** (`unhealthy` with reason
  `Target.FailedHealthChecks`). The scenario is set per instance, or for every instance with `*`
  (the default: no boot time, healthy), with
  `POST /_testbed/elbv2/target-health {"instance_id": "i-..." | "*", "boot_seconds": 120, "state": "healthy" | "unhealthy"}`.
  A later call changes the outcome of targets already registered (the gateway breaking, or being
  fixed); the initial period is counted from each target's registration.

Durations are bed time (bed_clock.py): a forward move of the emulator's clock, or a time scale,
shortens them for a test.

* **Deregistering is idempotent**: a target that is not registered (deregistered by an earlier
  delivery of the same event) is answered 200, as AWS does; moto answers `InvalidTarget`.

What it still does not do: a deregistered target is `unused` at once (AWS: `draining` for the
deregistration delay); a target whose instance stops or terminates keeps its last state; health is
not derived from the instance really serving the health check path.
"""

import threading

import bed_clock
import bed_routes

_lock = threading.Lock()
_scenario: dict[str, dict] = {"*": {"boot_seconds": 0.0, "state": "healthy"}}
# (target group ARN, target id) -> bed time of registration
_registered_at: dict[tuple[str, str], float] = {}


def _scenario_for(instance_id: str) -> dict:
    with _lock:
        return dict(_scenario.get(instance_id, _scenario["*"]))


def install() -> None:
    from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup

    original_register = FakeTargetGroup.register
    original_deregister = FakeTargetGroup.deregister
    original_health = FakeTargetGroup.health_for

    def register(self, targets):  # noqa: ANN001, ANN202
        already = set(self.targets)
        original_register(self, targets)
        with _lock:
            for target in targets:
                if target["Id"] not in already:
                    _registered_at[(self.arn, target["Id"])] = bed_clock.now()

    def deregister(self, targets):  # noqa: ANN001, ANN202
        # AWS answers 200 for a target that is not registered (a repeated deregistration);
        # moto raises InvalidTarget.
        original_deregister(self, [t for t in targets if t["Id"] in self.targets])
        with _lock:
            for target in targets:
                _registered_at.pop((self.arn, target["Id"]), None)

    def health_for(self, target, ec2_backend):  # noqa: ANN001, ANN202
        status = original_health(self, target, ec2_backend)
        if status.status != "healthy":
            return status
        with _lock:
            registered = _registered_at.get((self.arn, target["Id"]))
        if registered is None:
            return status
        scenario = _scenario_for(target["Id"])
        first_pass = int(self.healthy_threshold_count) * int(self.health_check_interval_seconds)
        if bed_clock.now() < registered + scenario["boot_seconds"] + first_pass:
            status.status = "initial"
            status.reason = "Elb.RegistrationInProgress"
            status.description = "Target registration is in progress"
        elif scenario["state"] == "unhealthy":
            status.status = "unhealthy"
            status.reason = "Target.FailedHealthChecks"
            status.description = "Health checks failed"
        return status

    FakeTargetGroup.register = register
    FakeTargetGroup.deregister = deregister
    FakeTargetGroup.health_for = health_for
    assert FakeHealthStatus  # the type health_for answers, its fields set above

    @bed_routes.route("POST", "/_testbed/elbv2/target-health")
    def _set(request: dict) -> dict:
        instance_id = request.get("instance_id", "*")
        state = request.get("state", "healthy")
        if state not in ("healthy", "unhealthy"):
            raise ValueError(f"state must be healthy or unhealthy, not {state!r}")
        boot = float(request.get("boot_seconds", 0))
        if boot < 0:
            raise ValueError("boot_seconds must not be negative")
        with _lock:
            _scenario[instance_id] = {"boot_seconds": boot, "state": state}
        return {"instance_id": instance_id, "boot_seconds": boot, "state": state}

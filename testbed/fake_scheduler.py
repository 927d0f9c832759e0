"""EventBridge Scheduler's schedules as the tests read them.

moto keeps the schedules spot-recovery creates (and, unlike Scheduler, never runs a one-shot one nor
deletes it after its time: a test delivers a schedule's Input to the function itself). Its signature
check refuses the SDK's signed GET requests with a query string (GetSchedule and ListSchedules name
the group in the query), so a test reads the schedules through this route instead:
`POST /_testbed/scheduler/schedules {"group": "name"}` answers `{"schedules": [GetSchedule's answer, ...]}`
for the group, sorted by name (an unknown group: none).
"""

import bed_routes


def install() -> None:
    @bed_routes.route("POST", "/_testbed/scheduler/schedules")
    def _schedules(request: dict) -> dict:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.scheduler.models import scheduler_backends

        group_name = request["group"]
        region = request.get("region", "us-east-1")
        backend = scheduler_backends[DEFAULT_ACCOUNT_ID][region]
        group = backend.schedule_groups.get(group_name)
        if group is None:
            return {"schedules": []}
        return {"schedules": [group.schedules[name].to_dict() for name in sorted(group.schedules)]}

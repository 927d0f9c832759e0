"""SSM Run Command as AWS runs it: `AWS-RunShellScript` scripts run for real on this machine, which
plays the managed instance, with the service's own timings and errors.

What the bed enforces, as AWS does:

* **Only managed instances.** An instance is managed once the test registers it (its SSM agent is
  up): `POST /_testbed/ssm/instances {"instance_id": "i-...", "env": {...}}`, `env` being what stands
  in for the instance itself (the instance role's keys, AWS_ENDPOINT_URL so the AWS CLI reaches the
  emulator, a PATH with the test bed's AWS CLI). `SendCommand` to an instance that is not managed,
  or that EC2 says is not running (stopped, shutting down, terminated), is refused at once with
  `InvalidInstanceId`, as AWS refuses it; nothing is sent.
* **The invocation's life.** `GetCommandInvocation` answers `InvocationDoesNotExist` for a short
  while after the send (`invisible_seconds`, 1 s by default); the invocation is then `Pending` until
  the agent picks it up (`delivery_seconds`, 1.5 s), `InProgress` while the script runs (its real
  run time), and ends `Success`, `Failed` (with the exit code) or `TimedOut` (`executionTimeout`,
  status details `ExecutionTimedOut`). Both durations are bed time (bed_clock.py) and can be set
  with `POST /_testbed/ssm/settings {"invisible_seconds": 0.5, "delivery_seconds": 3}`.
* **Output as GetCommandInvocation gives it**: empty until the invocation ends, then the *first*
  24,000 characters of stdout and the first 8,000 of stderr (AWS's limits; the agent marks a cut).
* **Scripts run as root, with the agent's environment**, not the test's: the agent writes the
  commands to `_script.sh` in a fresh orchestration directory, which is also the working directory,
  and runs `sh -c <that file>` (so the script's `#!` line chooses its shell). The environment is
  the agent's (PATH, LANG, AWS_SSM_INSTANCE_ID, AWS_SSM_REGION_NAME, SSM_COMMAND_ID) plus what the
  test registered for the instance. There is no HOME: SSM sets none, and registering one is refused.
  Where the emulator is not root, the script runs in a user namespace as uid 0 (`unshare -r`).
* **An instance that goes away takes its scripts with it**: when EC2 reclaims it (fake_ec2), its
  running scripts are killed; the agent never reports them, so they stay `InProgress` until their
  `executionTimeout`, then `TimedOut`. A command whose instance is gone before the agent picked it
  up ends `TimedOut` with status details `DeliveryTimedOut` after its delivery timeout.

* **`CancelCommand`** (moto has none): an invocation not yet delivered ends `Cancelled` at once; a
  running script is killed and its invocation ends `Cancelled` (`Cancelling` until it is gone); an
  ended one is left as it is. An unknown command id answers `InvalidCommandId`.

What it still does not do: documents other than `AWS-RunShellScript` run nothing (moto answers
`Success`); `Targets` (tag selection) are not checked for managed instances; the response code of a
timed-out or cancelled script is -1 (AWS's is not documented).
"""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
from datetime import datetime, timezone

import bed_clock
import bed_routes

REGION = "us-east-1"
# The agent's PATH on Amazon Linux, when the test registers none.
AGENT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
MAX_STDOUT, MAX_STDERR = 24000, 8000
TRUNCATED = "\n--output truncated--"

_lock = threading.Lock()
_instances: dict[str, dict[str, str]] = {}
_settings = {"invisible_seconds": 1.0, "delivery_seconds": 1.5}
# command id -> bed time at which its invocations become visible
_visible_at: dict[str, float] = {}
# instance id -> processes running on it
_running: dict[str, list[subprocess.Popen]] = {}
# (command id, instance id) -> the process running it, while it runs
_by_invocation: dict[tuple[str, str], subprocess.Popen] = {}
# (command id, instance id) cancelled before the agent picked them up
_cancelled: set[tuple[str, str]] = set()
_workdir = tempfile.mkdtemp(prefix="testbed-ssm-")


def _ec2_state(instance_id: str) -> str | None:
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID

    instance = get_backend("ec2")[DEFAULT_ACCOUNT_ID][REGION].get_instance_by_id(instance_id)
    return None if instance is None else instance.state


def _managed(instance_id: str) -> bool:
    with _lock:
        registered = instance_id in _instances
    # An id EC2 does not know is a managed node of its own (a hybrid `mi-`, or a test's machine).
    return registered and _ec2_state(instance_id) in (None, "running")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _first(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + TRUNCATED


def _as_root() -> list[str]:
    return [] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--"]


def _roll_up(command) -> None:  # noqa: ANN001
    """The command's status from its invocations' (under _lock)."""
    statuses = [i["Status"] for i in command.invocations]
    if any(s in ("Pending", "InProgress", "Cancelling") for s in statuses):
        command.status = next(s for s in ("Cancelling", "InProgress", "Pending") if s in statuses)
    else:
        failed = [i for i in command.invocations if i["Status"] != "Success"]
        command.status = "Cancelled" if "Cancelled" in statuses else "Failed" if failed else "Success"
        command.error_count = len(failed)
        command.completed_count = len(statuses)
    command.status_details = command.status


def _end(command, invocation: dict, result: dict) -> None:  # noqa: ANN001
    with _lock:
        invocation.update(result)
        invocation["ExecutionEndDateTime"] = _now_iso()
        _roll_up(command)


def _run(command, invocation: dict, script: str, timeout: float) -> None:  # noqa: ANN001
    instance_id = invocation["InstanceId"]
    with _lock:
        registered = dict(_instances.get(instance_id, {}))
    directory = os.path.join(
        _workdir, instance_id, "document", "orchestration", command.command_id, "awsrunShellScript", "0.awsrunShellScript"
    )
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "_script.sh")
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, 0o700)
    env = {
        "PATH": AGENT_PATH,
        "LANG": "C.UTF-8",
        "PWD": directory,
        "AWS_SSM_INSTANCE_ID": instance_id,
        "AWS_SSM_REGION_NAME": REGION,
        "SSM_COMMAND_ID": command.command_id,
        **registered,
    }
    stdout_path, stderr_path = os.path.join(directory, "stdout"), os.path.join(directory, "stderr")
    started = bed_clock.now()
    with open(stdout_path, "w") as out, open(stderr_path, "w") as err:
        process = subprocess.Popen(
            [*_as_root(), "sh", "-c", path], cwd=directory, env=env, stdout=out, stderr=err, start_new_session=True
        )
    with _lock:
        invocation.update(
            {"Status": "InProgress", "StatusDetails": "InProgress", "ExecutionStartDateTime": _now_iso()}
        )
        _roll_up(command)
        _running.setdefault(instance_id, []).append(process)
        _by_invocation[(command.command_id, instance_id)] = process
    timed_out = False
    # Polled on bed time (subprocess's own timeout reads time.monotonic, which freezegun fakes).
    while process.poll() is None:
        if bed_clock.now() - started >= timeout:
            timed_out = True
            _kill(process)
            process.wait()
            break
        threading.Event().wait(0.05)
    with _lock:
        lost = process in _running.get(instance_id, []) and getattr(process, "lost", False)
        if process in _running.get(instance_id, []):
            _running[instance_id].remove(process)
        _by_invocation.pop((command.command_id, instance_id), None)
    cancelled = getattr(process, "cancelled", False)
    with open(stdout_path, errors="replace") as f:
        stdout = f.read()
    with open(stderr_path, errors="replace") as f:
        stderr = f.read()
    shutil.rmtree(os.path.join(_workdir, instance_id, "document", "orchestration", command.command_id), True)
    if lost:
        # The instance went away: no agent reports this run; SSM gives up at the execution timeout.
        remaining = max(0.0, started + timeout - bed_clock.now())
        bed_clock.at(
            bed_clock.now() + remaining,
            lambda: _end(command, invocation, {"Status": "TimedOut", "StatusDetails": "ExecutionTimedOut", "ResponseCode": -1}),
        )
        return
    if cancelled:
        result = {
            "Status": "Cancelled",
            "StatusDetails": "Cancelled",
            "ResponseCode": -1,
            "StandardOutputContent": _first(stdout, MAX_STDOUT),
            "StandardErrorContent": _first(stderr, MAX_STDERR),
        }
    elif timed_out:
        result = {
            "Status": "TimedOut",
            "StatusDetails": "ExecutionTimedOut",
            "ResponseCode": -1,
            "StandardOutputContent": _first(stdout, MAX_STDOUT),
            "StandardErrorContent": _first(stderr + f"\nfailed to run commands: execution timed out after {timeout:g} s", MAX_STDERR),
        }
    else:
        status = "Success" if process.returncode == 0 else "Failed"
        result = {
            "Status": status,
            "StatusDetails": status,
            "ResponseCode": process.returncode,
            "StandardOutputContent": _first(stdout, MAX_STDOUT),
            "StandardErrorContent": _first(stderr, MAX_STDERR),
        }
    _end(command, invocation, result)


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def instance_lost(instance_id: str) -> None:
    """The instance is going away (fake_ec2 reclaimed it): what runs on it dies with it."""
    with _lock:
        processes = list(_running.get(instance_id, []))
        for p in processes:
            p.lost = True
    for p in processes:
        _kill(p)


def _deliver(command, invocation: dict, script: str, timeout: float, delivery_timeout: float, sent: float) -> None:  # noqa: ANN001
    with _lock:
        if (command.command_id, invocation["InstanceId"]) in _cancelled:
            return
    if not _managed(invocation["InstanceId"]):
        # The agent is gone before it picked the command up: it is never delivered.
        bed_clock.at(
            sent + delivery_timeout,
            lambda: _end(command, invocation, {"Status": "TimedOut", "StatusDetails": "DeliveryTimedOut", "ResponseCode": -1}),
        )
        return
    if command.document_name != "AWS-RunShellScript":
        _end(command, invocation, {"Status": "Success", "StatusDetails": "Success", "ResponseCode": 0})
        return
    threading.Thread(target=_run, args=(command, invocation, script, timeout), daemon=True).start()


def install() -> None:
    from moto.core.exceptions import JsonRESTError
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ssm.models import SimpleSystemManagerBackend as SSMBackend

    original_send = SSMBackend.send_command
    original_get = SSMBackend.get_command_invocation

    def send_command(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        ids = kwargs.get("instance_ids") or []
        unmanaged = [i for i in ids if not _managed(i)]
        if unmanaged:
            raise JsonRESTError(
                "InvalidInstanceId",
                f"Instances [[{', '.join(unmanaged)}]] not in a valid state for account {DEFAULT_ACCOUNT_ID}",
            )
        command = original_send(self, *args, **kwargs)
        script = "\n".join(command.parameters.get("commands", []))
        timeout = float((command.parameters.get("executionTimeout") or [3600])[0])
        sent = bed_clock.now()
        with _lock:
            settings = dict(_settings)
            _visible_at[command.command_id] = sent + settings["invisible_seconds"]
            for invocation in command.invocations:
                invocation.update(
                    {
                        "Status": "Pending",
                        "StatusDetails": "Pending",
                        "ResponseCode": -1,
                        "StandardOutputContent": "",
                        "StandardErrorContent": "",
                        "ExecutionStartDateTime": "",
                        "ExecutionEndDateTime": "",
                        "ExecutionElapsedTime": "",
                    }
                )
            command.completed_count = 0
            _roll_up(command)
        for invocation in command.invocations:
            bed_clock.at(
                sent + settings["delivery_seconds"],
                lambda inv=invocation: _deliver(command, inv, script, timeout, command.timeout_seconds, sent),
            )
        return command

    def get_command_invocation(self, command_id, instance_id, plugin_name):  # noqa: ANN001, ANN202
        with _lock:
            visible_at = _visible_at.get(command_id)
        if visible_at is not None and bed_clock.now() < visible_at:
            raise JsonRESTError("InvocationDoesNotExist", "")
        invocation = original_get(self, command_id, instance_id, plugin_name)
        with _lock:
            return dict(invocation)

    def cancel_command(self, command_id, instance_ids):  # noqa: ANN001, ANN202
        command = self.get_command_by_id(command_id)  # InvalidCommandId for an unknown one
        to_kill = []
        with _lock:
            for invocation in command.invocations:
                instance_id = invocation["InstanceId"]
                if instance_ids and instance_id not in instance_ids:
                    continue
                key = (command_id, instance_id)
                if invocation["Status"] == "Pending":
                    _cancelled.add(key)
                    invocation.update({"Status": "Cancelled", "StatusDetails": "Cancelled", "ResponseCode": -1})
                elif invocation["Status"] == "InProgress" and key in _by_invocation:
                    process = _by_invocation[key]
                    process.cancelled = True
                    invocation.update({"Status": "Cancelling", "StatusDetails": "Cancelling"})
                    to_kill.append(process)
            _roll_up(command)
        for process in to_kill:
            _kill(process)
        return {}

    def cancel_command_response(self):  # noqa: ANN001, ANN202
        from moto.core.responses import ActionResult

        return ActionResult(
            self.ssm_backend.cancel_command(self._get_param("CommandId"), self._get_param("InstanceIds", []))
        )

    from moto.ssm.responses import SimpleSystemManagerResponse

    SSMBackend.send_command = send_command
    SSMBackend.get_command_invocation = get_command_invocation
    SSMBackend.cancel_command = cancel_command
    SimpleSystemManagerResponse.cancel_command = cancel_command_response

    @bed_routes.route("POST", "/_testbed/ssm/instances")
    def _register(request: dict) -> dict:
        env = {k: str(v) for k, v in request.get("env", {}).items()}
        if "HOME" in env:
            raise ValueError("SSM gives a script no HOME (it runs as root with the agent's environment): register none")
        with _lock:
            _instances[request["instance_id"]] = env
        return {}

    @bed_routes.route("POST", "/_testbed/ssm/settings")
    def _configure(request: dict) -> dict:
        unknown = set(request) - set(_settings)
        if unknown:
            raise ValueError(f"unknown SSM settings {sorted(unknown)}; known: {sorted(_settings)}")
        with _lock:
            for key, value in request.items():
                if float(value) < 0:
                    raise ValueError(f"{key} must not be negative")
                _settings[key] = float(value)
            return dict(_settings)

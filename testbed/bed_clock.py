"""Bed time: the clock the test bed's timed behaviours (fake_ssm, fake_elbv2, fake_ec2) run on.

AWS takes its time: an SSM invocation is not there for a moment after SendCommand, a new load
balancer target is `initial` for HealthyThreshold x Interval plus the instance's boot, a reclaimed
Spot instance is `shutting-down` for a while. The bed reproduces those durations on *bed time*,
which advances

* with real time, times the emulator's time scale (1 unless a test sets it with
  `POST /_testbed/time-scale {"scale": 30}`: bed time then runs 30 times faster, so a 90-second
  health wait takes 3 real seconds), and
* with every forward move of the emulator's clock (`POST /_testbed/clock`): moving it five minutes
  ahead makes five minutes pass for every pending behaviour at once. Moving it back (to set a
  scenario's date) does not rewind them: bed time never goes backwards.

Timers (`at`) run on one scheduler thread, which looks every 20 ms of real time.
"""

import threading
from datetime import datetime

# Read through the module at each call: freezegun replaces a copy held here when it starts.
import freezegun.api as _freezegun

import bed_routes

_lock = threading.Lock()
_bed = 0.0
_last_real = _freezegun.real_monotonic()
_scale = 1.0
_timers: list[tuple[float, int, object]] = []
_timer_seq = 0
_wake = threading.Event()


def now() -> float:
    """Seconds of bed time since the emulator started."""
    global _bed, _last_real
    with _lock:
        real = _freezegun.real_monotonic()
        _bed += (real - _last_real) * _scale
        _last_real = real
        return _bed


def scale() -> float:
    with _lock:
        return _scale


def _jump(seconds: float) -> None:
    global _bed
    now()
    if seconds > 0:
        with _lock:
            _bed += seconds
        _wake.set()


def set_scale(value: float) -> None:
    global _scale
    if not value > 0:
        raise ValueError(f"the time scale must be a positive number, not {value!r}")
    now()  # what passed so far passed at the old rate
    with _lock:
        _scale = float(value)
    _wake.set()


def at(bed_time: float, action) -> None:  # noqa: ANN001
    """Runs `action()` on the scheduler thread once bed time reaches `bed_time`."""
    global _timer_seq
    with _lock:
        _timer_seq += 1
        _timers.append((bed_time, _timer_seq, action))
    _wake.set()


def _scheduler() -> None:
    import sys
    import traceback

    while True:
        _wake.wait(0.02)
        _wake.clear()
        current = now()
        with _lock:
            due = sorted(t for t in _timers if t[0] <= current)
            for t in due:
                _timers.remove(t)
        for _, _, action in due:
            try:
                action()
            except Exception:  # a broken timer must be seen, and must not stop the others
                traceback.print_exc(file=sys.stderr)


def install(clock) -> None:  # noqa: ANN001
    """Follows the emulator's freezegun clock: a forward move of it is a jump of bed time."""
    original = clock.move_to

    def move_to(target) -> None:  # noqa: ANN001
        before = datetime.now()
        original(target)
        _jump((datetime.now() - before).total_seconds())

    clock.move_to = move_to
    threading.Thread(target=_scheduler, name="bed-clock", daemon=True).start()

    @bed_routes.route("POST", "/_testbed/time-scale")
    def _set_scale(request: dict) -> dict:
        set_scale(float(request["scale"]))
        return {"scale": scale(), "bed_seconds": now()}

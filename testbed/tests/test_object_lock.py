"""fake_object_lock: which retention changes AWS refuses."""

from datetime import datetime, timezone

from fake_object_lock import refusal

NOW = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)
LATER, SOONER, PAST = "2026-12-25T02:30:00Z", "2026-11-26T02:30:00Z", "2026-11-01T00:00:00Z"


def test_compliance_is_never_weakened():
    assert refusal("COMPLIANCE", LATER, "COMPLIANCE", SOONER, True, NOW)
    assert refusal("COMPLIANCE", LATER, "GOVERNANCE", LATER, True, NOW)
    assert refusal("COMPLIANCE", LATER, None, None, True, NOW)
    assert refusal("COMPLIANCE", SOONER, "COMPLIANCE", LATER, False, NOW) is None


def test_governance_is_weakened_only_with_the_bypass():
    assert refusal("GOVERNANCE", LATER, "GOVERNANCE", SOONER, False, NOW)
    assert refusal("GOVERNANCE", LATER, None, None, False, NOW)
    assert refusal("GOVERNANCE", LATER, "GOVERNANCE", SOONER, True, NOW) is None
    assert refusal("GOVERNANCE", SOONER, "GOVERNANCE", LATER, False, NOW) is None
    assert refusal("GOVERNANCE", SOONER, "COMPLIANCE", LATER, False, NOW) is None


def test_a_retention_that_passed_restricts_nothing():
    assert refusal("COMPLIANCE", PAST, "GOVERNANCE", SOONER, False, NOW) is None
    assert refusal(None, None, "GOVERNANCE", SOONER, False, NOW) is None

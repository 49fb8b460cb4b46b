"""Leadership on this replica's own clock: when another's Lease counts as expired, and when our writes stop."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bentham.controller.leadership import LeadershipLost, LeaseObserver, LeaseRecord, LeaseSettings, WriteFence


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(holder: str, renewed_second: int) -> LeaseRecord:
    renewed = datetime(2030, 1, 1, 0, 0, renewed_second, tzinfo=UTC)
    return LeaseRecord(holder, renewed, renewed, 1, 15)


def test_another_replicas_lease_expires_15s_after_we_saw_it_change_whatever_its_renew_time_says() -> None:
    clock = Clock()
    observer = LeaseObserver(clock)
    # Its renewTime is years in the past by any wall clock: only when we saw it change counts.
    observer.observe(LeaseRecord("other", datetime(2001, 1, 1, tzinfo=UTC), None, 3, 15))
    assert observer.held_by_other("me")

    clock.now += 14.9
    observer.observe(LeaseRecord("other", datetime(2001, 1, 1, tzinfo=UTC), None, 3, 15))  # unchanged
    assert observer.held_by_other("me")
    clock.now += 0.2
    assert not observer.held_by_other("me")


def test_a_renewal_we_see_restarts_the_lease_on_our_clock() -> None:
    clock = Clock()
    observer = LeaseObserver(clock)
    observer.observe(record("other", 0))
    clock.now += 14
    observer.observe(record("other", 5))  # it renewed: a sign of life, whenever its clock says that was

    clock.now += 14
    assert observer.held_by_other("me")
    clock.now += 2
    assert not observer.held_by_other("me")


def test_a_free_lease_or_our_own_is_never_held_by_another() -> None:
    observer = LeaseObserver(Clock())
    assert not observer.held_by_other("me"), "never seen"
    observer.observe(LeaseRecord(None, None, None, 2, 15))
    assert not observer.held_by_other("me")
    observer.observe(record("me", 1))
    assert not observer.held_by_other("me")


def test_the_fence_is_closed_until_leadership_and_open_until_the_renew_deadline() -> None:
    clock = Clock()
    fence = WriteFence("me", clock)
    assert not fence.is_open()

    fence.open_until(clock.now + 10)
    assert fence.is_open()
    clock.now += 9.9
    fence.check()
    fence.open_until(clock.now + 10)  # renewed in time
    clock.now += 9.9
    assert fence.is_open()


def test_a_fence_that_lapsed_stays_closed_even_if_a_late_renewal_succeeds() -> None:
    clock = Clock()
    fence = WriteFence("me", clock)
    fence.open_until(clock.now + 10)

    clock.now += 30  # paused (SIGSTOP, GC, a frozen VM) past the deadline
    with pytest.raises(LeadershipLost, match="me does not hold the leader Lease"):
        fence.check()
    fence.open_until(clock.now + 10)
    assert not fence.is_open()


def test_a_closed_fence_never_reopens() -> None:
    clock = Clock()
    fence = WriteFence("me", clock)
    fence.open_until(clock.now + 10)
    fence.close()
    fence.open_until(clock.now + 10)
    assert not fence.is_open()


def test_without_leader_election_the_fence_never_closes_by_itself() -> None:
    fence = WriteFence.always_open("me")
    fence.check()
    fence.close()
    assert not fence.is_open()


def test_the_renew_deadline_must_fall_inside_the_lease() -> None:
    with pytest.raises(ValueError, match="renew_every_s < renew_deadline_s < duration_s"):
        LeaseSettings(duration_s=15, renew_deadline_s=15)

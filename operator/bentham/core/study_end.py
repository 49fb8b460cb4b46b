"""When a study's running time ends: its deadline, or its time-out, whichever comes first.

A manifest can bound a study two ways: `deadline`, a moment on the clock, and
`execution.timeouts.studyTimeoutMs`, an amount of *running* time (paused time excluded, see
`running_time`). Whichever comes first is the study's end, and everything the deadline does
(figures, at-risk, escalation, what passing it does under `policy.onDeadlineMissed`) is done
against that end.

The time-out's moment is derived from the status's running-time fields, so it is the same in
every decision:

- running: the current stretch's start plus the running time still left; fixed for the stretch;
- paused with time left: now plus the time left. It moves with the clock, because paused time
  does not count; the status shows it so that a person sees what is left;
- reached in an earlier stretch (the study stopped at its time-out, or a person let it run on):
  the moment the last status recorded, which the stretch that crossed the limit wrote exactly;
  `now` if there is none.

The share of the time used (for the at-risk rule and the escalation stages) is running time
over the time-out, so a paused study's share stands still: `window_start` is the moment a
clock-time window of the same share would have begun.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bentham.api.manifest import Manifest
from bentham.api.status import DeadlineSetBy, DeadlineStatus
from bentham.core.running_time import RunningTime
from bentham.core.timestamps import as_utc, parse_rfc3339, rfc3339


@dataclass(frozen=True)
class StudyEnd:
    """The moment the study's running time ends, and which bound sets it."""

    at: datetime
    set_by: DeadlineSetBy
    timeout_ms: int | None = None
    """The manifest's studyTimeoutMs, for the messages of a time-out."""

    @property
    def text(self) -> str:
        return rfc3339(self.at)

    @property
    def name(self) -> str:
        """`the deadline` or `the study time-out`, for messages."""
        return "the deadline" if self.set_by is DeadlineSetBy.DEADLINE else "the study time-out"

    def describe(self) -> str:
        """`the deadline 2026-12-01T00:00:00Z`, or the time-out with its running time."""
        if self.set_by is DeadlineSetBy.DEADLINE:
            return f"the deadline {self.text}"
        return (
            f"the study time-out ({_minutes(self.timeout_ms or 0)} of running time, "
            f"execution.timeouts.studyTimeoutMs) at {self.text}"
        )


def study_end(
    manifest: Manifest, running: RunningTime, previous: DeadlineStatus | None, now: datetime
) -> StudyEnd | None:
    """The study's end now: the earlier of its deadline and its time-out; None without either."""
    ends = []
    if manifest.deadline is not None:
        ends.append(StudyEnd(as_utc(manifest.deadline), DeadlineSetBy.DEADLINE))
    limit = manifest.study_timeout_ms
    if limit is not None:
        ends.append(StudyEnd(_time_out_at(limit, running, previous, now), DeadlineSetBy.STUDY_TIMEOUT, limit))
    # On a tie the deadline, the bound a person wrote as a moment, names the end.
    return min(ends, key=lambda end: end.at) if ends else None


def window_start(end: StudyEnd, created_at: datetime, running_seconds: float, now: datetime) -> datetime:
    """Where the time window to `end` begins: the creation for a deadline, `now` minus running time for a time-out."""
    if end.set_by is DeadlineSetBy.DEADLINE:
        return created_at
    return now - timedelta(seconds=running_seconds)


def _time_out_at(limit_ms: int, running: RunningTime, previous: DeadlineStatus | None, now: datetime) -> datetime:
    """When running time reaches `limit_ms` (the rules in the module docstring)."""
    left = timedelta(milliseconds=limit_ms) - timedelta(seconds=running.seconds)
    if left <= timedelta(0):  # reached in an earlier stretch: a person let it run on, or it is stopped
        recorded = _recorded_time_out(previous)
        if recorded is not None and recorded <= now:
            return recorded
    if running.since is not None:
        return parse_rfc3339(running.since) + left
    return now + left if left > timedelta(0) else now


def _recorded_time_out(previous: DeadlineStatus | None) -> datetime | None:
    """The time-out moment the previous status recorded, if it recorded one."""
    if previous is None or previous.setBy is not DeadlineSetBy.STUDY_TIMEOUT or previous.deadline is None:
        return None
    try:
        return parse_rfc3339(previous.deadline)
    except ValueError:
        return None


def _minutes(ms: int) -> str:
    minutes = ms / 60_000
    return f"{minutes:g} min"

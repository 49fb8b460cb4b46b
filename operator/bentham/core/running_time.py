"""Running time: how long a study has been able to start cells, paused time excluded.

The deadline's current rate is measured over running time, so a paused study's rate does not
decay while it waits. The status keeps it as two fields that change only when the study starts
or stops running, never on a reconcile that changes nothing:

- `runningSeconds`: whole seconds of the stretches that have ended;
- `runningSince`: when the current stretch began (absent when not running).

A study runs while it is `executing`, and while it waits in `human_intervention_required` with
cells still allowed to start (only some surfaces blocked). Queued, paused and stopped studies
do not run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bentham.api.status import StudyState, StudyStatus
from bentham.core.timestamps import parse_rfc3339, rfc3339


@dataclass(frozen=True)
class RunningTime:
    """The status's running-time fields."""

    seconds: int
    """Whole seconds of the finished stretches."""
    since: str | None
    """Start of the current stretch (RFC 3339), None when not running."""

    def at(self, now: datetime) -> float:
        """Seconds of running time up to `now`."""
        return self.seconds + (max(0.0, (now - parse_rfc3339(self.since)).total_seconds()) if self.since else 0.0)

    def follow(self, *, running: bool, now: datetime) -> RunningTime:
        """The fields after this decision: a stretch starts or ends at `now`, or nothing changes."""
        if running and self.since is None:
            return RunningTime(self.seconds, rfc3339(now))
        if not running and self.since is not None:
            return RunningTime(int(self.at(now)), None)
        return self


def running_time_of(previous: StudyStatus) -> RunningTime:
    """The running time a status records.

    A status written before running time was recorded has no `runningSince` while executing:
    its stretch is taken to have begun at `startedAt`.
    """
    since = previous.runningSince
    if since is None and previous.state is StudyState.EXECUTING and previous.runningSeconds == 0:
        since = previous.startedAt
    try:
        if since is not None:
            parse_rfc3339(since)
    except ValueError:
        since = None  # an unreadable time counts as no stretch rather than failing the study
    return RunningTime(previous.runningSeconds, since)


def is_running(state: StudyState, *, all_cells_stopped: bool) -> bool:
    """Whether a study in `state` may start cells, so its time counts towards the rate."""
    if state is StudyState.EXECUTING:
        return True
    return state is StudyState.HUMAN_INTERVENTION_REQUIRED and not all_cells_stopped

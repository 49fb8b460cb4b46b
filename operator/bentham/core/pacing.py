"""When a study's new status must be written at once, and when it may wait for the next write.

A study's worker decides after every burst of Job changes. Most of those decisions only move
counts: cells completed, new attempts started. Writing each of them costs an API write, an etcd
revision and a watch event of the whole Study for every watcher; for many small studies that
is most of the operator's traffic. Such a status may therefore wait and be written with
whatever the next decisions add to it: until the operator's status interval has passed *and*
it records a step of new outcomes (4 % of the study's cells, at least 1 and at most 20), or
for `STALE_INTERVALS` intervals at most. A fast study thus shows its progress every interval;
a slow one every step, so that no study costs much more than one write per 20 cells; a small
one every outcome.

Waiting loses nothing. The Jobs whose outcomes an unwritten status records are deleted only
after it is written, so a crash meanwhile leaves them to be judged again from the last status
written; Jobs started meanwhile are adopted from their labels (`outcomes.record_outcomes`).

Everything else is written at once: a new state, condition, intervention, parallelism, deadline
verdict or spec generation, any failed or skipped cell, and anything that is announced (an Event other than
a summary of completed cells, or a notification), since nothing is announced before the status
that records it is written.
"""

from __future__ import annotations

from bentham.api.status import StudyStatus
from bentham.core.decision import Decision

DEFERRABLE_EVENTS = frozenset({"CellsCompleted"})
STEP_FRACTION = 0.04
"""A status that only moves counts waits for new outcomes of this share of the study's cells…"""
STEP_MAX_CELLS = 20
"""…but never for more than this many."""
STALE_INTERVALS = 6
"""However few outcomes it adds, a status waits at most this many status intervals."""


def hold_for(written: StudyStatus | None, decision: Decision, *, since_write_s: float, interval_s: float) -> float:
    """How much longer `decision.status` may wait to be written, in seconds; 0 means now.

    `written` is the status last written, `since_write_s` how long ago it was written.
    """
    if write_at_once(written, decision):
        return 0.0
    stepped = outcomes_recorded(decision.status) - outcomes_recorded(written) >= progress_step(decision.status)
    limit = interval_s if stepped else STALE_INTERVALS * interval_s
    return max(0.0, limit - since_write_s)


def progress_step(status: StudyStatus) -> int:
    """How many new outcomes make a status that only moves counts worth writing once the interval is over."""
    total = status.progress.totalCells if status.progress is not None else 0
    return max(1, min(STEP_MAX_CELLS, int(total * STEP_FRACTION)))


def outcomes_recorded(status: StudyStatus | None) -> int:
    """Cells whose outcome the status records: completed or failed for good."""
    progress = status.progress if status is not None else None
    return progress.completedCells + progress.failedCells if progress is not None else 0


def write_at_once(written: StudyStatus | None, decision: Decision) -> bool:
    """Whether `decision.status` must be written now rather than with a later decision's."""
    if decision.notifications or any(event.reason not in DEFERRABLE_EVENTS for event in decision.events):
        return True
    return _essentials(written) != _essentials(decision.status)


def _essentials(status: StudyStatus | None) -> tuple[object, ...]:
    """What a status says besides its counts, its checkpoint and its rates."""
    if status is None:
        return (None,) * 15
    deadline = status.deadline
    return (
        status.state,
        status.observedGeneration,
        [(c.type, c.status, c.reason) for c in status.conditions],
        status.intervention,
        status.parallelism,
        status.warnings,
        status.startedAt,
        status.completedAt,
        status.runningSince,
        deadline.deadline if deadline is not None else None,
        deadline.atRisk if deadline is not None else None,
        deadline.missed if deadline is not None else None,
        deadline.escalationStage if deadline is not None else None,
        status.progress.failedCells if status.progress is not None else None,
        status.progress.skippedCells if status.progress is not None else None,
    )

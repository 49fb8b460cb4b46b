"""When a study's new status must be written at once, and when it may wait for the next write.

A study's worker decides after every burst of Job changes. Most of those decisions only move
counts: cells completed, new attempts started. Writing each of them costs an API write, an etcd
revision and a watch event of the whole Study for every watcher; for many small studies that
is most of the operator's traffic. Such a status may therefore wait, up to the operator's status
interval, and be written with whatever the next decisions add to it.

Waiting loses nothing. The Jobs whose outcomes an unwritten status records are deleted only
after it is written, so a crash meanwhile leaves them to be judged again from the last status
written; Jobs started meanwhile are adopted from their labels (`outcomes.record_outcomes`).

Everything else is written at once: a new state, condition, intervention, parallelism, deadline
verdict or spec generation, any failed cell, and anything that is announced (an Event other than
a summary of completed cells, or a notification), since nothing is announced before the status
that records it is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bentham.core.decision import Decision

DEFERRABLE_EVENTS = frozenset({"CellsCompleted"})


def write_at_once(written: Mapping[str, Any] | None, decision: Decision) -> bool:
    """Whether `decision.status` must be written now rather than with a later decision's."""
    if decision.notifications or any(event.reason not in DEFERRABLE_EVENTS for event in decision.events):
        return True
    return _essentials(written) != _essentials(decision.status)


def _essentials(status: Mapping[str, Any] | None) -> tuple[object, ...]:
    """What a status says besides its counts, its checkpoint and its rates."""
    status = status or {}
    deadline = status.get("deadline") or {}
    return (
        status.get("state"),
        status.get("observedGeneration"),
        [(c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or []],
        status.get("intervention"),
        status.get("parallelism"),
        status.get("warnings"),
        status.get("startedAt"),
        status.get("completedAt"),
        status.get("runningSince"),
        deadline.get("deadline"),
        deadline.get("atRisk"),
        deadline.get("missed"),
        deadline.get("escalationStage"),
        (status.get("progress") or {}).get("failedCells"),
    )

"""Assembling the study's new status from the lifecycle and the cell records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bentham.api.manifest import Manifest
from bentham.api.status import (
    ActualCost,
    Condition,
    CostEstimate,
    DeadlineStatus,
    Intervention,
    MatrixFingerprint,
    StudyStatus,
)
from bentham.core.checkpoint import CellRecord, write_checkpoint
from bentham.core.conditions import AT_RISK, clip, condition_of, conditions_for, with_condition
from bentham.core.lifecycle import Lifecycle, state_message
from bentham.core.progress import progress_from
from bentham.core.running_time import RunningTime, is_running, running_time_of
from bentham.core.states import STATE_REASONS, is_terminal
from bentham.core.tally import Tally
from bentham.core.timestamps import rfc3339


@dataclass(frozen=True)
class RecordedCells:
    """The cell records as a decision leaves them, and as the last checkpoint held them."""

    manifest: Manifest
    records: Sequence[CellRecord]
    stored: Sequence[CellRecord] | None
    in_flight_jobs: list[str]
    matrix: MatrixFingerprint
    """The cell matrix the records are about."""
    counted: Tally
    """The tally of `records`."""


@dataclass(frozen=True)
class Tracking:
    """What a decision tracks besides the state and the cells."""

    running: RunningTime
    """Running time as it stood before this decision; `compose_status` ends or starts a stretch."""
    deadline: DeadlineStatus | None
    at_risk: Condition | None
    consecutive_failures: dict[str, int]
    intervention: Intervention | None
    parallelism: int | None
    parallelism_changed_at: str | None
    message: str | None = None
    """The status message, when the state has none of its own (waiting for a person)."""
    cost: ActualCost | None = None
    """The reported cost with this decision's outcomes added; None: as before (sums only grow)."""


def carried_tracking(previous: StudyStatus) -> Tracking:
    """The previous status's tracking, unchanged (a decision that ends before reading the cells)."""
    return Tracking(
        running=running_time_of(previous),
        deadline=previous.deadline,
        at_risk=None,
        consecutive_failures=dict(previous.consecutiveFailures),
        intervention=previous.intervention,
        parallelism=previous.parallelism,
        parallelism_changed_at=previous.parallelismChangedAt,
        cost=previous.cost,
    )


def compose_status(
    life: Lifecycle,
    *,
    previous: StudyStatus,
    generation: int,
    now: datetime,
    cells: RecordedCells | None = None,
    warnings: list[str] | None = None,
    tracking: Tracking | None = None,
    estimate: CostEstimate | None = None,
) -> StudyStatus:
    """The complete new status. Without `cells`, the previous counts stand; without `estimate`, the previous one.

    In a terminal state the study stops running, is no longer at risk and waits for nobody.
    """
    assert life.state is not None
    tracking = tracking if tracking is not None else carried_tracking(previous)
    progress, checkpoint, matrix = previous.progress, previous.checkpoint, previous.matrix
    if cells is not None:
        matrix = cells.matrix
        progress = progress_from(cells.manifest, cells.counted)
        checkpoint = write_checkpoint(
            cells.records,
            previous=previous.checkpoint,
            previous_records=cells.stored,
            in_flight=cells.in_flight_jobs,
            now=now,
            counted=cells.counted,
        )
    reason = life.reason or STATE_REASONS[life.state]
    message = clip(life.message or tracking.message or state_message(life.state, progress))
    deadline, at_risk, intervention = tracking.deadline, tracking.at_risk, tracking.intervention
    ended = is_terminal(life.state)
    if ended:
        intervention = None
        if deadline is not None:
            deadline = deadline.model_copy(update={"atRisk": False, "atRiskSince": None, "escalationStage": None})
        if at_risk is not None or any(c.type == AT_RISK for c in previous.conditions):
            at_risk = condition_of(
                AT_RISK,
                False,
                reason=reason,
                message=message,
                previous=previous.conditions,
                generation=generation,
                now=now,
            )
    running_now = is_running(life.state, all_cells_stopped=intervention is not None and intervention.allCellsStopped)
    running = tracking.running.follow(running=running_now, now=now)
    started_at = previous.startedAt
    if started_at is None and running_now:
        started_at = rfc3339(now)
    conditions = conditions_for(
        life.state,
        reason=reason,
        message=message,
        previous=previous.conditions,
        generation=generation,
        now=now,
    )
    if at_risk is not None:
        conditions = with_condition(conditions, at_risk)
    return StudyStatus(
        state=life.state,
        message=message,
        observedGeneration=generation,
        conditions=conditions,
        progress=progress,
        estimate=estimate if estimate is not None else previous.estimate,
        cost=tracking.cost if tracking.cost is not None else previous.cost,
        deadline=deadline,
        checkpoint=checkpoint,
        matrix=matrix,
        parallelism=tracking.parallelism,
        parallelismChangedAt=tracking.parallelism_changed_at,
        runningSeconds=running.seconds,
        runningSince=running.since,
        consecutiveFailures=tracking.consecutive_failures,
        intervention=intervention,
        warnings=warnings if warnings is not None else previous.warnings,
        startedAt=started_at,
        completedAt=previous.completedAt or (rfc3339(now) if ended else None),
    )

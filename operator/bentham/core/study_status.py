"""Assembling the study's new status from the lifecycle and the cell records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bentham.api.manifest import Manifest
from bentham.api.status import DeadlineStatus, StudyState, StudyStatus
from bentham.core.checkpoint import CellRecord, write_checkpoint
from bentham.core.conditions import clip, conditions_for
from bentham.core.lifecycle import STATE_REASONS, Lifecycle, state_message
from bentham.core.progress import progress_of
from bentham.core.states import is_terminal
from bentham.core.timestamps import rfc3339


@dataclass(frozen=True)
class RecordedCells:
    """The cell records as a decision leaves them, and as the last checkpoint held them."""

    manifest: Manifest
    records: Sequence[CellRecord]
    stored: Sequence[CellRecord] | None
    in_flight_jobs: list[str]


def compose_status(
    life: Lifecycle,
    *,
    previous: StudyStatus,
    generation: int,
    now: datetime,
    cells: RecordedCells | None = None,
    warnings: list[str] | None = None,
    parallelism: int | None = None,
) -> dict[str, Any]:
    """The complete new status, as the API stores it. Without `cells`, the previous counts stand."""
    assert life.state is not None
    progress, checkpoint, deadline = previous.progress, previous.checkpoint, previous.deadline
    if cells is not None:
        progress = progress_of(cells.manifest, cells.records)
        checkpoint = write_checkpoint(
            cells.records,
            previous=previous.checkpoint,
            previous_records=cells.stored,
            in_flight=cells.in_flight_jobs,
            now=now,
        )
        given = cells.manifest.deadline
        deadline = DeadlineStatus(deadline=rfc3339(given)) if given is not None else None
    reason = life.reason or STATE_REASONS[life.state]
    message = clip(life.message or state_message(life.state, progress))
    started_at = previous.startedAt
    if started_at is None and life.state is StudyState.EXECUTING:
        started_at = rfc3339(now)
    status = StudyStatus(
        state=life.state,
        message=message,
        observedGeneration=generation,
        conditions=conditions_for(
            life.state,
            reason=reason,
            message=message,
            previous=previous.conditions,
            generation=generation,
            now=now,
        ),
        progress=progress,
        deadline=deadline,
        checkpoint=checkpoint,
        parallelism=parallelism if parallelism is not None else previous.parallelism,
        warnings=warnings if warnings is not None else previous.warnings,
        startedAt=started_at,
        completedAt=previous.completedAt or (rfc3339(now) if is_terminal(life.state) else None),
    )
    return dump_status(status)


def dump_status(status: StudyStatus) -> dict[str, Any]:
    """The status as the API stores it: JSON types, unset fields left out."""
    return status.model_dump(mode="json", exclude_none=True)

"""The webhook notifications of one decision, tied to what the decision records.

A decision notes each notifiable occurrence as it happens (a state move, a cell failed for good,
an at-risk announcement, an intervention); once the final status is known the notes become
`Notification`s whose payload carries that status's state and progress. Every occurrence is
tied to something the status records (a state, a cell's outcome, an at-risk stage, an open
intervention), so a decision fed its own status back notes nothing again.

Ids are `<study uid>:<event>` for what happens once in a study's life (created, started,
cancelled, completed, failed), `<uid>:cell.failed:<cell index>` for a cell, and
`<uid>:<event>:<discriminator>` for what may repeat (paused and resumed at a time, at risk at a
stretch and stage, needs intervention at a time and cause).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bentham.api.manifest import Manifest
from bentham.api.status import StudyStatus
from bentham.core.cells import cell_at, cell_key
from bentham.core.decision import Notification, NotificationEvent
from bentham.core.outcomes import CellOutcome
from bentham.core.timestamps import rfc3339_millis


@dataclass(frozen=True)
class Note:
    """A notifiable occurrence, before the decision's final status is known."""

    event: NotificationEvent
    discriminator: str | None
    """What tells this occurrence from others of the same event; None for once-in-a-life events."""
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    """Extra payload keys, e.g. `cell`."""


@dataclass(frozen=True)
class StudyIdentity:
    """Who the notifications are about."""

    name: str
    namespace: str
    uid: str
    tenant_id: str | None


def cell_failed_notes(outcomes: Sequence[CellOutcome], manifest: Manifest) -> list[Note]:
    """One `cell.failed` note per cell that failed for good in this decision."""
    notes = []
    for outcome in outcomes:
        if outcome.result != "failed":
            continue
        cell = cell_at(manifest, outcome.cell_index)
        verdict = outcome.verdict
        details: dict[str, Any] = {
            "cell": {
                "key": cell_key(cell),
                "index": cell.index,
                "queryIndex": cell.query_index,
                "surface": cell.surface.value,
                "location": cell.location.value,
                "attempts": outcome.attempt,
                "reason": verdict.reason,
                "code": verdict.code,
                "message": verdict.message,
            }
        }
        message = f"Cell {cell_key(cell)} failed for good after {outcome.attempt} attempt(s): {verdict.message}"
        notes.append(Note("cell.failed", str(cell.index), verdict.reason, message, details))
    return notes


def notifications(
    notes: Sequence[Note], *, study: StudyIdentity, status: StudyStatus, now: datetime
) -> list[Notification]:
    """The notes as notifications, each payload built from the decision's final `status`."""
    if not notes:
        return []
    progress = status.progress
    summary: dict[str, Any] = {"total": 0, "completed": 0, "failed": 0, "executing": 0, "pending": 0, "percent": "0%"}
    if progress is not None:
        summary = {
            "total": progress.totalCells,
            "completed": progress.completedCells,
            "failed": progress.failedCells,
            "executing": progress.executingCells,
            "pending": progress.pendingCells,
            "percent": progress.percent,
        }
    out = []
    for note in notes:
        payload: dict[str, Any] = {
            "study": {
                "name": study.name,
                "namespace": study.namespace,
                "uid": study.uid,
                "tenantId": study.tenant_id,
            },
            "state": status.state.value if status.state is not None else None,
            "reason": note.reason,
            "message": note.message,
            "timestamp": rfc3339_millis(now),
            "progress": dict(summary),
            **copy.deepcopy(note.details),
        }
        if note.event in ("study.at_risk", "study.needs_intervention") and status.deadline is not None:
            payload["deadline"] = status.deadline.as_stored()
        if note.event == "study.needs_intervention" and status.intervention is not None:
            payload["intervention"] = status.intervention.as_stored()
        suffix = f":{note.discriminator}" if note.discriminator is not None else ""
        out.append(Notification(event=note.event, id=f"{study.uid}:{note.event}{suffix}", payload=payload))
    return out

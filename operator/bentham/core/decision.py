"""What the decider is given about the world, and what it decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bentham.api.status import StudyStatus
from bentham.core.cells import Cell
from bentham.core.checkpoint import Derived


@dataclass(frozen=True)
class ObservedJob:
    """A Job of the study as the shell found it."""

    name: str
    cell_index: int
    attempt: int
    phase: Literal["running", "succeeded", "failed"]
    termination_message: str | None
    """The executor container's terminated.message, if any."""
    failure_reason: str | None
    """E.g. the Job's Failed condition reason (DeadlineExceeded)."""
    finished_at: datetime | None
    uid: str | None = field(default=None, compare=False)
    """The Job's own uid, which its pods' controller reference names; not part of what the core decides on."""


@dataclass(frozen=True)
class StudyEvent:
    """A Kubernetes Event to post on the Study (and to the study's webhook)."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    cells: tuple[str, ...] = ()
    """For a summary of cells (`cell_events`): the cells `message` names, at most ten."""
    cell_count: int = 0
    """For a summary of cells: how many cells it is about, named or not."""


NotificationEvent = Literal[
    "study.created",
    "study.started",
    "study.paused",
    "study.resumed",
    "study.cancelled",
    "study.completed",
    "study.failed",
    "study.at_risk",
    "study.needs_intervention",
    "cell.failed",
]


@dataclass(frozen=True)
class Notification:
    """A message for the study's webhook (see docs/lifecycle.md, "Notifications").

    `id` is the same whenever the same occurrence is decided again (a status write lost and the
    decision redone), so the receiver can de-duplicate on it; `payload` is JSON-able as it is.
    """

    event: NotificationEvent
    id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class JobToCreate:
    """A Job to create; an AlreadyExists answer means it was created before and is fine."""

    name: str
    cell: Cell
    attempt: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    """Everything the shell applies: write status, delete, create, then post events and send notifications."""

    status: StudyStatus
    """The complete new status; turned into JSON only where it is sent."""
    create: list[JobToCreate]
    delete: list[str]
    """Jobs whose outcome `status` records (or that must stop): delete after the status write."""
    events: list[StudyEvent]
    requeue_after: float | None
    """Seconds until the decider must run again even if nothing happens (a retry or a deadline check)."""
    notifications: list[Notification] = field(default_factory=list)
    """Webhook messages to send after the status write succeeded, in order; never before it."""
    derived: Derived | None = None
    """For the next decision about this study (see `Derived`)."""

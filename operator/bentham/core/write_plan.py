"""What a study's worker does with a decision: the write plan.

The worker keeps three things between passes: the status it last wrote, the status the watch
last showed, and a status it decided but held back (`pacing`). These pure functions say which
of them to decide from, and what to do with the decision: write the status now or hold it,
which Jobs to delete and create, which Events and notifications go out, and when to decide
again. The worker carries out the plan in a straight line and judges nothing itself.

- **Which status is fresher.** The watch can lag behind our own writes; deciding from a stale
  checkpoint would re-run cells whose outcomes are already recorded and whose Jobs are already
  deleted. The checkpoint's sequence grows with every write that records a change, so the
  higher sequence wins; on a tie, the watch's Study if it carries the very status we wrote (a
  later change, to the spec say), else ours.
- **Which version a write is conditional on.** A status is kept with the `resourceVersion` of
  the Study that carried it (`StudyVersion`), and a decision is written only onto the version it
  was decided from: the API server refuses the write if anyone wrote the Study since, and the
  worker then re-reads it and decides again. So a replica that has lost the leadership, or any
  writer with a stale view, can never win with an older status.
- **Holding.** A held status deletes nothing and announces nothing: the Jobs whose outcomes it
  records stay until it is written (a crash meanwhile re-judges them from the last status
  written), and its Events wait, merged with later ones, for the write that records them. It
  only starts Jobs, which a later pass adopts from their labels. It is decided from again only
  while the Study is still the version it was decided from: once anything else has been written,
  it is dropped and the decision starts over from what is stored (which loses nothing: its
  outcomes' Jobs still exist).
- **Resync.** A study that has not ended is decided again at least every `RESYNC_SECONDS`,
  woken or not: a Job deleted by someone else wakes nobody.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from pydantic import ValidationError

from bentham.api.status import StudyStatus
from bentham.core.cell_events import merge_cell_events
from bentham.core.decision import Decision, JobToCreate, Notification, StudyEvent
from bentham.core.pacing import hold_for
from bentham.core.states import is_terminal

RESYNC_SECONDS = 30.0

StoredStatus: TypeAlias = StudyStatus | Mapping[str, Any]
"""A status as the API server has it: raw from a watch event, or typed as this operator wrote it."""


@dataclass(frozen=True)
class StudyVersion:
    """A status as the API server has it, and the `resourceVersion` of the Study that carried it."""

    status: StoredStatus | None
    resource_version: str | None = None


@dataclass(frozen=True)
class Held:
    """A status decided but not written yet, and the Events waiting for its write."""

    status: StudyStatus
    events: tuple[StudyEvent, ...] = ()
    base: str | None = None
    """The resourceVersion of the Study it was decided from; it is written only onto that version."""


@dataclass(frozen=True)
class WritePlan:
    """What to do after a decision, in this order: write, delete, create, announce."""

    write: StudyStatus | None
    """The status to write now; None when there is nothing to write or it is held."""
    delete: list[str]
    create: list[JobToCreate]
    events: list[StudyEvent]
    notifications: list[Notification]
    held: Held | None
    """What to keep for the next pass instead of writing it."""
    requeue_after: float | None
    """Decide again within this many seconds even if nothing wakes the study; None: only when woken."""
    newly_completed: int = 0
    """Cells whose completion `write` records for the first time (for metrics)."""
    newly_failed: int = 0


def checkpoint_sequence(status: StoredStatus | None) -> int:
    """The sequence of the status's checkpoint; -1 without one."""
    if status is None:
        return -1
    if isinstance(status, StudyStatus):
        return status.checkpoint.sequence if status.checkpoint is not None else -1
    sequence = (status.get("checkpoint") or {}).get("sequence")
    return sequence if isinstance(sequence, int) else -1


def stored_status(observed: StudyVersion, written: StudyVersion | None) -> StudyVersion:
    """The Study's status as the API server has it: what we last wrote, unless the watch shows a newer one."""
    if written is None or observed.resource_version == written.resource_version:
        return observed
    ours, theirs = checkpoint_sequence(written.status), checkpoint_sequence(observed.status)
    if ours != theirs:
        return written if ours > theirs else observed
    # A tie: the watch's is newer only if it carries our status (then changed elsewhere: the spec, say).
    return observed if _stored_form(written.status) == _stored_form(observed.status) else written


def status_to_decide_from(stored: StudyVersion, held: Held | None) -> StoredStatus | None:
    """The held status while the Study is still the version it was decided from; else the stored one."""
    if held is not None and held.base == stored.resource_version:
        return held.status
    return stored.status


def plan_write(
    version: StudyVersion, held: Held | None, decision: Decision, *, since_last_write: float, interval: float
) -> WritePlan:
    """What to write, delete, create and announce after `decision`.

    `version` is the Study's status as the API server has it (`stored_status`), `held` what the
    last pass held back, `since_last_write` the seconds since our last status write, `interval`
    the operator's status interval (`pacing`).
    """
    stored = version.status
    waiting = held.events if held is not None and held.base == version.resource_version else ()
    if _same(decision.status, stored):
        return _released(decision, None, waiting, stored=None)
    written = _typed(stored)
    wait = hold_for(written, decision, since_write_s=since_last_write, interval_s=interval)
    if wait > 0:
        requeue = min(decision.requeue_after, wait) if decision.requeue_after is not None else wait
        return WritePlan(
            write=None,
            delete=[],
            create=decision.create,
            events=[],
            notifications=[],
            held=Held(decision.status, (*waiting, *decision.events), base=version.resource_version),
            requeue_after=_resynced(requeue, decision.status),
        )
    return _released(decision, decision.status, waiting, stored=written)


def _released(
    decision: Decision, write: StudyStatus | None, waiting: tuple[StudyEvent, ...], *, stored: StudyStatus | None
) -> WritePlan:
    """The plan that writes `write` (if any) and carries out everything the decision asks."""
    completed = failed = 0
    if write is not None and write.progress is not None:
        before = stored.progress if stored is not None else None
        completed = max(0, write.progress.completedCells - (before.completedCells if before else 0))
        failed = max(0, write.progress.failedCells - (before.failedCells if before else 0))
    return WritePlan(
        write=write,
        delete=decision.delete,
        create=decision.create,
        events=merge_cell_events([*waiting, *decision.events]),
        notifications=decision.notifications,
        held=None,
        requeue_after=_resynced(decision.requeue_after, decision.status),
        newly_completed=completed,
        newly_failed=failed,
    )


def _stored_form(status: StoredStatus | None) -> Mapping[str, Any] | None:
    return status.as_stored() if isinstance(status, StudyStatus) else status


def _same(status: StudyStatus, stored: StoredStatus | None) -> bool:
    if stored is None:
        return False
    if isinstance(stored, StudyStatus):
        return status == stored
    return status.as_stored() == stored


def _typed(stored: StoredStatus | None) -> StudyStatus | None:
    """The stored status as a model; None when there is none or it does not read (then everything is new)."""
    if stored is None or isinstance(stored, StudyStatus):
        return stored
    try:
        return StudyStatus.model_validate(stored)
    except ValidationError:
        return None


def _resynced(requeue_after: float | None, status: StudyStatus) -> float | None:
    """`requeue_after`, but at most `RESYNC_SECONDS` for a study that has not ended."""
    if status.state is not None and is_terminal(status.state):
        return requeue_after
    return min(requeue_after or RESYNC_SECONDS, RESYNC_SECONDS)

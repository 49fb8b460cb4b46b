"""The last step of a decision: the new status, and everything the shell is to do about it.

`summarise` turns what the steps before it worked out (the lifecycle's moves and announcements,
the cell records, what is tracked besides them, the deadline to show) into the `Decision`;
`end_early` does the same for a study that ends before its cells could be read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from bentham.api.spec import StudySpec
from bentham.api.status import MatrixFingerprint, StudyState, StudyStatus
from bentham.core.checkpoint import CellRecord, Derived, checkpointed_retries
from bentham.core.deadline_watch import DeadlineWatch, Watched, requeue_after, shown_deadline
from bentham.core.decision import Decision, JobToCreate
from bentham.core.estimate import estimate_cost
from bentham.core.intervention import waiting_message
from bentham.core.jobs import job_name
from bentham.core.lifecycle import Lifecycle
from bentham.core.notifications import StudyIdentity, notifications
from bentham.core.pricing import PricingTable
from bentham.core.spec_read import SpecRead
from bentham.core.states import is_terminal
from bentham.core.study_status import RecordedCells, Tracking, compose_status
from bentham.core.success_rate import LowSuccess
from bentham.core.tally import Tally


@dataclasses.dataclass(frozen=True)
class Pass:
    """Who the decision is about, and what it started from."""

    study: StudyIdentity
    previous: StudyStatus
    generation: int
    now: datetime


@dataclasses.dataclass(frozen=True)
class Given:
    """What stays fixed while a valid study's decision advances."""

    this: Pass
    spec: StudySpec
    warnings: list[str]
    stored: list[CellRecord] | None
    """The records the checkpoint holds; None before the first."""
    watched: Watched
    matrix: MatrixFingerprint
    """The spec's cell matrix, the one the study started with."""
    pricing: PricingTable | None = None
    """The table the cost estimate is priced from; None: the built-in one."""
    counted: Tally | None = None
    """The tally of `stored`, left by the last decision (`Derived.tally`), if it still holds."""
    read: SpecRead | None = None
    """The spec as read (`core.spec_read`), for the next decision."""


def summarise(
    life: Lifecycle,
    given: Given,
    records: Sequence[CellRecord],
    tracking: Tracking,
    *,
    counted: Tally,
    create: Sequence[JobToCreate] = (),
    delete: Sequence[str],
    retry_in: float | None = None,
    watch: DeadlineWatch | None = None,
    missed: bool | None = None,
    low: LowSuccess | None = None,
) -> Decision:
    """The decision of a study whose cells were read: its status records `records`.

    `counted` is a tally of an earlier list of the same cells, advanced here to `records`.

    `watch` is this decision's deadline watch, if it got that far; `missed` whether the deadline
    counts as missed now (as before, if not given); `low` the success-rate warning, if any.
    """
    this, manifest = given.this, given.spec.manifest
    shown = shown_deadline(
        watch if watch is not None else DeadlineWatch(status=None),
        given.watched,
        missed=given.watched.missed if missed is None else missed,
        low=low,
        previous=this.previous,
        generation=this.generation,
        now=this.now,
    )
    life.announce(shown.events)
    message = waiting_message(tracking.intervention, life.current, this.study.name)
    counted = counted.advanced(records)
    in_flight = [
        job_name(this.study.name, this.study.uid, index, records[index].attempts) for index in sorted(counted.running)
    ]
    status = compose_status(
        life,
        previous=this.previous,
        generation=this.generation,
        now=this.now,
        cells=RecordedCells(manifest, records, given.stored, in_flight, given.matrix, counted),
        warnings=given.warnings,
        tracking=dataclasses.replace(tracking, deadline=shown.fresh, at_risk=shown.condition, message=message),
        # Estimated once, in the study's first status: later edits or a new table do not move it.
        estimate=estimate_cost(manifest, given.pricing) if this.previous.estimate is None else None,
    )
    if shown.carried is not None and not is_terminal(life.current):
        # Between refreshes the figures stand, so a reconcile that changes nothing writes nothing.
        quiet = status.model_copy(update={"deadline": shown.carried})
        if quiet == this.previous:
            status = quiet
    checkpoint = status.checkpoint
    derived = None
    if checkpoint is not None and checkpoint.cells:
        # Only retry times move to the checkpoint's milliseconds: the cells waiting to retry are all that change.
        tally = counted.changed(checkpointed_retries(counted, checkpoint))
        derived = Derived(checkpoint.cells, checkpoint.timestamp, tally.records, tally, given.read)
    return Decision(
        status=status,
        create=list(create),
        delete=sorted(set(delete)),
        events=life.events,
        requeue_after=requeue_after(given.watched.end, status, retry_in, now=this.now),
        notifications=notifications(life.notes, study=this.study, status=status, now=this.now),
        derived=derived,
    )


def end_early(life: Lifecycle, this: Pass, state: StudyState, reason: str, message: str, delete: list[str]) -> Decision:
    """Ends the study before its cells could be read: counts stay as they were, every Job goes."""
    life.end(state, reason, message)
    status = compose_status(life, previous=this.previous, generation=this.generation, now=this.now)
    return Decision(
        status=status,
        create=[],
        delete=delete,
        events=life.events,
        requeue_after=None,
        notifications=notifications(life.notes, study=this.study, status=status, now=this.now),
    )

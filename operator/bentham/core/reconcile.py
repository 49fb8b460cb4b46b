"""The decider: given a Study and its Jobs, everything that should happen next.

`decide()` is one pure function of the spec, the last status, the observed Jobs and `now`. It is
level-triggered: it never trusts that a previous decision was applied, only what it observes.
Called twice with the same inputs it returns the same decision; fed its own status back with
the same Jobs it starts no new attempt (it may ask again for Jobs it already asked for, under the
same names, until they show up), and posts no event and notes no notification twice.

It is a pipeline of small steps, each in the module named for its concern, read top to bottom:

1. read the status; a terminal study only has its leftover Jobs deleted;
2. validate the spec, and its executor against the admin's policy (`executor_policy`): a new
   study that is invalid fails, a running one is held (`spec_hold`);
3. read the checkpoint (`checkpoint`), or reuse the records the last decision derived; a spec
   whose cell matrix is not the one the study started with holds it too (`matrix`);
4. record the finished attempts (`outcomes`), announcing them (`cell_events`, `notifications`);
5. cancel; take a person's acknowledgement, reopening blocked cells (`intervention`);
6. fail early when a required surface can no longer reach its threshold (`coverage`), then
   start or pause (`lifecycle`);
7. past the deadline (or the time-out, `study_end`): skip the cells not started and complete, fail or ask for a person
   (`deadline_watch`);
8. block surfaces a person must save (`intervention`), follow pause and resume;
9. watch the deadline and adjust parallelism (`deadline_watch`, `escalation`), and the
   success rate (`success_rate`);
10. recreate lost Jobs, then complete once every cell settled, or fill the free slots in the
    fair order, required surfaces' cells first (`fanout`);
11. summarise: the new status, what to create, delete, announce and notify (`summary`).

In a terminal state no cell is in flight: attempts cut short go back to `pending` (their
attempt count kept), so `executingCells` is 0. docs/lifecycle.md tells the whole life for users.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from bentham.api.manifest import Manifest
from bentham.api.status import Intervention, Progress, StudyState, StudyStatus
from bentham.api.validation import Invalid
from bentham.core.actual_cost import add_reported_costs
from bentham.core.cell_events import cell_events
from bentham.core.checkpoint import (
    CheckpointUnreadable,
    Derived,
    aborted,
    fresh_records,
    records_of,
    skip_open,
    unskip,
)
from bentham.core.coverage import all_settled, shortfalls
from bentham.core.deadline_watch import (
    completed_at_deadline,
    figures_of,
    is_past,
    past_deadline,
    watch_deadline,
    watched_of,
)
from bentham.core.decision import Decision, JobToCreate, Notification, ObservedJob, StudyEvent
from bentham.core.escalation import adjust_parallelism
from bentham.core.executor_policy import ExecutorPolicy, within_policy
from bentham.core.fanout import (
    Started,
    effective_parallelism,
    in_flight_limit,
    per_surface_limit,
    start_cells,
)
from bentham.core.intervention import (
    Asking,
    ask_for_person,
    block_failing_surfaces,
    consecutive_failures,
    may_start_cells,
    take_acknowledgement,
    waits_for_person,
)
from bentham.core.jobs import attempt_job
from bentham.core.lifecycle import Lifecycle, tally
from bentham.core.matrix import MATRIX_CHANGED, changed_parts, describe_change, fingerprint_of
from bentham.core.notifications import StudyIdentity, cell_failed_notes
from bentham.core.ordering import open_start_order
from bentham.core.outcomes import Bookkeeping, record_outcomes, running_without_job
from bentham.core.pricing import PricingTable
from bentham.core.progress import progress_from, slice_count
from bentham.core.retries import conditions_of, retry_policy
from bentham.core.running_time import running_time_of
from bentham.core.spec_hold import hold, release
from bentham.core.spec_read import read_once
from bentham.core.states import is_terminal
from bentham.core.study_status import Tracking
from bentham.core.success_rate import low_success
from bentham.core.summary import Given, Pass, end_early, summarise
from bentham.core.tally import Tally
from bentham.core.timestamps import as_utc

__all__ = ["Decision", "Derived", "JobToCreate", "Notification", "ObservedJob", "StudyEvent", "decide"]

_BEFORE_VALIDATION = (StudyState.MANIFEST_RECEIVED, StudyState.VALIDATING)


def decide(
    *,
    name: str,
    namespace: str,
    uid: str,
    generation: int,
    created_at: datetime,
    spec: Any,
    status: StudyStatus | Mapping[str, Any] | None,
    jobs: list[ObservedJob],
    now: datetime,
    derived: Derived | None = None,
    pricing: PricingTable | None = None,
    executor_policy: ExecutorPolicy | None = None,
) -> Decision:
    """Everything that should happen next for the Study `namespace/name`.

    `spec` is the raw spec (a dict, as stored); `status` the last status, raw as stored or as
    this operator decided it (None for a new study); `jobs` every Job of this study that exists;
    `now` the current time; `derived` what the last decision about this study left for this one;
    `pricing` the cost estimate's table (the built-in one when None); `executor_policy` what
    the study's pods may ask for (`core.executor_policy`; None allows nothing beyond the defaults).
    """
    now, created_at = as_utc(now), as_utc(created_at)  # A naive time from a test or a client is UTC.
    every_job = sorted({job.name for job in jobs})
    tenant = spec.get("tenantId") if isinstance(spec, dict) else None
    study = StudyIdentity(name, namespace, uid, tenant if isinstance(tenant, str) else None)
    try:
        previous = status if isinstance(status, StudyStatus) else StudyStatus.model_validate(status or {})
    except ValidationError as error:
        life = Lifecycle(None, now=now)
        life.move(StudyState.MANIFEST_RECEIVED, None)
        problem = f"The study's status cannot be read: {error}"
        return end_early(life, Pass(study, StudyStatus(), generation, now), StudyState.FAILED, "StatusUnreadable",
                         problem, every_job)  # fmt: skip
    if previous.state is not None and is_terminal(previous.state):
        return Decision(status=previous, create=[], delete=every_job, events=[], requeue_after=None)

    life = Lifecycle(previous.state, started=previous.startedAt is not None, now=now)
    if life.state is None:
        life.move(StudyState.MANIFEST_RECEIVED, "ManifestReceived", f"Study {namespace}/{name} received")
    if life.state is StudyState.VALIDATING_RESULTS:
        life.move(StudyState.EXECUTING, None)  # Never stored by this decider; carry on from executing.

    read = read_once(spec, generation=generation, created_at=created_at, known=derived.spec if derived else None)
    validation = within_policy(read.validation(now=now), namespace, executor_policy)
    if isinstance(validation, Invalid) and life.state not in _BEFORE_VALIDATION:
        return hold(validation, previous, generation, now)
    if isinstance(validation, Invalid):
        if life.state is StudyState.MANIFEST_RECEIVED:
            life.move(StudyState.VALIDATING, "Validating", "Validating the spec")
        problem = "Invalid spec: " + "; ".join(validation.errors)
        return end_early(life, Pass(study, previous, generation, now), StudyState.FAILED, validation.reason, problem,
                         every_job)  # fmt: skip
    manifest = validation.spec.manifest
    try:
        stored = records_of(previous.checkpoint, derived)
    except CheckpointUnreadable as error:
        problem = f"The checkpoint cannot be read: {error}"
        return end_early(life, Pass(study, previous, generation, now), StudyState.FAILED, "CheckpointUnreadable",
                         problem, every_job)  # fmt: skip
    matrix = read.matrix or fingerprint_of(manifest)
    if changed := changed_parts(previous.matrix, matrix, len(stored) if stored is not None else None):
        # Never recorded against other cells: held, the Jobs in flight left alone, until it is put back.
        return hold(Invalid([describe_change(changed)], reason=MATRIX_CHANGED), previous, generation, now)
    previous, released = release(previous, generation, now)
    life.announce([released] if released else [])
    new_warnings = [w for w in validation.warnings if w not in previous.warnings]
    if new_warnings:
        life.announce([StudyEvent("Warning", "SpecWarnings", "; ".join(new_warnings))])

    this = Pass(study, previous, generation, now)

    life.queue(
        f"Queued: {len(manifest.queries)} queries x {len(manifest.surfaces)} surfaces x "
        f"{len(manifest.locations)} locations = {manifest.cell_count} cells"
    )
    watched = watched_of(manifest, previous, running_time_of(previous), now)
    checkpoint = previous.checkpoint
    counted = derived.tally if derived is not None and checkpoint is not None and derived.packs(checkpoint) else None
    given = Given(this, validation.spec, validation.warnings, stored, watched, matrix, pricing, counted, read)
    return _advance(life, given, created_at, jobs, every_job)


def _advance(
    life: Lifecycle, given: Given, created_at: datetime, jobs: list[ObservedJob], every_job: list[str]
) -> Decision:
    """Records the observed Jobs, then moves the study on as far as it can go now."""
    spec, manifest, policy, now = given.spec, given.spec.manifest, given.spec.policy, given.this.now
    study, previous = given.this.study, given.this.previous
    max_attempts = manifest.max_attempts
    # A person's acknowledgement first: the Jobs of the cells it reopens then count as theirs.
    acknowledgement = take_acknowledgement(
        previous.intervention,
        spec.interventionAck,
        dict(previous.consecutiveFailures),
        given.stored if given.stored is not None else fresh_records(manifest.cell_count),
        manifest,
        max_attempts=max_attempts,
    )
    life.announce(acknowledgement.step.events)
    book = record_outcomes(
        acknowledgement.records,
        jobs,
        study_uid=study.uid,
        gates=manifest.qualityGates,
        evidence_level=manifest.evidenceLevel,
        max_attempts=max_attempts,
        waits_for_person=waits_for_person(manifest, policy),
        now=now,
        retry=retry_policy(manifest),
        conditions=conditions_of(manifest),
    )
    life.announce(cell_events(book.outcomes, manifest), cell_failed_notes(book.outcomes, manifest))
    records = book.records
    tally = _tally_after(given, manifest, book, acknowledged=acknowledgement.records is not given.stored)
    intervention = acknowledgement.step.intervention
    failures = consecutive_failures(acknowledgement.step.failures, book.outcomes, manifest, policy)
    parallelism = effective_parallelism(spec.executor, previous.parallelism)
    tracking = Tracking(
        running=running_time_of(previous),
        deadline=None,
        at_risk=None,
        consecutive_failures=failures,
        intervention=intervention,
        parallelism=parallelism,
        parallelism_changed_at=previous.parallelismChangedAt,
        cost=add_reported_costs(previous.cost, book.outcomes, manifest),
    )

    if spec.cancel is not None:
        life.end(StudyState.CANCELLED, "Cancelled", f"Cancelled: {spec.cancel.reason}")
        return summarise(life, given, aborted(records), tracking, counted=tally, delete=every_job)
    progress = progress_from(manifest, tally)
    threshold = manifest.completionCriteria.requiredSurfaces.coverageThreshold
    if short := shortfalls(progress, threshold):
        reasons = "; ".join(s.describe() for s in short)
        message = f"A required surface can no longer reach its coverage threshold: {reasons}"
        life.end(StudyState.FAILED, "RequiredSurfaceUnreachable", message)
        return summarise(life, given, aborted(records), tracking, counted=tally, delete=every_job)

    life.start(paused=spec.paused, cells=len(records))
    end = given.watched.end
    if progress.skippedCells and not is_past(end, now):
        records = unskip(records)  # the end moved later: skipped cells may run after all
        tally = tally.advanced(records)
        progress = progress_from(manifest, tally)
    running_seconds = tracking.running.at(now)
    figures = figures_of(
        end, manifest, created_at=created_at, progress=progress, running_seconds=running_seconds, now=now
    )
    asking = Asking(study.name, spec.interventionAck, now)
    missed = given.watched.missed
    if figures is not None and end is not None and figures.time_remaining <= 0:
        past = past_deadline(progress, figures, given.watched, policy, threshold=threshold)
        missed = past.missed
        if past.action == "complete":
            # Cells not started never will; those in flight finish and are recorded first.
            records = skip_open(records)
            tally = tally.advanced(records)
            progress = progress_from(manifest, tally)
            if progress.executingCells == 0:
                checking = f"{end.name.capitalize()} has passed; checking coverage"
                life.complete(completed_at_deadline(progress, end), checking=checking)
                return summarise(life, given, records, tracking, counted=tally, delete=every_job, missed=missed)
        if past.action == "fail":
            life.end(StudyState.FAILED, past.reason, past.message)
            return summarise(life, given, aborted(records), tracking, counted=tally, delete=every_job, missed=missed)
        if past.action == "ask":
            intervention, event, note = ask_for_person(
                intervention, asking, reason=past.reason, cause="deadline", what=past.message, stop=True
            )
            life.announce([event], [note])

    blocking = block_failing_surfaces(intervention, failures, progress, manifest, policy, asking)
    life.announce(blocking.events, blocking.notes)
    intervention = blocking.intervention
    waiting = intervention.message if intervention is not None else None
    life.follow(paused=spec.paused, waiting=waiting, in_flight=tally.in_flight)

    watch = watch_deadline(figures, given.watched, policy, missed=missed, now=now)
    life.announce(watch.events, watch.notes)
    may_start = may_start_cells(life.current, intervention)
    change = adjust_parallelism(
        spec.executor,
        parallelism,
        tracking.parallelism_changed_at,
        at_risk=watch.at_risk,
        may_start=may_start,
        cells_waiting=progress.pendingCells > 0,
        now=now,
    )
    life.announce([change.event] if change.event else [])
    tracking = replace(
        tracking,
        intervention=intervention,
        parallelism=change.parallelism,
        parallelism_changed_at=change.changed_at,
    )

    def job_of(index: int, attempt: int) -> JobToCreate:
        return attempt_job(
            study_name=study.name, namespace=study.namespace, study_uid=study.uid, spec=spec, index=index,
            attempt=attempt,
        )  # fmt: skip

    # Running attempts whose Job is missing are recreated under the same name, even while paused.
    create = [job_of(index, records[index].attempts) for index in running_without_job(tally, jobs)]
    started = Started(tally.records, [], None, tally)
    if may_start:
        started = _complete_or_start(life, given, tally, progress, intervention, change.parallelism, job_of)
    low = low_success(started.counted, manifest.completionCriteria.minSuccessRate)
    return summarise(
        life, given, started.records, tracking, counted=started.counted, create=create + started.jobs,
        delete=book.finished_jobs,
        retry_in=started.retry_in, watch=watch, missed=missed, low=low,
    )  # fmt: skip


def _tally_after(given: Given, manifest: Manifest, book: Bookkeeping, *, acknowledged: bool) -> Tally:
    """The tally of the records once the Jobs were recorded: the last decision's advanced, if it left one."""
    if given.counted is None:
        return Tally.of(book.records, slice_count(manifest))
    if not acknowledged:
        return given.counted.changed(book.changes)  # the Jobs' outcomes are all that changed
    return given.counted.advanced(book.records)


def _complete_or_start(
    life: Lifecycle,
    given: Given,
    counted: Tally,
    progress: Progress,
    intervention: Intervention | None,
    parallelism: int,
    job_of: Callable[[int, int], JobToCreate],
) -> Started:
    """Completes a study whose every cell settled, else fills the free slots in the fair order."""
    if all_settled(progress):
        # Every cell ran (or was skipped); a surface waiting for a person keeps the study open.
        if intervention is None:
            life.complete(f"Complete: {tally(progress)}")
        return Started(counted.records, [], None, counted)
    blocked = intervention.blockedSurfaces if intervention is not None else []
    manifest = given.spec.manifest
    order = open_start_order(manifest, blocked, seed=given.this.study.uid)
    return start_cells(
        counted, order, parallelism=in_flight_limit(given.spec, parallelism), job_of=job_of, now=given.this.now,
        per_surface=per_surface_limit(manifest),
    )  # fmt: skip

"""The decider: given a Study and its Jobs, everything that should happen next.

`decide()` is one pure function of the spec, the last status, the observed Jobs and `now`. It is
level-triggered: it never trusts that a previous decision was applied, only what it observes.
Called twice with the same inputs it returns the same decision; fed its own status back with
the same Jobs it starts no new attempt (it may ask again for Jobs it already asked for, under the
same names, until they show up), and posts no event and notes no notification twice.

A study's life, in one or more calls (docs/lifecycle.md tells it for users):

- new: `manifest_received → validating → queued → executing` (or `→ paused` when created
  with `spec.paused: true`), one event per move; an invalid spec ends in `failed`
  (`InvalidSpec`, `DeadlineInPast`). The spec is validated on every call: a spec that turns
  invalid later (an edit the API server let through, or a CRD newer than this operator during
  an upgrade) *holds* the study instead (condition `SpecValid=False`, nothing started, judged or
  deleted) until it reads again.
- executing: finished attempts are judged and recorded, retries wait out their backoff, and the
  free slots (`parallelism` minus attempts in flight) are filled in the fair start order.
- completion: once every cell of every required surface has completed or failed for good (so
  each reached its coverage threshold, or the study would have failed early), no new cell
  starts: optional cells not yet started (or waiting to retry) never will, and optional cells
  still in flight are awaited, their outcomes recorded, never retried. Then
  `executing → validating_results → complete`. Optional surfaces never decide the outcome; at
  most they delay it by one attempt's timeout.
- fail early: as soon as a required surface could not reach its threshold even if every open
  cell succeeded, the study fails (`RequiredSurfaceUnreachable`) and every Job is deleted. We
  fail rather than ask for human intervention: no action of a person can un-fail a cell.
- paused: no new attempt starts (nor any retry); attempts in flight finish and are recorded.
  Completion is checked again on resume, in the same call.
- deadline: the figures (`status.deadline`) and the at-risk verdict are worked out on every
  call (`deadlines`); becoming at risk is announced once per stage and raises parallelism step
  by step (`escalation`). Once the deadline has passed the study completes as soon as every
  required threshold is met, deleting its Jobs; if they are not met when it passes, the study
  fails or waits for a person, per `policy.onDeadlineMissed`.
- human intervention: a required surface failing again and again is blocked, or the deadline
  passed: the study waits in `human_intervention_required` until `spec.interventionAck`
  changes (`intervention`). Cells of unblocked surfaces go on starting meanwhile, unless the
  deadline was missed.
- cancelled: every Job is deleted; progress and checkpoint are kept.
- terminal: nothing is recorded any more; leftover Jobs are deleted.

In a terminal state no cell is in flight: attempts cut short go back to `pending` (their
attempt count kept), so `executingCells` is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from bentham.api.spec import OnDeadlineMissed, StudySpec
from bentham.api.status import DeadlineStatus, Intervention, Progress, StudyState, StudyStatus
from bentham.api.validation import Invalid, validate_spec
from bentham.core.cell_events import cell_events
from bentham.core.cells import cell_at, job_name
from bentham.core.checkpoint import CellRecord, CellState, CheckpointUnreadable, fresh_records, read_records
from bentham.core.conditions import AT_RISK, SPEC_VALID, clip, condition_of, with_condition
from bentham.core.coverage import required_settled, shortfalls, thresholds_met
from bentham.core.deadlines import DEADLINE_CHECK_SECONDS, DeadlineFigures, assess_risk, deadline_figures
from bentham.core.decision import Decision, JobToCreate, Notification, ObservedJob, StudyEvent
from bentham.core.escalation import escalate, escalation_stage, next_parallelism
from bentham.core.fanout import cells_to_start, effective_parallelism, in_flight, next_retry
from bentham.core.intervention import (
    DEADLINE_MISSED,
    SURFACE_FAILING,
    acknowledged,
    consecutive_failures,
    resume_hint,
    surfaces_to_block,
)
from bentham.core.jobs import build_job
from bentham.core.lifecycle import Lifecycle, tally
from bentham.core.notifications import Note, StudyIdentity, cell_failed_notes, notifications
from bentham.core.ordering import StartOrder, start_order
from bentham.core.outcomes import record_outcomes, running_without_job
from bentham.core.progress import progress_of
from bentham.core.running_time import is_running, running_time_of
from bentham.core.states import is_terminal
from bentham.core.study_status import RecordedCells, Tracking, compose_status, dump_status
from bentham.core.timestamps import as_utc, parse_rfc3339, rfc3339, rfc3339_millis

__all__ = ["Decision", "JobToCreate", "Notification", "ObservedJob", "StudyEvent", "decide"]

MIN_REQUEUE_SECONDS = 1.0
SETTLED = "Every required surface has settled; checking coverage"


def decide(
    *,
    name: str,
    namespace: str,
    uid: str,
    generation: int,
    created_at: datetime,
    spec: Any,
    status: dict[str, Any] | None,
    jobs: list[ObservedJob],
    now: datetime,
) -> Decision:
    """Everything that should happen next for the Study `namespace/name`.

    `spec` is the raw spec (a dict, as stored); `status` the last status written (None for a
    new study); `jobs` every Job of this study that exists; `now` the current time.
    """
    now, created_at = as_utc(now), as_utc(created_at)  # A naive time from a test or a client is UTC.
    every_job = sorted({job.name for job in jobs})
    tenant = spec.get("tenantId") if isinstance(spec, dict) else None
    study = StudyIdentity(name, namespace, uid, tenant if isinstance(tenant, str) else None)
    try:
        previous = StudyStatus.model_validate(status or {})
    except ValidationError as error:
        previous, problem = StudyStatus(), f"The study's status cannot be read: {error}"
        life = Lifecycle(None, now=now)
        life.move(StudyState.MANIFEST_RECEIVED, None)
        return _end(life, StudyState.FAILED, "StatusUnreadable", problem, previous, generation, now, every_job, study)
    if previous.state is not None and is_terminal(previous.state):
        return Decision(status=dump_status(previous), create=[], delete=every_job, events=[], requeue_after=None)

    life = Lifecycle(previous.state, started=previous.startedAt is not None, now=now)
    if life.state is None:
        life.move(StudyState.MANIFEST_RECEIVED, "ManifestReceived", f"Study {namespace}/{name} received")
    if life.state is StudyState.VALIDATING_RESULTS:
        life.move(StudyState.EXECUTING, None)  # Never stored by this decider; carry on from executing.

    validation = validate_spec(spec, created_at=created_at, now=now)
    if isinstance(validation, Invalid) and life.state not in _BEFORE_VALIDATION:
        return _hold(validation, previous, generation, now)
    if isinstance(validation, Invalid):
        if life.state is StudyState.MANIFEST_RECEIVED:
            life.move(StudyState.VALIDATING, "Validating", "Validating the spec")
        problem = "Invalid spec: " + "; ".join(validation.errors)
        return _end(life, StudyState.FAILED, validation.reason, problem, previous, generation, now, every_job, study)
    previous, revalidated = _spec_valid_again(previous, generation, now)
    if revalidated:
        life.events.append(revalidated)
    new_warnings = [w for w in validation.warnings if w not in previous.warnings]
    if new_warnings:
        life.events.append(StudyEvent("Warning", "SpecWarnings", "; ".join(new_warnings)))

    manifest = validation.spec.manifest
    try:
        stored = read_records(previous.checkpoint)
    except CheckpointUnreadable as error:
        problem = f"The checkpoint cannot be read: {error}"
        return _end(
            life, StudyState.FAILED, "CheckpointUnreadable", problem, previous, generation, now, every_job, study
        )
    if stored is not None and len(stored) != manifest.cell_count:
        problem = f"The manifest now has {manifest.cell_count} cells but the study started with {len(stored)}"
        return _end(life, StudyState.FAILED, "ManifestChanged", problem, previous, generation, now, every_job, study)

    if life.state is StudyState.MANIFEST_RECEIVED:
        life.move(StudyState.VALIDATING, "Validating", "Validating the spec")
    if life.state is StudyState.VALIDATING:
        life.move(
            StudyState.QUEUED,
            "Queued",
            f"Queued: {len(manifest.queries)} queries x {len(manifest.surfaces)} surfaces x "
            f"{len(manifest.locations)} locations = {manifest.cell_count} cells",
        )
    run = _Run(
        study=study,
        spec=validation.spec,
        life=life,
        previous=previous,
        generation=generation,
        created_at=created_at,
        now=now,
        warnings=validation.warnings,
    )
    return run.advance(stored, jobs, every_job)


_BEFORE_VALIDATION = (StudyState.MANIFEST_RECEIVED, StudyState.VALIDATING)


def _hold(validation: Invalid, previous: StudyStatus, generation: int, now: datetime) -> Decision:
    """A study that was valid and no longer is: stop deciding, change nothing, say why.

    Nothing a running study has done is undone by a spec that cannot be read: it is a spec edit
    to fix, or a CRD newer than this operator (fields it does not know) during an upgrade. Cells
    neither start nor get judged (the gates are in the spec); Jobs in flight are left alone; the
    study carries on from its checkpoint once the spec reads again.
    """
    problem = "Invalid spec: " + "; ".join(validation.errors)
    condition = condition_of(
        SPEC_VALID,
        False,
        reason=validation.reason,
        message=problem,
        previous=previous.conditions,
        generation=generation,
        now=now,
    )
    already_held = any(
        c.type == SPEC_VALID and c.status == "False" and c.message == condition.message for c in previous.conditions
    )
    held = previous.model_copy(
        update={
            "conditions": with_condition(previous.conditions, condition),
            "message": clip(f"{problem}. Holding: no cell starts or is judged until the spec is valid again."),
        }
    )
    events = [] if already_held else [StudyEvent("Warning", "SpecInvalid", problem)]
    return Decision(status=dump_status(held), create=[], delete=[], events=events, requeue_after=None)


def _spec_valid_again(previous: StudyStatus, generation: int, now: datetime) -> tuple[StudyStatus, StudyEvent | None]:
    """Ends a hold (see `_hold`): the SpecValid condition turns True, once, with an Event."""
    if not any(c.type == SPEC_VALID and c.status == "False" for c in previous.conditions):
        return previous, None
    message = "The spec is valid again; the study carries on from its checkpoint"
    condition = condition_of(
        SPEC_VALID,
        True,
        reason="SpecValid",
        message=message,
        previous=previous.conditions,
        generation=generation,
        now=now,
    )
    updated = previous.model_copy(update={"conditions": with_condition(previous.conditions, condition)})
    return updated, StudyEvent("Normal", "SpecValid", message)


def _end(
    life: Lifecycle,
    state: StudyState,
    reason: str,
    message: str,
    previous: StudyStatus,
    generation: int,
    now: datetime,
    delete: list[str],
    study: StudyIdentity,
) -> Decision:
    """Ends the study before its cells could be read: counts stay as they were, every Job goes."""
    life.end(state, reason, message)
    status = compose_status(life, previous=previous, generation=generation, now=now)
    return Decision(
        status=status,
        create=[],
        delete=delete,
        events=life.events,
        requeue_after=None,
        notifications=notifications(life.notes, study=study, status=status, now=now),
    )


class _Run:
    """One decision about a study whose spec is valid: record, then stop, pause or start cells."""

    def __init__(
        self,
        *,
        study: StudyIdentity,
        spec: StudySpec,
        life: Lifecycle,
        previous: StudyStatus,
        generation: int,
        created_at: datetime,
        now: datetime,
        warnings: list[str],
    ) -> None:
        self.study, self.spec, self.policy = study, spec, spec.policy
        self.manifest = spec.manifest
        self.threshold = self.manifest.completionCriteria.requiredSurfaces.coverageThreshold
        self.life = life
        self.previous, self.generation, self.created_at, self.now = previous, generation, created_at, now
        self.warnings = warnings
        self.running_time = running_time_of(previous)
        self.failures = dict(previous.consecutiveFailures)
        self.intervention: Intervention | None = previous.intervention
        self.parallelism = effective_parallelism(spec.executor, previous.parallelism)
        self.parallelism_changed_at = previous.parallelismChangedAt
        given = self.manifest.deadline
        self.deadline_text = rfc3339(given) if given is not None else None
        # The previous deadline status, while it is about the same deadline.
        self.watched = (
            previous.deadline
            if previous.deadline is not None and previous.deadline.deadline == self.deadline_text
            else None
        )
        self.missed = self.watched is not None and self.watched.missed
        self.deadline_status: DeadlineStatus | None = None
        self.at_risk_reason, self.at_risk_summary = "", ""

    @property
    def state(self) -> StudyState:
        assert self.life.state is not None
        return self.life.state

    def advance(self, stored: list[CellRecord] | None, jobs: list[ObservedJob], every_job: list[str]) -> Decision:
        """Records the observed Jobs, then moves the study on as far as it can go now."""
        book = record_outcomes(
            stored if stored is not None else fresh_records(self.manifest.cell_count),
            jobs,
            study_uid=self.study.uid,
            gates=self.manifest.qualityGates,
            evidence_level=self.manifest.evidenceLevel,
            max_attempts=self.manifest.completionCriteria.maxRetriesPerCell,
            now=self.now,
        )
        self.life.events.extend(cell_events(book.outcomes, self.manifest))
        self.life.notes.extend(cell_failed_notes(book.outcomes, self.manifest))
        self.failures = consecutive_failures(self.failures, book.outcomes, self.manifest, self.policy)
        records = book.records

        if self.spec.cancel is not None:
            self.life.end(StudyState.CANCELLED, "Cancelled", f"Cancelled: {self.spec.cancel.reason}")
            return self._decision(_aborted(records), stored, delete=every_job)
        progress = progress_of(self.manifest, records)
        short = shortfalls(progress, self.threshold)
        if short:
            reasons = "; ".join(s.describe() for s in short)
            self.life.end(
                StudyState.FAILED,
                "RequiredSurfaceUnreachable",
                f"A required surface can no longer reach its coverage threshold: {reasons}",
            )
            return self._decision(_aborted(records), stored, delete=every_job)

        self._take_acknowledgement()
        self.life.start(paused=self.spec.paused, cells=len(records))
        figures = self._figures(progress)
        if figures is not None and figures.time_remaining <= 0 and self._at_deadline(progress, figures):
            return self._decision(_aborted(records), stored, delete=every_job)
        self._block_failing_surfaces(progress)
        waiting = self.intervention.message if self.intervention is not None else None
        self.life.follow(paused=self.spec.paused, waiting=waiting, in_flight=in_flight(records))
        self._watch_deadline(figures, progress)

        # Running attempts whose Job is missing are recreated under the same name, even while paused.
        create = [self._job(index, records[index].attempts) for index in running_without_job(records, jobs)]
        requeue_after = None
        if self._may_start():
            started, requeue_after = self._start_or_complete(records)
            create += started
        return self._decision(records, stored, delete=book.finished_jobs, create=create, requeue_after=requeue_after)

    # --- human intervention -------------------------------------------------------------------

    def _take_acknowledgement(self) -> None:
        """Resolves the open intervention when spec.interventionAck has a new value."""
        if self.intervention is None or not acknowledged(self.intervention, self.spec.interventionAck):
            return
        unblocked = self.intervention.blockedSurfaces
        for surface in unblocked:
            self.failures.pop(surface, None)
        also = f"; unblocked {', '.join(unblocked)}" if unblocked else ""
        self.life.events.append(
            StudyEvent(
                "Normal",
                "InterventionAcknowledged",
                f"spec.interventionAck is {self.spec.interventionAck!r}: {self.intervention.reason} resolved{also}",
            )
        )
        self.intervention = None

    def _block_failing_surfaces(self, progress: Progress) -> None:
        """Blocks required surfaces that failed too often in a row, asking for a person."""
        blocked = self.intervention.blockedSurfaces if self.intervention is not None else []
        limit = self.policy.consecutiveFailuresForIntervention
        for surface in surfaces_to_block(self.failures, progress, limit=limit, blocked=blocked):
            self._ask_for_person(
                SURFACE_FAILING,
                cause=surface,
                what=(
                    f"required surface {surface} failed {self.failures[surface]} times in a row "
                    f"({', '.join(self.policy.interventionFailures)}); no cell starts on it"
                ),
                surfaces=[surface],
            )

    def _ask_for_person(
        self, reason: str, *, cause: str, what: str, surfaces: Sequence[str] = (), stop: bool = False
    ) -> None:
        """Opens the intervention, or adds a cause to the open one; announced once per cause."""
        old = self.intervention
        if old is None:
            self.intervention = Intervention(
                reason=reason,
                message=what,
                since=rfc3339(self.now),
                blockedSurfaces=list(surfaces),
                allCellsStopped=stop,
                ack=self.spec.interventionAck,
            )
        else:
            self.intervention = old.model_copy(
                update={
                    "reason": reason,
                    "message": clip(f"{old.message}; {what}"),
                    "blockedSurfaces": [*old.blockedSurfaces, *surfaces],
                    "allCellsStopped": old.allCellsStopped or stop,
                }
            )
        message = f"Waiting for a person: {what}; {resume_hint(self.study.name)}"
        self.life.events.append(StudyEvent("Warning", "HumanInterventionRequired", message))
        self.life.notes.append(Note("study.needs_intervention", f"{rfc3339_millis(self.now)}:{cause}", reason, message))

    def _waiting_message(self) -> str | None:
        """The status message while a person is awaited."""
        if self.intervention is None:
            return None
        what = self.intervention.message
        if self.state is StudyState.PAUSED:
            return f"Paused, and waiting for a person: {what}"
        if self.state is StudyState.HUMAN_INTERVENTION_REQUIRED:
            return f"Waiting for a person: {what}; {resume_hint(self.study.name)}"
        return None

    # --- the deadline -------------------------------------------------------------------------

    def _figures(self, progress: Progress) -> DeadlineFigures | None:
        deadline = self.manifest.deadline
        if deadline is None:
            return None
        return deadline_figures(
            deadline=as_utc(deadline),
            created_at=self.created_at,
            progress=progress,
            threshold=self.threshold,
            running_seconds=self.running_time.at(self.now),
            now=self.now,
        )

    def _at_deadline(self, progress: Progress, figures: DeadlineFigures) -> bool:
        """Past the deadline: completes when the thresholds are met, else applies the policy once.

        Returns whether the study ended (its Jobs are then all deleted).
        """
        if thresholds_met(progress, self.threshold):
            left = progress.pendingCells + progress.executingCells
            self._complete(
                f"Complete at the deadline: every required surface meets its coverage threshold; "
                f"{left} cells not run. {tally(progress)}",
                checking="The deadline has passed; checking coverage",
            )
            return True
        if self.missed:
            return False  # a person already chose to go on past this deadline
        self.missed = True
        what = (
            f"the deadline {self.deadline_text} passed with {figures.cells_needed} required cells short of "
            f"the coverage thresholds (bottleneck {figures.bottleneck})"
        )
        if self.policy.onDeadlineMissed is OnDeadlineMissed.FAIL:
            self.life.end(StudyState.FAILED, DEADLINE_MISSED, f"Deadline missed: {what}")
            return True
        self._ask_for_person(DEADLINE_MISSED, cause="deadline", what=f"{what}; no cell starts", stop=True)
        return False

    def _watch_deadline(self, figures: DeadlineFigures | None, progress: Progress) -> None:
        """The deadline status, the AtRisk condition, the at-risk announcements and the parallelism."""
        at_risk = False
        if figures is not None:
            was = self.watched is not None and self.watched.atRisk
            risk = assess_risk(
                figures,
                was_at_risk=was,
                margin=self.policy.atRiskMargin,
                no_progress_fraction=self.policy.noProgressFraction,
            )
            at_risk = risk.at_risk
            now = rfc3339(self.now)
            escalation = escalate(
                at_risk=risk.at_risk,
                stage=escalation_stage(figures.time_used),
                previous_since=self.watched.atRiskSince if self.watched is not None else None,
                previous_stage=self.watched.escalationStage if self.watched is not None else None,
                now=now,
            )
            if escalation.announce:
                stage = escalation.stage or 0
                text = (
                    f"At risk of missing the deadline {self.deadline_text} (stage {stage}: "
                    f"{figures.time_used:.0%} of the time used): {risk.message}"
                )
                self.life.events.append(StudyEvent("Warning", "AtRisk", text))
                self.life.notes.append(Note("study.at_risk", f"{escalation.since}:{stage}", risk.reason, text))
            elif escalation.cleared:
                self.life.events.append(StudyEvent("Normal", "BackOnSchedule", risk.message))
            self.deadline_status = DeadlineStatus(
                deadline=self.deadline_text,
                timeRemainingSeconds=int(figures.time_remaining),
                cellsNeeded=figures.cells_needed,
                requiredRate=_rate(figures.required_rate),
                currentRate=_rate(figures.current_rate),
                projectedCompletion=rfc3339(figures.projected_completion) if figures.projected_completion else None,
                bottleneckSurface=figures.bottleneck,
                checkedAt=now,
                atRisk=risk.at_risk,
                atRiskSince=escalation.since,
                escalationStage=escalation.stage,
                missed=self.missed,
            )
            self.at_risk_reason, self.at_risk_summary = risk.reason, risk.summary
        self._adjust_parallelism(at_risk=at_risk, cells_waiting=progress.pendingCells > 0)

    def _adjust_parallelism(self, *, at_risk: bool, cells_waiting: bool) -> None:
        try:
            changed_at = parse_rfc3339(self.parallelism_changed_at) if self.parallelism_changed_at else None
        except ValueError:
            changed_at = None
        before = self.parallelism
        after = next_parallelism(
            self.spec.executor,
            before,
            at_risk=at_risk,
            may_start=self._may_start(),
            cells_waiting=cells_waiting,
            changed_at=changed_at,
            now=self.now,
        )
        if after == before:
            return
        self.parallelism, self.parallelism_changed_at = after, rfc3339(self.now)
        if after > before:
            ceiling = self.spec.executor.maxParallelism
            message = f"At risk: parallelism raised from {before} to {after} (maxParallelism {ceiling})"
            self.life.events.append(StudyEvent("Normal", "ParallelismRaised", message))
        else:
            message = f"No longer at risk: parallelism lowered from {before} to {after}"
            self.life.events.append(StudyEvent("Normal", "ParallelismLowered", message))

    # --- cells ----------------------------------------------------------------------------------

    def _may_start(self) -> bool:
        """Whether cells may start now: executing, or waiting for a person with only some surfaces blocked."""
        stopped = self.intervention is not None and self.intervention.allCellsStopped
        return is_running(self.state, all_cells_stopped=stopped)

    def _complete(self, message: str, *, checking: str = SETTLED) -> None:
        if self.state in (StudyState.PAUSED, StudyState.HUMAN_INTERVENTION_REQUIRED):
            self.life.move(StudyState.EXECUTING, None)  # completing passes through executing
        self.life.move(StudyState.VALIDATING_RESULTS, "ValidatingResults", checking)
        self.life.end(StudyState.COMPLETE, "Completed", message)

    def _start_or_complete(self, records: list[CellRecord]) -> tuple[list[JobToCreate], float | None]:
        """Completes the study when its required surfaces are done, or fills the free slots.

        Also returns the seconds until the next retry falls due, if one will.
        """
        progress = progress_of(self.manifest, records)
        if required_settled(progress):
            # Optional cells never start now; those in flight are awaited, then the study completes.
            if progress.executingCells == 0:
                self._complete(f"Complete: {tally(progress)}")
            return [], None
        capacity = self.parallelism - in_flight(records)
        started = []
        for index in cells_to_start(records, self._start_order(), capacity=capacity, now=self.now):
            records[index] = CellRecord(CellState.RUNNING, records[index].attempts + 1)
            started.append(self._job(index, records[index].attempts))
        upcoming = next_retry(records, now=self.now)
        return started, (upcoming - self.now).total_seconds() if upcoming is not None else None

    def _start_order(self) -> StartOrder:
        """The fair start order, without the cells of blocked surfaces."""
        order = start_order(self.manifest)
        blocked = set(self.intervention.blockedSurfaces) if self.intervention is not None else set()
        if not blocked:
            return order
        surfaces, locations = len(self.manifest.surfaces), len(self.manifest.locations)
        positions = {p for p, s in enumerate(self.manifest.surfaces) if s.id.value in blocked}

        def open_(index: int) -> bool:
            return (index % (surfaces * locations)) // locations not in positions

        return StartOrder(required=tuple(filter(open_, order.required)), optional=tuple(filter(open_, order.optional)))

    def _job(self, index: int, attempt: int) -> JobToCreate:
        cell = cell_at(self.manifest, index)
        body = build_job(
            study_name=self.study.name,
            namespace=self.study.namespace,
            study_uid=self.study.uid,
            spec=self.spec,
            cell=cell,
            attempt=attempt,
        )
        return JobToCreate(name=body["metadata"]["name"], cell=cell, attempt=attempt, body=body)

    # --- the decision ---------------------------------------------------------------------------

    def _decision(
        self,
        records: list[CellRecord],
        stored: list[CellRecord] | None,
        *,
        delete: list[str],
        create: list[JobToCreate] | None = None,
        requeue_after: float | None = None,
    ) -> Decision:
        running = [
            job_name(self.study.name, self.study.uid, i, r.attempts)
            for i, r in enumerate(records)
            if r.state is CellState.RUNNING
        ]
        fresh = self.deadline_status
        if fresh is None and self.watched is not None:
            fresh = self.watched.model_copy(update={"missed": self.missed})
        condition = None
        if self.deadline_status is not None:
            condition = condition_of(
                AT_RISK,
                self.deadline_status.atRisk,
                reason=self.at_risk_reason,
                message=self.at_risk_summary,
                previous=self.previous.conditions,
                generation=self.generation,
                now=self.now,
            )
        elif self.manifest.deadline is None and any(c.type == AT_RISK for c in self.previous.conditions):
            condition = condition_of(
                AT_RISK,
                False,
                reason="NoDeadline",
                message="The study has no deadline",
                previous=self.previous.conditions,
                generation=self.generation,
                now=self.now,
            )
        cells = RecordedCells(self.manifest, records, stored, running)

        def compose(deadline: DeadlineStatus | None) -> dict[str, Any]:
            tracking = Tracking(
                running=self.running_time,
                deadline=deadline,
                at_risk=condition,
                consecutive_failures=self.failures,
                intervention=self.intervention,
                parallelism=self.parallelism,
                parallelism_changed_at=self.parallelism_changed_at,
                message=self._waiting_message(),
            )
            return compose_status(
                self.life,
                previous=self.previous,
                generation=self.generation,
                now=self.now,
                cells=cells,
                warnings=self.warnings,
                tracking=tracking,
            )

        status = compose(fresh)
        carried = _carried(fresh, self.watched)
        if carried is not None and not self._stale(self.watched) and not is_terminal(self.state):
            # Between refreshes the figures stand, so a reconcile that changes nothing writes nothing.
            quiet = dict(status, deadline=carried.model_dump(mode="json", exclude_none=True))
            if quiet == dump_status(self.previous):
                status = quiet
        return Decision(
            status=status,
            create=create or [],
            delete=sorted(set(delete)),
            events=self.life.events,
            requeue_after=self._requeue_after(requeue_after, status),
            notifications=notifications(self.life.notes, study=self.study, status=status, now=self.now),
        )

    def _stale(self, watched: DeadlineStatus | None) -> bool:
        """Whether the figures last written are a minute old (or unreadable)."""
        if watched is None or watched.checkedAt is None:
            return True
        try:
            checked = parse_rfc3339(watched.checkedAt)
        except ValueError:
            return True
        return (self.now - checked).total_seconds() >= DEADLINE_CHECK_SECONDS

    def _requeue_after(self, retry_in: float | None, status: dict[str, Any]) -> float | None:
        """When to decide again unprompted: a retry due, the next deadline check, the deadline itself."""
        deadline = self.manifest.deadline
        if deadline is None or is_terminal(self.state):
            return retry_in
        checked = (status.get("deadline") or {}).get("checkedAt")
        try:
            last = parse_rfc3339(checked) if checked else self.now
        except ValueError:
            last = self.now
        waits = [DEADLINE_CHECK_SECONDS - (self.now - last).total_seconds()]
        until = (as_utc(deadline) - self.now).total_seconds()
        if until > 0:
            waits.append(until)
        check_in = max(MIN_REQUEUE_SECONDS, min(waits))
        return check_in if retry_in is None else min(retry_in, check_in)


def _carried(fresh: DeadlineStatus | None, watched: DeadlineStatus | None) -> DeadlineStatus | None:
    """`fresh` with the figures of `watched`: what the status shows between refreshes."""
    if fresh is None or watched is None:
        return None
    return fresh.model_copy(
        update={
            "timeRemainingSeconds": watched.timeRemainingSeconds,
            "cellsNeeded": watched.cellsNeeded,
            "requiredRate": watched.requiredRate,
            "currentRate": watched.currentRate,
            "projectedCompletion": watched.projectedCompletion,
            "bottleneckSurface": watched.bottleneckSurface,
            "checkedAt": watched.checkedAt,
        }
    )


def _rate(value: float | None) -> float | None:
    """Four significant digits: enough to read, few enough to keep the status tidy."""
    return float(f"{value:.4g}") if value is not None else None


def _aborted(records: Sequence[CellRecord]) -> list[CellRecord]:
    """Running attempts being stopped go back to pending, their attempts still counted."""
    return [CellRecord(CellState.PENDING, r.attempts) if r.state is CellState.RUNNING else r for r in records]

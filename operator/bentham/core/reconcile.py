"""The decider: given a Study and its Jobs, everything that should happen next.

`decide()` is one pure function of the spec, the last status, the observed Jobs and `now`. It is
level-triggered: it never trusts that a previous decision was applied, only what it observes.
Called twice with the same inputs it returns the same decision; fed its own status back with
the same Jobs it starts no new attempt (it may ask again for Jobs it already asked for, under the
same names, until they show up).

A study's life, in one or more calls:

- new: `manifest_received → validating → queued → executing` (or `→ paused` when created
  with `spec.paused: true`), one event per move; an invalid spec ends in `failed`
  (`InvalidSpec`, `DeadlineInPast`). The spec is validated on every call: a spec that turns
  invalid later (a CRD installed without its rules) also fails the study, since its cells can
  no longer be read.
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

from bentham.api.spec import StudySpec
from bentham.api.status import StudyState, StudyStatus
from bentham.api.validation import Invalid, validate_spec
from bentham.core.cell_events import cell_events
from bentham.core.cells import cell_at, job_name
from bentham.core.checkpoint import CellRecord, CellState, CheckpointUnreadable, fresh_records, read_records
from bentham.core.coverage import required_settled, shortfalls
from bentham.core.decision import Decision, JobToCreate, ObservedJob, StudyEvent
from bentham.core.fanout import cells_to_start, effective_parallelism, in_flight, next_retry
from bentham.core.jobs import build_job
from bentham.core.lifecycle import Lifecycle, tally
from bentham.core.ordering import start_order
from bentham.core.outcomes import record_outcomes, running_without_job
from bentham.core.progress import progress_of
from bentham.core.states import is_terminal
from bentham.core.study_status import RecordedCells, compose_status, dump_status
from bentham.core.timestamps import as_utc

__all__ = ["Decision", "JobToCreate", "ObservedJob", "StudyEvent", "decide"]


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
    try:
        previous = StudyStatus.model_validate(status or {})
    except ValidationError as error:
        previous, problem = StudyStatus(), f"The study's status cannot be read: {error}"
        life = Lifecycle(None)
        life.move(StudyState.MANIFEST_RECEIVED, None)
        return _end(life, StudyState.FAILED, "StatusUnreadable", problem, previous, generation, now, every_job)
    if previous.state is not None and is_terminal(previous.state):
        return Decision(status=dump_status(previous), create=[], delete=every_job, events=[], requeue_after=None)

    life = Lifecycle(previous.state)
    if life.state is None:
        life.move(StudyState.MANIFEST_RECEIVED, "ManifestReceived", f"Study {namespace}/{name} received")
    if life.state is StudyState.VALIDATING_RESULTS:
        life.move(StudyState.EXECUTING, None)  # Never stored by this decider; carry on from executing.

    validation = validate_spec(spec, created_at=created_at, now=now)
    if isinstance(validation, Invalid):
        if life.state is StudyState.MANIFEST_RECEIVED:
            life.move(StudyState.VALIDATING, "Validating", "Validating the spec")
        problem = "Invalid spec: " + "; ".join(validation.errors)
        return _end(life, StudyState.FAILED, validation.reason, problem, previous, generation, now, every_job)
    new_warnings = [w for w in validation.warnings if w not in previous.warnings]
    if new_warnings:
        life.events.append(StudyEvent("Warning", "SpecWarnings", "; ".join(new_warnings)))

    manifest = validation.spec.manifest
    try:
        stored = read_records(previous.checkpoint)
    except CheckpointUnreadable as error:
        problem = f"The checkpoint cannot be read: {error}"
        return _end(life, StudyState.FAILED, "CheckpointUnreadable", problem, previous, generation, now, every_job)
    if stored is not None and len(stored) != manifest.cell_count:
        problem = f"The manifest now has {manifest.cell_count} cells but the study started with {len(stored)}"
        return _end(life, StudyState.FAILED, "ManifestChanged", problem, previous, generation, now, every_job)

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
        name=name,
        namespace=namespace,
        uid=uid,
        spec=validation.spec,
        life=life,
        previous=previous,
        generation=generation,
        now=now,
        warnings=validation.warnings,
    )
    return run.advance(stored, jobs, every_job)


def _end(
    life: Lifecycle,
    state: StudyState,
    reason: str,
    message: str,
    previous: StudyStatus,
    generation: int,
    now: datetime,
    delete: list[str],
) -> Decision:
    """Ends the study before its cells could be read: counts stay as they were, every Job goes."""
    life.end(state, reason, message)
    status = compose_status(life, previous=previous, generation=generation, now=now)
    return Decision(status=status, create=[], delete=delete, events=life.events, requeue_after=None)


class _Run:
    """One decision about a study whose spec is valid: record, then stop, pause or start cells."""

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        uid: str,
        spec: StudySpec,
        life: Lifecycle,
        previous: StudyStatus,
        generation: int,
        now: datetime,
        warnings: list[str],
    ) -> None:
        self.name, self.namespace, self.uid, self.spec = name, namespace, uid, spec
        self.manifest = spec.manifest
        self.life = life
        self.previous, self.generation, self.now, self.warnings = previous, generation, now, warnings

    def advance(self, stored: list[CellRecord] | None, jobs: list[ObservedJob], every_job: list[str]) -> Decision:
        """Records the observed Jobs, then moves the study on as far as it can go now."""
        book = record_outcomes(
            stored if stored is not None else fresh_records(self.manifest.cell_count),
            jobs,
            study_uid=self.uid,
            gates=self.manifest.qualityGates,
            evidence_level=self.manifest.evidenceLevel,
            max_attempts=self.manifest.completionCriteria.maxRetriesPerCell,
            now=self.now,
        )
        self.life.events.extend(cell_events(book.outcomes, self.manifest))
        records = book.records

        if self.spec.cancel is not None:
            self.life.end(StudyState.CANCELLED, "Cancelled", f"Cancelled: {self.spec.cancel.reason}")
            return self._decision(_aborted(records), stored, delete=every_job)
        threshold = self.manifest.completionCriteria.requiredSurfaces.coverageThreshold
        short = shortfalls(progress_of(self.manifest, records), threshold)
        if short:
            reasons = "; ".join(s.describe() for s in short)
            self.life.end(
                StudyState.FAILED,
                "RequiredSurfaceUnreachable",
                f"A required surface can no longer reach its coverage threshold: {reasons}",
            )
            return self._decision(_aborted(records), stored, delete=every_job)

        self.life.follow_pause(paused=self.spec.paused, cells=len(records), in_flight=in_flight(records))
        # Running attempts whose Job is missing are recreated under the same name, even while paused.
        create = [self._job(index, records[index].attempts) for index in running_without_job(records, jobs)]
        requeue_after = None
        if self.life.state is StudyState.EXECUTING:
            started, requeue_after = self._start_or_complete(records)
            create += started
        return self._decision(records, stored, delete=book.finished_jobs, create=create, requeue_after=requeue_after)

    @property
    def parallelism(self) -> int:
        return effective_parallelism(self.spec.executor, self.previous.parallelism)

    def _start_or_complete(self, records: list[CellRecord]) -> tuple[list[JobToCreate], float | None]:
        """Completes the study when its required surfaces are done, or fills the free slots.

        Also returns the seconds until the next retry falls due, if one will.
        """
        progress = progress_of(self.manifest, records)
        if required_settled(progress):
            # Optional cells never start now; those in flight are awaited, then the study completes.
            if progress.executingCells == 0:
                self.life.move(
                    StudyState.VALIDATING_RESULTS,
                    "ValidatingResults",
                    "Every required surface has settled; checking coverage",
                )
                self.life.end(StudyState.COMPLETE, "Completed", f"Complete: {tally(progress)}")
            return [], None
        capacity = self.parallelism - in_flight(records)
        started = []
        for index in cells_to_start(records, start_order(self.manifest), capacity=capacity, now=self.now):
            records[index] = CellRecord(CellState.RUNNING, records[index].attempts + 1)
            started.append(self._job(index, records[index].attempts))
        upcoming = next_retry(records, now=self.now)
        return started, (upcoming - self.now).total_seconds() if upcoming is not None else None

    def _job(self, index: int, attempt: int) -> JobToCreate:
        cell = cell_at(self.manifest, index)
        body = build_job(
            study_name=self.name,
            namespace=self.namespace,
            study_uid=self.uid,
            spec=self.spec,
            cell=cell,
            attempt=attempt,
        )
        return JobToCreate(name=body["metadata"]["name"], cell=cell, attempt=attempt, body=body)

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
            job_name(self.name, self.uid, i, r.attempts) for i, r in enumerate(records) if r.state is CellState.RUNNING
        ]
        status = compose_status(
            self.life,
            previous=self.previous,
            generation=self.generation,
            now=self.now,
            cells=RecordedCells(self.manifest, records, stored, running),
            warnings=self.warnings,
            parallelism=self.parallelism,
        )
        return Decision(
            status=status,
            create=create or [],
            delete=sorted(set(delete)),
            events=self.life.events,
            requeue_after=requeue_after,
        )


def _aborted(records: Sequence[CellRecord]) -> list[CellRecord]:
    """Running attempts being stopped go back to pending, their attempts still counted."""
    return [CellRecord(CellState.PENDING, r.attempts) if r.state is CellState.RUNNING else r for r in records]
